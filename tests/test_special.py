"""Tests of actfast.special: the functions with their own loop shape.

- learnable (prelu, swish, pact): grad_input and the parameter's gradient against
  actfast.reference and finite differences; the parameter's gradient bitwise identical for
  every thread count and layout;
- random (rrelu in training mode, noisy_relu): the draws against an independent NumPy
  Philox4x32-10 (itself checked on Random123's known-answer vectors), their distribution on
  >= 10^5 draws, and the same bits for one seed whatever the layout and thread count;
- grouped (maxout, glu): over an axis, against the reference;
- PyTorch 2.13 parity where torch has the function (skipped without torch).

Every function also goes through the package contract: dtypes (float16/32/64, integers, bool),
layouts (C, F, transposed, strided, reversed), out= (including in place and overlapping),
1 and 2 threads, errors. The "large" arrays (72864 elements) take the parallel path on 2
threads.
"""
import math
import tracemalloc
from functools import partial

import numpy as np
import pytest

import actfast as af
from actfast import _special
from actfast import reference as R
from conftest import (REPRESENTATIONS, THREADS, assert_bitwise_equal, assert_rel_close,
                      assert_ulp_close, assert_zero_signs, single_thread, unaligned)

SEED = 0x5EED_1234_ABCD   # the seed of the random functions in the test matrix
FORWARD_ULP, BACKWARD_ULP = 4, 8


# ---- an independent Philox4x32-10 and the draws of the random functions ---------------------

def philox(counter, key):
    """Philox4x32-10 (Salmon et al. 2011) in NumPy: counter = 4 arrays of 32-bit words,
    key = 2 words; returns 4 arrays of 32-bit words (as uint64)."""
    mask = np.uint64(0xFFFFFFFF)
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(0x9E3779B9)) & mask
            k1 = (k1 + np.uint64(0xBB67AE85)) & mask
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & mask,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & mask)
    return c0, c1, c2, c3


def _unit(hi, lo):
    """The top 52 of the 64 bits (hi, lo), as a multiple of 2^-52 in [0, 1)."""
    return (((hi << np.uint64(32)) | lo) >> np.uint64(12)).astype(np.float64) * 2.0 ** -52


def _pair_words(seed, stream, first, pairs):
    """The 4 words of pairs first .. first + pairs - 1: one Philox call per pair of elements
    (2k, 2k + 1), counter (k lo, k hi, stream, 0), key = the seed."""
    k = np.uint64(first) + np.arange(pairs, dtype=np.uint64)
    zeros = np.zeros(pairs, dtype=np.uint64)
    return philox((k & np.uint64(0xFFFFFFFF), k >> np.uint64(32), zeros + stream, zeros),
                  (seed & 0xFFFFFFFF, seed >> 32))


def _uniforms(seed, stream, first, pairs):
    """The two uniforms of each pair first .. first + pairs - 1, interleaved: element 2k
    takes words (0, 1) of pair k, element 2k + 1 words (2, 3)."""
    w = _pair_words(seed, stream, first, pairs)
    return np.stack([_unit(w[0], w[1]), _unit(w[2], w[3])], axis=1).reshape(-1)


