"""Turn benchmark rows into the header, Markdown tables, the summary against the speed
targets, and one throughput plot per function."""
import datetime
import math
import os
import platform
import re
import sys

import actfast
import competitors

COMPETITORS = ("reference", "scipy", "numexpr", "torch")
TARGET_SIZES = (10**3, 10**5, 10**6, 10**7)
_SHORT = {"forward": "fwd", "backward": "bwd"}


def progress(message):
    """One self-overwriting status line on a terminal; nothing otherwise."""
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="" if message else "", file=sys.stderr, flush=True)


# ---- the options the side scripts share (threads.py, layouts.py) -----------------------------

def add_common_options(parser, threads_help, samples, output):
    """--dtypes, --threads, --samples (default `samples`; --quick: 3) and --output (the
    directory for the file named `output`)."""
    parser.add_argument("--dtypes", help="comma-separated (default float32,float64; --quick: "
                        "float32)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help=f"{threads_help} (default: all cores)")
    parser.add_argument("--samples", type=int, help="samples per measurement, median kept "
                        f"(default {samples}; --quick: 3)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results"),
                        help=f"directory for {output}")


# ---- header ----------------------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        return platform.processor() or "unknown"


def _compile_flags():
    """GCC records its command line in the extension's debug info (DW_AT_producer)."""
    from actfast import _elementwise
    with open(_elementwise.__file__, "rb") as f:
        found = re.search(rb"GNU C[\x20-\x7e]+", f.read())
    return found.group().decode() if found else "not recorded"


def header(args):
    fields = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "python": platform.python_version(),
        **competitors.versions(),
        "openmp_enabled": actfast.openmp_enabled(),
        "compiler": _compile_flags(),
        "threads": args.threads,
        "load average before": f"{args.load:.2f} (1 min)",
        "timing": f"median of {args.samples} samples of >= {args.min_sample * 1e3:g} ms",
    }
    lines = ["# actfast benchmark", ""] + [f"- {key}: {value}" for key, value in fields.items()]
    if args.load > 0.5:
        lines += ["", f"**The machine was busy (load {args.load:.1f}) before the run: a "
                  "parallel region waits for a descheduled thread, so multi-threaded timings "
                  "are unreliable.**"]
    lines += ["", "Competitor columns: competitor time / actfast time (> 1: actfast is faster). "
              "'of copy': the copy bound's time / actfast's time (1 = as fast as copying the "
              "same bytes). Outputs preallocated; the backward from the output where the "
              "registry allows it."]
    return {"fields": fields, "markdown": "\n".join(lines)}


# ---- tables ----------------------------------------------------------------------------------

def _index(rows):
    return {(r["function"], r["direction"], r["dtype"], r["n"], r["threads"], r["library"]):
            r["seconds"] for r in rows}


def _functions(rows):
    """Function names in the order first measured, without the bounds."""
    return list(dict.fromkeys(r["function"] for r in rows
                              if r["function"] not in ("copy", "maximum")))


COPIES = ("np.copyto", "torch.copy_")
YARDSTICK = "np.maximum"


def copy_bound(index, direction, dtype, n, threads, function="copy"):
    """The faster copy of the same bytes: the one timed next to `function` when there is one
    (run.py samples it round-robin with the function), else the run's own copy rows."""
    for name in (function, "copy"):
        times = [index.get((name, direction, dtype, n, threads, library)) for library in COPIES]
        times = [t for t in times if t is not None]
        if times:
            return min(times)
    return None


def small_yardstick(index, function, direction, dtype, n, threads):
    """np.maximum(x, 0, out=buf)'s time: the one timed next to `function` when there is one
    (run.py samples it round-robin with the function's small calls), else the run's own."""
    return (index.get((function, direction, dtype, n, threads, YARDSTICK))
            or index.get(("maximum", "forward", dtype, n, threads, "numpy")))


