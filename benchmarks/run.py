"""Benchmark actfast against the NumPy reference, SciPy, numexpr and PyTorch.

    python benchmarks/run.py --quick          # well under a minute: the comparison tables
    python benchmarks/run.py                  # every function, size, dtype and thread count
    python benchmarks/run.py --functions gelu,relu --sizes 1e6,1e7 --threads 2,1

Every function of the registry (``actfast.catalogue.ENTRIES``, with its default parameters)
and every special activation (prelu, swish, pact, rrelu, noisy_relu, maxout, glu: see
benchmarks/special.py) is timed forward and backward into a preallocated output, next to each
installed competitor in the same process; the tables give competitor time / actfast time (> 1: actfast is faster)
and the fraction of the copy bound (the faster of ``np.copyto`` and torch's multi-threaded
``copy_`` moving the same bytes). The backward runs from the forward's output where the
registry allows it (as PyTorch's autograd does for sigmoid and tanh), else from x.

Results go to OUTPUT/latest.md (printed; --quick prints only the short tables and the
summary), OUTPUT/latest.json and, when matplotlib is installed and --quick is not given,
OUTPUT/<function>.png. A JSON row is one measurement::

    {"function", "params", "direction", "input", "dtype", "n", "threads", "library",
     "seconds", "bytes"}

with the copy bound as function "copy" (libraries "np.copyto", "torch.copy_"; the same copies
are also timed next to each function, as rows of that function with those library names, and
its fraction of the copy bound uses these) and the
small-array yardstick ``np.maximum(x, 0, out=buf)`` as function "maximum" (at n <= 16 also
timed next to each function, as rows of that function with library "np.maximum", which its
small-call ratio uses). Rows of the
softmax family come from ``benchmarks/softmax.py`` when it exists: ``run(quick) ->
list[dict]`` of rows in this format (it may ``import timing`` for the same loop), called with
every library set to the first thread count; rows with the sizes measured here get the copy
bound too. This script imports the installed actfast; for a development tree built in place,
run it with ``PYTHONPATH=.``.
"""
import argparse
import importlib.util
import json
import os
import sys
from functools import partial
from types import SimpleNamespace

import numpy as np

import actfast
import competitors
import report
import special
import timing
from actfast.catalogue import ENTRIES, REQUIRED

SIZES = (16, 10**3, 10**5, 10**6, 10**7)
QUICK_SIZES = (16, 10**3, 10**6)
# Bytes moved per element in units of the input's itemsize: x in + out (forward); grad_output
# and x (or output) in + out (backward).
ELEMENTS_MOVED = {"forward": 2, "backward": 3}
THREADED = ("numexpr", "torch")  # the competitors whose time depends on the thread count
YARDSTICK = report.YARDSTICK     # np.maximum(x, 0, out=buf) timed next to a small call


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="sizes 16, 1e3, 1e6, float32, reference and torch only, shorter "
                        "samples: well under a minute")
    parser.add_argument("--functions", help="comma-separated names (default: the whole "
                        "registry and the special activations, plus the softmax family when "
                        "benchmarks/softmax.py exists)")
    parser.add_argument("--dtypes", help="comma-separated (default float32,float64; "
                        "--quick: float32)")
    parser.add_argument("--sizes", help="comma-separated element counts, e.g. 1e3,1e6 "
                        f"(default {','.join(map(str, SIZES))})")
    parser.add_argument("--threads", help="comma-separated thread counts; the first gives the "
                        "main tables, the others the thread-scaling table (default: all "
                        "cores,1; --quick: all cores)")
    parser.add_argument("--libraries", help="comma-separated competitors (default "
                        f"{','.join(competitors.LIBRARIES)}; --quick: reference,torch)")
    parser.add_argument("--directions", default="forward,backward", help="comma-separated "
                        "(default forward,backward)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results"),
                        help="directory for latest.md, latest.json and the plots")
    parser.add_argument("--plots", action=argparse.BooleanOptionalAction,
                        help="one PNG per function when matplotlib is installed (default: on; "
                        "--quick: off, a plot takes seconds)")
    parser.add_argument("--min-sample", type=float, help="seconds per sample (default 0.02; "
                        "--quick: 0.005)")
    parser.add_argument("--samples", type=int, help="samples per measurement, median kept "
                        "(default 5; --quick: 3)")
    args = parser.parse_args(argv)

    known = {entry.name: entry for entry in ENTRIES}
    names = args.functions.split(",") if args.functions else [*known, *special.BUILDERS]
    args.entries = [known[name] for name in names if name in known]
    specials = {*special.BUILDERS, *special.OPTIONAL}
    args.special = [name for name in names if name in specials]
    args.others = (None if args.functions is None else
                   [n for n in names if n not in known and n not in specials])
    if args.others and importlib.util.find_spec("softmax") is None:
        parser.error(f"unknown functions {args.others}; the registry has {list(known)}")
    args.dtypes = [np.dtype(d) for d in
                   (args.dtypes or ("float32" if args.quick else "float32,float64")).split(",")]
    args.sizes = ([int(float(s)) for s in args.sizes.split(",")] if args.sizes
                  else list(QUICK_SIZES if args.quick else SIZES))
    cores = len(os.sched_getaffinity(0))
    default_threads = f"{cores}" if args.quick or cores == 1 else f"{cores},1"
    args.threads = [int(t) for t in (args.threads or default_threads).split(",")]
    args.directions = args.directions.split(",")
    args.libraries = (args.libraries or ("reference,torch" if args.quick
                                         else ",".join(competitors.LIBRARIES))).split(",")
    unknown = set(args.libraries) - set(competitors.LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}; known: {list(competitors.LIBRARIES)}")
    args.min_sample = args.min_sample or (0.005 if args.quick else 0.02)
    args.samples = args.samples or (3 if args.quick else 5)
    args.plots = not args.quick if args.plots is None else args.plots
    return args