def rrelu_slopes(shape, lower, upper, seed):
    """lower + (upper - lower) u, u the uniforms of stream 1 from pair 0."""
    n = math.prod(shape)
    u = _uniforms(seed, 1, 0, (n + 1) // 2)[:n]
    return (lower + (upper - lower) * u).reshape(shape)


def normal_noise(shape, seed):
    """Box-Muller per pair: r cos(theta) for element 2k, r sin(theta) for 2k + 1."""
    n = math.prod(shape)
    w = _pair_words(seed, 2, 0, (n + 1) // 2)
    r = np.sqrt(-2.0 * np.log(1.0 - _unit(w[0], w[1])))
    theta = 2 * np.pi * _unit(w[2], w[3])
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1).reshape(-1)[:n].reshape(shape)


# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2], result[4]
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
KAT_IDS = ["zeros", "ones", "pi"]


@pytest.mark.parametrize("counter, key, expected", KAT, ids=KAT_IDS)
def test_philox_known_answers_kernel(counter, key, expected):
    assert _special.philox_words(counter, key) == expected


@pytest.mark.parametrize("counter, key, expected", KAT, ids=KAT_IDS)
def test_philox_known_answers_test_oracle(counter, key, expected):
    words = philox([[c] for c in counter], key)
    assert tuple(int(w[0]) for w in words) == expected


# ---- the functions under test, each with fixed parameters ----------------------------------

def _channels(shape):
    return 1 if len(shape) == 0 else (shape[1] if len(shape) >= 2 else shape[0])


def _prelu_weight(shape, dtype=np.float64):
    # dyadic values: the same in float16, float32 and float64, so one reference serves all
    return ((1 + np.arange(_channels(shape)) % 24) / 64.0).astype(dtype)


def _prelu_weight_like(x):
    """_prelu_weight in x's dtype when that is float32/float64 (the compiled fast path takes
    a weight of x's dtype only; others go through the Python layer), else float64."""
    dtype = getattr(x, "dtype", None)
    return _prelu_weight(np.shape(x), dtype if dtype in (np.float32, np.float64) else np.float64)


def _channel_sum(terms):
    """Sum over every axis but prelu's channel axis."""
    axis = 1 if terms.ndim >= 2 else 0
    return np.moveaxis(terms, axis, 0).reshape(terms.shape[axis], -1).sum(axis=1)


class Spec:
    """A function with one parameter set. ``forward(x, **kw)`` and ``backward(g, x, **kw)``
    call actfast (``backward`` always returns a tuple: grad_input, then the parameter's
    gradient for the learnable ones); ``reference(x)`` and ``reference_backward(g, x)`` are
    the float64 oracles; ``out_shape(shape)`` is the forward's output shape."""

    def __init__(self, id, forward, backward, reference, reference_backward,
                 out_shape=lambda shape: shape, learnable=False, elementwise=True, slack=None,
                 grad_slack=None):
        self.id = id
        self.forward, self.backward = forward, backward
        self.reference, self.reference_backward = reference, reference_backward
        self.out_shape = out_shape
        self.learnable = learnable
        self.elementwise = elementwise
        self.slack = slack or (lambda x: 0.0)  # absolute error forgiven in the forward
        self.grad_slack = grad_slack or (lambda g, x: 0.0)  # and in grad_input

    def __repr__(self):
        return f"Spec({self.id})"


def _tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _axis_shape(shape, axis, divisor):
    shape = list(shape)
    shape[axis] //= divisor
    return tuple(shape)


def _noisy_slack(x):
    # the oracle's log and cos (NumPy's) may differ from libm's by an ulp or two: forgive a
    # few ulp of the noise, which matters only where x + noise cancels
    return 8 * np.finfo(np.float64).eps * 0.7 * np.abs(normal_noise(np.shape(x), SEED))


def _swish_grad_slack(beta):
    # s + t s (1 - s) cancels near t = -1.28: an ulp of s (NumPy's exp against libm's) is
    # then many ulp of the result, in the reference as much as in actfast
    return lambda g, x: 4 * np.finfo(np.float64).eps * np.abs(g) * (1 + np.abs(beta * x))


def _swish_fixed_spec(beta):
    """swish with a beta that is not learned (beta_grad=False): grad_input alone."""
    return Spec(f"swish-beta={beta:g}-fixed",
                lambda x, **kw: af.swish(x, beta=beta, **kw),
                lambda g, x, **kw: af.swish.backward(g, x, beta=beta, beta_grad=False, **kw)[:1],
                lambda x: R.swish(x, beta),
                lambda g, x: (g * R.swish_grad(x, beta)[0],),
                grad_slack=_swish_grad_slack(beta))


SPECS = [
    Spec("prelu-channels",
         lambda x, **kw: af.prelu(x, _prelu_weight_like(x), **kw),
         lambda g, x, **kw: af.prelu.backward(g, x, _prelu_weight_like(x), **kw),
         lambda x: R.prelu(x, _prelu_weight(x.shape)),
         lambda g, x: (g * R.prelu_grad(x, _prelu_weight(x.shape))[0],
                       _channel_sum(g * R.prelu_grad(x, _prelu_weight(x.shape))[1])),
         learnable=True),
    Spec("prelu-single",
         lambda x, **kw: af.prelu(x, [0.25], **kw),
         lambda g, x, **kw: af.prelu.backward(g, x, [0.25], **kw),
         lambda x: R.prelu(x, [0.25]),
         lambda g, x: (g * R.prelu_grad(x, [0.25])[0],
                       np.array([np.sum(g * R.prelu_grad(x, [0.25])[1])])),
         learnable=True),
    Spec("swish-beta=1.7",
         lambda x, **kw: af.swish(x, beta=1.7, **kw),
         lambda g, x, **kw: af.swish.backward(g, x, beta=1.7, **kw),
         lambda x: R.swish(x, 1.7),
         lambda g, x: (g * R.swish_grad(x, 1.7)[0], np.sum(g * R.swish_grad(x, 1.7)[1])),
         learnable=True, grad_slack=_swish_grad_slack(1.7)),
    Spec("swish-beta=1",  # silu's gradient; beta's from silu's exponential
         lambda x, **kw: af.swish(x, beta=1.0, **kw),
         lambda g, x, **kw: af.swish.backward(g, x, beta=1.0, **kw),
         lambda x: R.swish(x, 1.0),
         lambda g, x: (g * R.swish_grad(x, 1.0)[0], np.sum(g * R.swish_grad(x, 1.0)[1])),
         learnable=True, grad_slack=_swish_grad_slack(1.0)),
    Spec("swish-beta=-0.6",
         lambda x, **kw: af.swish(x, beta=-0.6, **kw),
         lambda g, x, **kw: af.swish.backward(g, x, beta=-0.6, **kw),
         lambda x: R.swish(x, -0.6),
         lambda g, x: (g * R.swish_grad(x, -0.6)[0], np.sum(g * R.swish_grad(x, -0.6)[1])),
         learnable=True, grad_slack=_swish_grad_slack(-0.6)),
    _swish_fixed_spec(1.7),
    _swish_fixed_spec(1.0),
    Spec("pact-alpha=1.5",
         lambda x, **kw: af.pact(x, 1.5, **kw),
         lambda g, x, **kw: af.pact.backward(g, x, 1.5, **kw),
         lambda x: R.pact(x, 1.5),
         lambda g, x: (g * R.pact_grad(x, 1.5)[0], np.sum(g * R.pact_grad(x, 1.5)[1])),
         learnable=True),
    Spec("rrelu-eval",
         lambda x, **kw: af.rrelu(x, lower=0.1, upper=0.3, **kw),
         lambda g, x, **kw: (af.rrelu.backward(g, x, lower=0.1, upper=0.3, **kw),),
         lambda x: R.rrelu_eval(x, 0.1, 0.3),
         lambda g, x: (g * R.rrelu_eval_grad(x, 0.1, 0.3),)),
    Spec("rrelu-training",
         lambda x, **kw: af.rrelu(x, lower=0.1, upper=0.3, training=True, seed=SEED, **kw),
         lambda g, x, **kw: (af.rrelu.backward(g, x, lower=0.1, upper=0.3, training=True,
                                               seed=SEED, **kw),),
         lambda x: np.where(x <= 0, x * rrelu_slopes(x.shape, 0.1, 0.3, SEED), x),
         lambda g, x: (np.where(x <= 0, g * rrelu_slopes(x.shape, 0.1, 0.3, SEED), g),)),
    Spec("noisy_relu",
         lambda x, **kw: af.noisy_relu(x, sigma=0.7, seed=SEED, **kw),
         lambda g, x, **kw: (af.noisy_relu.backward(g, x, sigma=0.7, seed=SEED, **kw),),
         lambda x: np.maximum(x + 0.7 * normal_noise(x.shape, SEED), 0.0),
         lambda g, x: (np.where(x + 0.7 * normal_noise(x.shape, SEED) > 0, g, 0.0),),
         slack=_noisy_slack),
    Spec("maxout-pieces=3",
         lambda x, **kw: af.maxout(x, 3, **kw),
         lambda g, x, **kw: (af.maxout.backward(g, x, 3, **kw),),
         lambda x: R.maxout(x, 3),
         lambda g, x: (R.maxout_grad(g, x, 3),),
         out_shape=lambda shape: _axis_shape(shape, -1, 3), elementwise=False),
    Spec("maxout-pieces=2",   # neighbouring pairs along the last axis: its own loop
         lambda x, **kw: af.maxout(x, 2, **kw),
         lambda g, x, **kw: (af.maxout.backward(g, x, 2, **kw),),
         lambda x: R.maxout(x, 2),
         lambda g, x: (R.maxout_grad(g, x, 2),),
         out_shape=lambda shape: _axis_shape(shape, -1, 2), elementwise=False),
    Spec("maxout-pieces=2-axis=0",
         lambda x, **kw: af.maxout(x, 2, axis=0, **kw),
         lambda g, x, **kw: (af.maxout.backward(g, x, 2, axis=0, **kw),),
         lambda x: R.maxout(x, 2, axis=0),
         lambda g, x: (R.maxout_grad(g, x, 2, axis=0),),
         out_shape=lambda shape: _axis_shape(shape, 0, 2), elementwise=False),
    Spec("glu",
         lambda x, **kw: af.glu(x, **kw),
         lambda g, x, **kw: (af.glu.backward(g, x, **kw),),
         lambda x: R.glu(x),
         lambda g, x: (R.glu_grad(g, x),),
         out_shape=lambda shape: _axis_shape(shape, -1, 2), elementwise=False),
    Spec("glu-axis=0",
         lambda x, **kw: af.glu(x, axis=0, **kw),
         lambda g, x, **kw: (af.glu.backward(g, x, axis=0, **kw),),
         lambda x: R.glu(x, axis=0),
         lambda g, x: (R.glu_grad(g, x, axis=0),),
         out_shape=lambda shape: _axis_shape(shape, 0, 2), elementwise=False),
]
SPEC_PARAMS = [pytest.param(spec, id=spec.id) for spec in SPECS]
ELEMENTWISE_PARAMS = [pytest.param(spec, id=spec.id) for spec in SPECS if spec.elementwise]
LEARNABLE_PARAMS = [pytest.param(spec, id=spec.id) for spec in SPECS if spec.learnable]


def values(rng, shape, dtype=np.float64):
    """Random x covering [-20, 20]: uniform, normal around 0, points near the kinks of the
    functions here (0, 1.5 = pact's alpha), log-uniform magnitudes; never all zeros."""
    n = math.prod(shape)
    pool = np.concatenate([
        rng.uniform(-20, 20, n), rng.standard_normal(n) * 3,
        rng.choice([0.0, 1.5], n) + rng.uniform(-0.01, 0.01, n),
        np.copysign(np.exp(rng.uniform(-20, 5, n)), rng.random(n) - 0.5)])
    return rng.choice(pool, n).reshape(shape).astype(dtype)


def with_special_values(rng, x):
    """x with NaNs of both signs, infinities, signed zeros and the dtype's extremes put at
    random positions (each at least once, 1 % of the elements in all): a NaN x must come out
    as the same bits wherever it sits."""
    info = np.finfo(x.dtype)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30,
                         float(info.tiny), -float(info.tiny), float(info.max),
                         -float(info.max)], dtype=x.dtype)
    x = x.copy()
    count = max(len(specials), x.size // 100)
    picked = specials[rng.integers(0, len(specials), count)]
    picked[:len(specials)] = specials
    x.flat[rng.choice(x.size, count, replace=False)] = picked
    return x


def grad_values(rng, shape, dtype=np.float64):
    return (rng.standard_normal(shape) * np.exp(rng.uniform(-3, 3, shape))).astype(dtype)


def _check_parameter_gradient(actual, expected, scale, dtype, what="parameter gradient"):
    """A sum against the float64 reference sum: within a few roundings of `scale`, the sum of
    the terms' magnitudes (float32 sums are rounded once more, to float32)."""
    tol = 1e-13 if np.dtype(dtype) == np.float64 else 2e-7
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert_rel_close(actual, expected, rtol=tol, atol=tol * np.abs(scale), what=what)


# ---- values against the reference ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_forward_reference(spec, dtype, rng):
    x = values(rng, (48, 66), dtype)
    y = spec.forward(x)
    assert y.dtype == dtype and y.shape == spec.out_shape(x.shape)
    x64 = x.astype(np.float64)
    assert_ulp_close(y, spec.reference(x64), dtype, FORWARD_ULP, slack=spec.slack(x64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_backward_reference(spec, dtype, rng):
    x = values(rng, (48, 66), dtype)
    g = grad_values(rng, spec.out_shape(x.shape), dtype)
    result = spec.backward(g, x)
    expected = spec.reference_backward(g.astype(np.float64), x.astype(np.float64))
    assert len(result) == len(expected)
    assert result[0].dtype == dtype and result[0].shape == x.shape
    assert_ulp_close(result[0], expected[0], dtype, BACKWARD_ULP, what="grad_input",
                     slack=spec.grad_slack(g.astype(np.float64), x.astype(np.float64)))
    if spec.learnable:
        assert np.asarray(result[1]).dtype == dtype
        # every parameter term of these functions has one sign for grad_output >= 0, so the
        # reference with |grad_output| gives the sums of the terms' magnitudes
        scale = spec.reference_backward(np.abs(g.astype(np.float64)), x.astype(np.float64))[1]
        _check_parameter_gradient(result[1], expected[1], scale, dtype)


# A dense float32 sweep of [-20, 20] plus the special values, for the functions with a
# transcendental part (the others are exact: products and comparisons).
SWEEP = np.concatenate([np.linspace(-20, 20, 400_001, dtype=np.float32),
                        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38,
                                  -1e-38, 3e38, -3e38, 88.7, -88.7, 100.0, -100.0, 1e4, -1e4],
                                 dtype=np.float32)])


@pytest.mark.parametrize("beta", [1.7, 1.0, 0.3, -1.3, 0.0], ids=lambda b: f"beta={b}")
def test_swish_float32_sweep(beta, rng):
    g = grad_values(rng, SWEEP.shape, np.float32)
    x64 = SWEEP.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = R.swish(x64, beta)
        dx, _ = R.swish_grad(x64, beta)
    if beta == 0.0:  # the reference's sigmoid(0 * inf) is NaN; the limit is 1/2 everywhere
        dx = np.where(np.isnan(x64), np.nan, 0.5)
        expected = np.where(np.isnan(x64), np.nan, 0.5 * x64)
    assert_ulp_close(af.swish(SWEEP, beta=beta), expected, np.float32, FORWARD_ULP,
                     inputs={"x": SWEEP})
    grad_input, _ = af.swish.backward(g, SWEEP, beta=beta)
    assert_ulp_close(grad_input, g * dx, np.float32, BACKWARD_ULP, inputs={"x": SWEEP})


def test_glu_float32_sweep(rng):
    b = SWEEP
    a = rng.standard_normal(b.shape).astype(np.float32) * 10
    x = np.stack([a, b])                      # glu over axis 0: a * sigmoid(b)
    g = grad_values(rng, b.shape, np.float32)[None]
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    assert_ulp_close(af.glu(x, axis=0), R.glu(x64, axis=0), np.float32, FORWARD_ULP)
    assert_ulp_close(af.glu.backward(g, x, axis=0), R.glu_grad(g64, x64, axis=0), np.float32,
                     BACKWARD_ULP)


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_glu_forward_beyond_the_cache_gives_the_same_bits(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x and out on (where glu's forward once streamed its output):
    # the same bits as rows computed one call each, with out= off the vector boundary; rows of
    # an odd half, so that chunks end anywhere
    rows = 3
    half = 33554432 // (3 * rows * np.dtype(dtype).itemsize) + 1001 + 2 * int(rng.integers(0, 64))
    x = (rng.standard_normal((rows, 2 * half)) * 4).astype(dtype)
    x.ravel()[rng.integers(0, x.size, 50)] = np.inf   # some chunks by the general kernel
    expected = np.concatenate([af.glu(x[r:r + 1]) for r in range(rows)])
    assert_bitwise_equal(af.glu(x), expected, {"x": x})
    out = np.empty(rows * half + 1, dtype)[1:].reshape(rows, half)
    assert af.glu(x, out=out) is out
    assert_bitwise_equal(out, expected, {"x": x}, what="out= off the boundary")


def _streamed_values(rng, operands, dtype, scale):
    """x of an odd size whose `operands` arrays of its size take just past STREAM_FROM bytes:
    normal values times `scale`, and the special values."""
    n = 33554432 // (operands * np.dtype(dtype).itemsize) + 1001 + 2 * int(rng.integers(0, 2048))
    n += 1 - n % 2
    return with_special_values(rng, (rng.standard_normal(n) * scale).astype(dtype))


def _streamed_pairs(rng, operands, dtype):
    """x for maxout over pairs with `operands` times the groups' bytes just past STREAM_FROM
    (an odd count of groups or not), NaNs and signed zeros in some pairs."""
    groups = 33554432 // (operands * np.dtype(dtype).itemsize) + 1001 + int(rng.integers(0, 4096))
    x = rng.standard_normal(2 * groups).astype(dtype)
    x[rng.integers(0, x.size, 50)] = np.nan
    x[rng.integers(0, x.size, 50)] = -0.0
    return x, groups


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_maxout_streamed_forward_gives_the_same_bits(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x and out on, maxout's forward over pairs streams its output:
    # the same bits as pieces computed one call each (below it), with out= off the vector
    # boundary; NaNs and signed zeros in some pairs
    x, groups = _streamed_pairs(rng, 3, dtype)
    pieces = np.array_split(np.arange(groups), 7)
    expected = np.concatenate([af.maxout(x[2 * p[0]:2 * p[-1] + 2], 2) for p in pieces])
    assert_bitwise_equal(af.maxout(x, 2), expected, {"x": x})
    out = np.empty(groups + 1, dtype)[1:]
    assert af.maxout(x, 2, out=out) is out
    assert_bitwise_equal(out, expected, {"x": x}, what="out= off the boundary")


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_maxout_streamed_backward_puts_each_gradient_at_its_pair_maximum(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x, grad_output and grad_input on, maxout's backward over pairs
    # streams its output: each pair's gradient at its first maximum (the first NaN), 0 at the
    # other element, as numpy finds them; with out= one element and two elements off the
    # vector boundary, and in place (not streamed)
    x, groups = _streamed_pairs(rng, 5, dtype)
    x[1:2001:2] = x[0:2000:2]            # ties: the first of the pair
    g = grad_values(rng, groups, dtype)
    pairs = x.reshape(-1, 2)
    second = (pairs[:, 1] > pairs[:, 0]) | (np.isnan(pairs[:, 1]) & ~np.isnan(pairs[:, 0]))
    expected = np.zeros_like(pairs)
    expected[np.arange(groups), second.astype(np.intp)] = g
    expected = expected.ravel()
    assert_bitwise_equal(af.maxout.backward(g, x, 2), expected, {"x": x})
    for offset in (1, 2):
        out = np.empty(2 * groups + offset, dtype)[offset:]
        assert af.maxout.backward(g, x, 2, out=out) is out
        assert_bitwise_equal(out, expected, {"x": x}, what=f"out= {offset} element(s) off")
    y = x.copy()
    assert af.maxout.backward(g, y, 2, out=y) is y
    assert_bitwise_equal(y, expected, {"x": x}, what="in place")


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pact_streamed_backward(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x, grad_output and grad_input on, pact's backward streams
    # grad_input (af_stream_push): NumPy's select (g on [0, alpha), 0 elsewhere), and the
    # alpha gradient the bits of the call in place (not streamed); out= one element off the
    # vector boundary, an odd size
    x = _streamed_values(rng, 3, dtype, 2)
    n = x.size
    g = grad_values(rng, n, dtype)
    expected = np.where((x >= 0) & (x < 1.5), g, 0).astype(dtype)
    y = g.copy()
    _, expected_alpha_grad = af.pact.backward(y, x, 1.5, out=y)
    assert_bitwise_equal(y, expected, what="in place")
    for offset in (0, 1):
        out = np.empty(n + offset, dtype)[offset:]
        grad_input, alpha_grad = af.pact.backward(g, x, 1.5, out=out)
        assert grad_input is out
        assert_bitwise_equal(out, expected, what=f"out {offset} element(s) off")
        assert_bitwise_equal(alpha_grad, expected_alpha_grad, what="alpha's gradient")


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["rrelu", "noisy_relu"])
def test_streamed_backward_from_the_noise_or_the_output(name, dtype, n_threads, rng):
    # From STREAM_FROM bytes of operands on, rrelu's backward from the noise and noisy_relu's
    # from the output stream grad_input: NumPy's product and select, and the bits of the
    # call in place (not streamed); out= one element off the vector boundary, an odd size
    x = _streamed_values(rng, 3, dtype, 4)
    n = x.size
    g = grad_values(rng, n, dtype)
    if name == "rrelu":
        noise = np.empty_like(x)
        af.rrelu(x, training=True, seed=SEED, noise=noise)
        backward = partial(af.rrelu.backward, noise=noise, training=True)
        expected = g * noise
    else:
        y = af.noisy_relu(x, sigma=0.5, seed=SEED)
        backward = partial(af.noisy_relu.backward, output=y)
        expected = np.where(~(y <= 0), g, 0).astype(dtype)
    in_place = g.copy()
    assert backward(in_place, out=in_place) is in_place
    assert_bitwise_equal(in_place, expected, what="in place")
    for offset in (0, 1):
        out = np.empty(n + offset, dtype)[offset:]
        assert backward(g, out=out) is out
        assert_bitwise_equal(out, expected, what=f"out {offset} element(s) off")


@pytest.mark.parametrize("n", [1031, 4099, 200003])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["rrelu", "noisy_relu"])
def test_a_nan_grad_output_passes_from_the_noise_or_the_output(name, dtype, n, rng):
    # as itself, wherever it sits (vector lanes, loop remainders, streamed or not), also where
    # the noise (the output) is NaN too: which NaN a product of two NaNs gives depends on the
    # operand order the compiler picked for each loop (NaNs in both operands at every sixth
    # element and at the first and last 40)
    x = with_special_values(rng, values(rng, (n,), dtype))
    g = grad_values(rng, n, dtype)
    for a, step in ((x, 3), (g, 2)):
        for part in (a[::step], a[:40], a[-40:]):
            part[...] = np.where(rng.random(part.shape) < 0.5, np.nan, -np.nan)
    if name == "rrelu":
        result = af.rrelu.backward(g, noise=np.abs(x), training=True)
        nan = np.isnan(g)
        assert_bitwise_equal(result[nan], g[nan])
    else:   # (0 where the output is <= 0, even for a NaN grad_output; else grad_output)
        y = np.maximum(x, 0)
        assert_bitwise_equal(af.noisy_relu.backward(g, output=y),
                             np.where(y <= 0, np.zeros_like(g), g))


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pact_streamed_forward_gives_the_same_bits(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x and out on, pact's forward streams its output: the same bits
    # as pieces computed one call each (below it), with out= off the vector boundary, and in
    # place
    def forward(x, **kw):
        return af.pact(x, alpha=2.5, **kw)
    n = 33554432 // (2 * np.dtype(dtype).itemsize) + 1001 + int(rng.integers(0, 4096))
    x = (rng.standard_normal(n) * 4).astype(dtype)
    x[rng.integers(0, n, 50)] = np.inf
    pieces = np.array_split(np.arange(n), 7)
    expected = np.concatenate([forward(x[p[0]:p[-1] + 1]) for p in pieces])
    assert_bitwise_equal(forward(x), expected, {"x": x})
    out = np.empty(n + 1, dtype)[1:]
    assert forward(x, out=out) is out
    assert_bitwise_equal(out, expected, {"x": x}, what="out= off the boundary")
    y = x.copy()
    forward(y, out=y)
    assert_bitwise_equal(y, expected, {"x": x}, what="in place")


# The operations whose elements are computed each alone store from the output's first 64-byte
# boundary on (runs of 1024 elements or more): a few elements first, then the blocks shifted.
# Every alignment of the output gives the bits of calls below that length.
ALIGNED_RUNS = {
    "pact": lambda g, x, **kw: af.pact(x, alpha=1.5, **kw),
    "swish-beta=1": lambda g, x, **kw: af.swish(x, beta=1.0, **kw),
    "swish-beta=1.7": lambda g, x, **kw: af.swish(x, beta=1.7, **kw),
    "swish-beta=0": lambda g, x, **kw: af.swish(x, beta=0.0, **kw),
    "swish-beta=1.7-fixed-backward": lambda g, x, **kw: af.swish.backward(
        g, x, beta=1.7, beta_grad=False, **kw)[0],
    "swish-beta=1-fixed-backward": lambda g, x, **kw: af.swish.backward(
        g, x, beta=1.0, beta_grad=False, **kw)[0],
    "noisy_relu-backward-from-output": lambda g, x, **kw: af.noisy_relu.backward(
        g, output=np.maximum(x, 0), **kw),
    "rrelu-backward-from-the-noise": lambda g, x, **kw: af.rrelu.backward(
        g, noise=np.abs(x), training=True, **kw),
}


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(ALIGNED_RUNS))
def test_aligned_runs_give_the_same_bits_at_every_output_address(name, dtype, n_threads, rng):
    call = ALIGNED_RUNS[name]
    n = 70001 + int(rng.integers(0, 4096))   # two threads from 65536 elements on
    x = with_special_values(rng, values(rng, (n,), dtype))
    g = grad_values(rng, (n,), dtype)
    expected = np.concatenate([call(g[i:i + 1000], x[i:i + 1000]) for i in range(0, n, 1000)])
    per_line = 64 // np.dtype(dtype).itemsize
    base = np.empty(n + per_line + 64, dtype)
    first = (-base.ctypes.data % 64) // np.dtype(dtype).itemsize
    for offset in range(per_line):
        out = base[first + offset:first + offset + n]
        out[...] = np.nan
        assert call(g, x, out=out) is out
        assert_bitwise_equal(out, expected, {"x": x, "grad_output": g},
                             what=f"out {offset} elements past a 64-byte boundary")


# ---- special values ------------------------------------------------------------------------

INF, NAN = np.inf, np.nan

SPECIAL_FORWARD = [
    # (id, call, expected)
    ("swish(+inf,beta>0)", lambda: af.swish(INF, beta=1.7), INF),
    ("swish(-inf,beta>0)", lambda: af.swish(-INF, beta=1.7), -0.0),
    ("swish(+inf,beta<0)", lambda: af.swish(INF, beta=-1.3), 0.0),
    ("swish(-inf,beta<0)", lambda: af.swish(-INF, beta=-1.3), -INF),
    ("swish(+inf,beta=0)", lambda: af.swish(INF, beta=0.0), INF),
    ("swish(nan)", lambda: af.swish(NAN, beta=1.7), NAN),
    ("swish(-800,beta=1)", lambda: af.swish(-800.0), -0.0),
    ("swish(-1e4,beta>0)", lambda: af.swish(-1e4, beta=1.7), -0.0),
    ("swish(-1e4,beta<0)", lambda: af.swish(-1e4, beta=-1.3), -1e4),
    ("swish(1e4,beta<0)", lambda: af.swish(1e4, beta=-1.3), 0.0),
    ("swish(-700,beta=1.5)", lambda: af.swish(-700.0, beta=1.5), -700.0 * math.exp(-1050.0)),
    ("pact(nan)", lambda: af.pact(NAN, 1.5), NAN),
    ("pact(-0)", lambda: af.pact(-0.0, 1.5), -0.0),
    ("pact(+inf)", lambda: af.pact(INF, 1.5), 1.5),
    ("pact(-inf)", lambda: af.pact(-INF, 1.5), 0.0),
    ("pact(alpha=inf)", lambda: af.pact(3.0, INF), 3.0),
    ("prelu(nan)", lambda: af.prelu(NAN, [0.25]), NAN),
    ("prelu(-inf)", lambda: af.prelu(-INF, [0.25]), -INF),
    ("prelu(-0)", lambda: af.prelu(-0.0, [0.25]), -0.0),
    ("rrelu-eval(-inf)", lambda: af.rrelu(-INF), -INF),
    ("rrelu-training(nan)", lambda: af.rrelu(NAN, training=True, seed=1), NAN),
    ("rrelu-training(-inf)", lambda: af.rrelu(-INF, training=True, seed=1), -INF),
    ("noisy_relu(nan)", lambda: af.noisy_relu(NAN, seed=1), NAN),
    ("noisy_relu(+inf)", lambda: af.noisy_relu(INF, seed=1), INF),
    ("noisy_relu(-inf)", lambda: af.noisy_relu(-INF, seed=1), 0.0),
    ("maxout(nan in group)", lambda: af.maxout([1.0, NAN, 3.0, 2.0], 2), [NAN, 3.0]),
    ("maxout(-inf group)", lambda: af.maxout([-INF, -INF, INF, 1.0], 2), [-INF, INF]),
    ("glu(a=inf,b=-inf)", lambda: af.glu([INF, -INF]), [NAN]),
    ("glu(a=1,b=+inf)", lambda: af.glu([1.0, INF]), [1.0]),
    ("glu(a=1,b=-inf)", lambda: af.glu([1.0, -INF]), [0.0]),
]


@pytest.mark.parametrize("call, expected", [pytest.param(c, e, id=i)
                                            for i, c, e in SPECIAL_FORWARD])
def test_special_forward(call, expected):
    result = call()
    assert_rel_close(result, expected, rtol=1e-12)
    assert_zero_signs(result, expected)


SPECIAL_BACKWARD = [
    # (id, call, expected tuple); grad_output 2.0 unless said otherwise
    ("swish'(+inf)", lambda: af.swish.backward(2.0, INF, beta=1.7), (2.0, 0.0)),
    ("swish'(-inf)", lambda: af.swish.backward(2.0, -INF, beta=1.7), (0.0, 0.0)),
    ("swish'(+inf,beta<0)", lambda: af.swish.backward(2.0, INF, beta=-1.3), (0.0, 0.0)),
    ("swish'(+inf,beta=0)", lambda: af.swish.backward(2.0, INF, beta=0.0), (1.0, INF)),
    ("swish'(0)", lambda: af.swish.backward(2.0, 0.0, beta=1.7), (1.0, 0.0)),
    ("swish'(nan)", lambda: af.swish.backward(2.0, NAN, beta=1.7), (NAN, NAN)),
    ("pact'(alpha)", lambda: af.pact.backward(2.0, 1.5, 1.5), (0.0, 2.0)),
    ("pact'(0)", lambda: af.pact.backward(2.0, 0.0, 1.5), (2.0, 0.0)),
    ("pact'(-0)", lambda: af.pact.backward(2.0, -0.0, 1.5), (2.0, 0.0)),
    ("pact'(nan)", lambda: af.pact.backward(2.0, NAN, 1.5), (0.0, 0.0)),
    ("pact'(+inf)", lambda: af.pact.backward(2.0, INF, 1.5), (0.0, 2.0)),
    ("pact'(alpha=0,x=0)", lambda: af.pact.backward(2.0, 0.0, 0.0), (0.0, 2.0)),
    ("prelu'(0)", lambda: af.prelu.backward(2.0, 0.0, [0.25]), (0.5, [0.0])),
    ("prelu'(nan)", lambda: af.prelu.backward(2.0, NAN, [0.25]), (0.5, [NAN])),
    ("prelu'(-inf)", lambda: af.prelu.backward(2.0, -INF, [0.25]), (0.5, [-INF])),
    ("rrelu-eval'(nan)", lambda: (af.rrelu.backward(2.0, NAN, lower=0.1, upper=0.3),),
     (0.4,)),
    ("rrelu-training'(nan)",
     lambda: (af.rrelu.backward(2.0, NAN, training=True, seed=1),), (2.0,)),
    ("noisy_relu'(output=0)", lambda: (af.noisy_relu.backward(2.0, output=0.0),), (0.0,)),
    ("noisy_relu'(output=nan)", lambda: (af.noisy_relu.backward(2.0, output=NAN),), (2.0,)),
    ("maxout'(first nan)", lambda: (af.maxout.backward([5.0], [1.0, NAN, NAN], 3),),
     ([0.0, 5.0, 0.0],)),
    ("maxout'(ties: first)", lambda: (af.maxout.backward([5.0], [2.0, 7.0, 7.0], 3),),
     ([0.0, 5.0, 0.0],)),
    ("maxout'(+-0 tie)", lambda: (af.maxout.backward([5.0], [-0.0, 0.0], 2),), ([5.0, 0.0],)),
    ("maxout'(inf grad elsewhere 0)",
     lambda: (af.maxout.backward([INF], [1.0, 2.0], 2),), ([0.0, INF],)),
    ("glu'(b=+inf)", lambda: (af.glu.backward([2.0], [3.0, INF]),), ([2.0, 0.0],)),
    ("glu'(b=-inf)", lambda: (af.glu.backward([2.0], [3.0, -INF]),), ([0.0, 0.0],)),
]


@pytest.mark.parametrize("call, expected", [pytest.param(c, e, id=i)
                                            for i, c, e in SPECIAL_BACKWARD])
def test_special_backward(call, expected):
    result = call()
    assert len(result) == len(expected)
    for actual, wanted in zip(result, expected):
        assert_rel_close(actual, wanted, rtol=1e-14)


def test_maxout_forward_value_is_the_first_maximum():
    # -0.0 and +0.0 compare equal: the value (and the gradient) come from the first
    result = af.maxout([-0.0, 0.0, 0.0, -0.0], 2)
    assert list(np.signbit(result)) == [True, False]


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("pieces", [3, 4, 8, 5, 257, 70001])
def test_maxout_groups_of_every_loop(pieces, dtype, axis, rng):
    # groups of 3, 4 and 8 along the last axis have loops of their own (the size a constant),
    # the others share one; the piece of each group's maximum is held in an index of the
    # data's width: the gradient goes to the first maximum wherever it lies, in a long group
    # too (the first of two equal ones at the group's last pieces and at random ones, NaNs in
    # some groups)
    groups = np.round(rng.standard_normal((12, pieces)) * 4).astype(dtype)
    first = np.concatenate([[pieces - 2, pieces - 1], rng.integers(0, pieces - 1, 10)])
    for group, at in zip(groups, first):
        group[at] = group[-1] = 100
    groups.flat[rng.choice(groups.size, 3, replace=False)] = np.nan
    x = groups.reshape(4, 3 * pieces)      # three groups per row, or per column for axis 0
    x = np.ascontiguousarray(x.T) if axis == 0 else x
    shape = x.shape
    g = grad_values(rng, _axis_shape(shape, axis, pieces), dtype)
    assert_bitwise_equal(af.maxout(x, pieces, axis=axis),
                         R.maxout(x, pieces, axis=axis).astype(dtype))
    assert_bitwise_equal(af.maxout.backward(g, x, pieces, axis=axis),
                         R.maxout_grad(g, x, pieces, axis=axis).astype(dtype))


# ---- identities with other functions -------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_swish_beta_1_is_silu(dtype, rng):
    x = with_special_values(rng, values(rng, (5000,), dtype))
    g = grad_values(rng, x.shape, dtype)
    assert_bitwise_equal(af.swish(x, beta=1.0), af.silu(x))
    assert_bitwise_equal(af.swish.backward(g, x, beta=1.0)[0], af.silu.backward(g, x))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float16
@THREADS
@pytest.mark.parametrize("beta", [1.0, 0.0, 1.702, -0.6, 0.05, 25.0], ids=lambda b: f"beta={b}")
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64],
                         ids=["float16", "float32", "float64"])
def test_swish_fixed_beta_gives_the_learned_grad_input(dtype, beta, n_threads, rng):
    # beta_grad=False: the same grad_input bits as with beta's gradient, and None for it (a
    # float16 grad_beta may overflow: the learned call's cast warns)
    x = with_special_values(rng, values(rng, LARGE, dtype)) if dtype != np.float16 else \
        values(rng, LARGE, dtype)
    g = grad_values(rng, LARGE, dtype)
    g.flat[::1009] = 0.0
    learned, grad_beta = af.swish.backward(g, x, beta=beta)
    fixed, none = af.swish.backward(g, x, beta=beta, beta_grad=False)
    assert none is None and grad_beta is not None
    assert_bitwise_equal(fixed, learned)
    out = np.empty_like(learned)
    result = af.swish.backward(g[::-1], x[::-1], beta=beta, beta_grad=np.bool_(False), out=out)
    assert result[0] is out and result[1] is None
    assert_bitwise_equal(out, af.swish.backward(g[::-1], x[::-1], beta=beta)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rrelu_eval_is_leaky_relu(dtype, rng):
    x = values(rng, (5000,), dtype)
    g = grad_values(rng, x.shape, dtype)
    slope = (0.1 + 0.3) / 2
    assert_bitwise_equal(af.rrelu(x, lower=0.1, upper=0.3), af.leaky_relu(x, negative_slope=slope))
    assert_bitwise_equal(af.rrelu.backward(g, x, lower=0.1, upper=0.3),
                         af.leaky_relu.backward(g, x, negative_slope=slope))


@pytest.mark.parametrize("lower, upper, slope", [(1e308, 1.5e308, 1.25e308),
                                                 (-1e308, 1e308, 0.0),
                                                 (-1.7e308, -1.5e308, -1.6e308)])
def test_rrelu_eval_slope_where_lower_plus_upper_overflows(lower, upper, slope, rng):
    # the eval-mode slope is the mean, also where lower + upper overflows (it was inf, and
    # leaky_relu refused it naming its own parameter); upper - lower overflowing matters in
    # training mode only, where it is the draws' range
    x = values(rng, (500,), np.float64)
    assert_bitwise_equal(af.rrelu(x, lower=lower, upper=upper),
                         af.leaky_relu(x, negative_slope=slope))
    assert_bitwise_equal(af.rrelu.backward(x, x, lower=lower, upper=upper),
                         af.leaky_relu.backward(x, x, negative_slope=slope))
    if not np.isfinite(upper - lower):
        with pytest.raises(ValueError, match="upper - lower"):
            af.rrelu(x, lower=lower, upper=upper, training=True, seed=1)


def test_rrelu_eval_slope_no_float32_holds_with_mixed_dtypes(rng):
    # refused only when the call computes in float32: a float64 grad_output makes a float32
    # x's backward a float64 computation (as leaky_relu's)
    x = values(rng, (50,), np.float32)
    g = np.ones(50)
    for kwargs in ({"x": x}, {"output": x}):   # (an output has x's signs)
        result = af.rrelu.backward(g, lower=1e39, upper=1e39, **kwargs)
        expected = af.leaky_relu.backward(g, negative_slope=1e39, **kwargs)
        assert result.dtype == np.float64
        assert_bitwise_equal(result, expected)
    with pytest.raises(ValueError, match="eval-mode slope"):
        af.rrelu.backward(g.astype(np.float32), x, lower=1e39, upper=1e39)


def test_rrelu_training_with_lower_equal_upper_is_leaky_relu(rng):
    x = values(rng, (5000,))
    assert_bitwise_equal(af.rrelu(x, lower=0.25, upper=0.25, training=True, seed=3),
                         af.leaky_relu(x, negative_slope=0.25))


def test_noisy_relu_sigma_0_is_relu(rng):
    x = values(rng, (5000,))
    y = af.noisy_relu(x, sigma=0.0, seed=3)
    assert_rel_close(y, np.maximum(x, 0.0), rtol=0.0)


# ---- gradients against finite differences --------------------------------------------------

def _fd_points(rng, shape):
    """x away from every kink by more than the step (0, and 1.5 for pact)."""
    x = rng.uniform(0.05, 3.0, shape) * rng.choice([-1.0, 1.0], shape)
    return np.where(np.abs(x - 1.5) < 0.05, x + 0.2, x)


def _directional(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_grad_input_finite_difference(spec, rng):
    x = _fd_points(rng, (6, 12))
    g = grad_values(rng, spec.out_shape(x.shape))
    v = rng.standard_normal(x.shape)
    loss = lambda t: np.sum(g * spec.forward(t))  # noqa: E731
    grad_input = spec.backward(g, x)[0]
    assert_rel_close(np.sum(grad_input * v), _directional(loss, x, v), rtol=1e-6, atol=1e-7)


def test_prelu_weight_finite_difference(rng):
    x = _fd_points(rng, (5, 4, 3))
    g = grad_values(rng, x.shape)
    w = rng.uniform(0.05, 0.5, 4)
    _, grad_weight = af.prelu.backward(g, x, w)
    for c in range(4):
        e = np.eye(4)[c]
        numeric = _directional(lambda t: np.sum(g * af.prelu(x, t)), w, e)
        assert_rel_close(grad_weight[c], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("beta", [1.7, 0.0, -0.8], ids=lambda b: f"beta={b}")
def test_swish_beta_finite_difference(beta, rng):
    x = _fd_points(rng, (40,))
    g = grad_values(rng, x.shape)
    _, grad_beta = af.swish.backward(g, x, beta=beta)
    numeric = _directional(lambda b: np.sum(g * af.swish(x, beta=float(b))), beta, 1.0)
    assert_rel_close(grad_beta, numeric, rtol=1e-6, atol=1e-8)


def test_pact_alpha_finite_difference(rng):
    x = _fd_points(rng, (40,))
    g = grad_values(rng, x.shape)
    _, grad_alpha = af.pact.backward(g, x, 1.5)
    numeric = _directional(lambda a: np.sum(g * af.pact(x, float(a))), 1.5, 1.0)
    assert_rel_close(grad_alpha, numeric, rtol=1e-6, atol=1e-8)


# ---- layouts, out=, threads ----------------------------------------------------------------

LARGE = (264, 276)  # 72864 elements: the parallel path on 2 threads; 276 = 2 * 2 * 3 * 23

LAYOUTS = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "strided": lambda a: _embed(a, (slice(None, None, 2), slice(1, None, 3))),
    "reversed": lambda a: _embed(a, (slice(None, None, -1), slice(None, None, -2))),
    # one stride apart in C order: the elementwise loops copy them a block at a time
    "every-other-column": lambda a: _spaced(a, 2),
    "reversed-every-third": lambda a: _spaced(a, -3),
    **REPRESENTATIONS,
}


def _spaced(a, step):
    """A 2-D view holding a's values one stride apart in C order: every |step|-th column of a
    wider NaN-filled base, both axes reversed for a negative step."""
    base = np.full((a.shape[0], a.shape[1] * abs(step)), np.nan, dtype=a.dtype)
    view = base[::-1, ::step] if step < 0 else base[:, ::step]
    view[...] = a
    return view


def _embed(a, index):
    """A view `base[index]` holding a's values inside a larger NaN-filled base."""
    shape = tuple(3 * s + 1 for s in a.shape)
    base = np.full(shape, np.nan, dtype=a.dtype)
    view = base[index][tuple(slice(0, s) for s in a.shape)]
    view[...] = a
    return view


@THREADS
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_layouts_and_threads_bitwise(spec, dtype, layout, n_threads, rng):
    x = with_special_values(rng, values(rng, LARGE, dtype))
    g = grad_values(rng, spec.out_shape(LARGE), dtype)
    with single_thread():
        expected_y = spec.forward(x)
        expected_grads = spec.backward(g, x)
    x_laid, g_laid = LAYOUTS[layout](x), LAYOUTS[layout](g)
    x_before, g_before = x_laid.copy(), g_laid.copy()
    assert_bitwise_equal(spec.forward(x_laid), expected_y, what="forward")
    for actual, expected in zip(spec.backward(g_laid, x_laid), expected_grads):
        assert_bitwise_equal(actual, expected, what="backward")
    assert_bitwise_equal(x_laid, x_before, what="x unchanged")
    assert_bitwise_equal(g_laid, g_before, what="grad_output unchanged")


# The functions of one elementwise loop (_special.elementwise), not prelu's (per channel) nor
# rrelu's in eval mode (leaky_relu's)
LOOP_PARAMS = [p for p in ELEMENTWISE_PARAMS if not p.id.startswith(("prelu", "rrelu-eval"))]


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("layout", ["every-other-column", "reversed-every-third"])
@pytest.mark.parametrize("spec", LOOP_PARAMS)
def test_one_stride_operands_are_not_copied_whole(spec, layout, direction, rng):
    # operands whose elements one stride takes in C order go to the loops as they are, copied a
    # block at a time: a call allocates its result, where a copy of x (and grad_output) would
    # take as much again; the bits are those of C-contiguous operands (999 x 1001: blocks of
    # 4096 but the last, whose 575 elements end in a partial run of 16)
    x = LAYOUTS[layout](values(rng, (999, 1001), np.float32))
    g = LAYOUTS[layout](grad_values(rng, (999, 1001), np.float32))
    assert not x.flags.c_contiguous and not x.flags.f_contiguous
    if direction == "forward":
        call, expected = partial(spec.forward, x), spec.forward(np.ascontiguousarray(x))
    else:
        call = partial(spec.backward, g, x)
        expected = spec.backward(np.ascontiguousarray(g), np.ascontiguousarray(x))
    call()   # (first-call allocations out of the measurement)
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.nbytes <= peak < 1.25 * x.nbytes, f"{peak} bytes at the peak, x has {x.nbytes}"
    for actual, wanted in zip(_tuple(result), _tuple(expected)):
        assert_bitwise_equal(actual, wanted)


# The calls whose value at an element does not depend on where it lies (each element alone,
# prelu's per channel, maxout's per group): their loops visit the axes in the order of the
# memory of x (of grad_output in a backward): operands in Fortran order, transposed or one
# stride apart that way are read in place, and the result is laid out like x, as NumPy's
# ufuncs lay theirs out. `o`: the operands, all in one layout; weight C-contiguous.
MEMORY_ORDER_CALLS = {
    "swish-beta=1.7": lambda o: af.swish(o["x"], beta=1.7),
    "swish-beta=1": lambda o: af.swish(o["x"], beta=1.0),
    "swish-beta=0": lambda o: af.swish(o["x"], beta=0.0),
    "swish-beta=1.7-fixed-backward": lambda o: af.swish.backward(o["g"], o["x"], beta=1.7,
                                                                 beta_grad=False)[0],
    "pact": lambda o: af.pact(o["x"], 1.5),
    "rrelu-backward-from-the-noise": lambda o: af.rrelu.backward(o["g"], noise=o["noise"],
                                                                 training=True),
    "noisy_relu-backward-from-output": lambda o: af.noisy_relu.backward(o["g"],
                                                                        output=o["output"]),
    "prelu-channels": lambda o: af.prelu(o["x"], o["weight"]),
    "prelu-single": lambda o: af.prelu(o["x"], o["weight"][:1]),
    "maxout-pieces=3-axis=1": lambda o: af.maxout(o["x"], 3, axis=1),
    "maxout-pieces=3-axis=1-backward": lambda o: af.maxout.backward(o["g_group"], o["x"], 3,
                                                                    axis=1),
}

MEMORY_ORDER_SHAPE = (80, 120, 72)  # 691200 elements, beside which the workspace is small
MEMORY_LAYOUTS = {
    "F": np.asfortranarray,
    "axes-permuted": lambda a: np.ascontiguousarray(a.transpose(2, 0, 1)).transpose(1, 2, 0),
    "F-every-other": lambda a: _f_every_other(a),
}


def _f_every_other(a):
    """A view holding a's values in every other element of a Fortran-ordered base, along its
    axis of stride 1 (which then takes two elements' stride)."""
    base = np.full((2 * a.shape[0],) + a.shape[1:], np.nan, dtype=a.dtype, order="F")
    base[::2] = a
    return base[::2]


def _stride_order(a):
    """a's axes from the largest stride to the smallest (in magnitude)."""
    return tuple(np.argsort([-abs(s) for s in a.strides], kind="stable"))


# (prelu's and maxout's loops take contiguous operands only: one stride apart, they are
# copied)
MEMORY_ORDER_CASES = [(name, layout) for name in MEMORY_ORDER_CALLS for layout in MEMORY_LAYOUTS
                      if layout != "F-every-other" or not name.startswith(("prelu", "maxout"))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, layout", MEMORY_ORDER_CASES,
                         ids=[f"{name}-{layout}" for name, layout in MEMORY_ORDER_CASES])
def test_position_free_calls_follow_the_memory_order(name, layout, dtype, rng):
    # the bits of the call on C-contiguous operands, with NaNs of both signs in x and in
    # grad_output (an element meets another lane or a loop's remainder than in C order);
    # the result laid out like x; no copy of a whole operand: the call's peak allocation
    # is its result (and a quarter of x's size to spare)
    shape = MEMORY_ORDER_SHAPE

    def with_nans(a, step):
        a[..., ::step] = np.where(rng.random(a[..., ::step].shape) < 0.5, np.nan, -np.nan)
        return a

    x = with_nans(with_special_values(rng, values(rng, shape, dtype)), 7)
    operands = {"x": x, "g": with_nans(grad_values(rng, shape, dtype), 5),
                "noise": np.abs(x), "output": np.maximum(x, 0),
                "g_group": with_nans(grad_values(rng, _axis_shape(shape, 1, 3), dtype), 5)}
    call = MEMORY_ORDER_CALLS[name]
    weight = np.linspace(-0.5, 0.5, shape[1]).astype(dtype)
    expected = call({**operands, "weight": weight})
    laid = {key: MEMORY_LAYOUTS[layout](a) for key, a in operands.items()}
    assert not laid["x"].flags.c_contiguous
    laid["weight"] = weight
    call(laid)   # (first-call allocations out of the measurement)
    tracemalloc.start()
    try:
        result = call(laid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_bitwise_equal(result, expected)
    assert _stride_order(result) == _stride_order(laid["x"]), f"result strides {result.strides}"
    x_bytes = laid["x"].size * laid["x"].itemsize
    assert peak < result.nbytes + x_bytes / 4, f"{peak} bytes at the peak, x has {x_bytes}"


# The functions whose value at an element depends on that element alone (not on its index,
# as the random ones' draws, nor on its channel, as prelu's weight per channel)
POSITION_FREE_PARAMS = [p for p in SPEC_PARAMS
                        if p.id in ("prelu-single", "swish-beta=1.7", "swish-beta=1",
                                    "swish-beta=-0.6", "swish-beta=1.7-fixed",
                                    "swish-beta=1-fixed", "pact-alpha=1.5", "rrelu-eval")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", POSITION_FREE_PARAMS)
def test_bits_do_not_depend_on_the_position(spec, dtype, rng):
    # an element moved to another vector lane, or into a loop's scalar remainder, comes out
    # as the same bits (a NaN x as itself: which NaN an operation on two NaNs returns depends
    # on the operand order, which the compiler picks per loop)
    x = with_special_values(rng, values(rng, (1031,), dtype))
    x[::7] = np.where(rng.random(x[::7].shape) < 0.5, np.nan, -np.nan)  # in lanes and tails
    g = grad_values(rng, x.shape, dtype)
    expected_y, expected_grad = spec.forward(x), spec.backward(g, x)[0]
    for shift in (1, 5, 19):
        moved = lambda a: np.roll(a, shift)  # noqa: E731
        back = lambda a: np.roll(a, -shift)  # noqa: E731
        assert_bitwise_equal(back(spec.forward(moved(x))), expected_y, what="forward")
        assert_bitwise_equal(back(spec.backward(moved(g), moved(x))[0]), expected_grad,
                             what="grad_input")


def _around(value, steps=3):
    """float32 values from `steps` below value to `steps` above it, both signs."""
    centre = np.abs(np.float32(value)).view(np.int32)
    near = (centre + np.arange(-steps, steps + 1, dtype=np.int32)).view(np.float32)
    return np.concatenate([near, -near])


@pytest.mark.parametrize("beta", [1.7, -0.6, 0.05], ids=lambda b: f"beta={b}")
def test_swish_float32_element_alone_gives_its_bits_among_any_neighbours(beta, rng):
    # float32, beta not 0 or 1: an element takes the float32 kernels where |x beta| <= 20
    # (rounded to float32) and x and grad_output are 0 or within 2^-60..2^60, the double ones
    # elsewhere; a chunk of 256 elements that passes throughout runs the float32 kernels alone.
    # Values on both sides of each bound, among moderate ones, in chunks of every mix: each
    # element alone (a chunk of one) must give the bits it gets there.
    edges = np.concatenate([_around(20 / np.float32(beta)), _around(2.0 ** -60),
                            _around(2.0 ** 60), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45]])
    x = rng.standard_normal(1500).astype(np.float32) * 4 / abs(beta)
    g = rng.standard_normal(1500).astype(np.float32)
    x[rng.choice(600, 40, replace=False)] = rng.choice(edges, 40)    # a few in the first chunks
    x[900:] = rng.choice(edges, 600)                                # nothing but edges
    g[rng.choice(1500, 60, replace=False)] = rng.choice(edges, 60)     # NaN and inf included
    alone_y = np.concatenate([af.swish(x[i:i + 1], beta=beta) for i in range(x.size)])
    alone_grad = np.concatenate([af.swish.backward(g[i:i + 1], x[i:i + 1], beta=beta)[0]
                                 for i in range(x.size)])
    assert_bitwise_equal(af.swish(x, beta=beta), alone_y, {"x": x}, what="forward")
    assert_bitwise_equal(af.swish.backward(g, x, beta=beta)[0], alone_grad,
                         {"x": x, "grad_output": g}, what="grad_input")


# the last two: betas at which a float32 x gives t within 1e-8 of x0 (with d taken from the
# float32 pair th + tl, the result there was 16-17 ulp off)
@pytest.mark.parametrize("beta", [1.7, -0.6, 0.05, 25.0, 18.465399493322803, -17.15017962358553],
                         ids=lambda b: f"beta={b}")
def test_swish_float32_near_the_derivatives_zero(beta):
    # swish's float32 kernels take d = t - x0 (silu's minimum, where d/dx crosses 0) from
    # x beta in double: every float32 x within 2^12 steps of x0 / beta
    centre = np.float32(-1.2784645427610737 / beta).view(np.int32)
    x = (centre + np.arange(-4096, 4096, dtype=np.int32)).view(np.float32)
    g = np.ones_like(x)
    dx, _ = R.swish_grad(x.astype(np.float64), beta)
    grad_input, _ = af.swish.backward(g, x, beta=beta)
    assert_ulp_close(grad_input, dx, np.float32, BACKWARD_ULP, inputs={"x": x})


OUT_KINDS = ["C-buffer", "F-buffer", "strided-buffer", "spaced-buffer"]


def _buffer(kind, shape, dtype):
    if kind == "C-buffer":
        return np.full(shape, np.nan, dtype=dtype)
    if kind == "F-buffer":
        return np.full(shape, np.nan, dtype=dtype, order="F")
    if kind == "spaced-buffer":   # written in place, a block at a time, by the elementwise loops
        return _spaced(np.full(shape, np.nan, dtype=dtype), -2)
    return _embed(np.full(shape, np.nan, dtype=dtype), (slice(None, None, -2),) * len(shape))


@THREADS
@pytest.mark.parametrize("kind", OUT_KINDS)
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_out(spec, kind, n_threads, rng):
    x = values(rng, LARGE, np.float32)
    g = grad_values(rng, spec.out_shape(LARGE), np.float32)
    out = _buffer(kind, spec.out_shape(LARGE), np.float32)
    assert spec.forward(x, out=out) is out
    assert_bitwise_equal(out, spec.forward(x), what="forward out=")
    grad_out = _buffer(kind, LARGE, np.float32)
    result = spec.backward(g, x, out=grad_out)
    assert result[0] is grad_out
    for actual, expected in zip(result, spec.backward(g, x)):
        assert_bitwise_equal(actual, expected, what="backward out=")


@pytest.mark.parametrize("layout", ["C", "F", "strided", "every-other-column"])
@pytest.mark.parametrize("spec", ELEMENTWISE_PARAMS)
def test_forward_in_place(spec, layout, rng):
    x = LAYOUTS[layout](values(rng, LARGE))
    expected = spec.forward(x)
    assert spec.forward(x, out=x) is x
    assert_bitwise_equal(x, expected)


# grad_input written into x, or into grad_output where it has x's shape (elementwise)
IN_PLACE_PARAMS = [pytest.param(spec, into, id=f"{spec.id}-into-{into}") for spec in SPECS
                   for into in (["x", "grad_output"] if spec.elementwise else ["x"])]


@pytest.mark.parametrize("layout", ["C", "F", "reversed-every-third"])
@pytest.mark.parametrize("spec, into", IN_PLACE_PARAMS)
def test_backward_in_place(spec, layout, into, rng):
    x = LAYOUTS[layout](values(rng, LARGE))
    g = LAYOUTS[layout](grad_values(rng, spec.out_shape(LARGE)))
    expected = spec.backward(g, x)
    target = x if into == "x" else g
    result = spec.backward(g, x, out=target)
    assert result[0] is target
    for actual, wanted in zip(result, expected):
        assert_bitwise_equal(actual, wanted)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_out_overlapping_the_input(spec, rng):
    # out is a view of x's memory other than x itself: the result is as if computed from a copy
    base = values(rng, (2 * LARGE[0], LARGE[1]))
    x = base[:LARGE[0]]
    expected = spec.forward(x.copy())
    out_shape = spec.out_shape(LARGE)
    out = base[1:1 + out_shape[0], :out_shape[1]]  # shifted by one row: overlaps x
    spec.forward(x, out=out)
    assert_bitwise_equal(out, expected)


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_backward_out_overlapping_grad_output(spec, rng):
    x = values(rng, LARGE)
    base = grad_values(rng, (2 * LARGE[0], LARGE[1]))
    out_shape = spec.out_shape(LARGE)
    g = base[LARGE[0] - out_shape[0] + 1:][:out_shape[0], :out_shape[1]]
    expected = spec.backward(g.copy(), x)
    out = base[:LARGE[0]]
    spec.backward(g, x, out=out)
    assert_bitwise_equal(out, expected[0])


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("shape", [(2, 3, 50), (3, 40, 100)], ids=["2x3x50", "3x40x100"])
@pytest.mark.parametrize("place", [0.25, 0.5, 0.75, 1.0], ids=lambda p: f"at{p}")
def test_prelu_weight_inside_out(direction, shape, place, rng):
    # the weight (one per channel, axis 1) is a view of out's memory, here and there in it:
    # the result is as if computed from a copy of the weight (an overlap check that measured
    # out's extent over the weight's one dimension missed the later ones)
    x = values(rng, shape)
    g = grad_values(rng, shape)
    buffer = np.zeros(x.size)
    start = int(place * (x.size - shape[1]))
    buffer[start:start + shape[1]] = rng.uniform(0.1, 0.9, shape[1])
    weight, out = buffer[start:start + shape[1]], buffer.reshape(shape)
    if direction == "forward":
        expected = af.prelu(x, weight.copy())
        result = af.prelu(x, weight, out=out)
        assert result is out
        assert_bitwise_equal(out, expected)
    else:
        expected = af.prelu.backward(g, x, weight.copy())
        result = af.prelu.backward(g, x, weight, out=out)
        assert result[0] is out
        for actual, wanted in zip(result, expected):
            assert_bitwise_equal(actual, wanted)


def test_the_python_layer_names_the_ops_as_plain_ints():
    # the calls read their op from actfast.special.Op: plain ints with the enum's values (a
    # member of the enum class took ~0.15 us to read, a tenth of a call on a small array)
    from actfast import special
    assert {name: getattr(special.Op, name) for name in vars(special.Op)} == {
        op.name: int(op) for op in _special.Op}
    assert all(type(value) is int for value in vars(special.Op).values())

# ---- dtypes --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16], ids=["float16"])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_float16_is_computed_in_float32(spec, dtype, rng):
    x = values(rng, (24, 30), np.float16)
    g = grad_values(rng, spec.out_shape(x.shape), np.float16)
    y = spec.forward(x)
    assert y.dtype == np.float16
    assert_bitwise_equal(y, spec.forward(x.astype(np.float32)).astype(np.float16))
    assert_bitwise_equal(spec.forward(x.astype(">f2")), y, what="big-endian float16")
    result = spec.backward(g, x)
    expected = spec.backward(g.astype(np.float32), x.astype(np.float32))
    assert_bitwise_equal(result[0], expected[0].astype(np.float16))
    if spec.learnable:
        # the parameter's gradient is a double sum rounded once, to float16; the float32
        # call rounded it to float32: within one float16 ulp of that
        assert np.asarray(result[1]).dtype == np.float16
        assert_ulp_close(result[1], np.asarray(expected[1], dtype=np.float64), np.float16, 1)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16, np.bool_],
                         ids=["int8", "int32", "int64", "uint16", "bool"])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_integers_and_bool_are_computed_in_float64(spec, dtype, rng):
    if dtype == np.bool_:
        x = rng.random((24, 30)) < 0.5
    else:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -9), min(info.max, 9), (24, 30), endpoint=True).astype(dtype)
    g = grad_values(rng, spec.out_shape(x.shape))
    assert_bitwise_equal(spec.forward(x), spec.forward(x.astype(np.float64)))
    for actual, wanted in zip(spec.backward(g, x), spec.backward(g, x.astype(np.float64))):
        assert_bitwise_equal(actual, wanted)


def test_mixed_dtypes_compute_in_the_wider(rng):
    x = values(rng, (100,), np.float32)
    g = grad_values(rng, x.shape, np.float64)
    grad_input, grad_beta = af.swish.backward(g, x, beta=1.7)
    assert grad_input.dtype == np.float64 and grad_beta.dtype == np.float64
    assert_bitwise_equal(grad_input, af.swish.backward(g, x.astype(np.float64), beta=1.7)[0])


@pytest.mark.parametrize("spec", ELEMENTWISE_PARAMS)
def test_scalar_input_gives_numpy_scalar(spec):
    # prelu-channels: one channel for 0-d x
    y = spec.forward(-1.25)
    assert isinstance(y, np.float64)
    result = spec.backward(2.0, -1.25)
    assert isinstance(result[0], np.float64)
    assert_rel_close(y, spec.reference(np.float64(-1.25)), rtol=1e-15,
                     atol=float(spec.slack(np.float64(-1.25))))


@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_empty_input(spec):
    x = np.empty((0, 6))
    y = spec.forward(x)
    assert y.shape == spec.out_shape(x.shape) and y.dtype == np.float64
    result = spec.backward(np.empty(spec.out_shape(x.shape)), x)
    assert result[0].shape == x.shape


def test_empty_input_parameter_gradients_are_zero():
    _, grad_weight = af.prelu.backward(np.empty((0, 3)), np.empty((0, 3)), [0.1, 0.2, 0.3])
    assert grad_weight.tolist() == [0.0, 0.0, 0.0]
    assert af.swish.backward([], [], beta=2.0)[1] == 0.0
    assert af.pact.backward([], [], 1.0)[1] == 0.0


# ---- the parameters' gradients: shapes, sums, determinism ----------------------------------

PRELU_SHAPES = [
    # (x shape, weight shape): one weight; (N, C); (N, C, HW) with a short and a long inner
    # axis; 1-D x with a weight per element; more rows than a block
    ((300_001,), (1,)),
    ((5000, 24), (24,)),
    ((64, 3, 777), (3,)),
    ((2, 5, 9000), (5,)),
    ((40_000,), (40_000,)),
    ((7, 130, 3, 40), (130,)),
    ((3, 4), ()),
    # few channels side by side (inner 1): runs of whole rows (prelu_rows), 8-lane segments
    # or not, a partial last segment; more channels than fit a segment (the per-row loops)
    ((3001, 3), (3,)),
    ((2000, 8), (8,)),
    ((700, 200), (200,)),
    ((300, 257), (257,)),
]


@THREADS
@pytest.mark.parametrize("x_shape, weight_shape", PRELU_SHAPES,
                         ids=[f"x{xs}-w{ws}".replace(" ", "") for xs, ws in PRELU_SHAPES])
def test_prelu_weight_gradient(x_shape, weight_shape, n_threads, rng):
    x = values(rng, x_shape)
    g = grad_values(rng, x_shape)
    weight = rng.uniform(0.05, 0.5, weight_shape)
    grad_input, grad_weight = af.prelu.backward(g, x, weight)
    assert np.shape(grad_weight) == weight_shape
    terms = g * R.prelu_grad(x, weight)[1]
    expected = np.sum(terms) if np.size(weight) == 1 else _channel_sum(terms)
    scale = np.sum(np.abs(terms)) if np.size(weight) == 1 else _channel_sum(np.abs(terms))
    assert np.all(np.abs(np.ravel(grad_weight) - np.ravel(expected)) <= 1e-13 * np.ravel(scale))
    with single_thread():
        expected_bits = af.prelu.backward(g, x, weight)
    assert_bitwise_equal(grad_weight, expected_bits[1])
    f_grad = af.prelu.backward(np.asfortranarray(g), np.asfortranarray(x), weight)[1]
    assert_bitwise_equal(f_grad, expected_bits[1])


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("function", ["swish", "pact"])
def test_scalar_parameter_gradient_bitwise(function, dtype, n_threads, rng):
    x = values(rng, (613, 523), dtype)  # 320599 elements: 79 blocks, a partial last one
    g = grad_values(rng, x.shape, dtype)
    call = ((lambda g, x: af.swish.backward(g, x, beta=0.9)) if function == "swish"
            else (lambda g, x: af.pact.backward(g, x, 1.5)))
    with single_thread():
        expected = call(g, x)
    result = call(g, x)
    assert isinstance(result[1], np.floating) and result[1].dtype == dtype
    assert_bitwise_equal(result[1], expected[1])
    assert_bitwise_equal(call(g.T.copy().T, x.T.copy().T)[1], expected[1])  # F layout
    assert_bitwise_equal(call(g[::-1].copy()[::-1], x[::-1].copy()[::-1])[1], expected[1])


# The scalar parameter's gradient sums one term per element: each block of 4096 elements adds
# its terms, 256 at a time, to sixteen partial sums (the chunks' and the block's tails
# included), reduced at the block's end; the blocks' sums are added in order. Sizes around
# those boundaries: every term is in the sum, within the rounding of the terms and the sum.
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("function", ["swish", "pact"])
@pytest.mark.parametrize("n", [1, 15, 17, 255, 257, 4095, 4096 + 3 * 16 + 5,
                               3 * 4096 + 5 * 256 + 7])
def test_scalar_parameter_gradient_sums_every_term(function, dtype, n, rng):
    x = rng.normal(0.0, 2.0, n).astype(dtype)
    g = rng.normal(0.0, 1.0, n).astype(dtype)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    if function == "swish":
        _, total = af.swish.backward(g, x, beta=0.9)
        terms = g64 * R.swish_grad(x64, 0.9)[1]
    else:
        _, total = af.pact.backward(g, x, 1.5)
        terms = g64 * R.pact_grad(x64, 1.5)[1]
    exact, scale = math.fsum(terms), math.fsum(np.abs(terms))
    tolerance = (2.5e-7 if dtype == np.float32 else 1e-13) * scale
    assert abs(float(total) - exact) <= tolerance, (float(total), exact, scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(16,), (2, 8), (1000, 3), (333, 8, 1), (50, 64),
                                   (20, 300), (4, 5, 6)], ids=str)
