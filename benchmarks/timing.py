"""A timing loop to trust on a shared, noisy 2-core VM.

Calls are batched until one sample lasts at least ``min_sample`` seconds, and the median of
``samples`` samples is kept. The libraries being compared are sampled round-robin, so a slow
phase of the machine hits them all alike and their ratios stay meaningful. Before each batch
one untimed call wakes the OpenMP workers: after idling (here: while another library ran) the
first parallel region can take milliseconds to start (shared/PERFORMANCE-NOTES.md).
"""
import functools
import math
import statistics
import time


def _batch(call, calls):
    """Seconds per call over `calls` back-to-back calls, after one untimed warm-up call.

    A batch of one call lasts at least ``min_sample`` (20 ms by default), so its warm-up is
    skipped: a wake-up of about a millisecond is within the noise, and a slow baseline (the
    NumPy reference at 10**7 elements takes seconds) is not run twice.
    """
    if calls > 1:
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def _calls_per_sample(call, min_sample):
    """(calls per sample so that a sample lasts >= min_sample, seconds per call seen).

    The first call pays for lazy initialisation (numexpr compiles its expression, torch
    caches its dispatch) and is not used for calibration, unless it is so slow (10 samples'
    worth) that a millisecond of set-up is noise: then it is the first sample.
    """
    seconds = _batch(call, 1)
    if seconds >= 10 * min_sample:
        return 1, seconds
    calls = 1
    while True:
        seconds = _batch(call, calls)
        if seconds * calls >= min_sample / 4:
            return max(calls, math.ceil(min_sample / seconds)), seconds
        calls *= 4


def call_site(call):
    """`call` as a user's code makes it: a functools.partial becomes a literal call
    ``f(a0, ..., name=k0, ...)`` of its function with its arguments (compiled for it); other
    callables are kept. Calling a partial that holds keywords builds a dict of them at every
    call and passes it on (partial's tp_call: it takes the vectorcall path only without
    keywords), which a user's ``f(x, out=buf)`` does not: a cost of the harness, different
    for different callees (a function then unpacks the dict again, an object's __call__ takes
    it as it is), that would weigh on calls of small arrays."""
    if not isinstance(call, functools.partial):
        return call
    names = {"f": call.func}
    arguments = []
    for i, value in enumerate(call.args):
        names[f"a{i}"] = value
        arguments.append(f"a{i}")
    for i, (keyword, value) in enumerate(call.keywords.items()):
        names[f"k{i}"] = value
        arguments.append(f"{keyword}=k{i}")
    return eval(f"lambda: f({', '.join(arguments)})", names)


def compare(calls, min_sample=0.02, samples=5):
    """Median seconds per call of each callable in the dict `calls` (as call_site makes
    them), measured side by side.

    A callable so slow that its samples would take more than ten times the normal
    ``samples * min_sample`` stops when past that budget (after at least one sample): its
    ratio to actfast is then large and imprecise either way.
    """
    budget = 10 * samples * min_sample
    calls = {name: call_site(call) for name, call in calls.items()}
    batches, times = {}, {}
    for name, call in calls.items():
        batches[name], seconds = _calls_per_sample(call, min_sample)
        # a slow call's calibration is already a sample
        times[name] = [seconds] if batches[name] == 1 and seconds >= min_sample else []
    for _ in range(samples):
        for name, call in calls.items():
            spent = sum(times[name]) * batches[name]
            if len(times[name]) < samples and (not times[name] or spent < budget):
                times[name].append(_batch(call, batches[name]))
    return {name: statistics.median(values) for name, values in times.items()}
