"""The activations outside the elementwise registry (``actfast.special``), for benchmarks/run.py.

prelu, swish, pact, rrelu, noisy_relu, maxout and glu take parameters, seeds or an axis, so
they do not fit the registry's calls (competitors.py); each gets a builder here instead,
measured by run.py with the same loop, sizes, dtypes and thread counts as the registry's
functions. A builder takes the case's arrays (``a.x``, ``a.g``, ``a.out``: 1-d, n elements)
and returns ``{direction: {library: callable}}`` for actfast and the competitors that
compute the same thing:

- **torch**: its kernel where it has one, writing into the preallocated output where it has
  an ``out=`` form: ``glu.out`` / ``glu_backward.grad_input``, ``amax.out`` (maxout's
  forward), ``rrelu_with_noise.out`` / ``rrelu_with_noise_backward.out`` (training mode, its
  noise buffer preallocated; actfast's rrelu keeps its noise too, ``noise=``: its forward
  writes it, its backward reads it; rrelu_seed, measured when named, times actfast's forward
  without noise and its backward from the seed, which draws the slopes again),
  ``silu.out`` / ``silu_backward.grad_input`` for swish at beta = 1 (torch has no learnable
  beta: actfast's backward also sums beta's gradient; swish_beta, measured when named,
  compares beta = 1.7 with PyTorch's autograd of x * sigmoid(beta x)), ``clamp.out`` for
  pact's forward; prelu as autograd runs it, ``_prelu_kernel`` and
  ``_prelu_kernel_backward`` plus the sum of the weight's gradient over the rows (no out=
  forms). No torch for noisy_relu, for maxout's backward and pact's (alpha's gradient).
  noisy_relu's backward runs from the forward's output, as the registry's functions' where
  the derivative is a function of it (noisy_relu_seed, measured when named, from x, drawing
  the noise again).
- **reference**: the NumPy formula a user would write.

``ELEMENTS_MOVED[name][direction]``: elements read and written per element of x (maxout with
pieces = 2 and glu write half as many as they read), for the GB/s and the copy bound.
"""
from functools import partial

import numpy as np

import actfast as af

try:
    import torch
except ImportError:
    torch = None

CHANNELS = 8        # prelu: x as (n / 8, 8), one weight per channel (axis 1)
PIECES = 2          # maxout: pairs of consecutive elements
ALPHA = 6.0         # pact's clipping level (ReLU6's)
LEARNED_BETA = 1.7  # swish_beta: swish's beta once it has been learned away from 1
SEED = 12345        # rrelu and noisy_relu draw from a fixed seed: forward and backward agree
ELEMENTWISE = {"forward": 2, "backward": 3}
HALVING = {"forward": 1.5, "backward": 2.5}   # x in, half out / half grad + x in, x-sized out
ELEMENTS_MOVED = {"prelu": ELEMENTWISE, "swish": ELEMENTWISE, "swish_beta": ELEMENTWISE,
                  "pact": ELEMENTWISE,
                  # x in, out and noise out / grad_output and noise in, grad_input out
                  "rrelu": {"forward": 3, "backward": 3}, "rrelu_seed": ELEMENTWISE,
                  "noisy_relu": ELEMENTWISE, "noisy_relu_seed": ELEMENTWISE,
                  "maxout": HALVING, "glu": HALVING}
# what the backward reads besides grad_output, where it is not x (the rows' "input")
BACKWARD_INPUT = {"rrelu": "noise", "noisy_relu": "output"}


def _t(array):
    return torch.from_numpy(array)


def _prelu(a, libraries):
    x, g, out = (v.reshape(-1, CHANNELS) for v in (a.x, a.g, a.out))
    weight = np.linspace(0.05, 0.4, CHANNELS).astype(x.dtype)
    calls = {"forward": {"actfast": partial(af.prelu, x, weight, out=out)},
             "backward": {"actfast": partial(af.prelu.backward, g, x, weight, out=out)}}
    if "torch" in libraries and torch is not None:
        aten = torch.ops.aten
        calls["forward"]["torch"] = partial(aten._prelu_kernel, _t(x), _t(weight))

        def torch_backward(tg=_t(g), tx=_t(x), tw=_t(weight)):
            grad_input, grad_weight = aten._prelu_kernel_backward(tg, tx, tw)
            return grad_input, grad_weight.sum(0)
        calls["backward"]["torch"] = torch_backward
    if "reference" in libraries:
        calls["forward"]["reference"] = lambda: np.where(x > 0, x, weight * x)
        calls["backward"]["reference"] = lambda: (np.where(x > 0, g, weight * g),
                                                  np.where(x > 0, 0, g * x).sum(0))
    return calls