def test_prelu_exact_values(shape, dtype, rng):
    # the forward and grad_input are a select and one product each: exactly NumPy's
    x = values(rng, shape, dtype)
    g = grad_values(rng, shape, dtype)
    weight = rng.uniform(0.05, 0.5, _channels(shape)).astype(dtype)
    w = weight.reshape((-1,) + (1,) * (len(shape) - 2)) if len(shape) >= 2 else weight
    assert_bitwise_equal(af.prelu(x, weight), np.where(x > 0, x, w * x))
    grad_input, grad_weight = af.prelu.backward(g, x, weight)
    assert_bitwise_equal(grad_input, np.where(x > 0, g, g * w))
    assert grad_weight.dtype == dtype and grad_weight.shape == weight.shape


@pytest.mark.parametrize("layout", ["C", "F", "axes-permuted"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(37, 5, 29), (300, 7, 1), (80, 120, 72)], ids=str)
def test_prelu_nan_x_passes_as_itself(shape, dtype, layout, rng):
    # whatever the weight, NaN too, and wherever the element sits: the forward follows the
    # memory's order, and a product of two NaNs would give the NaN of whichever operand the
    # compiler put first in each loop (channels over inner runs, over whole rows, both ways)
    x = values(rng, shape, dtype)
    x[rng.random(shape) < 0.4] = np.nan
    x[rng.random(shape) < 0.2] = -np.nan
    weight = np.where(rng.random(shape[1]) < 0.5, np.nan, -np.nan).astype(dtype)
    weight[::3] = 0.25
    laid = x if layout == "C" else MEMORY_LAYOUTS[layout](x)
    w = weight.reshape(-1, 1)   # (along axis 1 of x)
    assert_bitwise_equal(af.prelu(laid, weight), np.where(np.isnan(x) | (x > 0), x, w * x))


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("channels", [3, 8])
def test_prelu_streamed_whole_rows(channels, dtype, n_threads, rng):
    # From STREAM_FROM bytes of operands on, prelu over whole rows streams its output from a
    # buffer, carrying what lies past the last 64-byte boundary to the next segment: NumPy's
    # values (a select and one product), and grad_weight the bits of the calls in place (not
    # streamed); out= one element off the boundary, an odd number of rows
    rows = 33554432 // (2 * channels * np.dtype(dtype).itemsize) + 1001
    rows += 1 - rows % 2
    x = values(rng, (rows, channels), dtype)
    g = grad_values(rng, (rows, channels), dtype)
    weight = rng.uniform(0.05, 0.5, channels).astype(dtype)
    expected = np.where(x > 0, x, weight * x)
    expected_grad = np.where(x > 0, g, g * weight)
    y = x.copy()
    af.prelu(y, weight, out=y)
    assert_bitwise_equal(y, expected, what="in place")
    y = g.copy()
    _, expected_weight_grad = af.prelu.backward(y, x, weight, out=y)
    assert_bitwise_equal(y, expected_grad, what="grad_input in place")
    for offset in (0, 1):
        out = np.empty(x.size + offset, dtype)[offset:].reshape(x.shape)
        assert af.prelu(x, weight, out=out) is out
        assert_bitwise_equal(out, expected, what=f"out {offset} element(s) off")
        grad_input, grad_weight = af.prelu.backward(g, x, weight, out=out)
        assert grad_input is out
        assert_bitwise_equal(grad_input, expected_grad, what=f"grad_input {offset} off")
        assert_bitwise_equal(grad_weight, expected_weight_grad, what="grad_weight")


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_prelu_out_is_the_weight(direction, rng):
    # 1-D x with a weight per element: out may be the weight itself (read while out is
    # written: the weight is copied first)
    x = values(rng, (300,))
    g = grad_values(rng, (300,))
    weight = rng.uniform(0.05, 0.5, 300)
    if direction == "forward":
        expected = af.prelu(x, weight.copy())
        result = af.prelu(x, weight, out=weight)
    else:
        expected = af.prelu.backward(g, x, weight.copy())[0]
        result = af.prelu.backward(g, x, weight, out=weight)[0]
    assert result is weight
    assert_bitwise_equal(result, expected)


