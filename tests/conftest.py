"""Shared machinery of the elementwise tests, driven by the registry.

Every entry of ``actfast.catalogue.ENTRIES`` times each of its ``examples`` parameter sets is
one :class:`Case`; the tests parametrize over ``CASES`` (or ``OUTPUT_CASES``, the cases whose
derivative can be computed from the forward's output), so an entry added to the catalogue is
tested without touching the tests. Inputs are fresh random draws mixed with the special values
of each case (its kinks, signed zeros, infinities, NaN, subnormals, huge values).
"""
import math
import os
import platform
import re
import sys
import threading
import time
import zlib

import numpy as np
import pytest

import actfast as af
from actfast import reference
from actfast.catalogue import ENTRIES, REQUIRED

FLOATS = (np.float32, np.float64)
EPS64 = np.finfo(np.float64).eps
SUBNORMAL_SLACK = 1e-319  # ~20000 of the smallest subnormal; 4e-305 of the smallest normal


def _format(value):
    return value if isinstance(value, str) else repr(value)


class Case:
    """One registry entry with one of its example parameter sets."""

    def __init__(self, entry, params):
        self.entry = entry
        self.name = entry.name
        self.params = dict(params)          # what the tests pass (the rest are defaults)
        self.values = {p.name: p.default for p in entry.params}
        self.values.update(self.params)     # every parameter's value
        if REQUIRED in self.values.values():
            raise ValueError(f"example {params} of {entry.name} leaves a parameter unset")
        self.function = getattr(af, entry.name)
        self.id = "-".join([entry.name] + [f"{k}={_format(v)}" for k, v in self.params.items()])
        self.allows_output = (bool(entry.backward_from_output)
                              and entry.allows_output(self.values))

    def __repr__(self):
        return f"Case({self.id})"

    # ---- actfast and its reference, with this case's parameters ----------------------------
    def forward(self, x, **kwargs):
        return self.function(x, **self.params, **kwargs)

    def backward(self, grad_output, x=None, **kwargs):
        return self.function.backward(grad_output, x, **self.params, **kwargs)

    # (the reference's overflow at huge x is its correct answer, inf: not worth a warning)
    def reference(self, x):
        with np.errstate(over="ignore"):
            return getattr(reference, self.name)(np.asarray(x, dtype=np.float64),
                                                 **self.params)

    def reference_grad(self, x):
        with np.errstate(over="ignore"):
            return getattr(reference, self.name + "_grad")(np.asarray(x, dtype=np.float64),
                                                           **self.params)

    def reference_vjp(self, grad_output, x):
        """grad_output * f'(x) in float64 (inf where the product overflows: celu with
        alpha < 0, whose derivative grows as exp(x / alpha))."""
        with np.errstate(over="ignore"):
            return np.asarray(grad_output, dtype=np.float64) * self.reference_grad(x)

    def reference_slack(self, x):
        """Absolute error the float64 reference itself may have at x (forward), beyond a few
        rounding errors relative to its result, where its formula cancels (documented in
        actfast/reference.py); 0 for the other functions."""
        x = np.abs(np.asarray(x, dtype=np.float64))
        with np.errstate(over="ignore", invalid="ignore"):
            if self.name == "tanhshrink":    # x - tanh(x) near 0: ~1e-16 |x| absolute
                return 4 * EPS64 * x
            if self.name == "hardsigmoid":   # slope * x + offset near the kinks
                return 4 * EPS64 * (abs(self.values["slope"]) * x + abs(self.values["offset"]))
        return np.zeros_like(x)

    # ---- where the function is not smooth ------------------------------------------------
    def kinks(self):
        """Points where the function or its derivative may jump: 0, +-1, the parameters'
        values and simple combinations of them (softplus's threshold / beta, hardsigmoid's
        (+-1 +- offset) / slope), relu6's 6 and the hard* functions' +-3."""
        reals = [float(v) for v in self.values.values()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        points = {0.0, 1.0, -1.0}
        for v in reals:
            points |= {v, -v}
            for w in reals:
                if w != 0:
                    points |= {v / w, -v / w, (1 - v) / w, (-1 - v) / w, (1 + v) / w}
        if self.name == "relu6":
            points |= {6.0}
        if self.name.startswith("hard"):
            points |= {3.0, -3.0}
        return sorted(p for p in points if math.isfinite(p))


CASES = [Case(entry, params) for entry in ENTRIES for params in entry.examples]
OUTPUT_CASES = [case for case in CASES if case.allows_output]


def case_params(cases):
    return [pytest.param(case, id=case.id) for case in cases]


def dtype_params(dtypes=FLOATS):
    return [pytest.param(np.dtype(d), id=np.dtype(d).name) for d in dtypes]


@pytest.fixture
def n_threads(request):
    """Run the test with actfast set to request.param threads (use the THREADS marker);
    restore the setting afterwards."""
    saved = af.get_num_threads()
    af.set_num_threads(request.param)
    yield request.param
    af.set_num_threads(saved)


THREADS = pytest.mark.parametrize("n_threads", [1, 2], indirect=True,
                                  ids=["1thread", "2threads"])


# ---- random inputs: fresh each session, replayable ------------------------------------------
# One seed per session (ACTFAST_TEST_SEED, else fresh entropy), printed in pytest's header;
# each test's generator is drawn from it and the test's id, so a failure replays with
# `ACTFAST_TEST_SEED=<seed> pytest <the test's id>`, alone or in the whole run.

SEED = int(os.environ.get("ACTFAST_TEST_SEED") or np.random.SeedSequence().entropy)


def pytest_report_header(config):
    return f"actfast test seed: {SEED} (replay: ACTFAST_TEST_SEED={SEED})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus != 0:   # again at the end, where a failure is read (-q drops the header)
        terminalreporter.write_line(pytest_report_header(config))


def seeded_rng(name):
    """The generator of `name` (a test id or a module's label) in this session."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


@pytest.fixture
def rng(request):
    return seeded_rng(request.node.nodeid)


def assert_other_threads_run(call_of_size, size, largest):
    """A Python thread records a timestamp about every 0.5 ms while the main thread makes long
    kernel calls. If a call held the GIL, that thread could record nothing between the call's
    start and end, except for a few switch intervals at either end, where the main thread
    runs Python code. So some timestamp must fall well inside a call. The switch interval is
    lowered to 0.5 ms meanwhile, so that calls of a few tens of ms leave such a window (a
    kernel at 1 ns per element makes 2**25 elements last 35 ms).

    `call_of_size(n)` returns a function making one call on n elements (its operands made
    outside the timing); n doubles from `size` up to `largest` until calls leave a window
    between the margins, measured while the thread runs (a load that changes between a
    calibration and the measured calls cannot make them too short)."""
    saved_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        _assert_ticks_inside_calls(call_of_size, size, largest)
    finally:
        sys.setswitchinterval(saved_interval)


def _assert_ticks_inside_calls(call_of_size, size, largest):
    margin = 3 * sys.getswitchinterval() + 0.005
    ticks, stop, running = [], threading.Event(), threading.Event()

    def counter():
        running.set()
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    thread = threading.Thread(target=counter)
    thread.start()
    running.wait()
    windows, call = [], call_of_size(size)
    try:
        for _ in range(20):
            start = time.perf_counter()
            call()
            low, high = start + margin, time.perf_counter() - margin
            if high - low > 0.005:
                windows.append((low, high))
                if len(windows) == 3:
                    break
            elif size < largest:
                size *= 2
                call = call_of_size(size)
    finally:
        stop.set()
        thread.join()
    assert windows, f"calls on {size} elements too short to tell"
    inside = [t for t in ticks for low, high in windows if low < t < high]
    assert inside, (f"no Python thread ran during the kernel calls ({len(ticks)} ticks, "
                    f"windows {windows})")


class single_thread:
    """Context manager: actfast on one thread inside, the previous setting restored after."""

    def __enter__(self):
        self.saved = af.get_num_threads()
        af.set_num_threads(1)

    def __exit__(self, *exc):
        af.set_num_threads(self.saved)


# ---- inputs --------------------------------------------------------------------------------

def special_values(case, dtype):
    """The values every input mixes in: kinks and their float neighbours, signed zeros,
    infinities, NaN, tiny and huge magnitudes, the far tails (where kernels switch formula),
    in `dtype`."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30,
              float(info.tiny), -float(info.tiny), float(info.max), -float(info.max),
              0.5, -0.5, 2.0, -2.0, 10.0, -10.0, 20.0, -20.0, 25.0, -25.0, 30.0, -30.0,
              40.0, -40.0, 88.72, -88.72, 100.0, -100.0, 800.0, -800.0, 1e4, -1e4]
    if dtype == np.float32:
        values += [1e-45, -1e-45, 1e-40, -1e-40, 3e38, -3e38]
    else:
        values += [5e-324, -5e-324, 1e-310, -1e-310, 1e-300, -1e-300, 1e300, -1e300,
                   709.8, -709.8, 1e100, -1e100]
    values = np.array(values + case.kinks())
    # what the dtype can hold (float16: |x| <= 65504; inf and NaN are in the list anyway)
    values = values[~(np.abs(values) > float(info.max)) | ~np.isfinite(values)].astype(dtype)
    kinks = np.array([k for k in case.kinks() if abs(k) <= float(info.max)], dtype=dtype)
    return np.concatenate([values, np.nextafter(kinks, dtype.type(np.inf)),
                           np.nextafter(kinks, dtype.type(-np.inf))])


