"""Transposed operands: elementwise functions on square matrices whose input is laid out
transposed against the output (Fortran order in, C order out), forward and backward.

    python benchmarks/layouts.py            # relu, sigmoid, tanh, gelu, silu; 1000 and 3000
    python benchmarks/layouts.py --quick    # relu and gelu, 3000 only, fewer samples
    python benchmarks/layouts.py --functions elu,mish --sizes 2000 --dtypes float64

For each function, dtype and size N (an N x N matrix), side by side in one process, all cores:

- actfast, x transposed: ``f(x_t, out=out)`` with ``x_t`` Fortran-ordered and ``out``
  C-ordered; the backward ``f.backward(g, x_t, out=out)`` with ``g`` C-ordered, or from the
  output ``y_t = f(x_t)`` (Fortran-ordered too) where the registry allows it, as
  benchmarks/run.py does (torch's relu, sigmoid and tanh backwards take the output);
- torch: the same call of its ``.out`` ops on tensors that share those arrays' memory and
  strides (benchmarks/competitors.py);
- the transposing copy of the same bytes: ``np.copyto(out, x_t)`` and torch's ``copy_``;
- actfast, contiguous: the same call with every operand C-ordered.

The table gives times and three ratios: torch's time / actfast's (> 1: actfast is faster),
the faster transposing copy's time / actfast's (forward only: 1 = as fast as transposing
the same bytes) and the contiguous call's time / the transposed one's (1 = the layout costs
nothing).
Writes benchmarks/results/layouts.md. Like benchmarks/run.py, it imports the installed
actfast (for a tree built in place: PYTHONPATH=. before the command).
"""
import argparse
import datetime
import os
from types import SimpleNamespace

import numpy as np

import actfast
import competitors
import report
import run
import timing
from actfast.catalogue import ENTRIES

FUNCTIONS = ("relu", "sigmoid", "tanh", "gelu", "silu")
QUICK_FUNCTIONS = ("relu", "gelu")
SIZES = (1000, 3000)
QUICK_SIZES = (3000,)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="relu and gelu at 3000 x 3000, "
                        "float32, 3 samples")
    parser.add_argument("--functions", help="comma-separated registry names "
                        f"(default {','.join(FUNCTIONS)})")
    parser.add_argument("--sizes", help="comma-separated N of the N x N matrices "
                        f"(default {','.join(map(str, SIZES))})")
    report.add_common_options(parser, "threads for actfast and torch", 5, "layouts.md")
    args = parser.parse_args(argv)
    known = {entry.name: entry for entry in ENTRIES}
    names = (args.functions.split(",") if args.functions
             else QUICK_FUNCTIONS if args.quick else FUNCTIONS)
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown functions {unknown}; elementwise ones: {list(known)}")
    args.entries = [known[name] for name in names]
    args.sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
                  else QUICK_SIZES if args.quick else SIZES)
    args.dtypes = (args.dtypes or ("float32" if args.quick else "float32,float64")).split(",")
    args.samples = args.samples or (3 if args.quick else 5)
    return args


def _arrays(rng, n, dtype, transposed):
    """x (Fortran-ordered when `transposed`), g and out (C-ordered) of shape (n, n)."""
    x = (rng.standard_normal((n, n)) * 3).astype(dtype)
    return SimpleNamespace(x=np.asfortranarray(x) if transposed else x,
                           g=(rng.standard_normal((n, n)) * 3).astype(dtype),
                           out=np.zeros((n, n), dtype))


def measure(args):
    """Rows (function, direction, dtype, n, {column: seconds})."""
    rows = []
    rng = np.random.default_rng()
    competitors.set_num_threads(args.threads)
    for dtype in args.dtypes:
        for n in args.sizes:
            transposed = _arrays(rng, n, np.dtype(dtype), True)
            contiguous = _arrays(rng, n, np.dtype(dtype), False)
            copies = competitors.copy_calls(transposed.x, transposed.out)
            for entry in args.entries:
                params = run._params(entry)
                # the backward from the output where the registry allows it (as run.py, and
                # torch's sigmoid, tanh and relu kernels take it), laid out as x (order K)
                from_output = entry.allows_output(params)
                for a in (transposed, contiguous):
                    a.y = actfast.FUNCTIONS[entry.name](a.x, **params)
                for direction in ("forward", "backward"):
                    calls = {"actfast": competitors.actfast_call(direction, entry.name,
                                                                 transposed, params,
                                                                 from_output)}
                    calls.update(competitors.competitor_calls(direction, entry.name,
                                                              transposed, params, ("torch",)))
                    calls.update(copies)
                    calls["contiguous"] = competitors.actfast_call(direction, entry.name,
                                                                   contiguous, params,
                                                                   from_output)
                    seconds = timing.compare(calls, samples=args.samples)
                    rows.append((entry.name, direction, dtype, n, seconds))
                    print(f"{entry.name} {direction} {dtype} {n}: "
                          + " ".join(f"{k} {v * 1e3:.3f} ms" for k, v in seconds.items()),
                          flush=True)
    return rows


def _ratio(numerator, denominator):
    return "" if numerator is None else f"{numerator / denominator:.2f}"


def write(args, rows):
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = ["# actfast with a transposed operand", "",
             f"- date: {now:%Y-%m-%d %H:%M} UTC",
             f"- cpu: {report._cpu_model()}",
             f"- threads: {args.threads}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in competitors.versions().items()),
             "",
             "x (and the output a backward reads) Fortran-ordered, grad_output and out C-ordered; "
             "N x N matrices. "
             "Ratios: torch / actfast, transposing copy / actfast (the faster of np.copyto "
             "and torch's copy_; forward only), contiguous actfast / transposed actfast.", "",
             "| function | direction | dtype | N | actfast | torch | of copy | of contiguous |",
             "|---|---|---|---|---|---|---|---|"]
    for name, direction, dtype, n, seconds in rows:
        ours = seconds["actfast"]
        # the copy moves a forward's bytes: no bound for a backward's
        copy = (min(seconds[k] for k in ("np.copyto", "torch.copy_") if k in seconds)
                if direction == "forward" else None)
        lines.append(f"| {name} | {direction} | {dtype} | {n} | {ours * 1e3:.2f} ms | "
                     f"{_ratio(seconds.get('torch'), ours)} | {_ratio(copy, ours)} | "
                     f"{_ratio(seconds['contiguous'], ours)} |")
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "layouts.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {path}")


def main(argv=None):
    args = parse_args(argv)
    write(args, measure(args))


if __name__ == "__main__":
    main()