def test_prelu_weight_dtype_follows_x(rng):
    x = values(rng, (4, 3), np.float32)
    y = af.prelu(x, np.array([0.1, 0.2, 0.3]))          # float64 weight, float32 x
    assert y.dtype == np.float32
    grad_input, grad_weight = af.prelu.backward(np.ones_like(x), x, [0.1, 0.2, 0.3])
    assert grad_input.dtype == np.float32 and grad_weight.dtype == np.float32


def test_prelu_0d_weight_gives_scalar_gradient(rng):
    x = values(rng, (3, 4))
    _, grad_weight = af.prelu.backward(np.ones_like(x), x, np.float64(0.25))
    assert isinstance(grad_weight, np.float64)
    assert_rel_close(grad_weight, np.sum(np.where(x > 0, 0.0, x)), rtol=1e-14)


# ---- random functions: draws, distributions, seeds -----------------------------------------

@pytest.mark.parametrize("first, pairs", [(0, 1), (0, 7), (0, 8), (0, 9), (0, 31), (0, 32),
                                         (0, 33), (5, 64), (3, 1001), (2**32 - 5, 20),
                                         (2**32 - 37, 100), (2**63 + 3, 17), (2**63 + 3, 97)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("seed", [0, 0xDEADBEEF12345678], ids=["seed0", "seed-high"])
def test_philox_uniform_runs_are_bitwise(first, pairs, seed):
    # runs of consecutive counters (32 at a time with AVX-512, 8 with AVX2, the rest one by
    # one), across the counter's 32-bit word boundary, against the NumPy Philox: every bit
    expected = _uniforms(seed, 1, first, pairs)
    assert_bitwise_equal(_special.philox_uniforms(seed, 1, first, pairs), expected)


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 255, 256, 257, 4095, 4096, 4097, 20001],
                         ids=str)
