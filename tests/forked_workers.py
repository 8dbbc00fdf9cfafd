"""Run by tests/test_contract.py in a fresh interpreter: every public function, forward and
backward, computed on two threads here, then again in worker processes forked from this one
(multiprocessing's 'fork' start method) after this process has run parallel regions. GNU
OpenMP's thread pool does not survive fork(): a forked worker must run on one thread rather
than wait for the parent's threads. Exits 0 and prints the number of calls compared when
every worker result has the bits of the parent's; a worker that hangs fails by the timeout.

    python tests/forked_workers.py SEED
"""
import multiprocessing
import sys
import warnings

import numpy as np

import actfast as af
from actfast.catalogue import ENTRIES

N = 200_003                                  # above every parallel threshold
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0


def _arrays():
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(N).astype(np.float32) * 3
    g = rng.standard_normal(N).astype(np.float32)
    rows = rng.standard_normal((200, 1001)).astype(np.float32) * 3
    row_grads = rng.standard_normal((200, 1001)).astype(np.float32)
    return x, g, rows, row_grads


def _calls():
    """name -> function of the arrays giving that call's results (a tuple of arrays)."""
    calls = {}
    for entry in ENTRIES:
        f, params = getattr(af, entry.name), entry.examples[0]
        calls[entry.name] = (lambda x, g, r, rg, f=f, p=params:
                             (f(x, **p), f.backward(g, x, **p)))
    weight = np.float32(0.2)
    calls.update({
        "prelu": lambda x, g, r, rg: (af.prelu(x, weight), *af.prelu.backward(g, x, weight)),
        "swish": lambda x, g, r, rg: (af.swish(x, beta=1.3), *af.swish.backward(g, x, beta=1.3)),
        "pact": lambda x, g, r, rg: (af.pact(x, 2.0), *af.pact.backward(g, x, 2.0)),
        "rrelu": lambda x, g, r, rg: (af.rrelu(x, training=True, seed=5),
                                      af.rrelu.backward(g, x, training=True, seed=5)),
        "noisy_relu": lambda x, g, r, rg: (af.noisy_relu(x, sigma=0.5, seed=3),
                                           af.noisy_relu.backward(g, x, sigma=0.5, seed=3)),
        "maxout": lambda x, g, r, rg: (af.maxout(r[:, :1000], 4),
                                       af.maxout.backward(rg[:, :250], r[:, :1000], 4)),
        "glu": lambda x, g, r, rg: (af.glu(r[:, :1000]), af.glu.backward(rg[:, :500], r[:, :1000])),
        "logsumexp": lambda x, g, r, rg: (af.logsumexp(r), af.logsumexp.backward(rg[:, 0], r)),
    })
    for name in ("softmax", "log_softmax", "softmin"):
        f = getattr(af, name)
        calls[name] = lambda x, g, r, rg, f=f: (f(r), f.backward(rg, r), f(r, axis=0))
    return calls


def results_of(name):
    return [np.asarray(a) for a in _calls()[name](*_arrays())]


def threads_in_worker(_):
    before = af.get_num_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        af.set_num_threads(2)
    return before, af.get_num_threads(), [str(w.message) for w in caught
                                          if issubclass(w.category, RuntimeWarning)]


def main():
    if not af.openmp_enabled():
        print("skipped: built without OpenMP")
        return 0
    af.set_num_threads(2)
    names = sorted(_calls())
    expected = {name: results_of(name) for name in names}   # parallel regions run here
    missing = set(af.__all__) - set(names) - {"Activation", "get_num_threads",
                                              "openmp_enabled", "set_num_threads"}
    assert not missing, f"functions not called: {missing}"
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        try:
            got = pool.map_async(results_of, names).get(timeout=120)
            threads = pool.map_async(threads_in_worker, range(2)).get(timeout=60)
        except multiprocessing.TimeoutError:
            pool.terminate()
            print("a forked worker did not finish within the timeout", file=sys.stderr)
            return 1
    failures = []
    for name, result in zip(names, got):
        for k, (a, b) in enumerate(zip(result, expected[name])):
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                failures.append(f"{name} result {k}")
    for before, after, messages in threads:
        if (before, after) != (1, 1) or len(messages) != 1 or "forked" not in messages[0]:
            failures.append(f"worker threads {before} -> {after}, warnings {messages}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print(sum(len(r) for r in got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