def draw(rng, shape, case, dtype, special_fraction=0.1):
    """A contiguous array of `shape`: random values covering [-20, 20] densely (interleaved:
    uniform, normal around 0, log-uniform magnitudes 1e-10..1e4 of either sign, points within
    0.01 of the kinks) with the case's special values sprinkled in at random positions (each
    at least once when the array is large enough)."""
    dtype = np.dtype(dtype)
    n = math.prod(shape)
    k = -(-n // 4)
    kinks = np.array(case.kinks())
    values = np.empty((k, 4))
    values[:, 0] = rng.uniform(-20, 20, k)
    values[:, 1] = rng.standard_normal(k) * 3
    values[:, 2] = np.copysign(np.exp(rng.uniform(-23, 9.2, k)), rng.random(k) - 0.5)
    values[:, 3] = kinks[rng.integers(0, len(kinks), k)] + rng.uniform(-0.01, 0.01, k)
    values = values.ravel()[:n].astype(dtype)
    specials = special_values(case, dtype)
    if n:
        count = min(n, max(len(specials), int(n * special_fraction)))
        positions = rng.choice(n, count, replace=False)
        picked = specials[rng.integers(0, len(specials), count)]
        if count >= len(specials):
            picked[:len(specials)] = rng.permutation(specials)
        values[positions] = picked
    return values.reshape(shape)


def draw_grad_output(rng, shape, dtype):
    """Random finite grad_output of mixed magnitudes (never all zeros)."""
    n = math.prod(shape)
    scales = np.array([1e-3, 1e-2, 0.1, 1.0, 1.0, 10.0, 100.0, 1e3])
    values = (rng.random(n) - 0.5) * scales[rng.integers(0, len(scales), n, dtype=np.int8)]
    return values.astype(dtype).reshape(shape)


# ---- comparisons ---------------------------------------------------------------------------

def unaligned(a):
    """A copy of `a` whose data starts one byte past an element boundary."""
    raw = np.empty(a.nbytes + 1, dtype=np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


# The same values in other memory representations: the loops must read them as values
# (never a '>f4' array's bytes as float32), with results bitwise those of the native array.
REPRESENTATIONS = {
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "unaligned": unaligned,
}


def bits(a):
    """The bit patterns of a float array (or scalar), as unsigned integers."""
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _describe(index, inputs, actual, expected):
    parts = [f"  at {index}:"]
    for name, array in inputs.items():
        parts.append(f"{name}={np.asarray(array)[index]!r}")
    a, e = np.asarray(actual)[index], np.asarray(expected)[index]
    parts.append(f"got {a!r} ({int(bits(a)):#x}), expected {e!r} ({int(bits(e)):#x})")
    return " ".join(parts)


def assert_bitwise_equal(actual, expected, inputs=None, what="result"):
    """actual and expected have the same shape, dtype and bits (NaN positions included)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    bad = bits(actual) != bits(expected)
    if bad.any():
        where = np.argwhere(bad) if actual.ndim else [()]
        lines = [_describe(tuple(i), inputs or {}, actual, expected) for i in where[:6]]
        pytest.fail(f"{what}: {int(bad.sum())} of {actual.size} elements differ in their bits\n"
                    + "\n".join(lines))


def ulp_error(actual, expected, dtype, slack=0.0):
    """|actual - expected| in units of the `dtype` spacing at expected (float64 arrays).

    expected is a float64 (unrounded) value; NaN matches NaN only, an infinity matches the
    same infinity only, +0.0 and -0.0 are the same value, subnormals count in units of the
    smallest subnormal. `slack` is an absolute error forgiven first (the reference's own).
    """
    dtype = np.dtype(dtype)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    slack = np.asarray(slack, dtype=np.float64)
    big = float(np.finfo(dtype).max)
    with np.errstate(invalid="ignore", over="ignore"):
        spacing = np.spacing(np.minimum(np.abs(e), big).astype(dtype)).astype(np.float64)
        err = np.maximum(np.abs(a - e) - slack, 0.0) / spacing
    with np.errstate(over="ignore"):
        rounded = e.astype(dtype).astype(np.float64)  # beyond the dtype's range: +-inf
    overflow = np.isinf(rounded) & ~np.isinf(e)
    err = np.where(overflow, np.where(a == rounded, 0.0, np.inf), err)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    err = np.where(same, 0.0, err)
    err = np.where(np.isnan(err) | (np.isnan(a) != np.isnan(e)), np.inf, err)
    return err


def assert_ulp_close(actual, expected, dtype, max_ulp, inputs=None, slack=0.0, what="result"):
    err = ulp_error(actual, expected, dtype, slack)
    bad = err > max_ulp
    if bad.any():
        worst = np.argsort(err.ravel())[::-1][:6]
        lines = [_describe(np.unravel_index(i, err.shape), inputs or {}, actual, expected)
                 + f" ({err.ravel()[i]:.3g} ulp)" for i in worst]
        pytest.fail(f"{what}: {int(bad.sum())} of {err.size} elements more than {max_ulp} ulp "
                    f"from the reference (max {err.max():.4g} ulp)\n" + "\n".join(lines))


def assert_rel_close(actual, expected, rtol, atol=0.0, inputs=None, what="result"):
    """|actual - expected| <= rtol |expected| + atol elementwise; NaN must match NaN and an
    infinity the same infinity; +0.0 == -0.0."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        # + SUBNORMAL_SLACK: float64 results deep in the subnormal range keep only a few
        # significant bits, and the reference's tail formulas round twice there (e.g. silu
        # near -725: x times a subnormal sigmoid); a relative bound means nothing below it
        allowed = rtol * np.abs(e) + atol + SUBNORMAL_SLACK
        ok = (a == e) | (np.isnan(a) & np.isnan(e)) | (diff <= allowed)
    if not ok.all():
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            excess = np.where(ok, 0.0, np.nan_to_num(diff / np.maximum(allowed, 1e-300),
                                                     nan=np.inf))
        worst = np.argsort(excess.ravel())[::-1][:6]
        lines = [_describe(np.unravel_index(i, a.shape), inputs or {}, actual, expected)
                 for i in worst if not ok.ravel()[i]]
        pytest.fail(f"{what}: {int((~ok).sum())} of {a.size} elements outside rtol={rtol} "
                    "(+ the absolute allowance)\n" + "\n".join(lines))


def assert_zero_signs(actual, expected, inputs=None, what="result"):
    """Where actual is a zero, its sign is the sign of expected (a zero or an underflow)."""
    a = np.asarray(actual)
    e = np.asarray(expected, dtype=np.float64)
    check = (a == 0) & ~np.isnan(e)
    bad = check & (np.signbit(a) != np.signbit(e))
    if bad.any():
        where = np.argwhere(bad) if a.ndim else [()]
        lines = [_describe(tuple(i), inputs or {}, actual, expected) for i in where[:6]]
        pytest.fail(f"{what}: {int(bad.sum())} zeros with the wrong sign\n" + "\n".join(lines))


# ---- PyTorch's version of a case (for test_torch_parity.py and the accuracy bound) ---------

TORCH_NAMES = {"log_sigmoid": "logsigmoid"}  # actfast name -> torch.nn.functional name


def _cpu_vendor():
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^vendor_id\s*:\s*(\S+)", f.read(), re.MULTILINE)
    except OSError:
        return None
    return found and found.group(1)


def amd_cpu():
    """True on AMD's CPUs, False on others, None where /proc/cpuinfo does not tell (the
    extension modules choose some loops by the vendor: pyx/stream.h's af_amd_cpu)."""
    vendor = _cpu_vendor()
    if vendor is None and platform.machine() in ("x86_64", "AMD64", "i686"):
        return None
    return vendor == "AuthenticAMD"


def torch_function(case):
    """The case's forward as a function of a torch tensor (same keyword names and values),
    or None when PyTorch has no equivalent. Needs torch."""
    import torch
    functional = torch.nn.functional
    if case.name in ("tanh", "sigmoid"):
        return getattr(torch, case.name)
    if case.name == "hardsigmoid" and case.params:
        # PyTorch's hardsigmoid has no slope/offset: clip(slope x + offset, 0, 1) =
        # slope (hardtanh(x, lower, upper) - lower) with the linear part's ends lower, upper
        # (slope > 0), whose derivative PyTorch's hardtanh gives with the same convention (0
        # at the ends), decided on x as actfast does (evaluated in float64)
        slope, offset = case.values["slope"], case.values["offset"]
        lower, upper = -offset / slope, (1.0 - offset) / slope
        return lambda t: ((functional.hardtanh(t.double(), lower, upper) - lower)
                          * slope).to(t.dtype)
    function = getattr(functional, TORCH_NAMES.get(case.name, case.name), None)
    if function is None:
        return None
    return lambda t: function(t, **case.params)


def torch_forward(case, x):
    """PyTorch's forward of the NumPy array x (same dtype), as a NumPy array."""
    import torch
    with torch.no_grad():
        return torch_function(case)(torch.from_numpy(np.array(x, copy=True))).numpy()


def torch_backward(case, grad_output, x):
    """PyTorch autograd's grad_output * f'(x), as a NumPy array."""
    import torch
    t = torch.from_numpy(np.array(x, copy=True)).requires_grad_(True)
    y = torch_function(case)(t)
    y.backward(torch.from_numpy(np.array(grad_output, copy=True)))
    return t.grad.numpy()
