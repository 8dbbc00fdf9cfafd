"""The benchmarks' timing helpers (benchmarks/ is a folder of scripts, not a package)."""
import functools
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "timing.py")
_SPEC = importlib.util.spec_from_file_location("benchmarks_timing", _PATH)
timing = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(timing)


def test_call_site_calls_the_function_as_written():
    # a partial becomes a literal call of its function: the same arguments, but no partial
    # (whose keywords would be packed into a dict at every call)
    received = []

    def f(*args, **kwargs):
        received.append((args, kwargs))
        return "result"

    call = timing.call_site(functools.partial(f, 1, "two", out=3, negative_slope=0.5))
    assert not isinstance(call, functools.partial)
    assert call() == "result"
    assert received == [((1, "two"), {"out": 3, "negative_slope": 0.5})]
    assert "f" in call.__code__.co_names


def test_call_site_keeps_other_callables():
    def call():
        return None
    assert timing.call_site(call) is call