def test_rrelu_slopes_are_the_uniforms_bitwise(n, rng):
    # lower 0, upper 1: the slope is the uniform itself (0 + 1 u), and x u is rounded once
    # either way, so every slope is checked to the bit, whatever the chunking
    x = -rng.uniform(0.5, 2.0, n)
    y = af.rrelu(x, lower=0.0, upper=1.0, training=True, seed=0xDEADBEEF12345678)
    assert_bitwise_equal(y, x * rrelu_slopes(x.shape, 0.0, 1.0, 0xDEADBEEF12345678))


def test_rrelu_training_draws_are_philox(rng):
    x = values(rng, (300, 211))
    slopes = rrelu_slopes(x.shape, 0.05, 0.45, 77)
    y = af.rrelu(x, lower=0.05, upper=0.45, training=True, seed=77)
    # the same uniform and the same operations (setup.py builds with -ffp-contract=off: no
    # fused multiply-add in lower + width * u): the same bits
    assert_bitwise_equal(y, np.where(x <= 0, x * slopes, x))


def test_noisy_relu_draws_are_philox_box_muller(rng):
    x = values(rng, (300, 211))
    noise = normal_noise(x.shape, 99)
    y = af.noisy_relu(x, sigma=1.3, seed=99)
    assert_rel_close(y, np.maximum(x + 1.3 * noise, 0.0), rtol=1e-15,
                     atol=1e-14 * np.abs(noise).max())