def _n(n):
    """16, 1e3, 1e6: powers of ten written as such."""
    exponent = round(math.log10(max(n, 1)))
    return f"1e{exponent}" if n == 10**exponent and n >= 1000 else str(n)


def _time(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _ratio(value):
    if value is None:
        return ""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _table(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def _keys(rows, threads):
    """(direction, dtype) pairs and sizes measured at `threads`, in the order measured."""
    mine = [r for r in rows if r["threads"] == threads and r["library"] == "actfast"]
    pairs = list(dict.fromkeys((r["direction"], r["dtype"]) for r in mine))
    # (the sizes of the elementwise rows: the softmax family's have a shape, and element
    # counts of their own that would add empty columns)
    return pairs, sorted({r["n"] for r in mine if "shape" not in r})


def comparison_tables(rows, threads):
    index, sections = _index(rows), []
    pairs, sizes = _keys(rows, threads)
    bytes_moved = {(r["function"], r["direction"], r["dtype"], r["n"]): r.get("bytes")
                   for r in rows}
    for direction, dtype in pairs:
        columns = [c for c in COMPETITORS
                   if any(k[1:3] == (direction, dtype) and k[4:] == (threads, c) for k in index)]
        body = []
        for function in _functions(rows):
            for n in sizes:
                mine = index.get((function, direction, dtype, n, threads, "actfast"))
                if mine is None:
                    continue
                moved = bytes_moved.get((function, direction, dtype, n))
                bound = copy_bound(index, direction, dtype, n, threads, function)
                ratios = [index.get((function, direction, dtype, n, threads, c)) for c in columns]
                body.append([function, _n(n), _time(mine),
                             f"{moved / mine / 1e9:.3g}" if moved else "",
                             f"{bound / mine:.0%}" if bound else "",
                             *[_ratio(t / mine if t else None) for t in ratios]])
        sections.append(f"## Detail: {dtype} {direction}, {threads} "
                        f"thread{'s' * (threads > 1)}\n\n"
                        + _table(["function", "n", "actfast", "GB/s", "of copy", *columns],
                                 body))
    return sections


def overhead_table(rows, threads):
    """Small arrays: one call at the smallest size against np.maximum(x, 0, out=buf)."""
    index = _index(rows)
    base = {(r["dtype"], r["n"]): r["seconds"] for r in rows if r["function"] == "maximum"}
    body = []
    for function in _functions(rows):
        for dtype, n in base:
            cells = []
            for direction in ("forward", "backward"):
                t = index.get((function, direction, dtype, n, threads, "actfast"))
                yardstick = small_yardstick(index, function, direction, dtype, n, threads)
                cells.append(f"{_time(t)} ({t / yardstick:.2f})" if t else "")
            if any(cells):
                body.append([function, dtype, *cells])
    if not body:
        return []
    sizes = ", ".join(f"{dtype} {_time(t)} at n = {n}" for (dtype, n), t in base.items())
    return [f"## Small arrays: time per call (ratio to np.maximum(x, 0, out=buf) timed "
            f"round-robin with each call; alone: {sizes})\n\n"
            + _table(["function", "dtype", "forward", "backward"], body)]


def scaling_table(rows, thread_counts):
    """actfast's and torch's speed-up from 1 thread (or the last count) to the first count."""
    if len(thread_counts) < 2:
        return []
    many, few = thread_counts[0], thread_counts[-1]
    index, body = _index(rows), []
    pairs, sizes = _keys(rows, few)
    for function in _functions(rows):
        for direction, dtype in pairs:
            for n in (n for n in sizes if n >= 1000):  # smaller arrays never use threads
                cells = []
                for library in ("actfast", "torch"):
                    slow = index.get((function, direction, dtype, n, few, library))
                    fast = index.get((function, direction, dtype, n, many, library))
                    cells += [_time(slow) if slow else "",
                              _ratio(slow / fast) if slow and fast else ""]
                if cells[0]:
                    body.append([function, direction, dtype, _n(n), *cells])
    head = ["function", "direction", "dtype", "n", f"actfast {few} thr",
            f"speed-up ×{many}", f"torch {few} thr", f"speed-up ×{many}"]
    return [f"## Thread scaling: {few} → {many} threads\n\n" + _table(head, body)]


def overview_tables(rows, threads, columns=("torch", "reference")):
    """The short comparison: per function, actfast's time and the ratios of `columns` at
    each size from 1e3 up (n = 16 is the small-array table's)."""
    index, sections = _index(rows), []
    pairs, sizes = _keys(rows, threads)
    sizes = [n for n in sizes if n >= 1000]
    for direction, dtype in pairs:
        present = [c for c in columns if any(k[1:3] == (direction, dtype)
                                             and k[4:] == (threads, c) for k in index)]
        head, body = ["function"], []
        for n in sizes:
            head += [f"actfast {_n(n)}", *present]
        for function in _functions(rows):
            cells = []
            for n in sizes:
                mine = index.get((function, direction, dtype, n, threads, "actfast"))
                others = [index.get((function, direction, dtype, n, threads, c))
                          for c in present]
                cells += [_time(mine) if mine else "",
                          *[_ratio(t / mine) if t and mine else "" for t in others]]
            if any(cells):
                body.append([function, *cells])
        if body and sizes:
            sections.append(f"## {dtype} {direction}, {threads} thread{'s' * (threads > 1)}: "
                            f"{' and '.join(present)} time / actfast time\n\n"
                            + _table(head, body))
    return sections


# ---- summary against the speed targets -------------------------------------------------------

def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _verdict(cases, limit, what, at_least=True):
    """'holds'/'FAILS' with the count and the worst cases; `cases` maps a label to a value
    that must be at least (or, `at_least` False, at most) `limit`."""
    if not cases:
        return f"not measured ({what})"
    sign = 1 if at_least else -1
    failed = sorted(((value, label) for label, value in cases.items()
                     if sign * value < sign * limit), key=lambda case: sign * case[0])
    text = (f"{'holds' if not failed else 'FAILS'}: met in {len(cases) - len(failed)} of "
            f"{len(cases)} cases")
    if failed:
        text += "; worst: " + ", ".join(f"{label} ({value:.2f})" for value, label in failed[:4])
    return text


def _label(case):
    function, direction, dtype, n = case
    return f"{function} {_SHORT[direction]} {dtype} n={_n(n)}"


def summary(rows, threads):
    index = _index(rows)
    vs_torch = {}  # (function, direction, dtype, n) -> torch time / actfast time
    for (function, direction, dtype, n, t, library), seconds in index.items():
        torch_time = index.get((function, direction, dtype, n, t, "torch"))
        if library == "actfast" and t == threads and torch_time and n in TARGET_SIZES:
            vs_torch[function, direction, dtype, n] = torch_time / seconds

    # fraction of the copy bound at the largest size measured (the target: 10**7, float32)
    measured = {(r["dtype"], r["n"]) for r in rows
                if r["library"] == "actfast" and r["threads"] == threads}
    dtypes = {dtype for dtype, _ in measured}
    dtype = "float32" if "float32" in dtypes or not dtypes else min(dtypes)
    largest = max((n for d, n in measured if d == dtype), default=10**7)
    of_copy, body = {}, []
    for function in _functions(rows):
        cells = []
        for direction in ("forward", "backward"):
            mine = index.get((function, direction, dtype, largest, threads, "actfast"))
            bound = copy_bound(index, direction, dtype, largest, threads, function)
            if mine and bound:
                of_copy[f"{function} {_SHORT[direction]}"] = bound / mine
            cells.append(f"{bound / mine:.0%}" if mine and bound else "")
        ratios = [v for k, v in vs_torch.items() if k[0] == function]
        body.append([function, *cells, _ratio(_geomean(ratios))])
    lines = [f"## Summary ({threads} thread{'s' * (threads > 1)})", "",
             f"Fraction of the copy bound at n = {_n(largest)}, {dtype}, and the geometric mean "
             "of torch time / actfast time over n = 1e3..1e7, both directions and dtypes:", "",
             _table(["function", "forward", "backward", "torch/actfast"], body), ""]

    small = {}
    for r in rows:
        if r["function"] == "maximum":
            for function in _functions(rows):
                for direction in ("forward", "backward"):
                    mine = index.get((function, direction, r["dtype"], r["n"], threads,
                                      "actfast"))
                    if mine:
                        small[f"{function} {_SHORT[direction]} {r['dtype']}"] = mine / small_yardstick(
                            index, function, direction, r["dtype"], r["n"], threads)
    geomean = _geomean(list(vs_torch.values()))
    targets = [
        ("actfast no slower than torch at n = 1e3, 1e5, 1e6, 1e7",
         _verdict({_label(k): v for k, v in vs_torch.items()}, 1, "needs torch at those n")),
        ("geometric mean of torch/actfast >= 1.5",
         "not measured (needs torch at n = 1e3..1e7)" if geomean is None else
         f"{'holds' if geomean >= 1.5 else 'FAILS'}: {geomean:.2f} over {len(vs_torch)} cases"),
        (">= 0.8 of the copy bound at n = 1e7 (float32)",
         _verdict(of_copy if (largest, dtype) == (10**7, "float32") else {}, 0.8,
                  "needs n = 1e7, float32")),
        ("a call at n = 16 within 1.5x np.maximum(x, 0, out=buf)",
         _verdict(small, 1.5, "needs n = 16", at_least=False)),
        ("float64 at least as fast as torch float64",
         _verdict({_label(k): v for k, v in vs_torch.items() if k[2] == "float64"}, 1,
                  "needs float64 and torch at n = 1e3..1e7")),
    ]
    lines += ["Speed targets:", ""] + [f"- {name}: {verdict}" for name, verdict in targets]
    return "\n".join(lines)


# ---- plots -----------------------------------------------------------------------------------

def plots(rows, threads, directory):
    """One PNG per function: throughput against n per library, the copy bound dashed.
    Returns the number written (0 when matplotlib is not installed)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    index = _index(rows)
    pairs, sizes = _keys(rows, threads)
    bytes_moved = {(r["direction"], r["dtype"], r["n"]): r.get("bytes") for r in rows}
    directions = list(dict.fromkeys(direction for direction, _ in pairs))
    dtypes = list(dict.fromkeys(dtype for _, dtype in pairs))
    written = 0
    for function in _functions(rows):
        figure, axes = plt.subplots(len(dtypes), len(directions), squeeze=False, sharex=True,
                                    figsize=(4.5 * len(directions), 3.5 * len(dtypes)))
        for direction, dtype in pairs:
            axis = axes[dtypes.index(dtype)][directions.index(direction)]
            moved = [bytes_moved.get((direction, dtype, n)) for n in sizes]
            curves = {"copy bound": [copy_bound(index, direction, dtype, n, threads, function)
                                     for n in sizes]}
            curves.update((library, [index.get((function, direction, dtype, n, threads, library))
                                     for n in sizes]) for library in ("actfast", *COMPETITORS))
            for library, times in curves.items():
                points = [(n, b / t / 1e9) for n, b, t in zip(sizes, moved, times) if b and t]
                if points:
                    axis.plot(*zip(*points), "k--" if library == "copy bound" else "o-",
                              label=library)
            axis.set(xscale="log", yscale="log", title=f"{function} {direction}, {dtype}")
        for axis in axes[-1]:
            axis.set_xlabel("n (elements)")
        for axis in axes[:, 0]:
            axis.set_ylabel(f"GB/s ({threads} threads)")
        axes[0][-1].legend(fontsize="small")
        figure.tight_layout()
        figure.savefig(os.path.join(directory, f"{function}.png"), dpi=90)
        plt.close(figure)
        written += 1
    return written