def _swish(a, libraries):
    x, g, out = a.x, a.g, a.out
    calls = {"forward": {"actfast": partial(af.swish, x, beta=1.0, out=out)},
             "backward": {"actfast": partial(af.swish.backward, g, x, beta=1.0, out=out)}}
    if "torch" in libraries and torch is not None:
        aten = torch.ops.aten
        calls["forward"]["torch"] = partial(aten.silu.out, _t(x), out=_t(out))
        calls["backward"]["torch"] = partial(aten.silu_backward.grad_input, _t(g), _t(x),
                                             grad_input=_t(out))
    if "reference" in libraries:
        def reference_backward():
            s = 1 / (1 + np.exp(-x))
            return g * (s + x * s * (1 - s)), np.sum(g * x * x * s * (1 - s))
        calls["forward"]["reference"] = lambda: x / (1 + np.exp(-x))
        calls["backward"]["reference"] = reference_backward
    return calls


def _swish_beta(a, libraries):
    """swish with a learned beta (LEARNED_BETA, not 1): PyTorch has no kernel for it, so its
    comparator is what a PyTorch model computes, x * sigmoid(beta x) with beta a 0-d tensor,
    and autograd's backward of that graph for (x, beta) (the graph built once, kept)."""
    x, g, out = a.x, a.g, a.out
    calls = {"forward": {"actfast": partial(af.swish, x, beta=LEARNED_BETA, out=out)},
             "backward": {"actfast": partial(af.swish.backward, g, x, beta=LEARNED_BETA,
                                             out=out)}}
    if "torch" in libraries and torch is not None:
        tx, beta = _t(x), torch.tensor(LEARNED_BETA, dtype=_t(x).dtype)
        calls["forward"]["torch"] = lambda: torch.mul(tx, torch.sigmoid(beta * tx), out=_t(out))
        x_leaf, beta_leaf = tx.clone().requires_grad_(), beta.clone().requires_grad_()
        y = x_leaf * torch.sigmoid(beta_leaf * x_leaf)
        calls["backward"]["torch"] = partial(torch.autograd.grad, y, (x_leaf, beta_leaf), _t(g),
                                             retain_graph=True)
    if "reference" in libraries:
        def reference_backward():
            s = 1 / (1 + np.exp(-LEARNED_BETA * x))
            slope = s * (1 - s)
            return g * (s + LEARNED_BETA * x * slope), np.sum(g * x * x * slope)
        calls["forward"]["reference"] = lambda: x / (1 + np.exp(-LEARNED_BETA * x))
        calls["backward"]["reference"] = reference_backward
    return calls


def _pact(a, libraries):
    x, g, out = a.x, a.g, a.out
    calls = {"forward": {"actfast": partial(af.pact, x, ALPHA, out=out)},
             "backward": {"actfast": partial(af.pact.backward, g, x, ALPHA, out=out)}}
    if "torch" in libraries and torch is not None:
        calls["forward"]["torch"] = partial(torch.ops.aten.clamp.out, _t(x), 0.0, ALPHA,
                                            out=_t(out))
    if "reference" in libraries:
        calls["forward"]["reference"] = lambda: np.clip(x, 0, ALPHA)
        calls["backward"]["reference"] = lambda: (np.where((x > 0) & (x < ALPHA), g, 0),
                                                  np.sum(g[x >= ALPHA]))
    return calls


def _rrelu_torch(a, calls):
    """PyTorch's rrelu in training mode: rrelu_with_noise writes the output and each
    element's derivative (its noise), its backward multiplies grad_output by that noise."""
    aten, noise = torch.ops.aten, torch.empty_like(_t(a.x))
    lower, upper = 1 / 8, 1 / 3
    aten.rrelu_with_noise(_t(a.x), noise, lower, upper, True)  # the backward's noise, set
    calls["forward"]["torch"] = partial(aten.rrelu_with_noise.out, _t(a.x), noise, lower,
                                        upper, True, out=_t(a.out))
    calls["backward"]["torch"] = partial(aten.rrelu_with_noise_backward.out, _t(a.g), _t(a.x),
                                         noise, lower, upper, True, False, out=_t(a.out))


def _rrelu_reference(a, calls):
    rng = np.random.default_rng(SEED)
    calls["forward"]["reference"] = lambda: np.where(
        a.x >= 0, a.x, a.x * rng.uniform(1 / 8, 1 / 3, a.x.size).astype(a.x.dtype))


def _rrelu(a, libraries):
    """rrelu in training mode as PyTorch runs it: the forward also writes the noise (each
    element's derivative), the backward reads it."""
    x, g, out = a.x, a.g, a.out
    noise = np.empty_like(x)
    af.rrelu(x, training=True, seed=SEED, noise=noise)
    calls = {"forward": {"actfast": partial(af.rrelu, x, out=out, training=True, seed=SEED,
                                            noise=noise)},
             "backward": {"actfast": partial(af.rrelu.backward, g, noise=noise, out=out,
                                             training=True)}}
    if "torch" in libraries and torch is not None:
        _rrelu_torch(a, calls)
    if "reference" in libraries:
        _rrelu_reference(a, calls)
        calls["backward"]["reference"] = lambda: g * noise
    return calls