N_DRAWS = 200_000


@pytest.mark.parametrize("lower, upper", [(1 / 8, 1 / 3), (0.0, 1.0), (-0.5, 0.25)],
                         ids=["default", "0-1", "negative-lower"])
def test_rrelu_slope_distribution(lower, upper, rng):
    scipy_stats = pytest.importorskip("scipy.stats")
    x = -rng.uniform(0.5, 2.0, N_DRAWS)
    seed = int(rng.integers(0, 2 ** 63))
    slopes = af.rrelu(x, lower=lower, upper=upper, training=True, seed=seed) / x
    width = upper - lower
    assert slopes.min() >= lower - 1e-15 and slopes.max() <= upper + 1e-15
    # mean and variance of U[lower, upper] within 6 standard errors
    sd = width / math.sqrt(12)
    assert abs(slopes.mean() - (lower + upper) / 2) < 6 * sd / math.sqrt(N_DRAWS)
    var_se = width ** 2 * math.sqrt((1 / 80 - 1 / 144) / N_DRAWS)
    assert abs(slopes.var() - width ** 2 / 12) < 6 * var_se
    u = (slopes - lower) / width
    assert scipy_stats.kstest(u, "uniform").pvalue > 1e-6
    # neighbours independent
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 6 / math.sqrt(N_DRAWS)


@pytest.mark.parametrize("sigma", [1.0, 0.25], ids=lambda s: f"sigma={s}")
def test_noisy_relu_noise_distribution(sigma, rng):
    scipy_stats = pytest.importorskip("scipy.stats")
    x = 50.0 + rng.uniform(0.0, 1.0, N_DRAWS)   # x + noise > 0: the noise is y - x
    seed = int(rng.integers(0, 2 ** 63))
    z = (af.noisy_relu(x, sigma=sigma, seed=seed) - x) / sigma
    n = N_DRAWS
    assert abs(z.mean()) < 6 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 6 / math.sqrt(2 * n)
    assert abs(scipy_stats.skew(z)) < 6 * math.sqrt(6 / n)
    assert abs(scipy_stats.kurtosis(z)) < 6 * math.sqrt(24 / n)
    tail = np.mean(np.abs(z) > 3.0)   # 0.0027 for a normal
    p = 2 * scipy_stats.norm.sf(3.0)
    assert abs(tail - p) < 6 * math.sqrt(p * (1 - p) / n)
    assert scipy_stats.kstest(z, "norm").pvalue > 1e-6
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 6 / math.sqrt(n)


def test_seeds_give_independent_draws(rng):
    x = 50.0 + rng.uniform(0.0, 1.0, N_DRAWS)
    seed = int(rng.integers(0, 2 ** 63))
    z1 = af.noisy_relu(x, seed=seed) - x
    z2 = af.noisy_relu(x, seed=seed + 1) - x
    assert abs(np.corrcoef(z1, z2)[0, 1]) < 6 / math.sqrt(N_DRAWS)
    s1 = af.rrelu(-x, training=True, seed=seed)
    s2 = af.rrelu(-x, training=True, seed=seed + 1)
    assert np.mean(s1 == s2) < 1e-3
    assert abs(np.corrcoef(s1, s2)[0, 1]) < 6 / math.sqrt(N_DRAWS)


RANDOM_CALLS = {
    "rrelu": lambda x, **kw: af.rrelu(x, training=True, **kw),
    "noisy_relu": lambda x, **kw: af.noisy_relu(x, sigma=0.5, **kw),
}


@pytest.mark.parametrize("function", list(RANDOM_CALLS))
def test_same_seed_same_bits_different_seed_different_bits(function, rng):
    call = RANDOM_CALLS[function]
    x = values(rng, (500, 300))
    seed = int(rng.integers(0, 2 ** 64, dtype=np.uint64))
    first = call(x, seed=seed)
    assert_bitwise_equal(call(x, seed=seed), first)
    assert_bitwise_equal(call(x, seed=np.uint64(seed)), first)
    other = call(x, seed=seed ^ 1)
    negative = x < 0 if function == "rrelu" else np.ones(x.shape, bool)
    changed = first[negative] != other[negative]
    assert changed.mean() > 0.5


@pytest.mark.parametrize("function", list(RANDOM_CALLS))
def test_seed_none_differs_between_calls(function, rng):
    call = RANDOM_CALLS[function]
    x = -rng.uniform(0.5, 2.0, 1000)
    assert not np.array_equal(call(x), call(x))


@THREADS
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("function", list(RANDOM_CALLS))
def test_draws_follow_the_logical_index(function, layout, n_threads, rng):
    # the same seed gives the same bits for any layout of the same logical array: the draw of
    # an element depends on its C-order index in x only
    call = RANDOM_CALLS[function]
    x = values(rng, LARGE)
    with single_thread():
        expected = call(x, seed=SEED)
    assert_bitwise_equal(call(LAYOUTS[layout](x), seed=SEED), expected)


@pytest.mark.parametrize("size", [1, 2, 255, 257, 4095, 4097, 8193])
@pytest.mark.parametrize("function", list(RANDOM_CALLS))
def test_draw_of_an_element_does_not_depend_on_the_array_size(function, size, rng):
    # sizes around the chunk (256) and block (4096) bounds, odd and even: the first `size`
    # elements of a 1-d array get the same draws as an array of `size` elements
    call = RANDOM_CALLS[function]
    x = values(rng, (9001,))
    assert_bitwise_equal(call(x[:size], seed=SEED), call(x, seed=SEED)[:size])


@THREADS
def test_rrelu_backward_reproduces_the_slopes(n_threads, rng):
    x = values(rng, LARGE)
    g = grad_values(rng, LARGE)
    y = af.rrelu(x, lower=0.1, upper=0.4, training=True, seed=SEED)
    gx = af.rrelu.backward(g, x, lower=0.1, upper=0.4, training=True, seed=SEED)
    negative = x < 0
    assert_rel_close(gx[negative] / g[negative], y[negative] / x[negative], rtol=1e-15)
    assert_bitwise_equal(gx[x > 0], g[x > 0])
    from_output = af.rrelu.backward(g, output=y, lower=0.1, upper=0.4, training=True,
                                    seed=SEED)
    assert_bitwise_equal(from_output, gx)


# ---- rrelu's noise: the training forward's derivatives kept, as PyTorch's rrelu_with_noise --

NOISE_KINDS = ["C-buffer", "F-buffer", "strided-buffer", "unaligned-buffer"]


def _noise_buffer(kind, shape, dtype):
    if kind == "unaligned-buffer":
        return unaligned(np.full(shape, np.nan, dtype=dtype))
    return _buffer(kind, shape, dtype)


def _expected_noise(x, lower, upper, seed, dtype):
    """The slope where x <= 0, else 1 (NaN included), rounded to dtype (float16 through
    float32, its compute dtype, as every float16 result)."""
    slopes = rrelu_slopes(np.shape(x), lower, upper, seed)
    noise = np.where(np.asarray(x, dtype=np.float64) <= 0, slopes, 1.0)
    return noise.astype(np.float32).astype(dtype) if dtype == np.float16 else noise.astype(dtype)


@THREADS
@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("layout", ["C", "F", "reversed", "big-endian", "every-other-column"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64],
                         ids=["float16", "float32", "float64"])
def test_rrelu_forward_writes_the_noise(dtype, layout, kind, n_threads, rng):
    x = with_special_values(rng, values(rng, LARGE, dtype))
    x_laid = LAYOUTS[layout](x)
    x_before = x_laid.copy()
    expected = af.rrelu(x_laid, lower=0.1, upper=0.4, training=True, seed=SEED)
    # the noise has the result's dtype
    noise = _noise_buffer(kind, LARGE, expected.dtype)
    y = af.rrelu(x_laid, lower=0.1, upper=0.4, training=True, seed=SEED, noise=noise)
    # the output is the one without noise, the noise each element's derivative
    assert_bitwise_equal(y, expected)
    assert_bitwise_equal(noise, _expected_noise(x, 0.1, 0.4, SEED, expected.dtype))
    assert_bitwise_equal(x_laid, x_before, what="x unchanged")


@THREADS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rrelu_streamed_forward_writes_the_noise(dtype, n_threads, rng):
    # From STREAM_FROM bytes of x, out and noise on, rrelu's training forward that writes its
    # noise streams both: the output is the one without noise (not streamed) and the one in
    # place (not streamed either), the noise Philox's slopes; with out= and noise= one element
    # off the vector boundary (an odd head, rounded up to even: the draws come in pairs), and
    # an odd number of elements (an odd split between the threads, rounded up too)
    x = _streamed_values(rng, 3, dtype, 4)
    n = x.size
    expected = af.rrelu(x, lower=0.1, upper=0.4, training=True, seed=SEED)
    expected_noise = _expected_noise(x, 0.1, 0.4, SEED, dtype)
    y, noise = x.copy(), np.empty_like(x)
    af.rrelu(y, lower=0.1, upper=0.4, training=True, seed=SEED, noise=noise, out=y)
    assert_bitwise_equal(y, expected, what="in place")
    assert_bitwise_equal(noise, expected_noise, what="noise in place")
    for offset in (0, 1):
        out = np.empty(n + offset, dtype)[offset:]
        noise = np.empty(n + offset, dtype)[offset:]
        assert af.rrelu(x, lower=0.1, upper=0.4, training=True, seed=SEED, noise=noise,
                        out=out) is out
        assert_bitwise_equal(out, expected, what=f"out {offset} element(s) off")
        assert_bitwise_equal(noise, expected_noise, what=f"noise {offset} element(s) off")


@THREADS
@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("layout", ["C", "F", "strided", "reversed", "unaligned",
                                    "reversed-every-third"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64],
                         ids=["float16", "float32", "float64"])
def test_rrelu_backward_from_the_noise(dtype, layout, kind, n_threads, rng):
    x = with_special_values(rng, values(rng, LARGE, dtype))
    g = LAYOUTS[layout](grad_values(rng, LARGE, dtype))
    noise = _noise_buffer(kind, LARGE, dtype)
    af.rrelu(x, lower=0.1, upper=0.4, training=True, seed=SEED, noise=noise)
    noise_before, g_before = noise.copy(), g.copy()
    gx = af.rrelu.backward(g, noise=noise, lower=0.1, upper=0.4, training=True)
    assert gx.dtype == dtype and gx.shape == LARGE
    # the product in the compute dtype (float32 for float16), rounded once: NumPy's
    compute = np.float32 if dtype == np.float16 else dtype
    assert_bitwise_equal(gx, (g.astype(compute) * noise.astype(compute)).astype(dtype))
    from_seed = af.rrelu.backward(g, x, lower=0.1, upper=0.4, training=True, seed=SEED)
    if dtype == np.float64:     # the slope in double either way: the seed's bits
        assert_bitwise_equal(gx, from_seed)
    else:                       # the slope rounded to the dtype first: an ulp at most
        assert_ulp_close(gx, from_seed.astype(np.float64), dtype, 1)
    assert_bitwise_equal(noise, noise_before, what="noise unchanged")
    assert_bitwise_equal(g, g_before, what="grad_output unchanged")


