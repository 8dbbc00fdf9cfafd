"""Benchmark the softmax family against PyTorch, SciPy and NumPy at the issue's shapes.

    python benchmarks/softmax.py            # the issue's table (softmax forward), then
                                            # log_softmax forward, softmax's and
                                            # log_softmax's backward, logsumexp forward
                                            # and backward
    python benchmarks/softmax.py --quick    # softmax forward only, shorter samples

Every library gets all cores (actfast and torch set to the same thread count; SciPy and NumPy
are single-threaded) and writes into a preallocated output where it can:

- actfast: ``af.softmax(x, axis, out=out)``;
- PyTorch: ``torch.ops.aten._softmax.out(x, dim, False, out=out)`` (and ``_log_softmax.out``,
  ``_softmax_backward_data.out``, ``_log_softmax_backward_data.out``), the kernels under
  ``torch.softmax`` without the dispatch of a new tensor;
- SciPy: ``scipy.special.softmax(x, axis)`` (allocates);
- NumPy: ``e = np.exp(x - x.max(axis, keepdims=True)); e /= e.sum(axis, keepdims=True)`` in
  the input's dtype, what a user without a library would write.

logsumexp: ``af.logsumexp(x, axis, out=out)`` against ``torch.ops.aten.logsumexp.out``,
``scipy.special.logsumexp`` and NumPy's ``log(sum(exp(x - max))) + max``. Its backward has
no aten kernel to compare with: torch's autograd computes ``grad * exp(x - result)``
(logsumexp_backward in FunctionsManual.cpp) from the forward's result, here written into the
output without temporaries (``torch.sub(x, r, out=out)``, ``exp_``, ``mul_``), and NumPy the
same in one expression; actfast is given the result too,
``af.logsumexp.backward(g, x, axis, output=r, out=out)``, and "actfast (from x)" is
``af.logsumexp.backward(g, x, axis, out=out)``, which computes the row's max and sum again.

Each library's time is the median of single-call times, gathered round-robin (every library
in turn, in batches of about 10 ms after one untimed call that wakes the OpenMP workers),
so that a slow phase of the machine hits them all alike. Single calls rather than batch
averages: on these shared 2-core VMs, a parallel region now and then waits a whole scheduler
slice (~10 ms) for a worker thread that another process holds off its core; a batch average
would then measure the neighbours (a median of batch averages too, when the spikes are
frequent). ``run(quick)`` returns the rows for
benchmarks/run.py: {"function", "params", "direction", "input", "shape", "axis", "dtype",
"n", "threads", "library", "seconds", "bytes"}; a non-last axis gets its own function name
("softmax[axis=0]") so that rows of equal n and different axes stay apart.
"""
import argparse
import math
import os
import platform
import statistics
import sys
import time
from functools import partial

import numpy as np

import actfast as af
import timing

try:
    import torch
except ImportError:
    torch = None
try:
    import scipy
    import scipy.special
except ImportError:
    scipy = None

# (shape, axis): the target shapes
SHAPES = [((64, 1000), -1), ((1024, 1000), -1), ((4096, 4096), -1), ((32, 32000), -1),
          ((8, 10**6), -1), ((1000, 1024), 0)]
LIBRARIES = ("actfast", "torch", "scipy", "numpy", "actfast (from x)")


def _numpy_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _numpy_log_softmax(x, axis):
    s = x - x.max(axis=axis, keepdims=True)
    s -= np.log(np.sum(np.exp(s), axis=axis, keepdims=True))
    return s


def _numpy_softmax_backward(g, y, axis):
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def _numpy_log_softmax_backward(g, z, axis):
    return g - np.exp(z) * np.sum(g, axis=axis, keepdims=True)


# the NumPy formulas of the backwards from the output
BACKWARDS = {"softmax": _numpy_softmax_backward, "log_softmax": _numpy_log_softmax_backward}


def _numpy_logsumexp(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(x - m), axis=axis)) + np.squeeze(m, axis)


def _numpy_logsumexp_backward(g, x, r, axis):
    return np.exp(x - np.expand_dims(r, axis)) * np.expand_dims(g, axis)