def _rrelu_seed(a, libraries):
    """rrelu in training mode without the noise: the forward draws the slopes, the backward
    draws them again from the seed (a Philox call per pair of elements), against the same
    PyTorch calls as rrelu's (which keep the noise)."""
    x, g, out = a.x, a.g, a.out
    options = {"training": True, "seed": SEED}
    calls = {"forward": {"actfast": partial(af.rrelu, x, out=out, **options)},
             "backward": {"actfast": partial(af.rrelu.backward, g, x, out=out, **options)}}
    if "torch" in libraries and torch is not None:
        _rrelu_torch(a, calls)
    if "reference" in libraries:
        _rrelu_reference(a, calls)
    return calls


def _noisy_relu_forward(a, libraries):
    x = a.x
    calls = {"forward": {"actfast": partial(af.noisy_relu, x, sigma=0.5, seed=SEED,
                                            out=a.out)},
             "backward": {}}
    if "reference" in libraries:
        rng = np.random.default_rng(SEED)
        calls["forward"]["reference"] = lambda: np.maximum(
            x + 0.5 * rng.standard_normal(x.size), 0).astype(x.dtype)
    return calls


def _noisy_relu(a, libraries):
    """noisy_relu's backward from the forward's output (y > 0: relu's rule), as the
    registry's functions run theirs where the derivative is a function of the output."""
    calls = _noisy_relu_forward(a, libraries)
    y = af.noisy_relu(a.x, sigma=0.5, seed=SEED)
    calls["backward"]["actfast"] = partial(af.noisy_relu.backward, a.g, output=y, out=a.out)
    if "reference" in libraries:
        calls["backward"]["reference"] = lambda: np.where(y > 0, a.g, 0)
    return calls


def _noisy_relu_seed(a, libraries):
    """noisy_relu's backward from x: the forward's noise drawn again from the seed."""
    calls = _noisy_relu_forward(a, libraries)
    calls["backward"]["actfast"] = partial(af.noisy_relu.backward, a.g, a.x, sigma=0.5,
                                           seed=SEED, out=a.out)
    return calls


def _maxout(a, libraries):
    x, g, out = a.x, a.g[: a.x.size // PIECES], a.out[: a.x.size // PIECES]
    calls = {"forward": {"actfast": partial(af.maxout, x, PIECES, out=out)},
             "backward": {"actfast": partial(af.maxout.backward, g, x, PIECES, out=a.out)}}
    if "torch" in libraries and torch is not None:
        calls["forward"]["torch"] = partial(torch.ops.aten.amax.out, _t(x).view(-1, PIECES),
                                            [-1], False, out=_t(out))
    if "reference" in libraries:
        calls["forward"]["reference"] = lambda: x.reshape(-1, PIECES).max(axis=-1)
    return calls


def _glu(a, libraries):
    half = a.x.size // 2
    x, g, out = a.x, a.g[:half], a.out[:half]
    calls = {"forward": {"actfast": partial(af.glu, x, out=out)},
             "backward": {"actfast": partial(af.glu.backward, g, x, out=a.out)}}
    if "torch" in libraries and torch is not None:
        aten = torch.ops.aten
        calls["forward"]["torch"] = partial(aten.glu.out, _t(x), -1, out=_t(out))
        calls["backward"]["torch"] = partial(aten.glu_backward.grad_input, _t(g), _t(x), -1,
                                             grad_input=_t(a.out))
    if "reference" in libraries:
        def reference_backward():
            s = 1 / (1 + np.exp(-x[half:]))
            return np.concatenate([g * s, g * x[:half] * s * (1 - s)])
        calls["forward"]["reference"] = lambda: x[:half] / (1 + np.exp(-x[half:]))
        calls["backward"]["reference"] = reference_backward
    return calls


BUILDERS = {"prelu": _prelu, "swish": _swish, "pact": _pact, "rrelu": _rrelu,
            "noisy_relu": _noisy_relu, "maxout": _maxout, "glu": _glu}
# measured only when named (--functions): not part of the default run and its targets, whose
# swish row is beta = 1 against PyTorch's silu kernels, whose rrelu row keeps the noise, as
# PyTorch does, and whose noisy_relu row runs its backward from the output
OPTIONAL = {"swish_beta": _swish_beta, "rrelu_seed": _rrelu_seed,
            "noisy_relu_seed": _noisy_relu_seed}
# the element counts each takes: prelu's rows of CHANNELS, maxout's groups, glu's halves
MULTIPLE_OF = {"prelu": CHANNELS, "maxout": PIECES, "glu": 2}


def fits(name, n):
    """Can `name` be measured on n elements (laid out as its builder does)?"""
    return n % MULTIPLE_OF.get(name, 1) == 0


def calls(name, a, libraries):
    """{direction: {library: callable}} for the special function `name` on the case `a`."""
    return {**BUILDERS, **OPTIONAL}[name](a, libraries)