@pytest.mark.parametrize("into", ["noise", "grad_output"])
def test_rrelu_backward_from_the_noise_in_place(into, rng):
    x = values(rng, LARGE)
    g = grad_values(rng, LARGE)
    noise = np.empty(LARGE)
    af.rrelu(x, training=True, seed=SEED, noise=noise)
    expected = g * noise
    target = noise if into == "noise" else g
    assert af.rrelu.backward(g, noise=noise, training=True, out=target) is target
    assert_bitwise_equal(target, expected)


def test_rrelu_forward_with_noise_in_place_and_out(rng):
    x = values(rng, LARGE, np.float32)
    expected = af.rrelu(x, training=True, seed=SEED)
    noise, out = np.empty(LARGE, np.float32), np.empty(LARGE, np.float32)
    assert af.rrelu(x, training=True, seed=SEED, noise=noise, out=out) is out
    assert_bitwise_equal(out, expected)
    assert af.rrelu(x, training=True, seed=SEED, noise=noise, out=x) is x
    assert_bitwise_equal(x, expected)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_], ids=["int32", "bool"])
def test_rrelu_noise_of_integer_input_is_float64(dtype, rng):
    x = (rng.integers(-5, 5, (30, 40)) if dtype == np.int32 else rng.random((30, 40)) < 0.5)
    x = x.astype(dtype)
    noise = np.empty(x.shape)
    y = af.rrelu(x, training=True, seed=SEED, noise=noise)
    assert_bitwise_equal(y, af.rrelu(x.astype(np.float64), training=True, seed=SEED))
    assert_bitwise_equal(noise, _expected_noise(x, 1 / 8, 1 / 3, SEED, np.float64))


def test_rrelu_noise_0d_and_empty():
    noise = np.empty(())
    y = af.rrelu(-2.0, training=True, seed=SEED, noise=noise)
    assert isinstance(y, np.float64) and y == -2.0 * noise
    g = af.rrelu.backward(3.0, noise=noise, training=True)
    assert isinstance(g, np.float64) and g == 3.0 * noise
    empty = np.empty((0, 5))
    assert af.rrelu(empty, training=True, seed=SEED, noise=np.empty((0, 5))).shape == (0, 5)
    assert af.rrelu.backward(empty, noise=np.empty((0, 5)), training=True).shape == (0, 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rrelu_noise_matches_torch_rrelu_with_noise(dtype, rng):
    torch = pytest.importorskip("torch")
    x = with_special_values(rng, values(rng, (300, 211), dtype))
    g = grad_values(rng, x.shape, dtype)
    noise = np.empty_like(x)
    af.rrelu(x, lower=0.1, upper=0.4, training=True, seed=SEED, noise=noise)
    # PyTorch's forward (its own draws): 1 exactly where ours is 1, slopes in range elsewhere
    torch_noise = torch.empty(x.shape, dtype=torch.from_numpy(x).dtype)
    torch.ops.aten.rrelu_with_noise(torch.from_numpy(x.copy()), torch_noise, 0.1, 0.4, True)
    torch_noise = torch_noise.numpy()
    assert np.array_equal(torch_noise == 1, noise == 1)
    slopes = torch_noise[noise != 1]
    assert slopes.min() >= np.asarray(0.1, dtype) and slopes.max() <= np.asarray(0.4, dtype)
    # PyTorch's backward from our noise: the same bits
    expected = torch.ops.aten.rrelu_with_noise_backward(
        torch.from_numpy(g), torch.from_numpy(x), torch.from_numpy(noise), 0.1, 0.4, True,
        False).numpy()
    assert_bitwise_equal(af.rrelu.backward(g, noise=noise, lower=0.1, upper=0.4,
                                           training=True), expected)


@THREADS
def test_noisy_relu_backward_from_output_and_from_x_agree(n_threads, rng):
    x = values(rng, LARGE)
    g = grad_values(rng, LARGE)
    y = af.noisy_relu(x, sigma=0.7, seed=SEED)
    from_output = af.noisy_relu.backward(g, output=y)
    assert_bitwise_equal(from_output, np.where(y > 0, g, 0.0))
    assert_bitwise_equal(af.noisy_relu.backward(g, x, sigma=0.7, seed=SEED), from_output)


def test_random_float32_is_the_rounded_float64(rng):
    # the draw and the arithmetic are in double whatever the dtype
    x = values(rng, (400, 250), np.float32)
    x64 = x.astype(np.float64)
    for call in RANDOM_CALLS.values():
        assert_bitwise_equal(call(x, seed=5), call(x64, seed=5).astype(np.float32))


# ---- errors --------------------------------------------------------------------------------

X = np.array([[-1.0, 2.0, 0.5, -3.0], [1.0, -2.0, 4.0, 0.25]])
G = np.ones_like(X)

ERRORS = [
    # prelu
    ("prelu-weight-size", lambda: af.prelu(X, [0.1, 0.2]), ValueError),
    ("prelu-weight-size-1d", lambda: af.prelu(X[0], [0.1, 0.2]), ValueError),
    ("prelu-weight-0d-x", lambda: af.prelu(1.0, [0.1, 0.2]), ValueError),
    ("prelu-weight-empty", lambda: af.prelu(X, []), ValueError),
    ("prelu-weight-complex", lambda: af.prelu(X, [1j] * 4), TypeError),
    ("prelu-weight-string", lambda: af.prelu(X, "abcd"), TypeError),
    ("prelu-x-complex", lambda: af.prelu(X + 0j, [0.1]), TypeError),
    ("prelu-missing-weight", lambda: af.prelu(X), TypeError),
    ("prelu-backward-output", lambda: af.prelu.backward(G, output=X, weight=[0.1]), TypeError),
    ("prelu-backward-no-weight", lambda: af.prelu.backward(G, X), TypeError),
    ("prelu-backward-shape", lambda: af.prelu.backward(G[:1], X, [0.1]), ValueError),
    ("prelu-unknown-keyword", lambda: af.prelu(X, [0.1], slope=2), TypeError),
    # swish
    ("swish-beta-nan", lambda: af.swish(X, beta=np.nan), ValueError),
    ("swish-beta-inf", lambda: af.swish(X, beta=np.inf), ValueError),
    ("swish-beta-string", lambda: af.swish(X, beta="1"), TypeError),
    ("swish-beta-array", lambda: af.swish(X, beta=np.ones(2)), TypeError),
    ("swish-beta-positional", lambda: af.swish(X, 1.0), TypeError),
    ("swish-beta-grad-int", lambda: af.swish.backward(G, X, beta_grad=0), TypeError),
    ("swish-beta-grad-none", lambda: af.swish.backward(G, X, beta_grad=None), TypeError),
    ("swish-unknown-keyword", lambda: af.swish(X, alpha=1.0), TypeError),
    ("swish-backward-output", lambda: af.swish.backward(G, output=X), TypeError),
    ("swish-backward-shape", lambda: af.swish.backward(G.T, X), ValueError),
    ("swish-x-object", lambda: af.swish(np.array([1, "a"], dtype=object)), TypeError),
    ("swish-x-string", lambda: af.swish(["a", "b"]), TypeError),
    # pact
    ("pact-alpha-negative", lambda: af.pact(X, -1.0), ValueError),
    ("pact-alpha-nan", lambda: af.pact(X, np.nan), ValueError),
    ("pact-alpha-missing", lambda: af.pact(X), TypeError),
    ("pact-alpha-bool", lambda: af.pact(X, True), TypeError),
    ("pact-backward-no-alpha", lambda: af.pact.backward(G, X), TypeError),
    ("pact-backward-output", lambda: af.pact.backward(G, output=X, alpha=1.0), TypeError),
    ("pact-grad-output-complex", lambda: af.pact.backward(G + 0j, X, 1.0), TypeError),
    # rrelu
    ("rrelu-lower>upper", lambda: af.rrelu(X, lower=0.5, upper=0.1), ValueError),
    ("rrelu-lower>upper-training", lambda: af.rrelu(X, lower=0.5, upper=0.1, training=True),
     ValueError),
    ("rrelu-lower-nan", lambda: af.rrelu(X, lower=np.nan), ValueError),
    ("rrelu-upper-inf", lambda: af.rrelu(X, upper=np.inf), ValueError),
    ("rrelu-width-overflows", lambda: af.rrelu(X, lower=-1e308, upper=1e308, training=True),
     ValueError),
    ("rrelu-training-not-bool", lambda: af.rrelu(X, training=1), TypeError),
    ("rrelu-seed-negative", lambda: af.rrelu(X, training=True, seed=-1), ValueError),
    ("rrelu-seed-too-big", lambda: af.rrelu(X, training=True, seed=2 ** 64), ValueError),
    ("rrelu-seed-float", lambda: af.rrelu(X, training=True, seed=1.0), TypeError),
    ("rrelu-seed-bool", lambda: af.rrelu(X, training=True, seed=True), TypeError),
    ("rrelu-backward-training-no-seed", lambda: af.rrelu.backward(G, X, training=True),
     TypeError),
    ("rrelu-backward-x-and-output", lambda: af.rrelu.backward(G, X, output=X), TypeError),
    ("rrelu-backward-neither", lambda: af.rrelu.backward(G), TypeError),
    ("rrelu-backward-output-negative-slopes",
     lambda: af.rrelu.backward(G, output=X, lower=-0.5, upper=0.1, training=True, seed=1),
     ValueError),
    ("rrelu-backward-output-negative-eval-slope",
     lambda: af.rrelu.backward(G, output=X, lower=-0.5, upper=0.1), ValueError),
    ("rrelu-backward-shape", lambda: af.rrelu.backward(G[:, :2], X, training=True, seed=1),
     ValueError),
    ("rrelu-noise-eval", lambda: af.rrelu(X, noise=np.empty_like(X)), ValueError),
    ("rrelu-noise-shape", lambda: af.rrelu(X, training=True, noise=np.empty((2, 3))),
     ValueError),
    ("rrelu-noise-dtype",
     lambda: af.rrelu(X, training=True, noise=np.empty(X.shape, np.float32)), TypeError),
    ("rrelu-noise-list", lambda: af.rrelu(X, training=True, noise=[0.0] * 8), TypeError),
    ("rrelu-noise-read-only",
     lambda: af.rrelu(X, training=True, noise=_read_only(np.empty_like(X))), ValueError),
    ("rrelu-noise-is-x", lambda: (lambda x: af.rrelu(x, training=True, noise=x))(X.copy()),
     ValueError),
    ("rrelu-noise-overlaps-x",
     lambda: (lambda b: af.rrelu(b[:2], training=True, noise=b[1:]))(np.ones((3, 4))),
     ValueError),
    ("rrelu-noise-is-out",
     lambda: (lambda o: af.rrelu(X, training=True, out=o, noise=o))(np.empty_like(X)),
     ValueError),
    ("rrelu-noise-x-list-is-fine-but-out-overlaps",
     lambda: (lambda o: af.rrelu(X.tolist(), training=True, out=o, noise=o[::-1]))(
         np.empty_like(X)), ValueError),
    ("rrelu-backward-noise-eval", lambda: af.rrelu.backward(G, noise=np.ones_like(X)),
     ValueError),
    ("rrelu-backward-noise-shape",
     lambda: af.rrelu.backward(G, noise=np.ones((2, 3)), training=True), ValueError),
    ("rrelu-backward-noise-x-shape",
     lambda: af.rrelu.backward(G, X[:1], noise=np.ones_like(X), training=True), ValueError),
    ("rrelu-backward-noise-complex",
     lambda: af.rrelu.backward(G, noise=np.ones_like(X) + 0j, training=True), TypeError),
    ("rrelu-backward-noise-lower>upper",
     lambda: af.rrelu.backward(G, noise=np.ones_like(X), training=True, lower=0.5, upper=0.1),
     ValueError),
    # noisy_relu
    ("noisy_relu-sigma-negative", lambda: af.noisy_relu(X, sigma=-1.0), ValueError),
    ("noisy_relu-sigma-inf", lambda: af.noisy_relu(X, sigma=np.inf), ValueError),
    ("noisy_relu-sigma-nan", lambda: af.noisy_relu(X, sigma=np.nan), ValueError),
    ("noisy_relu-seed-string", lambda: af.noisy_relu(X, seed="1"), TypeError),
    ("noisy_relu-backward-x-no-seed", lambda: af.noisy_relu.backward(G, X), TypeError),
    ("noisy_relu-backward-x-and-output",
     lambda: af.noisy_relu.backward(G, X, output=X, seed=1), TypeError),
    ("noisy_relu-backward-shape", lambda: af.noisy_relu.backward(G[:1], output=X), ValueError),
    ("noisy_relu-backward-output-seed-negative",
     lambda: af.noisy_relu.backward(G, output=X, seed=-1), ValueError),
    ("noisy_relu-backward-output-sigma-nan",
     lambda: af.noisy_relu.backward(G, output=X, sigma=np.nan), ValueError),
    # maxout
    ("maxout-pieces-0", lambda: af.maxout(X, 0), ValueError),
    ("maxout-pieces-negative", lambda: af.maxout(X, -2), ValueError),
    ("maxout-pieces-not-dividing", lambda: af.maxout(X, 3), ValueError),
    ("maxout-pieces-float", lambda: af.maxout(X, 2.0), TypeError),
    ("maxout-pieces-missing", lambda: af.maxout(X), TypeError),
    ("maxout-axis-out-of-range", lambda: af.maxout(X, 2, axis=2), ValueError),
    ("maxout-axis-float", lambda: af.maxout(X, 2, axis=1.0), TypeError),
    ("maxout-0d", lambda: af.maxout(1.0, 1), ValueError),
    ("maxout-backward-grad-shape", lambda: af.maxout.backward(G, X, 2), ValueError),
    ("maxout-backward-output", lambda: af.maxout.backward(G[:, :2], output=X, pieces=2),
     TypeError),
    ("maxout-backward-no-pieces", lambda: af.maxout.backward(G[:, :2], X), TypeError),
    # glu
    ("glu-odd", lambda: af.glu(X[:, :3]), ValueError),
    ("glu-odd-axis0", lambda: af.glu(X[:1], axis=0), ValueError),
    ("glu-axis-out-of-range", lambda: af.glu(X, axis=-3), ValueError),
    ("glu-0d", lambda: af.glu(1.0), ValueError),
    ("glu-backward-grad-shape", lambda: af.glu.backward(G, X), ValueError),
    ("glu-backward-output", lambda: af.glu.backward(G[:, :2], output=X), TypeError),
    ("glu-x-complex", lambda: af.glu(X + 0j), TypeError),
    # ints beyond C's or double's range: the same errors as other bad values (not OverflowError)
    ("maxout-pieces-2**70", lambda: af.maxout(X, 2 ** 70), ValueError),
    ("maxout-axis-2**70", lambda: af.maxout(X, 2, axis=2 ** 70), ValueError),
    ("glu-axis-2**70", lambda: af.glu(X, axis=2 ** 70), ValueError),
    ("glu-backward-axis--2**63", lambda: af.glu.backward(G[:, :2], X, axis=-2 ** 63), ValueError),
    ("maxout-pieces-0d-bool", lambda: af.maxout(X, np.array(True)), TypeError),
    ("maxout-pieces-0d-float", lambda: af.maxout(X, np.array(2.0)), TypeError),
    ("swish-beta-10**400", lambda: af.swish(X, beta=10 ** 400), ValueError),
    ("pact-alpha-10**400", lambda: af.pact(X, 10 ** 400), ValueError),
    ("rrelu-upper-10**400", lambda: af.rrelu(X, upper=10 ** 400), ValueError),
    ("noisy_relu-sigma-10**400", lambda: af.noisy_relu(X, sigma=10 ** 400), ValueError),
]


@pytest.mark.parametrize("kind", ["numpy-int", "0-d-array"])
def test_maxout_and_glu_take_numpy_ints_and_0d_arrays(kind):
    # as NumPy's axis and the softmax family's: an integer scalar or 0-d array (they refused
    # the 0-d arrays)
    integer = np.int64 if kind == "numpy-int" else (lambda v: np.array(v))
    assert_bitwise_equal(af.maxout(X, integer(2), axis=integer(1)), af.maxout(X, 2, axis=1))
    assert_bitwise_equal(af.glu(X, integer(-1)), af.glu(X, -1))
    assert_bitwise_equal(af.glu.backward(G[:, :2], X, integer(1)), af.glu.backward(G[:, :2], X, 1))

OUT_ERRORS = [
    ("shape", lambda shape, dtype: np.empty(shape[::-1] + (1,), dtype), ValueError),
    ("dtype", lambda shape, dtype: np.empty(shape, np.float32), TypeError),
    ("list", lambda shape, dtype: [0.0] * shape[0], TypeError),
    ("read-only", lambda shape, dtype: _read_only(np.empty(shape, dtype)), ValueError),
]


def _read_only(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("call, error", [pytest.param(c, e, id=i) for i, c, e in ERRORS])
def test_errors(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("kind, make, error", OUT_ERRORS, ids=[k for k, _, _ in OUT_ERRORS])
@pytest.mark.parametrize("spec", SPEC_PARAMS)
def test_out_errors(spec, kind, make, error, direction, rng):
    x = values(rng, (4, 6))
    if direction == "forward":
        with pytest.raises(error):
            spec.forward(x, out=make(spec.out_shape(x.shape), np.float64))
    else:
        g = grad_values(rng, spec.out_shape(x.shape))
        with pytest.raises(error):
            spec.backward(g, x, out=make(x.shape, np.float64))


def test_error_messages_name_the_argument():
    with pytest.raises(ValueError, match="weight"):
        af.prelu(X, [0.1, 0.2])
    with pytest.raises(ValueError, match="pieces"):
        af.maxout(X, 3)
    with pytest.raises(ValueError, match="lower"):
        af.rrelu(X, lower=0.5, upper=0.1)
    with pytest.raises(ValueError, match="sigma"):
        af.noisy_relu(X, sigma=-1.0)
    with pytest.raises(TypeError, match="seed"):
        af.rrelu.backward(G, X, training=True)
    with pytest.raises(ValueError, match="noise"):
        af.rrelu(X, training=True, noise=np.empty((2, 3)))
    with pytest.raises(ValueError, match="noise"):
        af.rrelu(X, noise=np.empty_like(X))
    with pytest.raises(ValueError, match="noise"):
        x = X.copy()
        af.rrelu(x, training=True, noise=x)
    with pytest.raises(ValueError, match="noise"):
        af.rrelu.backward(G, noise=np.ones((2, 3)), training=True)


# A backward's parameter errors name the backward, as its signature errors do
BACKWARD_PARAMETER_ERRORS = [
    ("prelu", lambda: af.prelu.backward(G, X, [0.1, 0.2]), ValueError, "weight"),
    ("swish", lambda: af.swish.backward(G, X, beta="1"), TypeError, "beta"),
    ("swish", lambda: af.swish.backward(G, X, beta_grad="no"), TypeError, "beta_grad"),
    ("pact", lambda: af.pact.backward(G, X, -1.0), ValueError, "alpha"),
    ("rrelu", lambda: af.rrelu.backward(G, X, lower=0.5, upper=0.1), ValueError, "lower"),
    ("rrelu", lambda: af.rrelu.backward(G, X, training="yes", seed=1), TypeError, "training"),
    ("rrelu", lambda: af.rrelu.backward(G, X, training=True, seed=-1), ValueError, "seed"),
    ("rrelu", lambda: af.rrelu.backward(G.astype(np.float32), X.astype(np.float32),
                                        lower=1e39, upper=2e39), ValueError, "slope"),
    ("noisy_relu", lambda: af.noisy_relu.backward(G, X, sigma=-1.0, seed=1), ValueError,
     "sigma"),
    ("noisy_relu", lambda: af.noisy_relu.backward(G, output=X, seed=-1), ValueError, "seed"),
    ("maxout", lambda: af.maxout.backward(G[:, :1], X, 0), ValueError, "pieces"),
    ("maxout", lambda: af.maxout.backward(G, X, 1, axis=5), np.exceptions.AxisError, "axis"),
    ("glu", lambda: af.glu.backward(G, X, axis=5), np.exceptions.AxisError, "axis"),
]


@pytest.mark.parametrize("name, call, error, word", BACKWARD_PARAMETER_ERRORS,
                         ids=[f"{n}-{w}" for n, _, _, w in BACKWARD_PARAMETER_ERRORS])
def test_backward_parameter_errors_name_the_backward(name, call, error, word):
    with pytest.raises(error, match=word) as info:
        call()
    assert str(info.value).startswith(f"{name}.backward()"), str(info.value)


def test_registry_and_namespace():
    from actfast import special
    names = ["prelu", "swish", "pact", "rrelu", "noisy_relu", "maxout", "glu"]
    assert list(special.FUNCTIONS) == names
    for name in names:
        function = getattr(af, name)
        assert function is special.FUNCTIONS[name] and name in af.__all__
        assert (function.__module__, function.__qualname__) == ("actfast", name)
        assert "Examples" in function.__doc__ and "Backward" in function.__doc__


# ---- PyTorch parity ------------------------------------------------------------------------

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


TORCH_DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, -1.5, 1e-30, -1e-30, 30.0, -30.0]


def torch_values(rng, shape, dtype, specials=True):
    x = values(rng, shape, dtype)
    if specials:
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, len(SPECIALS), replace=False)] = SPECIALS
    return x