def _torch_logsumexp_backward(g, x, r, axis, out):
    # autograd's grad * exp(x - result), without temporaries
    torch.sub(x, r.unsqueeze(axis), out=out)
    out.exp_()
    out.mul_(g.unsqueeze(axis))


# the forwards: function -> (torch's aten operator, the NumPy formula); actfast's and SciPy's
# functions have the function's name
FORWARDS = {"softmax": ("_softmax", _numpy_softmax),
            "log_softmax": ("_log_softmax", _numpy_log_softmax)}


def _calls(function, direction, x, axis):
    """{library: callable of no arguments} for one case."""
    out = np.empty_like(x)
    calls = {}
    if function == "logsumexp":
        r = af.logsumexp(x, axis)
        out_r = np.empty_like(r)
        if direction == "forward":
            calls["actfast"] = partial(af.logsumexp, x, axis, out=out_r)
            if torch is not None:
                calls["torch"] = partial(torch.ops.aten.logsumexp.out, torch.from_numpy(x),
                                         [axis], False, out=torch.from_numpy(out_r))
            if scipy is not None:
                calls["scipy"] = partial(scipy.special.logsumexp, x, axis=axis)
            calls["numpy"] = partial(_numpy_logsumexp, x, axis)
        else:
            g = np.random.default_rng(1).standard_normal(r.shape).astype(x.dtype)
            calls["actfast"] = partial(af.logsumexp.backward, g, x, axis, output=r, out=out)
            calls["actfast (from x)"] = partial(af.logsumexp.backward, g, x, axis, out=out)
            if torch is not None:
                calls["torch"] = partial(_torch_logsumexp_backward, torch.from_numpy(g),
                                         torch.from_numpy(x), torch.from_numpy(r), axis,
                                         torch.from_numpy(out))
            calls["numpy"] = partial(_numpy_logsumexp_backward, g, x, r, axis)
    elif direction == "forward":
        aten, numpy_formula = FORWARDS[function]
        calls["actfast"] = partial(getattr(af, function), x, axis, out=out)
        if torch is not None:
            tx, tout = torch.from_numpy(x), torch.from_numpy(out)
            calls["torch"] = partial(getattr(torch.ops.aten, aten).out, tx, axis, False,
                                     out=tout)
        if scipy is not None:
            calls["scipy"] = partial(getattr(scipy.special, function), x, axis)
        calls["numpy"] = partial(numpy_formula, x, axis)
    else:   # the backward from the forward's output (as autograd does)
        y = getattr(af, function)(x, axis)
        g = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
        calls["actfast"] = partial(getattr(af, function).backward, g, output=y, axis=axis,
                                   out=out)
        if torch is not None:
            tg, ty, tout = torch.from_numpy(g), torch.from_numpy(y), torch.from_numpy(out)
            dtype = torch.float32 if x.dtype == np.float32 else torch.float64
            if function == "softmax":
                calls["torch"] = partial(torch.ops.aten._softmax_backward_data.out, tg, ty,
                                         axis, dtype, grad_input=tout)
            else:
                calls["torch"] = partial(torch.ops.aten._log_softmax_backward_data.out, tg,
                                         ty, axis, dtype, out=tout)
        calls["numpy"] = partial(BACKWARDS[function], g, y, axis)
    return calls


def _bytes_moved(function, direction, x):
    """The bytes a call reads and writes at the least: x (and grad_output and y) and the
    output; logsumexp's row values are not counted."""
    if function == "logsumexp":
        return x.nbytes * (1 if direction == "forward" else 2)
    return x.nbytes * (2 if direction == "forward" else 3)