def _array(rng, n, dtype):
    """Random data (both branches of every kink), its pages touched before timing."""
    return (rng.standard_normal(n) * 3).astype(dtype)


def _params(entry):
    """The default example with every parameter filled in, in the registry's order."""
    values = {p.name: p.default for p in entry.params}
    values.update(entry.examples[0])
    assert REQUIRED not in values.values(), entry.name
    return values


def measure(args, dtype, n, threads, all_libraries):
    """Rows for one dtype, size and thread count: actfast and every competitor, or only the
    threaded ones (torch, numexpr) when not `all_libraries` (the thread-scaling passes)."""
    rng = np.random.default_rng()
    arrays = {"x": _array(rng, n, dtype), "g": _array(rng, n, dtype),
              "y": np.empty(n, dtype), "out": np.zeros(n, dtype)}
    case = SimpleNamespace(**arrays)
    compare = partial(timing.compare, min_sample=args.min_sample, samples=args.samples)
    base = {"dtype": dtype.name, "n": n, "threads": threads}
    rows = []

    def add(function, direction, seconds, elements=None, **extra):
        moved = round((elements or ELEMENTS_MOVED[direction]) * n) * dtype.itemsize
        rows.extend({"function": function, **extra, "direction": direction, **base,
                     "library": library, "seconds": t, "bytes": moved}
                    for library, t in seconds.items())

    copies = {}  # elements moved per element of x -> the copies of as many bytes

    def copy_calls(elements):
        """The copy-bound calls moving as many bytes as a kernel that moves `elements`."""
        if elements not in copies:
            copied = int(n * elements // 2)
            copies[elements] = competitors.copy_calls(_array(rng, copied, dtype),
                                                      np.zeros(copied, dtype))
        return copies[elements]

    for direction in args.directions:
        add("copy", direction, compare(copy_calls(ELEMENTS_MOVED[direction])))
    small = n <= 16 and all_libraries
    if small:
        add("maximum", "forward",
            compare({"numpy": competitors.small_call_baseline(case.x, case.out)}))

    def yardsticks(elements):
        """The calls sampled round-robin with a function's: the copy of as many bytes, and
        at small n the yardstick np.maximum (the machine's speed drifts within a run)."""
        if not all_libraries:
            return {}
        calls = dict(copy_calls(elements))
        if small:
            calls[YARDSTICK] = competitors.small_call_baseline(case.x, case.out)
        return calls

    libraries = [name for name in args.libraries if all_libraries or name in THREADED]
    for entry in args.entries:
        report.progress(f"{entry.name} {dtype.name} n={n:.0e} threads={threads}")
        params, example = _params(entry), entry.examples[0]
        actfast.FUNCTIONS[entry.name](case.x, out=case.y, **example)
        from_output = entry.allows_output(params)
        for direction in args.directions:
            calls = {"actfast": competitors.actfast_call(direction, entry.name, case, example,
                                                         from_output)}
            calls.update(competitors.competitor_calls(direction, entry.name, case, params,
                                                      libraries))
            # the copies (and np.maximum) again, sampled round-robin with this function: its
            # fraction of the copy bound and its small-call ratio then compare times taken in
            # the same moments (the machine's speed drifts by tens of per cent within a run)
            calls.update(yardsticks(ELEMENTS_MOVED[direction]))
            input_ = "output" if direction == "backward" and from_output else "x"
            add(entry.name, direction, compare(calls), params=example, input=input_)
    for name in (name for name in args.special if special.fits(name, n)):
        report.progress(f"{name} {dtype.name} n={n:.0e} threads={threads}")
        built = special.calls(name, case, libraries)
        for direction in args.directions:
            calls = dict(built[direction])
            elements = special.ELEMENTS_MOVED[name][direction]
            calls.update(yardsticks(elements))   # round-robin, as above
            input_ = special.BACKWARD_INPUT.get(name, "x") if direction == "backward" else "x"
            add(name, direction, compare(calls), elements=elements, params={}, input=input_)
    return rows


def softmax_rows(args):
    """The softmax family's rows from benchmarks/softmax.py, when it exists and is asked for."""
    if args.others == []:
        return []
    try:
        import softmax
    except ImportError:
        return []
    report.progress("softmax family (benchmarks/softmax.py)")
    rows = softmax.run(quick=args.quick)
    return [r for r in rows if args.others is None or r.get("function") in args.others]


def main(argv=None):
    args = parse_args(argv)
    args.load = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        competitors.set_num_threads(threads)
        for dtype in args.dtypes:
            for n in args.sizes:
                rows += measure(args, dtype, n, threads, threads == args.threads[0])
    competitors.set_num_threads(args.threads[0])
    rows += softmax_rows(args)
    report.progress("")

    header = report.header(args)
    threads = args.threads[0]
    short = [*report.overview_tables(rows, threads), *report.overhead_table(rows, threads)]
    detail = [*report.comparison_tables(rows, threads), *report.scaling_table(rows, args.threads)]
    summary = report.summary(rows, threads)
    text = "\n\n".join([header["markdown"], *short, *detail, summary])
    # --quick prints the short tables (the files get everything)
    print("\n\n".join([header["markdown"], *short, summary]) if args.quick else text)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "latest.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.output, "latest.json"), "w") as f:
        json.dump({"header": header["fields"], "rows": rows}, f, indent=1)
    plotted = report.plots(rows, threads, args.output) if args.plots else 0
    print(f"\nWritten: {args.output}/latest.md, latest.json"
          + (f", {plotted} plot(s)" if plotted else " (no plots: --no-plots, --quick or no "
             "matplotlib)"), file=sys.stderr)


if __name__ == "__main__":
    main()