def _grads(torch, fn, x, *params, g):
    """Run fn(x, *params) in torch with autograd; return (value, grad x, grads of params)."""
    tx = torch.tensor(x, requires_grad=True)
    tparams = [torch.tensor(p, requires_grad=True) for p in params]
    y = fn(tx, *tparams)
    y.backward(torch.tensor(g))
    return (y.detach().numpy(), tx.grad.numpy()) + tuple(p.grad.numpy() for p in tparams)


PRELU_TORCH_SHAPES = [((6, 5, 7), 5), ((6, 5, 7), 1), ((40, 12), 12), ((33,), 1), ((), 1)]


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("shape, channels", PRELU_TORCH_SHAPES,
                         ids=[f"x{s}-w{c}".replace(" ", "") for s, c in PRELU_TORCH_SHAPES])
def test_prelu_matches_torch(shape, channels, dtype, torch, rng):
    x = torch_values(rng, shape, dtype, specials=math.prod(shape) > 20)
    g = grad_values(rng, shape, dtype)
    weight = rng.uniform(0.05, 0.5, channels).astype(dtype)
    y_t, gx_t, gw_t = _grads(torch, torch.nn.functional.prelu, x, weight, g=g)
    assert_bitwise_equal(af.prelu(x, weight), y_t)
    grad_input, grad_weight = af.prelu.backward(g, x, weight)
    assert_bitwise_equal(np.asarray(grad_input), np.asarray(gx_t))
    # torch sums in its own order (float32 in float32): agree to rounding, NaN where torch is
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_rel_close(grad_weight, gw_t, rtol=rtol,
                     atol=rtol * float(np.sum(np.abs(g * np.where(np.isfinite(x), x, 0)))))


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("lower, upper", [(1 / 8, 1 / 3), (0.1, 0.3), (0.0, 0.0)],
                         ids=["default", "0.1-0.3", "zero"])
def test_rrelu_eval_matches_torch(lower, upper, dtype, torch, rng):
    x = torch_values(rng, (50, 40), dtype)
    g = grad_values(rng, x.shape, dtype)
    fn = lambda t: torch.nn.functional.rrelu(t, lower, upper, training=False)  # noqa: E731
    y_t, gx_t = _grads(torch, fn, x, g=g)
    # torch multiplies by the slope rounded to x's dtype, actfast by the double slope, then
    # rounds: at most one rounding apart in float32
    rtol = np.finfo(dtype).eps
    assert_rel_close(af.rrelu(x, lower=lower, upper=upper), y_t, rtol=rtol)
    assert_rel_close(af.rrelu.backward(g, x, lower=lower, upper=upper), gx_t, rtol=rtol)


def test_rrelu_training_gradient_convention_matches_torch(torch):
    # torch's rrelu_with_noise: slope where x <= 0 (so at 0), 1 elsewhere (so at NaN)
    x = torch.tensor([0.0, -0.0, np.nan, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.rrelu(x, 0.25, 0.25, training=True)
    y.backward(torch.ones(4, dtype=torch.float64))
    ours = af.rrelu.backward(np.ones(4), x.detach().numpy(), lower=0.25, upper=0.25,
                             training=True, seed=1)
    assert_bitwise_equal(ours, x.grad.numpy())


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_glu_matches_torch(axis, dtype, torch, rng):
    x = torch_values(rng, (8, 10, 6), dtype, specials=False)
    out_shape = list(x.shape)
    out_shape[axis] //= 2
    g = grad_values(rng, tuple(out_shape), dtype)
    y_t, gx_t = _grads(torch, lambda t: torch.nn.functional.glu(t, dim=axis), x, g=g)
    ulp = np.finfo(dtype).eps
    # torch's float32 sigmoid is 0 where the true value is subnormal (b < -87.3): a * that
    # is 0 in torch, a few times 1e-38 here
    tiny = float(np.finfo(dtype).tiny) * (1 + float(np.max(np.abs(x))))
    assert_rel_close(af.glu(x, axis=axis), y_t, rtol=4 * ulp, atol=tiny)
    # torch's sigmoid'(b) is s (1 - s): where s rounds near 1, 1 - s keeps only an absolute
    # accuracy of ~eps, so torch's gradient of b is good to ~eps |g a| only (actfast's
    # exp(-|b|) / (1 + exp(-|b|))^2 is accurate to the last bits: it is torch that drifts)
    # (and for a: torch's g * sigmoid(b) is 0 where sigmoid(b) is subnormal, as above)
    a = np.split(x.astype(np.float64), 2, axis=axis)[0]
    g64 = g.astype(np.float64)
    atol = np.concatenate([float(np.finfo(dtype).tiny) * (1 + np.abs(g64)),
                           16 * ulp * np.abs(g64 * a)], axis=axis)
    assert_rel_close(af.glu.backward(g, x, axis=axis), gx_t, rtol=16 * ulp, atol=atol)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("beta", [1.0, 1.7, -0.6, 0.0], ids=lambda b: f"beta={b}")
def test_swish_matches_torch(beta, dtype, torch, rng):
    # torch's swish: x * sigmoid(beta * x) with beta a tensor requiring grad. Finite x only:
    # at infinite x torch gives inf * 0 = NaN where actfast gives the limit.
    x = values(rng, (60, 50), dtype)
    g = grad_values(rng, x.shape, dtype)
    fn = lambda t, b: t * torch.sigmoid(b * t)  # noqa: E731
    y_t, gx_t, gb_t = _grads(torch, fn, x, np.asarray(beta, dtype=dtype), g=g)
    eps = np.finfo(dtype).eps
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    # torch rounds beta * x and every product to x's dtype: an error of ~|beta x| ulp in the
    # gate, and of ~|g| ulp absolute where the derivative crosses 0 (cancellation)
    rtol = 8 * eps * (2 + np.abs(beta * x64))
    # torch's float32 sigmoid is 0 where the true value is subnormal (x * that is 0 in torch)
    tiny = float(np.finfo(dtype).tiny) * (1 + float(np.max(np.abs(x64))))
    assert_rel_close(af.swish(x, beta=beta), y_t, rtol=rtol, atol=tiny)
    grad_input, grad_beta = af.swish.backward(g, x, beta=beta)
    assert_rel_close(grad_input, gx_t, rtol=rtol, atol=8 * eps * np.abs(g64))
    scale = float(np.sum(np.abs(g64 * R.swish_grad(x64, beta)[1])))
    assert_rel_close(grad_beta, gb_t, rtol=0,
                     atol=(2e-5 if dtype == np.float32 else 1e-12) * scale)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_pact_matches_torch_clamp_except_at_alpha(dtype, torch, rng):
    alpha = 1.5
    x = torch_values(rng, (50, 40), dtype)
    flat = x.reshape(-1)
    at_alpha = rng.choice(flat.size, 7, replace=False)
    flat[at_alpha] = alpha
    g = grad_values(rng, x.shape, dtype)
    fn = lambda t, a: torch.clamp(t, min=torch.zeros_like(a), max=a)  # noqa: E731
    y_t, gx_t, ga_t = _grads(torch, fn, x, np.asarray(alpha, dtype=dtype), g=g)
    y = af.pact(x, alpha)
    assert_bitwise_equal(y, y_t)                        # -0.0 kept, NaN passed, as torch
    grad_input, grad_alpha = af.pact.backward(g, x, alpha)
    equal = x == alpha
    # torch's clamp backward: grad to x on 0 <= x <= alpha (inclusive), to alpha where x > alpha
    assert_bitwise_equal(gx_t[equal], g[equal])
    assert (grad_input[equal] == 0).all()
    assert_bitwise_equal(grad_input[~equal], gx_t[~equal])
    # PACT: alpha gets x >= alpha, i.e. torch's plus the ties
    expected = ga_t.astype(np.float64) + np.sum(g[equal].astype(np.float64))
    scale = float(np.sum(np.abs(g.astype(np.float64))))
    assert_rel_close(grad_alpha, expected, rtol=0,
                     atol=(1e-6 if dtype == np.float32 else 1e-13) * scale)