def compare(calls, rounds=7, batch=0.01, budget=1.5):
    """{library: median seconds of one call (as timing.call_site makes it)}, measured
    round-robin (see the docstring). A library whose calls would take more than `budget`
    seconds in all gets fewer rounds."""
    clock = time.perf_counter
    calls = {name: timing.call_site(call) for name, call in calls.items()}
    per_batch, samples = {}, {name: [] for name in calls}
    for name, call in calls.items():
        call()                                   # lazy set-up (torch's dispatch, allocation)
        start = clock()
        call()
        seconds = clock() - start
        per_batch[name] = max(1, int(batch / max(seconds, 1e-9)))
        per_batch[name] = min(per_batch[name], max(1, int(budget / rounds / max(seconds, 1e-9))))
    for _ in range(rounds):
        for name, call in calls.items():
            if per_batch[name] > 1:
                call()                           # wakes the OpenMP workers
            for _ in range(per_batch[name]):
                start = clock()
                call()
                samples[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _name(function, shape, axis):
    last = axis == -1 or axis == len(shape) - 1
    return function if last else f"{function}[axis={axis}]"


def run(quick=False, threads=None, dtype=np.float32):
    """Measure and return the rows (see the module docstring)."""
    threads = threads or len(os.sched_getaffinity(0))
    saved = af.get_num_threads()
    af.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    cases = [("softmax", "forward")]
    if not quick:
        cases += [("log_softmax", "forward"), ("softmax", "backward"),
                  ("log_softmax", "backward"), ("logsumexp", "forward"),
                  ("logsumexp", "backward")]
    rng = np.random.default_rng(0)
    rows = []
    try:
        for function, direction in cases:
            for shape, axis in SHAPES:
                x = (rng.standard_normal(shape) * 3).astype(dtype)
                times = compare(_calls(function, direction, x, axis),
                                rounds=5 if quick else 7)
                moved = _bytes_moved(function, direction, x)
                for library, seconds in times.items():
                    rows.append({"function": _name(function, shape, axis),
                                 "params": {"axis": axis}, "direction": direction,
                                 "input": f"{'x'.join(map(str, shape))} axis {axis}",
                                 "shape": list(shape), "axis": axis,
                                 "dtype": np.dtype(dtype).name, "n": x.size,
                                 "threads": threads, "library": library,
                                 "seconds": seconds, "bytes": moved})
    finally:
        af.set_num_threads(saved)
    return rows


def _time(seconds):
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(rows):
    """The tables: per case, each library's time and its ratio to actfast's (> 1: actfast is
    faster), and for softmax forward the geometric mean of torch / actfast."""
    threads = rows[0]["threads"] if rows else 0
    versions = [f"numpy {np.__version__}", f"actfast {af.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__}")
    if scipy is not None:
        versions.append(f"scipy {scipy.__version__}")
    lines = [f"Machine: {_cpu()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} "
             f"usable), {threads} threads for actfast and torch; load average "
             f"{os.getloadavg()[0]:.2f}; Python {platform.python_version()}, "
             + ", ".join(versions) + ".", "",
             "Times are medians; ratio = library time / actfast time (> 1: actfast faster)."]
    for function, direction in dict.fromkeys((r["function"].split("[")[0], r["direction"])
                                             for r in rows):
        mine = [r for r in rows if r["function"].split("[")[0] == function
                and r["direction"] == direction]
        libraries = [lib for lib in LIBRARIES if any(r["library"] == lib for r in mine)]
        head = ["shape", "axis", "actfast"] + [c for lib in libraries[1:]
                                               for c in (lib, f"{lib}/actfast")]
        lines += ["", f"### {function} {direction}, {mine[0]['dtype']}", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        ratios = []
        for key in dict.fromkeys((tuple(r["shape"]), r["axis"]) for r in mine):
            by = {r["library"]: r["seconds"] for r in mine
                  if (tuple(r["shape"]), r["axis"]) == key}
            cells = ["x".join(map(str, key[0])), str(key[1]), _time(by["actfast"])]
            for lib in libraries[1:]:
                if lib in by:
                    cells += [_time(by[lib]), f"{by[lib] / by['actfast']:.2f}"]
                else:
                    cells += ["", ""]
            if "torch" in by:
                ratios.append(by["torch"] / by["actfast"])
            lines.append("| " + " | ".join(cells) + " |")
        if ratios:
            mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            lines += ["", f"Geometric mean of torch / actfast: {mean:.2f} "
                      f"(min {min(ratios):.2f}, max {max(ratios):.2f})"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="softmax forward only, shorter "
                        "samples")
    parser.add_argument("--threads", type=int, help="threads for actfast and torch (default: "
                        "all usable cores)")
    args = parser.parse_args(argv)
    print(markdown(run(quick=args.quick, threads=args.threads)))


if __name__ == "__main__":
    sys.exit(main())
