"""Where a second thread pays: every elementwise kernel on one thread against all threads, with
the parallel thresholds off, at sizes around them; the size where they break even next to the
threshold actfast uses (actfast/catalogue.py's PARALLEL_FROM, by the direction's cost class).

    python benchmarks/threads.py                 # every kernel and direction, both dtypes
    python benchmarks/threads.py --quick         # float32, fewer sizes and samples
    python benchmarks/threads.py --kernels sigmoid,gelu --dtypes float64

Each kernel runs on one example of the registry (its first entry's first parameter set), from
x (forward, backward) and from the output where the kernel has that backward. A column is the
time on one thread divided by the time on all threads (> 1: the threads pay), the median of
round-robin samples (one thread, then all, in turn: a slow phase of the machine hits both).
"Breaks even" is the smallest size from which every measured ratio is at least 1; "at the
threshold" the ratio at the first measured size at or above the threshold, where the calls
switch to all threads (below 1: the threshold is too low for this kernel; well above 1 at a
size below it: too high). Writes benchmarks/results/threads.md. Like benchmarks/run.py, it
imports the installed actfast (for a tree built in place: PYTHONPATH=. before the command).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

import actfast as af
from actfast import _elementwise
from actfast.catalogue import ENTRIES, KERNELS, PARALLEL_FROM, REQUIRED
from report import add_common_options

DIRECTIONS = (("forward", "fwd"), ("backward", "bwd"), ("from output", "from_output"))
SIZES = {"float32": (2048, 4096, 8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304, 131072),
         "float64": (1024, 2048, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536)}
QUICK_SIZES = {"float32": (2048, 4096, 8192, 16384, 32768, 65536, 131072),
               "float64": (1024, 2048, 4096, 8192, 16384, 32768, 65536)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="float32 only, fewer sizes and "
                        "samples: a few seconds (the full run: under a minute)")
    parser.add_argument("--kernels", help="comma-separated kernel names (default: all; see "
                        "actfast.catalogue.KERNELS)")
    add_common_options(parser, "the thread count compared with one", 7, "threads.md")
    args = parser.parse_args(argv)
    known = {kernel.name: kernel for kernel in KERNELS}
    names = args.kernels.split(",") if args.kernels else list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown kernels {unknown}; known: {list(known)}")
    args.kernels = [known[name] for name in names]
    args.dtypes = (args.dtypes or ("float32" if args.quick else "float32,float64")).split(",")
    if set(args.dtypes) - set(SIZES):
        parser.error(f"dtypes must be among {list(SIZES)}")
    args.sizes = QUICK_SIZES if args.quick else SIZES
    args.samples = args.samples or (3 if args.quick else 7)
    if args.threads < 2:
        parser.error("--threads must be at least 2 (this machine: "
                     f"{len(os.sched_getaffinity(0))} usable cores)")
    return args


def _example(kernel):
    """(function, parameters) of the first registry example that uses `kernel`."""
    for entry in ENTRIES:
        for example in entry.examples:
            values = {p.name: p.default for p in entry.params}
            values.update(example)
            if REQUIRED not in values.values() and entry.kernel_name(values) == kernel.name:
                return getattr(af, entry.name), example
    raise LookupError(f"no registry example uses kernel {kernel.name}")


def _call(function, params, direction, n, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    grad_output = rng.standard_normal(n).astype(dtype)
    out = np.empty_like(x)
    if direction == "fwd":
        return lambda: function(x, out=out, **params)
    if direction == "bwd":
        return lambda: function.backward(grad_output, x, out=out, **params)
    y = function(x, **params)
    return lambda: function.backward(grad_output, output=y, out=out, **params)


def _ratio(call, n, threads, samples):
    """Median time on one thread / median time on `threads`, sampled in turn. (Not
    timing.compare: the thread count changes between the batches of one callable, and
    setting it inside the timed calls would add its cost to calls of ~1 us.)"""
    calls = max(1, int(2e6 // n))   # about 1-10 ms per sample
    times = {1: [], threads: []}
    for _ in range(samples):
        for count in times:
            af.set_num_threads(count)
            call()                    # wakes the workers
            start = time.perf_counter()
            for _ in range(calls):
                call()
            times[count].append((time.perf_counter() - start) / calls)
    return statistics.median(times[1]) / statistics.median(times[threads])


def measure(args):
    """Rows (kernel, direction, dtype, cost class, threshold, [(n, ratio)])."""
    rows = []
    saved = af.get_num_threads()
    try:
        for dtype in args.dtypes:
            dtype_index = 0 if dtype == "float32" else 1
            for index, kernel in enumerate(KERNELS):
                if kernel not in args.kernels:
                    continue
                function, params = _example(kernel)
                for direction_index, (label, direction) in enumerate(DIRECTIONS):
                    if direction == "from_output" and not kernel.from_output:
                        continue
                    threshold = _elementwise.parallel_from(direction_index, dtype_index, index)
                    _elementwise.set_parallel_from(direction_index, dtype_index, index, 1)
                    try:
                        ratios = [(n, _ratio(_call(function, params, direction, n, dtype), n,
                                             args.threads, args.samples))
                                  for n in args.sizes[dtype]]
                    finally:
                        _elementwise.set_parallel_from(direction_index, dtype_index, index,
                                                       threshold)
                    rows.append((kernel.name, label, dtype, kernel.cost(direction), threshold,
                                 ratios))
                    print(f"{kernel.name} {label} {dtype}: "
                          + " ".join(f"{ratio:.2f}" for _, ratio in ratios), file=sys.stderr)
    finally:
        af.set_num_threads(saved)
    return rows


def _breaks_even(ratios):
    for i, (n, _) in enumerate(ratios):
        if all(ratio >= 1 for _, ratio in ratios[i:]):
            return n
    return None


def report(args, rows):
    lines = ["# actfast: where a second thread pays", "",
             f"One thread's time / {args.threads} threads' time, thresholds off (> 1: the "
             "threads pay); median of "
             f"{args.samples} samples. Thresholds: actfast/catalogue.py's PARALLEL_FROM "
             f"{PARALLEL_FROM}.", ""]
    for dtype in args.dtypes:
        sizes = args.sizes[dtype]
        lines += [f"## {dtype}", "",
                  "| kernel | direction | class | threshold | breaks even | at the threshold | "
                  + " | ".join(str(n) for n in sizes) + " |",
                  "|---|---|---|---:|---:|---:|" + "---:|" * len(sizes)]
        for name, label, row_dtype, cost, threshold, ratios in rows:
            if row_dtype != dtype:
                continue
            above = [ratio for n, ratio in ratios if n >= threshold]
            even = _breaks_even(ratios)
            lines.append(f"| {name} | {label} | {cost} | {threshold} | "
                         f"{even if even is not None else '-'} | "
                         f"{f'{above[0]:.2f}' if above else '-'} | "
                         + " | ".join(f"{ratio:.2f}" for _, ratio in ratios) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if not af.openmp_enabled():
        print("actfast was built without OpenMP: every call runs on one thread")
        return 0
    markdown = report(args, measure(args))
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "threads.md"), "w") as f:
        f.write(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
