"""Tests of the softmax family (actfast.softmax, pyx/_softmax.pyx, pyx/softmax_kernels.pxd).

- the kernels' exp: accuracy over the whole float32 range that matters and a dense double
  sample, exact underflow to 0, inf, NaN; the hot loop's variant gives the same bits;
- accuracy against a long-double oracle and parity with PyTorch 2.13 (values and gradients,
  float32 and float64, several shapes and axes, size-1 and empty axes), finite differences;
- special rows (NaN, -inf, +inf, huge logits) against PyTorch, also in multi-block rows;
- masks (JAX's `where`): against PyTorch on the masked-filled input, fully masked rows,
  broadcasting, the gradient through the mask;
- a 10^7-element float32 row sums to 1;
- bitwise identical results for every thread count and memory layout (row mode, column
  mode, rows split across threads);
- the package contract: dtypes, out= (in place, overlap), 0-d, errors, the GIL.
"""
import importlib
import math

import numpy as np
import pytest

import actfast as af
from actfast import _softmax
from actfast.softmax import PARALLEL_FROM_BACKWARD, PARALLEL_FROM_FORWARD
from conftest import (REPRESENTATIONS, amd_cpu, assert_bitwise_equal, assert_other_threads_run,
                      single_thread, ulp_error)

torch = None
try:
    import torch
except ImportError:
    pass
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

AxisError = np.exceptions.AxisError if hasattr(np, "exceptions") else np.AxisError
LD = np.longdouble
FLOATS = [pytest.param(np.dtype(np.float32), id="float32"),
          pytest.param(np.dtype(np.float64), id="float64")]
ELEMENTWISE_FUNCTIONS = ["softmax", "log_softmax", "softmin"]
FUNCTIONS = ELEMENTWISE_FUNCTIONS + ["logsumexp"]
BLOCK = _softmax.BLOCK_SIZE

# (shape, axis): last axis (row mode), other axes (column mode), rows of several blocks,
# size-1 and empty axes
SHAPES = [
    ((7,), -1),
    ((64, 1000), -1),
    ((3, 2 * BLOCK + 77), 1),
    ((2 * BLOCK + 77, 3), 0),
    ((4, 300, 33), 1),
    ((2, 3, 70), 0),
    ((5, 1), -1),
    ((1, 5), 0),
    ((2, 0, 3), 1),
    ((0, 4), -1),
]


def shape_params(shapes=SHAPES):
    return [pytest.param(shape, axis, id=f"{'x'.join(map(str, shape)) or 'scalar'}-axis{axis}")
            for shape, axis in shapes]


def function(name):
    return getattr(af, name)


# backward from x for every function, and from the forward's output (logsumexp: x and its
# output)
BACKWARDS = [pytest.param(name, direction, id=f"{name}-from-{direction}")
             for name in FUNCTIONS for direction in ("x", "output")]


def backward_of(name, direction, g, x, **kw):
    """function(name).backward from x, or from the forward's output (computed here with the
    same axis and where; logsumexp takes x and its output)."""
    f = function(name)
    if direction == "x":
        return f.backward(g, x, **kw)
    y = f(x, **{k: v for k, v in kw.items() if k in ("axis", "where")})
    if name == "logsumexp":
        return f.backward(g, x, output=y, **kw)
    return f.backward(g, output=y, **kw)


@pytest.fixture
def threads():
    """Restore the thread count after a test that changes it."""
    saved = af.get_num_threads()
    yield
    af.set_num_threads(saved)


def logits(rng, shape, dtype, scale=None):
    """Random logits: normal with a scale drawn per row from 0.1 .. 100 (flat and peaked
    rows), so that the outputs span many orders of magnitude."""
    n = math.prod(shape)
    if scale is None:
        scale = np.exp(rng.uniform(math.log(0.1), math.log(100.0), n))
    return (rng.standard_normal(n) * scale).astype(dtype).reshape(shape)


def grad_output_like(rng, shape, dtype):
    return (rng.standard_normal(math.prod(shape)) * 3).astype(dtype).reshape(shape)


# ---- the oracle: long double, JAX's semantics for `where` ----------------------------------

def oracle(name, x, axis=-1, where=None):
    """softmax / log_softmax / softmin / logsumexp (keepdims) of finite x in long double."""
    x = np.asarray(x, dtype=LD)
    if name == "softmin":
        x = -x
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        xm = x if where is None else np.where(where, x, -np.inf)
        m = np.max(xm, axis=axis, keepdims=True, initial=-np.inf)
        shift = np.where(np.isfinite(m), m, 0)
        e = np.exp(xm - shift)
        s = np.sum(e, axis=axis, keepdims=True)
        if name == "logsumexp":
            return shift + np.log(s)
        if name == "log_softmax":
            z = (xm - shift) - np.log(s)
            return z if where is None else np.where(where, z, -np.inf)
        y = e / s
        return y if where is None else np.where(where, y, 0)


def oracle_grad(name, g, x, axis=-1, where=None, keepdims=False):
    """The vector-Jacobian product of oracle(name) in long double."""
    g = np.asarray(g, dtype=LD)
    if name == "logsumexp":
        if not keepdims:
            g = np.expand_dims(g, axis)
        return g * oracle("softmax", x, axis, where)
    keep = np.broadcast_to(True if where is None else where, np.shape(x))
    gm = np.where(keep, g, 0)
    if name == "log_softmax":
        y = oracle("softmax", x, axis, where)
        return np.where(keep, gm - y * np.sum(gm, axis=axis, keepdims=True), 0)
    y = oracle(name, x, axis, where)
    dx = y * (gm - np.sum(gm * y, axis=axis, keepdims=True))
    return np.where(keep, -dx if name == "softmin" else dx, 0)


def spread(x, axis, name):
    """|x_i - max| per element (in the direction the function normalises): the float
    subtraction x - max rounds, so the outputs' error grows with it (PyTorch's too)."""
    x = np.asarray(x, dtype=np.float64)
    if name == "softmin":
        x = -x
    if x.size == 0:
        return x
    return np.abs(x - np.max(x, axis=axis, keepdims=True))


def assert_ulp_bound(actual, expected, dtype, bound, what, slack=0.0):
    """Within `bound` ulps (of dtype, at the expected value) after forgiving an absolute
    `slack`."""
    err = ulp_error(actual, np.asarray(expected, dtype=np.float64), dtype, slack)
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        got, want = float(np.asarray(actual)[i]), float(np.asarray(expected)[i])
        limit = float(np.broadcast_to(bound, err.shape)[i])
        pytest.fail(f"{what}: {int(bad.sum())} of {err.size} elements beyond the bound; worst "
                    f"at {i}: {got!r} vs {want!r}, {float(err[i]):.3g} ulp > {limit:.3g}")


# ---- the kernels' exp ----------------------------------------------------------------------

def _kernel_exp(x, nonpositive=False):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _softmax.exp(x, out, nonpositive)
    return out


def _float32_sweep(rng):
    """Every 64th float32 from -110 to 90 (bit patterns), plus random ones between: ~10^7."""
    hi_pos = np.float32(90).view(np.uint32)
    hi_neg = np.float32(110).view(np.uint32)
    pos = np.arange(0, hi_pos, 64, dtype=np.uint32)
    neg = np.arange(0, hi_neg, 64, dtype=np.uint32) | np.uint32(1 << 31)
    extra = rng.integers(0, hi_pos, 10**6, dtype=np.uint32)
    return np.concatenate([pos, neg, extra]).view(np.float32)


def test_exp_float32_accuracy(rng):
    x = _float32_sweep(rng)
    y = _kernel_exp(x)
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.float64))
    assert_ulp_bound(y, expected, np.float32, 1.1, "exp_f32")


def test_exp_float64_accuracy(rng):
    x = np.concatenate([rng.uniform(-760, 710, 10**6), rng.uniform(-1, 1, 10**5),
                        rng.uniform(-745.2, -708, 10**5), rng.uniform(700, 709.78, 10**5)])
    y = _kernel_exp(x)
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(LD)).astype(np.float64)
    err = ulp_error(y, expected, np.float64)
    # ulp_error rounds the long-double reference to double first (<= 0.5 ulp)
    assert err.max() <= 1.5, f"exp_f64: {err.max():.3g} ulp at x = {x[np.argmax(err)]!r}"


SPECIAL_EXP = [
    (np.inf, np.inf), (-np.inf, 0.0), (0.0, 1.0), (-0.0, 1.0), (1e30, np.inf),
    (-1e30, 0.0), (-1000.0, 0.0),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("value, expected", SPECIAL_EXP, ids=[str(v) for v, _ in SPECIAL_EXP])
def test_exp_special_values(dtype, value, expected):
    with np.errstate(over="ignore"):
        x = np.array([value] * 11, dtype=dtype)   # vector lanes and the scalar tail
    assert np.all(_kernel_exp(x) == expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_exp_nan(dtype):
    assert np.isnan(_kernel_exp(np.full(11, np.nan, dtype=dtype))).all()


@pytest.mark.parametrize("dtype", FLOATS)
def test_exp_underflow_and_overflow_thresholds(dtype):
    """Around the largest finite result and through the subnormal range down to the
    smallest subnormal: within an ulp of the double (long double) reference; exactly 0
    below half the smallest subnormal, inf beyond the largest finite value."""
    info = np.finfo(dtype)
    top = math.log(float(info.max))
    tiny = math.log(float(info.smallest_subnormal))
    x = np.concatenate([np.linspace(top - 0.01, top + 0.01, 20001),
                        np.linspace(tiny - 2, math.log(float(info.tiny)) + 1, 200001)])
    x = x.astype(dtype)
    y = _kernel_exp(x)
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(LD))
        err = ulp_error(y, ref.astype(np.float64), dtype)
        assert err.max() <= 1.5, f"{err.max():.3g} ulp at x = {x[np.argmax(err)]!r}"
        assert np.all(y[ref.astype(dtype) == 0] == 0)
    assert np.all(np.isinf(y[ref > LD(float(info.max))]))


@pytest.mark.parametrize("dtype", FLOATS)
def test_exp_hot_loop_variant_same_bits(dtype, rng):
    low = -120.0 if dtype == np.float32 else -800.0
    x = np.concatenate([rng.uniform(low, 0, 10**5), rng.uniform(-1, 0, 10**4),
                        [0.0, -0.0, -np.inf, low], rng.uniform(0, 40, 100)]).astype(dtype)
    assert_bitwise_equal(_kernel_exp(x, nonpositive=True), _kernel_exp(x))


# ---- accuracy against the oracle -----------------------------------------------------------

# Error bounds in ulps. Every e_j = exp(x_j - max) is computed from x_j - max rounded in the
# data's precision, as PyTorch does: a relative error up to ~|x_j - max| / 2 ulp. softmax and
# softmin pass it on to their outputs; log_softmax and logsumexp only through
# L = log(sum e_j): an absolute error up to ~(2 + max |x_j - max|) eps L (plus n 2^-52 from the
# double sum), which shows only where the result is near 0. Otherwise these two are rounded
# once from double (log_softmax: ((x - max) - L_hi) - L_lo, nothing cancels).
# softmax/softmin: exp (1 ulp) of a rounded x - max (|x - max| ulp), the sum's and the
# division's roundings: 4 + spread (4 ulp seen at outputs near 1 in float64)
ULP_BOUND = {"softmax": lambda s: 4 + s, "softmin": lambda s: 4 + s,
             "log_softmax": lambda s: 2.0, "logsumexp": lambda s: 1.5}


def log_sum_slack(name, x, axis, dtype):
    """The absolute error allowed in L = log S (see ULP_BOUND), per element of the result."""
    if name not in ("log_softmax", "logsumexp"):
        return 0.0
    L = np.log(np.sum(np.exp(-spread(x, axis, name)), axis=axis, keepdims=True))
    worst = np.max(spread(x, axis, name), axis=axis, keepdims=True, initial=0.0)
    slack = (2 + worst) * np.finfo(dtype).eps * L + np.shape(x)[axis] * 2.0**-52
    return slack if name == "log_softmax" else np.squeeze(slack, axis)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params(SHAPES[:6]))
def test_accuracy_against_oracle(name, dtype, shape, axis, rng):
    x = logits(rng, shape, dtype)
    y = function(name)(x, axis=axis)
    expected = oracle(name, x, axis)
    if name == "logsumexp":
        expected = np.squeeze(expected, axis)
        bound = ULP_BOUND[name](0)
    else:
        bound = ULP_BOUND[name](spread(x, axis, name))
    assert y.dtype == dtype and y.shape == expected.shape
    assert_ulp_bound(y, expected, dtype, bound, name, log_sum_slack(name, x, axis, dtype))


@pytest.mark.parametrize("name, direction", BACKWARDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params(SHAPES[:6]))
def test_backward_accuracy_against_oracle(name, dtype, direction, shape, axis, rng):
    x = logits(rng, shape, dtype)
    f = function(name)
    if name == "logsumexp":
        g = grad_output_like(rng, f(x, axis=axis).shape, dtype)
        gx = backward_of(name, direction, g, x, axis=axis)
        expected = oracle_grad(name, g, x, axis)
        scale = np.abs(np.expand_dims(g, axis)) * oracle("softmax", x, axis)
    else:
        g = grad_output_like(rng, shape, dtype)
        gx = backward_of(name, direction, g, x, axis=axis)
        expected = oracle_grad(name, g, x, axis)
        y = oracle("softmax" if name == "log_softmax" else name, x, axis)
        if name == "log_softmax":
            scale = np.abs(g) + y * np.sum(np.abs(g), axis=axis, keepdims=True)
        else:
            scale = y * (np.abs(g) + np.sum(np.abs(g) * y, axis=axis, keepdims=True))
    # a few roundings of the output (whose error grows with |x - max|) and of the products,
    # and where they are subnormal, a few of the smallest subnormals times the factors
    info = np.finfo(dtype)
    eps, tiny = info.eps, float(info.smallest_subnormal)
    g_scale = np.abs(np.asarray(g, np.float64))
    if name == "logsumexp":
        g_scale = np.expand_dims(g_scale, axis)
    g_scale = g_scale + np.max(g_scale, axis=axis, keepdims=True, initial=0.0)
    allowed = (8 * eps * (1 + spread(x, axis, name)) * scale.astype(np.float64)
               + 4 * tiny * (1 + g_scale))
    if direction == "output" and name == "log_softmax":
        # exp of the rounded log: z's absolute error (up to ~|z| ulp) times dz
        allowed = allowed + 4 * eps * np.abs(np.asarray(f(x, axis=axis), np.float64)) * scale
    if direction == "output" and name == "logsumexp":
        # exp(x - L) of the rounded L: its absolute error (half an ulp of |L|) times the value
        L = np.expand_dims(np.asarray(f(x, axis=axis), np.float64), axis)
        allowed = allowed + 2 * eps * np.abs(L) * scale
    err = np.abs(gx.astype(np.float64) - expected.astype(np.float64))
    assert gx.dtype == dtype and gx.shape == x.shape
    bad = err > allowed + 1e-300
    assert not bad.any(), (f"{int(bad.sum())} of {err.size} beyond the bound; worst ratio "
                           f"{float(np.max(err / (allowed + 1e-300))):.3g}")


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape, axis", shape_params([((3, 7), -1), ((5, 4, 3), 1), ((6, 2), 0)]))
def test_backward_matches_finite_differences(name, shape, axis, rng):
    x = rng.standard_normal(shape) * 2
    f = function(name)
    g = rng.standard_normal(f(x, axis=axis).shape)
    gx = f.backward(g, x, axis=axis)
    h = 1e-6
    numeric = np.empty_like(x)
    for i in np.ndindex(shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (np.sum(g * f(up, axis=axis)) - np.sum(g * f(down, axis=axis))) / (2 * h)
    np.testing.assert_allclose(gx, numeric, rtol=1e-6, atol=1e-8)


# ---- parity with PyTorch -------------------------------------------------------------------

def _tensor(a):
    return torch.from_numpy(np.array(a, copy=True, order="C"))


def torch_forward(name, x, axis):
    t = _tensor(x)
    if name == "softmin":
        return torch.nn.functional.softmin(t, dim=axis).numpy()
    if name == "logsumexp":
        return torch.logsumexp(t, dim=axis).numpy()
    return getattr(torch, name)(t, dim=axis).numpy()


def torch_backward(name, g, x, axis):
    t = _tensor(x).requires_grad_()
    if name == "softmin":
        y = torch.nn.functional.softmin(t, dim=axis)
    elif name == "logsumexp":
        y = torch.logsumexp(t, dim=axis)
    else:
        y = getattr(torch, name)(t, dim=axis)
    y.backward(_tensor(g))
    return t.grad.numpy()


TOLERANCE = {np.dtype(np.float32): (3e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def term_scale(name, g, x, axis):
    """The size of the terms of the vector-Jacobian product, elementwise: the scale of the
    rounding errors of any implementation (PyTorch's float32 sums over a row included)."""
    g = np.abs(np.asarray(g, dtype=np.float64))
    if name == "logsumexp":
        return np.expand_dims(g, axis) * oracle("softmax", x, axis).astype(np.float64)
    y = oracle("softmax" if name == "log_softmax" else name, x, axis).astype(np.float64)
    if name == "log_softmax":
        return g + y * np.sum(g, axis=axis, keepdims=True)
    return y * (g + np.sum(g * y, axis=axis, keepdims=True))


@needs_torch
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params())
def test_forward_matches_torch(name, dtype, shape, axis, rng):
    x = logits(rng, shape, dtype, scale=5.0)
    y = function(name)(x, axis=axis)
    expected = torch_forward(name, x, axis)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    rtol, atol = TOLERANCE[dtype]
    if name in ("log_softmax", "logsumexp"):
        # PyTorch's float32 sum over a row (float lanes) has a relative error of ~1e-6 at
        # n ~ 4000, which is an absolute error in log S
        atol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)


@needs_torch
@pytest.mark.parametrize("name, direction", BACKWARDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params())
def test_backward_matches_torch(name, dtype, direction, shape, axis, rng):
    x = logits(rng, shape, dtype, scale=5.0)
    f = function(name)
    g = grad_output_like(rng, f(x, axis=axis).shape, dtype)
    gx = backward_of(name, direction, g, x, axis=axis)
    expected = torch_backward(name, g, x, axis)
    assert gx.shape == expected.shape and gx.dtype == expected.dtype
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    allowed = rtol * (np.abs(expected) + term_scale(name, g, x, axis)) + TOLERANCE[dtype][1]
    err = np.abs(gx.astype(np.float64) - expected)
    assert np.all(err <= allowed), f"worst ratio {np.max(err / allowed):.3g}"


# ---- special rows --------------------------------------------------------------------------

INF, NAN = math.inf, math.nan
SPECIAL_ROWS = {
    "nan": [1.0, NAN, 2.0, -1.0],
    "all-nan": [NAN, NAN],
    "all-minus-inf": [-INF, -INF, -INF],
    "some-minus-inf": [-INF, 1.0, -INF, 3.0],
    "plus-inf": [1.0, INF, 2.0],
    "two-plus-inf": [INF, -1.0, INF],
    "plus-inf-and-nan": [INF, NAN, 0.0],
    "plus-and-minus-inf": [INF, -INF, 0.0],
    "nan-and-minus-inf": [NAN, -INF],
    "single-minus-inf": [-INF],
    "single-plus-inf": [INF],
    "single-finite": [2.5],
    "zeros-signed": [0.0, -0.0, 0.0],
    "huge-equal": [1e30, 1e30, -1e30],
    "huge-spread": [1e30, -1e30, 3e38, -3e38],
}


def special_row(name, dtype, long_row):
    """The row, alone, or scattered into a row of 3 blocks of small random logits (a long
    row: the block combination must carry the special values)."""
    values = np.array(SPECIAL_ROWS[name], dtype=dtype)
    if not long_row:
        return values[None, :]
    row = np.random.default_rng(7).standard_normal(3 * BLOCK).astype(dtype)
    positions = [BLOCK + 5, 2 * BLOCK + 100, 17, 3 * BLOCK - 1][:len(values)]
    if name in ("all-minus-inf", "all-nan"):
        row[:] = values[0]
    row[positions] = values
    return row[None, :]


@needs_torch
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("long_row", [False, True], ids=["short", "3-blocks"])
@pytest.mark.parametrize("row", list(SPECIAL_ROWS))
def test_special_rows_as_torch(name, dtype, long_row, row):
    with np.errstate(over="ignore"):
        x = special_row(row, dtype, long_row)
    y = function(name)(x, axis=-1)
    expected = torch_forward(name, x, -1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected), err_msg="NaN positions")
    np.testing.assert_allclose(y, expected, rtol=TOLERANCE[dtype][0], atol=TOLERANCE[dtype][1])


@needs_torch
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("row", list(SPECIAL_ROWS))
def test_special_rows_backward_as_torch(name, dtype, row):
    with np.errstate(over="ignore"):
        x = special_row(row, dtype, False)
    f = function(name)
    g = np.linspace(-1, 2, f(x).size).astype(dtype).reshape(f(x).shape)
    gx = f.backward(g, x)
    expected = torch_backward(name, g, x, -1)
    if name == "logsumexp" and row.startswith("huge"):
        # PyTorch's g * exp(x - lse) with lse rounded (1e30 + log 2 = 1e30 in float) gives
        # g * 1 for each maximal element; the gradient is g * softmax(x)
        expected = (g[..., None] * oracle("softmax", x, -1)).astype(dtype)
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(expected), err_msg="NaN positions")
    np.testing.assert_allclose(gx, expected, rtol=TOLERANCE[dtype][0], atol=TOLERANCE[dtype][1])


@pytest.mark.parametrize("dtype, big", [pytest.param(np.float32, 1e30, id="float32-1e30"),
                                        pytest.param(np.float32, 3e38, id="float32-3e38"),
                                        pytest.param(np.float64, 1e300, id="float64-1e300")])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_huge_logits_stay_finite(name, dtype, big, rng):
    # rows of +-big with a small random perturbation relative to big: no overflow, no NaN,
    # and the values of the oracle (which has the range for it)
    x = (big * rng.choice([-1.0, 1.0, 0.5], size=(8, 50)) * (1 + rng.uniform(-1e-3, 1e-3, (8, 50))))
    x = x.astype(dtype)
    y = function(name)(x)
    expected = oracle(name, x, -1)
    if name == "logsumexp":
        expected = expected[:, 0]
    with np.errstate(over="ignore"):
        expected = expected.astype(dtype)    # log_softmax of -3e38 - 3e38 overflows to -inf
    assert not np.any(np.isnan(y))
    assert np.all(np.isfinite(y) == np.isfinite(expected))
    np.testing.assert_allclose(y, expected, rtol=4 * np.finfo(dtype).eps,
                               atol=float(np.finfo(dtype).tiny))
    if name != "log_softmax" and name != "logsumexp":
        np.testing.assert_allclose(np.sum(y, axis=-1, dtype=np.float64), 1.0, rtol=1e-6)


# ---- masks ---------------------------------------------------------------------------------

def random_mask(rng, shape, fully_masked_rows=True, axis=-1):
    mask = rng.random(shape) < 0.7
    if fully_masked_rows and mask.size:
        index = [slice(None)] * len(shape)
        index[axis] = slice(None)
        moved = np.moveaxis(mask, axis, -1)
        moved[(0,) * (moved.ndim - 1)] = False          # one fully masked row
        moved[(-1,) * (moved.ndim - 1)] = True          # one unmasked row
    return mask


def partly_masked_logits(rng, shape, dtype, kept):
    """2-d logits and a random mask that keeps column `kept` of every row: no row is fully
    masked, so PyTorch on the masked-filled input is defined."""
    x = logits(rng, shape, dtype, scale=5.0)
    mask = random_mask(rng, shape, fully_masked_rows=False)
    mask[:, kept] = True
    return x, mask


def torch_masked(name, x, mask, axis):
    """PyTorch on the masked-filled input: masked elements as -inf (+inf for softmin)."""
    fill = np.inf if name == "softmin" else -np.inf
    return torch_forward(name, np.where(mask, x, fill).astype(x.dtype), axis)


MASK_SHAPES = [((6, 50), -1), ((5, 2 * BLOCK + 9), -1), ((40, 7, 3), 0), ((3, 2 * BLOCK + 9, 4), 1)]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params(MASK_SHAPES))
def test_mask_against_oracle(name, dtype, shape, axis, rng):
    x = logits(rng, shape, dtype, scale=5.0)
    mask = random_mask(rng, shape, axis=axis)
    y = function(name)(x, axis=axis, where=mask)
    expected = oracle(name, x, axis, mask)
    if name == "logsumexp":
        expected = np.squeeze(expected, axis)
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(y, expected.astype(np.float64), rtol=rtol, atol=atol)
    if name in ("softmax", "softmin"):
        assert np.all(y[~mask] == 0)
        sums = np.sum(y, axis=axis, dtype=np.float64)
        any_kept = np.any(mask, axis=axis)
        np.testing.assert_allclose(sums[any_kept], 1.0, rtol=1e-6)
        assert np.all(sums[~any_kept] == 0), "a fully masked row gives zeros"
    elif name == "log_softmax":
        assert np.all(y[~mask] == -np.inf)
    else:
        assert np.all(y[~np.any(mask, axis=axis)] == -np.inf)


@needs_torch
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_partial_mask_as_torch_on_filled_input(name, dtype, rng):
    x, mask = partly_masked_logits(rng, (20, 30), dtype, kept=0)
    y = function(name)(x, where=mask)
    rtol, atol = TOLERANCE[dtype]
    np.testing.assert_allclose(y, torch_masked(name, x, mask, -1), rtol=rtol, atol=atol)


@needs_torch
@pytest.mark.parametrize("dtype", FLOATS)
def test_fully_masked_rows_as_torch_safe_softmax(dtype, rng):
    x = logits(rng, (6, 9), dtype)
    mask = np.ones(x.shape, dtype=bool)
    mask[[1, 4]] = False
    expected = torch._safe_softmax(torch.from_numpy(np.where(mask, x, -np.inf).astype(dtype)),
                                   -1).numpy()
    np.testing.assert_allclose(af.softmax(x, where=mask), expected,
                               rtol=TOLERANCE[dtype][0], atol=TOLERANCE[dtype][1])


@pytest.mark.parametrize("name, direction", BACKWARDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params(MASK_SHAPES))
def test_mask_backward_against_oracle(name, dtype, direction, shape, axis, rng):
    x = logits(rng, shape, dtype, scale=5.0)
    mask = random_mask(rng, shape, axis=axis)
    f = function(name)
    g = grad_output_like(rng, f(x, axis=axis, where=mask).shape, dtype)
    gx = backward_of(name, direction, g, x, axis=axis, where=mask)
    expected = oracle_grad(name, g, x, axis, mask)
    np.testing.assert_allclose(gx, expected.astype(np.float64), rtol=TOLERANCE[dtype][0],
                               atol=30 * TOLERANCE[dtype][1])
    assert np.all(gx[~mask] == 0), "no gradient through a masked-out element"


@needs_torch
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_mask_backward_as_torch_on_filled_input(name, dtype, rng):
    x, mask = partly_masked_logits(rng, (10, 40), dtype, kept=3)
    f = function(name)
    g = grad_output_like(rng, f(x).shape, dtype)
    if name != "logsumexp":
        # JAX's `where`: masked outputs are constants, their grad_output goes nowhere (in
        # PyTorch the filled -inf of log_softmax still depends on the row's sum)
        g = np.where(mask, g, rng.standard_normal(g.shape).astype(dtype))
    t = torch.from_numpy(x).requires_grad_()
    fill = np.inf if name == "softmin" else -np.inf
    filled = t.masked_fill(torch.from_numpy(~mask), fill)
    y = (torch.nn.functional.softmin(filled, -1) if name == "softmin" else
         torch.logsumexp(filled, -1) if name == "logsumexp" else getattr(torch, name)(filled, -1))
    y.backward(torch.from_numpy(np.where(mask, g, 0) if name != "logsumexp" else g))
    np.testing.assert_allclose(f.backward(g, x, where=mask), t.grad.numpy(),
                               rtol=TOLERANCE[dtype][0], atol=10 * TOLERANCE[dtype][1])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_masked_out_specials_are_ignored(name):
    x = np.array([[1.0, np.nan, 2.0, np.inf, -np.inf, 0.5]])
    mask = np.array([True, False, True, False, False, True])
    y = function(name)(x, where=mask)
    expected = function(name)(x[:, mask])
    if name == "logsumexp":
        np.testing.assert_array_equal(y, expected)
    else:
        np.testing.assert_array_equal(y[:, mask], expected)
        assert np.all(y[:, ~mask] == (-np.inf if name == "log_softmax" else 0))


@pytest.mark.parametrize("mask_shape", [(50,), (6, 1), (1, 50), ()],
                         ids=["row", "column", "row-2d", "scalar"])
def test_mask_broadcasts(mask_shape, rng):
    x = logits(rng, (6, 50), np.float64)
    mask = rng.random(mask_shape) < 0.6 if mask_shape else np.bool_(True)
    if mask_shape == (50,):
        mask[0] = True
    full = np.broadcast_to(mask, x.shape)
    assert_bitwise_equal(af.softmax(x, where=mask), af.softmax(x, where=full.copy()))


def test_mask_must_be_boolean(rng):
    with pytest.raises(TypeError, match="where"):
        af.softmax(rng.standard_normal((3, 4)), where=np.ones((3, 4), dtype=np.int8))


def test_mask_must_broadcast(rng):
    with pytest.raises(ValueError, match="where"):
        af.softmax(rng.standard_normal((3, 4)), where=np.ones((4, 3), dtype=bool))


# ---- long rows -----------------------------------------------------------------------------

def test_long_float32_row_sums_to_one(rng, threads):
    n = 10**7
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    results = {}
    for count in (1, 2):
        af.set_num_threads(count)
        results[count] = af.softmax(x)
    assert_bitwise_equal(results[2], results[1], what="2 threads against 1")
    total = np.sum(results[1], dtype=np.float64)
    assert abs(total - 1.0) < 1e-6, f"sum of the outputs is 1 + {total - 1:.3g}"
    # and the row's logsumexp is the long-double one to within an ulp
    expected = oracle("logsumexp", x[:10**6], -1)[0]
    assert_ulp_bound(af.logsumexp(x[:10**6]), expected, np.float32, 1.0, "logsumexp")


# ---- determinism: threads and layouts ------------------------------------------------------

# each exercises one way of cutting the work: whole rows per thread, long rows cut into
# blocks across threads, column mode with wide and with narrow units
DETERMINISM_SHAPES = [((64, 1000), -1), ((3, 20 * BLOCK + 3), -1), ((1, 40 * BLOCK), -1),
                      ((700, 90), 0), ((3 * BLOCK + 1, 9), 0), ((5, 4000, 2), 1)]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("shape, axis", shape_params(DETERMINISM_SHAPES))
def test_bitwise_identical_for_any_thread_count(name, masked, shape, axis, rng, threads):
    x = logits(rng, shape, np.float32)
    mask = rng.random(shape) < 0.8 if masked else None
    f = function(name)
    g = grad_output_like(rng, f(x, axis=axis).shape, np.float32)
    af.set_num_threads(1)
    forward = f(x, axis=axis, where=mask)
    backward = f.backward(g, x, axis=axis, where=mask)
    for count in (2, 3, 7):
        af.set_num_threads(count)
        assert_bitwise_equal(f(x, axis=axis, where=mask), forward, what=f"{count} threads")
        assert_bitwise_equal(f.backward(g, x, axis=axis, where=mask), backward,
                             what=f"backward, {count} threads")


# the smallest calls that run on two threads: each thread gets a few rows (or columns)
THRESHOLD_CASES = [pytest.param(dtype, size, axis, id=f"{np.dtype(dtype).name}-{size}-axis{axis}")
                   for dtype in (np.float32, np.float64)
                   for size in sorted({PARALLEL_FROM_FORWARD[np.dtype(dtype).itemsize],
                                       PARALLEL_FROM_BACKWARD[np.dtype(dtype).itemsize]})
                   for axis in (-1, 0)]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype, size, axis", THRESHOLD_CASES)
def test_calls_at_the_parallel_thresholds_give_one_threads_bits(name, dtype, size, axis, rng,
                                                                threads):
    shape = (size // 64, 64)
    x = logits(rng, shape, dtype)
    f = function(name)
    g = grad_output_like(rng, f(x, axis=axis).shape, dtype)
    af.set_num_threads(1)
    forward, backward = f(x, axis=axis), f.backward(g, x, axis=axis)
    af.set_num_threads(2)
    assert_bitwise_equal(f(x, axis=axis), forward, what="forward, 2 threads")
    assert_bitwise_equal(f.backward(g, x, axis=axis), backward, what="backward, 2 threads")


# ---- streamed stores: calls whose operands exceed the last-level cache ----------------------
# From STREAM_FROM bytes of operands on, row mode computes log_softmax's outputs and the
# backward's (rows of up to STREAM_ROW elements) a block at a time into a buffer and streams
# them to the output (pyx/_softmax.pyx). The bits must be those of the stores in place. The
# threshold is lowered to 0 to run that path on small arrays: rows of one block, of several,
# cut across threads, and longer than STREAM_ROW; masked, out= off the vector boundary, in
# place.

STREAM_SHAPES = [(9, 700), (4, 3 * BLOCK + 5), (1, 5 * BLOCK + 3), (2, 40000)]


def _all_results(f, x, g, mask):
    """Every forward and backward of f on x (as a dict): plain, into an out= off the vector
    boundary, in place; the backwards from the output and from x, in place into g."""
    dtype = x.dtype
    results = {"forward": f(x, where=mask)}
    out = np.empty(x.size + 1, dtype)[1:].reshape(x.shape)
    assert f(x, where=mask, out=out) is out
    results["forward out="] = out
    inplace = x.copy()
    f(inplace, where=mask, out=inplace)
    results["forward in place"] = inplace
    y = results["forward"]
    results["backward from the output"] = f.backward(g, output=y, where=mask)
    results["backward from x"] = f.backward(g, x, where=mask)
    out = np.empty(x.size + 1, dtype)[1:].reshape(x.shape)
    f.backward(g, output=y, where=mask, out=out)
    results["backward out="] = out
    inplace = g.copy()
    f.backward(inplace, output=y, where=mask, out=inplace)
    results["backward in place"] = inplace
    return results


def test_backward_dot_prefetches_but_on_amd():
    # a backward's dot over a row taken whole by one thread prefetches ahead, but on AMD's
    # CPUs (pyx/stream.h's af_amd_cpu; the bits are the same either way)
    if amd_cpu() is None:
        pytest.skip("no CPU vendor in /proc/cpuinfo")
    assert _softmax.PREFETCHES_DOT == (not amd_cpu())


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("shape", STREAM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_streamed_stores_give_the_same_bits(name, dtype, masked, shape, rng, threads):
    x = logits(rng, shape, dtype)
    x.ravel()[rng.integers(0, x.size, 3)] = [np.inf, -np.inf, np.nan]   # special rows too
    g = grad_output_like(rng, shape, dtype)
    mask = rng.random(shape) < 0.8 if masked else None
    f = function(name)
    for count in (1, 2):
        af.set_num_threads(count)
        expected = _all_results(f, x, g, mask)
        saved = _softmax.set_stream_from(0)
        try:
            streamed = _all_results(f, x, g, mask)
        finally:
            _softmax.set_stream_from(saved)
        for what, result in streamed.items():
            assert_bitwise_equal(result, expected[what], what=f"{what}, {count} threads")


@pytest.mark.parametrize("dtype", FLOATS)
def test_streamed_calls_at_full_size_give_the_same_bits(dtype, rng, threads):
    # at the real threshold: rows of 4096 in a call of 32 MiB and more, against the same
    # rows a few at a time (below the threshold)
    rows = _softmax.STREAM_FROM_BYTES // (2 * 4096 * dtype.itemsize) + 3
    x = logits(rng, (rows, 4096), dtype)
    g = grad_output_like(rng, x.shape, dtype)
    af.set_num_threads(2)
    pieces = [slice(r, r + 64) for r in range(0, rows, 64)]
    y = af.log_softmax(x)
    assert_bitwise_equal(y, np.concatenate([af.log_softmax(x[p]) for p in pieces]))
    assert_bitwise_equal(af.log_softmax.backward(g, output=y),
                         np.concatenate([af.log_softmax.backward(g[p], output=y[p])
                                         for p in pieces]), what="backward")


LAYOUTS = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "transposed-view": lambda a: np.ascontiguousarray(a.T).T,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "reversed": lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1],
    **REPRESENTATIONS,
}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("axis", [0, 1])
def test_bitwise_identical_for_any_layout(name, layout, axis, rng):
    x = logits(rng, (300, 2 * BLOCK + 5), np.float32)
    f = function(name)
    g = grad_output_like(rng, f(x, axis=axis).shape, np.float32)
    xl = LAYOUTS[layout](x)
    assert np.array_equal(xl, x)
    assert_bitwise_equal(f(xl, axis=axis), f(x, axis=axis))
    assert_bitwise_equal(f.backward(g, xl, axis=axis), f.backward(g, x, axis=axis))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_row_mode_and_column_mode_agree(name, dtype, masked, rng):
    # the same logical rows along the last axis (row mode) and along axis 0 (column mode)
    x = logits(rng, (2 * BLOCK + 300, 37), dtype)
    mask = rng.random(x.shape) < 0.8 if masked else None
    f = function(name)
    xt = np.ascontiguousarray(x.T)
    mask_t = None if mask is None else np.ascontiguousarray(mask.T)
    columns = f(x, axis=0, where=mask)
    rows = f(xt, axis=1, where=mask_t)
    assert_bitwise_equal(columns, rows.T if rows.ndim == 2 else rows)
    g = grad_output_like(rng, columns.shape, dtype)
    g_t = np.ascontiguousarray(g.T) if g.ndim == 2 else g
    assert_bitwise_equal(f.backward(g, x, axis=0, where=mask),
                         f.backward(g_t, xt, axis=1, where=mask_t).T, what="backward from x")
    if name != "logsumexp":
        assert_bitwise_equal(f.backward(g, output=columns, axis=0, where=mask),
                             f.backward(g_t, output=rows, axis=1, where=mask_t).T,
                             what="backward from the output")


# rows of 40 elements and of 3 blocks (split across threads on 2), 1 and 2 threads
NAN_ROWS = pytest.mark.parametrize("n, n_threads", [
    pytest.param(n, t, id=f"{'3-blocks' if n > 40 else 'short'}-{t}-thread")
    for n in (40, 3 * BLOCK) for t in (1, 2)])


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@NAN_ROWS
def test_nan_dot_products_have_one_sign_in_every_mode(name, dtype, n, n_threads, rng, threads):
    # A row whose grad_output holds +inf and -inf (and NaNs) has a NaN dot product; whichever
    # NaN an addition keeps depended on the loop (column mode gave -NaN, row mode +NaN): now
    # PyTorch's +NaN in row mode, column mode, rows split across threads, every layout
    af.set_num_threads(n_threads)
    f = function(name)
    x = logits(rng, (n, 5), dtype)         # the rows run along axis 0
    g = grad_output_like(rng, x.shape, dtype)
    g[5, :3], g[n - 3, :3] = -np.inf, np.inf                  # rows 0-2: +inf and -inf
    g[n // 2, 1] = np.nan                                     # row 1: and a NaN
    g[n // 3, 2] = -np.array(np.nan, dtype)                   # row 2: and a negative NaN
    g[7, 3] = np.nan                                          # row 3: a NaN alone
    for source in ("x", "output"):
        v = x if source == "x" else f(x, axis=0)
        columns = in_every_mode(lambda gl, vl, axis: f.backward(gl, **{source: vl}, axis=axis),
                                g, v, f"backward from {source}")
        assert np.all(np.isnan(columns[:, :4])) and not np.any(np.isnan(columns[:, 4]))
        from_dot = np.isnan(columns) & ~np.isnan(g)          # NaN from the dot product alone
        assert from_dot.any() and not np.any(np.signbit(columns[from_dot]))


def in_every_mode(call, a, b, what):
    """call(a, b, axis) along axis 0 of C arrays (column mode), along axis 1 of their
    transposes (row mode) and along axis 0 of their Fortran copies: the same bits (the
    column-mode result is returned)."""
    columns = call(a, b, 0)
    rows = call(np.ascontiguousarray(a.T) if a.ndim == 2 else a, np.ascontiguousarray(b.T), 1)
    fortran = call(np.asfortranarray(a), np.asfortranarray(b), 0)
    assert_bitwise_equal(rows.T if rows.ndim == 2 else rows, columns, what=f"{what}, row mode")
    assert_bitwise_equal(fortran, columns, what=f"{what}, Fortran layout")
    return columns


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@NAN_ROWS
def test_nan_rows_have_one_sign_in_every_mode(name, dtype, n, n_threads, rng, threads):
    # Rows whose x holds NaNs of either sign, or +-inf with them: their NaN outputs (and
    # logsumexp's NaN) came with signs that depended on the loop (row mode +NaN, column mode
    # -NaN for the same row); now PyTorch's +NaN wherever a row's statistics are NaN, in the
    # forward, the backward from x (which computes the forward first) and logsumexp's
    # backward, in row mode, column mode, rows split across threads and every layout
    af.set_num_threads(n_threads)
    f = function(name)
    with np.errstate(invalid="ignore"):
        negative_nan = np.array(np.inf, dtype) - np.array(np.inf, dtype)   # 0xffc00000
    x = logits(rng, (n, 6), dtype)          # the rows run along axis 0
    x[3, 0], x[n - 2, 0] = np.inf, negative_nan                           # row 0
    x[n // 2, 1] = np.nan                                                 # row 1
    x[7, 2], x[n // 3, 2] = negative_nan, np.nan                          # row 2
    x[1, 3], x[n - 1, 3] = -np.inf, negative_nan                          # row 3
    x[5, 4] = np.inf                                                      # row 4: +inf alone
    g = grad_output_like(rng, f(x, axis=0).shape, dtype)
    for call, what in ((lambda gl, xl, axis: f(xl, axis=axis), "forward"),
                       (lambda gl, xl, axis: f.backward(gl, xl, axis=axis), "backward from x")):
        columns = in_every_mode(call, g, x, what)
        nan = np.isnan(columns)
        assert nan.any() and not np.any(np.signbit(columns[nan]))


# ---- rows of a wider array: row-strided operands, not copied --------------------------------
# Along the last axis, an operand whose rows are contiguous but farther apart than their
# length (a slice x[:, :n] of a wider array, leading axes that walk the rows at one stride)
# goes to the loops as it is (softmax._Layout.loop_view, pyx/_softmax.pyx rows_fit): the
# bits of the same call on contiguous copies, for every operand and every way of writing.

softmax_module = importlib.import_module("actfast.softmax")  # (af.softmax: the function)
ROW_STRIDED_SHAPES = [(64, 1000), (3, 2 * BLOCK + 77), (4, 5, 300), (2, 1, 3, 40)]


def wider(rng, values, pad=13):
    """`values` as the first columns of a wider array (other values in the other columns)."""
    shape = values.shape[:-1] + (values.shape[-1] + pad,)
    buffer = grad_output_like(rng, shape, values.dtype)
    buffer[..., :values.shape[-1]] = values
    return buffer[..., :values.shape[-1]]


@pytest.mark.parametrize("shape", ROW_STRIDED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_strided_operands_go_to_the_loops_as_they_are(shape, rng):
    x = wider(rng, logits(rng, shape, np.float32))
    layout = softmax_module._Layout(x, x.ndim - 1)
    loop = layout.loop_view(x)
    assert loop is not None and loop.shape == layout.dims and np.shares_memory(loop, x)
    assert not loop.flags.c_contiguous   # (the copy it replaces would be)


def test_other_strided_operands_are_copied(rng):
    # leading axes that do not walk the rows at one stride, rows in reverse, columns
    # (column mode takes C-contiguous operands only)
    x = logits(rng, (4, 6, 310), np.float32)
    for other, axis in ((x[:, :5, :300], 2), (x[::-1, :, :300], 2), (x[:, 2, :300], 0)):
        layout = softmax_module._Layout(other, axis)
        assert layout.loop_view(other) is None
        loop = layout.to_loop(other)
        assert loop.flags.c_contiguous and not np.shares_memory(loop, x)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("n_threads", [1, 2], ids=["1-thread", "2-threads"])
@pytest.mark.parametrize("shape", ROW_STRIDED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_strided_calls_give_the_contiguous_bits(name, dtype, masked, n_threads, shape,
                                                    rng, threads):
    af.set_num_threads(n_threads)
    f = function(name)
    xc = logits(rng, shape, dtype)
    mask = rng.random(shape) < 0.8 if masked else None
    x = wider(rng, xc)
    expected = f(xc, where=mask)
    assert_bitwise_equal(f(x, where=mask), expected, what="forward")
    gc = grad_output_like(rng, expected.shape, dtype)
    g = wider(rng, gc) if gc.ndim else gc
    expected_from_x = f.backward(gc, xc, where=mask)
    assert_bitwise_equal(f.backward(g, x, where=mask), expected_from_x, what="backward from x")
    out = wider(rng, np.zeros(shape, dtype))
    if name == "logsumexp":
        assert f.backward(g, x, where=mask, out=out) is out
        assert_bitwise_equal(out, expected_from_x, what="backward into a row-strided out")
        return
    assert f(x, where=mask, out=out) is out
    assert_bitwise_equal(out, expected, what="forward into a row-strided out")
    in_place = wider(rng, xc)
    f(in_place, where=mask, out=in_place)
    assert_bitwise_equal(in_place, expected, what="forward in place")
    assert f.backward(g, x, where=mask, out=out) is out
    assert_bitwise_equal(out, expected_from_x, what="backward from x into out")
    into_g = wider(rng, gc)
    f.backward(into_g, x, where=mask, out=into_g)
    assert_bitwise_equal(into_g, expected_from_x, what="backward from x into grad_output")
    y = wider(rng, expected)
    expected_from_y = f.backward(gc, output=expected, where=mask)
    assert_bitwise_equal(f.backward(g, output=y, where=mask), expected_from_y,
                         what="backward from the output")
    f.backward(g, output=y, where=mask, out=y)
    assert_bitwise_equal(y, expected_from_y, what="backward from the output into it")


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("shift", [1, -1, 20])
def test_row_strided_out_overlapping_the_input(name, shift, rng):
    # x and out rows of one buffer, out shifted: the result of the call on a copy of x
    f = function(name)
    buffer = logits(rng, (50, 400), np.float64)
    x = buffer[:, 30:330]
    expected = f(x.copy())
    out = buffer[:, 30 + shift:330 + shift]
    assert f(x, out=out) is out
    assert_bitwise_equal(out, expected)


def test_the_loops_take_only_contiguous_or_row_strided_operands():
    x = np.ones((4, 10, 1), np.float32)
    op = _softmax.FORWARD_OPS["softmax"]
    rows = np.ones((4, 30), np.float32)[:, :10, None]
    _softmax.forward(op, rows, rows, None, None, 1.0, 1, 1 << 30)   # row-strided: fine
    assert np.all(rows == np.float32(0.1))
    for bad in (np.asfortranarray(np.ones((4, 10, 2), np.float32))[:, :, :1],  # columns
                np.lib.stride_tricks.as_strided(x, (4, 10, 1), (8, 4, 4)),  # rows overlap
                np.zeros((4, 10, 3), np.float32)[:, :, :1]):                # inner apart
        with pytest.raises(ValueError, match="row-strided"):
            _softmax.forward(op, bad, x, None, None, 1.0, 1, 1 << 30)
        with pytest.raises(ValueError, match="row-strided"):
            _softmax.forward(op, x, bad, None, None, 1.0, 1, 1 << 30)
        with pytest.raises(ValueError, match="row-strided"):
            _softmax.backward(_softmax.BACKWARD_OPS["softmax"], x, x, bad, None, 1.0, 1,
                              1 << 30)
    with pytest.raises(ValueError, match="do not fit"):   # softmax writes out
        _softmax.forward(op, x, None, None, None, 1.0, 1, 1 << 30)
    with pytest.raises(ValueError, match="do not fit"):   # logsumexp writes rowvals
        _softmax.forward(_softmax.FORWARD_OPS["logsumexp"], x, None, None, None, 1.0, 1,
                         1 << 30)


# ---- log_softmax's backward from any output -------------------------------------------------
# out = g - exp(z) sum(g): the kernels take exp(z) by the faster exp that holds for
# log_softmax's outputs (z <= 0; up to 43 in float32, 354 in float64), and a block (a row of
# columns in column mode) with a z beyond that by the full exp. An array that is not
# log_softmax's output still gets the formula. Where g = 0, out = -(exp(z) dot) rounded, and
# with z = 0 there, out = -dot: that gives the dot product to check the others against.

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params([((5, 2 * BLOCK + 77), -1),
                                                     ((2 * BLOCK + 77, 5), 0)]))
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
@pytest.mark.parametrize("into", ["new", "grad_output", "output"])
def test_log_softmax_backward_from_any_output(dtype, shape, axis, masked, into, rng):
    x = logits(rng, shape, dtype)
    mask = rng.random(shape) < 0.9 if masked else None
    z = af.log_softmax(x, axis=axis, where=mask)
    g = grad_output_like(rng, shape, dtype)
    # positions with g = 0 and z beyond the fast exp's range, in some rows / columns
    beyond = np.zeros(shape, bool)
    beyond.flat[rng.choice(z.size, 12, replace=False)] = True
    if mask is not None:
        mask |= beyond
    g[beyond] = 0
    big = np.array([50.0, 88.0, 400.0, np.inf], dtype)[
        rng.integers(0, 4, int(beyond.sum()))] if dtype == np.float32 else np.array(
        [400.0, 700.0, np.inf], dtype)[rng.integers(0, 3, int(beyond.sum()))]

    def backward(z_at_beyond):
        zz, gg = z.copy(), g.copy()
        zz[beyond] = z_at_beyond
        out = {"new": None, "grad_output": gg, "output": zz}[into]
        return af.log_softmax.backward(gg, output=zz, axis=axis, where=mask, out=out)

    result, at_zero = backward(big), backward(0.0)
    assert_bitwise_equal(result[~beyond], at_zero[~beyond], what="elsewhere")
    exp_big = np.empty_like(big)
    _softmax.exp(big, exp_big)
    dot = -at_zero[beyond]
    with np.errstate(over="ignore", invalid="ignore"):
        assert_bitwise_equal(result[beyond], -(exp_big * dot), what="beyond")


# ---- logsumexp's backward from its output ---------------------------------------------------
# grad_output * exp(x - output), one pass, each element alone: every layout and thread count
# gives the bits of the plain call; the special rows as PyTorch's autograd (which computes
# that formula from its forward's result); an output not the forward's still gets it.

def logsumexp_from_output(g, x, **kw):
    return af.logsumexp.backward(g, x, output=af.logsumexp(
        x, **{k: v for k, v in kw.items() if k in ("axis", "where")}), **kw)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape, axis", shape_params())
def test_logsumexp_backward_from_output_is_the_formula(dtype, shape, axis, rng):
    # against g * exp(x - output) in long double from the very output given: the argument
    # x - output rounds once (an error of up to half an ulp of |x - output|, times the value)
    x = logits(rng, shape, dtype)
    output = af.logsumexp(x, axis=axis)
    output = output + np.asarray(rng.uniform(-3, 3, np.shape(output)), dtype)  # any output
    g = grad_output_like(rng, np.shape(output), dtype)
    gx = af.logsumexp.backward(g, x, axis=axis, output=output)
    L, G = (np.expand_dims(np.asarray(a, LD), axis) for a in (output, g))
    with np.errstate(over="ignore"):
        expected = G * np.exp(np.asarray(x, LD) - L)
    eps, tiny = np.finfo(dtype).eps, float(np.finfo(dtype).smallest_subnormal)
    spread_ = np.abs(np.asarray(x, np.float64) - np.asarray(L, np.float64))
    # (+ a subnormal ulp or two: the exp and the product rounded into the subnormal range)
    allowed = (2 * eps * (1 + spread_) * np.abs(expected.astype(np.float64))
               + tiny * (1 + np.abs(G.astype(np.float64))))
    err = np.abs(gx.astype(np.float64) - expected.astype(np.float64))
    assert gx.dtype == dtype and gx.shape == x.shape
    assert np.all(err <= allowed), f"worst ratio {float(np.max(err / allowed, initial=0)):.3g}"


@needs_torch
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("long_row", [False, True], ids=["short", "3-blocks"])
@pytest.mark.parametrize("row", list(SPECIAL_ROWS))
def test_logsumexp_backward_from_output_special_rows_as_torch(dtype, long_row, row):
    with np.errstate(over="ignore"):
        x = special_row(row, dtype, long_row)
    g = np.linspace(-1, 2, x.shape[0]).astype(dtype)
    t = _tensor(x)
    result = torch.logsumexp(t, dim=-1)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = (_tensor(g).unsqueeze(-1) * torch.exp(t - result.unsqueeze(-1))).numpy()
        gx = af.logsumexp.backward(g, x, output=result.numpy())
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(expected), err_msg="NaN positions")
    np.testing.assert_allclose(gx, expected, rtol=TOLERANCE[dtype][0],
                               atol=TOLERANCE[dtype][1])
    assert not np.any(np.signbit(gx[np.isnan(gx)])), "NaNs are the positive quiet NaN"


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("shape, axis", shape_params(DETERMINISM_SHAPES))
def test_logsumexp_backward_from_output_bitwise_for_any_thread_count(masked, shape, axis, rng,
                                                                     threads):
    x = logits(rng, shape, np.float32)
    mask = rng.random(shape) < 0.8 if masked else None
    g = grad_output_like(rng, af.logsumexp(x, axis=axis).shape, np.float32)
    af.set_num_threads(1)
    expected = logsumexp_from_output(g, x, axis=axis, where=mask)
    for count in (2, 3, 7):
        af.set_num_threads(count)
        assert_bitwise_equal(logsumexp_from_output(g, x, axis=axis, where=mask), expected,
                             what=f"{count} threads")


@pytest.mark.parametrize("layout", list(LAYOUTS) + ["row-strided"])
@pytest.mark.parametrize("axis", [0, 1])
def test_logsumexp_backward_from_output_bitwise_for_any_layout(layout, axis, rng):
    x = logits(rng, (300, 2 * BLOCK + 5), np.float32)
    g = grad_output_like(rng, af.logsumexp(x, axis=axis).shape, np.float32)
    output = af.logsumexp(x, axis=axis)
    expected = af.logsumexp.backward(g, x, axis=axis, output=output)
    xl = wider(rng, x) if layout == "row-strided" else LAYOUTS[layout](x)
    assert np.array_equal(xl, x)
    assert_bitwise_equal(af.logsumexp.backward(g, xl, axis=axis, output=output), expected)
    gl, ol = (a[::-1][::-1] if a.ndim else a for a in (np.repeat(g, 2)[::2],
                                                         np.repeat(output, 2)[::2]))
    assert_bitwise_equal(af.logsumexp.backward(gl, x, axis=axis, output=ol), expected,
                         what="strided grad_output and output")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("into", ["off-boundary", "x", "x-transposed"])
def test_logsumexp_backward_from_output_out_and_in_place(dtype, into, rng):
    x = logits(rng, (40, 1000), dtype)
    g = grad_output_like(rng, (40,), dtype)
    output = af.logsumexp(x)
    expected = af.logsumexp.backward(g, x, output=output)
    if into == "off-boundary":
        target, source = np.empty(x.size + 1, dtype)[1:].reshape(x.shape), x
    elif into == "x":
        target = source = x.copy()
    else:   # column mode in place: axis 0 of the transposed copy
        source = np.ascontiguousarray(x.T)
        target = source
        expected = af.logsumexp.backward(g, x.T.copy(), axis=0, output=output)
    axis = 0 if into == "x-transposed" else -1
    assert af.logsumexp.backward(g, source, axis=axis, output=output, out=target) is target
    assert_bitwise_equal(target, expected)


@pytest.mark.parametrize("inside", ["output", "grad_output"])
def test_logsumexp_backward_from_output_into_out_overlapping_its_row_values(inside, rng):
    # out's memory holding the output (or grad_output) values: the result is as if they had
    # been copied first
    x = logits(rng, (40, 1000), np.float32)
    g = grad_output_like(rng, (40,), np.float32)
    output = af.logsumexp(x)
    expected = af.logsumexp.backward(g, x, output=output)
    out = np.empty_like(x)
    held = out[0, :40]
    held[...] = output if inside == "output" else g
    kw = {"output": held, "grad_output": g} if inside == "output" else {
        "output": output, "grad_output": held}
    result = af.logsumexp.backward(kw["grad_output"], x, output=kw["output"], out=out)
    assert result is out
    assert_bitwise_equal(out, expected)


@pytest.mark.parametrize("inside", ["output", "grad_output"])
@pytest.mark.parametrize("shape, n_threads", [((2, 3), 1), ((200000, 1), 2)],
                         ids=["rows", "column-2threads"])
def test_logsumexp_backward_from_output_row_values_in_outs_first_row(inside, shape, n_threads,
                                                                     rng, threads):
    # keepdims along axis 0: grad_output and output have the shape of out's first row, so
    # they can be that row's very memory (same address, same strides): the loop writes row 0
    # before it reads them for row 1 (and the other thread races with it)
    af.set_num_threads(n_threads)
    x = logits(rng, shape, np.float64)
    output = af.logsumexp(x, axis=0, keepdims=True)
    g = grad_output_like(rng, output.shape, np.float64)
    expected = af.logsumexp.backward(g, x, 0, True, output=output)
    out = np.empty_like(x)
    out[:1] = output if inside == "output" else g
    values = {"output": output, "grad_output": g}
    values[inside] = out[:1]
    result = af.logsumexp.backward(values["grad_output"], x, 0, True, output=values["output"],
                                   out=out)
    assert result is out
    assert_bitwise_equal(out, expected)


def test_logsumexp_backward_from_output_keepdims_none_axis_and_float16(rng):
    x = logits(rng, (3, 4, 5), np.float64)
    for axis in (0, 1, 2, None):
        for keepdims in (False, True):
            output = af.logsumexp(x, axis=axis, keepdims=keepdims)
            g = grad_output_like(rng, np.shape(output), np.float64)
            gx = af.logsumexp.backward(g, x, axis=axis, keepdims=keepdims, output=output)
            from_x = af.logsumexp.backward(g, x, axis=axis, keepdims=keepdims)
            # (both within a rounding of x - L, up to |x - L| ~ 50 here, of the exact value)
            np.testing.assert_allclose(gx, from_x, rtol=1e-13, atol=1e-300)
    h = x.astype(np.float16)
    gh = np.ones(5, np.float16)
    result = af.logsumexp.backward(gh, h[0], axis=0, output=af.logsumexp(h[0], axis=0))
    assert result.dtype == np.float16   # computed in float32 from the float16 values
    expected = af.logsumexp.backward(gh.astype(np.float32), h[0].astype(np.float32), axis=0,
                                     output=af.logsumexp(h[0], axis=0).astype(np.float32))
    assert_bitwise_equal(result, expected.astype(np.float16))


def test_logsumexp_backward_output_errors(rng):
    x = logits(rng, (4, 6), np.float64)
    g = np.ones(4)
    with pytest.raises(ValueError, match="'output' has shape"):
        af.logsumexp.backward(g, x, output=np.zeros(6))
    with pytest.raises(ValueError, match="'output' has shape"):
        af.logsumexp.backward(g[:, None], x, axis=1, keepdims=True, output=np.zeros(4))
    with pytest.raises(TypeError, match="output"):
        af.logsumexp.backward(g, x, output=np.zeros(4, complex))
    with pytest.raises(TypeError, match="output"):
        af.logsumexp.backward(g, x, output="lse")
    before = x.copy(), g.copy()
    output = af.logsumexp(x)
    out = af.logsumexp.backward(g, x, output=output)
    assert_bitwise_equal(x, before[0], what="x unchanged")
    assert_bitwise_equal(g, before[1], what="grad_output unchanged")
    assert out.shape == x.shape


# ---- the package contract ------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_float16_computed_in_float32(name, rng):
    x = logits(rng, (5, 40), np.float16, scale=3.0)
    y = function(name)(x)
    assert y.dtype == np.float16
    assert_bitwise_equal(y, function(name)(x.astype(np.float32)).astype(np.float16))
    assert_bitwise_equal(function(name)(x.astype(">f2")), y, what="big-endian float16")


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integers_and_bool_computed_in_float64(name, dtype, rng):
    x = rng.integers(0, 2 if dtype == np.bool_ else 10, (4, 6)).astype(dtype)
    y = function(name)(x)
    assert y.dtype == np.float64
    assert_bitwise_equal(y, function(name)(x.astype(np.float64)))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("value", [np.ones(3, dtype=complex), np.array(["a", "b"]),
                                   np.array([object(), object()])],
                         ids=["complex", "str", "object"])
def test_rejected_dtypes_name_the_argument(name, value):
    with pytest.raises(TypeError, match="'x'"):
        function(name)(value)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
def test_backward_rejected_dtype_names_grad_output(name):
    with pytest.raises(TypeError, match="'grad_output'"):
        function(name).backward(np.ones(3, dtype=complex), np.ones(3))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_nested_lists_and_scalars(name):
    assert_bitwise_equal(function(name)([[1.0, 2.0], [3.0, 5.0]]),
                         function(name)(np.array([[1.0, 2.0], [3.0, 5.0]])))
    y = function(name)(2.5)
    assert isinstance(y, np.float64) and np.ndim(y) == 0
    assert y == {"softmax": 1.0, "softmin": 1.0, "log_softmax": 0.0, "logsumexp": 2.5}[name]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_scalar_keeps_dtype(name):
    y = function(name)(np.float32(1.5))
    assert isinstance(y, np.float32)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [2, -3, 5, 2 ** 31, -2 ** 40, 2 ** 70],
                         ids=["2", "-3", "5", "2**31", "-2**40", "2**70"])
def test_bad_axis_raises_axis_error(name, axis):
    # (ints beyond C's range too: they raised OverflowError)
    with pytest.raises(AxisError):
        function(name)(np.ones((2, 3)), axis=axis)
    with pytest.raises(AxisError):
        if name == "logsumexp":
            function(name).backward(np.ones(2), np.ones((2, 3)), axis=axis)
        else:
            function(name).backward(np.ones((2, 3)), np.ones((2, 3)), axis=axis)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [1.0, "0", [0], True, np.True_],
                         ids=["float", "str", "list", "bool", "numpy-bool"])
def test_axis_must_be_an_integer(name, axis):
    # (a bool too, as glu's and maxout's axis: operator.index would take True for 1)
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="axis"):
        function(name)(x, axis=axis)
    with pytest.raises(TypeError, match="axis"):
        function(name).backward(np.ones((2,) if name == "logsumexp" else (2, 3)), x, axis=axis)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("keepdims", [1, "yes", None, np.int64(1)], ids=str)
def test_logsumexp_keepdims_must_be_a_bool(direction, keepdims):
    x = np.ones((2, 3))
    call = (lambda k: af.logsumexp(x, 1, k)) if direction == "forward" else (
        lambda k: af.logsumexp.backward(np.ones((2, 1) if k else (2,)), x, 1, k))
    with pytest.raises(TypeError, match="keepdims"):
        call(keepdims)
    assert_bitwise_equal(call(np.True_), call(True))   # NumPy's bool as Python's


@pytest.mark.parametrize("name", FUNCTIONS)
def test_axis_none_is_all_elements(name, rng):
    x = logits(rng, (6, 7), np.float64)
    y = function(name)(x, axis=None)
    flat = function(name)(x.ravel())
    if name == "logsumexp":
        assert np.ndim(y) == 0 and y == flat
        assert function(name)(x, axis=None, keepdims=True).shape == (1, 1)
    else:
        assert_bitwise_equal(y, flat.reshape(6, 7))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_logsumexp_keepdims_and_backward_shapes(keepdims, axis, rng):
    x = logits(rng, (3, 4, 5), np.float64)
    y = af.logsumexp(x, axis=axis, keepdims=keepdims)
    expected = oracle("logsumexp", x, axis)
    if not keepdims:
        expected = np.squeeze(expected, axis)
    np.testing.assert_allclose(y, expected.astype(np.float64), rtol=4e-16, atol=4e-16)
    g = grad_output_like(rng, y.shape, np.float64)
    gx = af.logsumexp.backward(g, x, axis=axis, keepdims=keepdims)
    assert gx.shape == x.shape
    with pytest.raises(ValueError, match="grad_output"):
        af.logsumexp.backward(np.ones(7), x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["shape", "dtype", "read-only", "not-array"])
def test_out_errors(name, dtype, kind, rng):
    x = logits(rng, (4, 6), dtype)
    shape = (4,) if name == "logsumexp" else (4, 6)
    if kind == "shape":
        out, error = np.empty((6, 4), dtype=dtype), ValueError
    elif kind == "dtype":
        out, error = np.empty(shape, dtype=np.float16), TypeError
    elif kind == "read-only":
        out, error = np.empty(shape, dtype=dtype), ValueError
        out.flags.writeable = False
    else:
        out, error = np.empty(shape).tolist(), TypeError
    with pytest.raises(error, match="out"):
        function(name)(x, out=out)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS + [pytest.param(np.dtype(np.float16), id="float16")])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("axis", [0, 1])
def test_out_is_written_and_returned(name, dtype, layout, axis, rng):
    x = logits(rng, (40, 30), dtype)
    expected = function(name)(x, axis=axis)
    if layout == "C":
        out = np.empty(expected.shape, dtype=dtype)
    elif layout == "F":
        out = np.asfortranarray(np.empty(expected.shape, dtype=dtype))
    else:
        out = np.empty(tuple(2 * n for n in expected.shape), dtype=dtype)[
            tuple(slice(None, None, 2) for _ in expected.shape)]
    result = function(name)(x, axis=axis, out=out)
    assert result is out
    assert_bitwise_equal(out, expected)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("axis", [0, 1])
def test_in_place(name, axis, rng):
    x = logits(rng, (300, 2 * BLOCK + 5), np.float32)
    expected = function(name)(x, axis=axis)
    result = function(name)(x, axis=axis, out=x)
    assert result is x
    assert_bitwise_equal(x, expected)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("source, operand", [
    pytest.param(source, operand, id=f"from-{source}-into-{operand}")
    for source in ("output", "x") for operand in ("grad_output", source)])
def test_backward_into_an_input(name, source, operand, rng):
    # the backward from the forward's output or from x, written into one of its inputs
    x = logits(rng, (50, 60), np.float64)
    g = grad_output_like(rng, x.shape, np.float64)
    inputs = {"grad_output": g, source: function(name)(x) if source == "output" else x}
    expected = function(name).backward(g, **{source: inputs[source]})
    target = inputs[operand]
    result = function(name).backward(g, **{source: inputs[source]}, out=target)
    assert result is target
    assert_bitwise_equal(target, expected)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("shift", [1, -1, 7])
def test_out_overlapping_the_input(name, shift, rng):
    # out is x shifted by a few elements in the same buffer: the result must be as if
    # computed from a copy of x
    buffer = logits(rng, (3000,), np.float64)
    x = buffer[100:2100].reshape(40, 50)
    expected = function(name)(x.copy())
    out = buffer[100 + shift:2100 + shift].reshape(40, 50)
    function(name)(x, out=out)
    assert_bitwise_equal(out, expected)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_inputs_not_modified(name, rng):
    x = logits(rng, (30, 20), np.float32)
    mask = rng.random(x.shape) < 0.7
    f = function(name)
    g = grad_output_like(rng, f(x).shape, np.float32)
    copies = [a.copy() for a in (x, mask, g)]
    f(x, where=mask)
    f.backward(g, x, where=mask)
    if name != "logsumexp":
        y = f(x)
        y_copy = y.copy()
        f.backward(g, output=y, where=mask)
        assert_bitwise_equal(y, y_copy)
    for a, copy in zip((x, mask, g), copies):
        assert np.array_equal(a, copy)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
def test_backward_needs_exactly_one_of_x_and_output(name):
    f = function(name)
    with pytest.raises(TypeError):
        f.backward(np.ones(3))
    with pytest.raises(TypeError):
        f.backward(np.ones(3), np.ones(3), output=np.ones(3))


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
def test_backward_shapes_must_match(name):
    with pytest.raises(ValueError, match="shape"):
        function(name).backward(np.ones((2, 3)), np.ones((3, 2)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_unknown_keyword(name):
    with pytest.raises(TypeError):
        function(name)(np.ones(3), dim=0)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape, axis", shape_params([((0, 5), 1), ((4, 0), 1), ((4, 0), 0)]))
def test_empty(name, shape, axis):
    x = np.ones(shape, dtype=np.float32)
    y = function(name)(x, axis=axis)
    if name == "logsumexp":
        reduced = shape[:axis] + shape[axis + 1:]
        assert y.shape == reduced and np.all(y == -np.inf)   # PyTorch: -inf for an empty sum
    else:
        assert y.shape == shape


def test_gil_released_while_kernels_run(rng):
    # as the contract test of the same name, with softmax calls
    x = logits(rng, (256, 1 << 14), np.float32)

    def call_of_size(n):
        rows = np.concatenate([x] * (n // x.size))
        out = np.empty_like(rows)
        return lambda: af.softmax(rows, out=out)

    with single_thread():
        assert_other_threads_run(call_of_size, x.size, 1 << 26)


# ---- the compiled path of the common call (_softmax.*_fast) --------------------------------
# A C-contiguous float32/float64 ndarray with an int axis and no mask, out None or simple, is
# checked and run in compiled code; every other call takes the general path, whose entry
# points are _softmax.forward and _softmax.backward. Both must give the same bits.

@pytest.fixture
def general_path(monkeypatch):
    """The list of the general path's entry-point calls made from now on."""
    calls = []
    for entry in ("forward", "backward"):
        def recorded(*args, _original=getattr(_softmax, entry), _entry=entry):
            calls.append(_entry)
            return _original(*args)
        monkeypatch.setattr(_softmax, entry, recorded)
    return calls


# (what is called: "forward" or the backward from "output" or from "x", where it writes:
# None, a new out= array, or one of the operands)
FAST_CALLS = [("forward", None), ("forward", "new"), ("forward", "x"),
              ("output", None), ("output", "new"), ("output", "grad_output"),
              ("output", "output"), ("x", None), ("x", "new")]


def run_call(name, source, into, x, g, axis):
    """The call (a FAST_CALLS pair) on copies of x and g: (its result, the out= it had)."""
    f = function(name)
    operands = {"x": x.copy(), "grad_output": g.copy()}
    if source == "output":
        operands["output"] = f(x, axis=axis)
    out = np.empty_like(x) if into == "new" else operands.get(into)
    if source == "forward":
        return f(operands["x"], axis=axis, out=out), out
    return f.backward(operands["grad_output"], **{source: operands[source]}, axis=axis,
                      out=out), out


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("source, into", [
    pytest.param(source, into, id=f"{source}-into-{into}") for source, into in FAST_CALLS])
@pytest.mark.parametrize("shape, axis", shape_params([((1, 16), -1), ((64, 1000), 1),
                                                     ((3, 2 * BLOCK + 77), -1),
                                                     ((4, 300, 33), 1), ((7,), 0)]))
def test_common_calls_take_the_compiled_path(name, dtype, source, into, shape, axis, rng,
                                             general_path):
    x = logits(rng, shape, dtype)
    g = grad_output_like(rng, shape, dtype)
    result, out = run_call(name, source, into, x, g, axis)
    assert general_path == []
    if out is not None:
        assert result is out
    # the same call with a NumPy integer for the axis takes the general path
    expected, _ = run_call(name, source, into, x, g, np.int64(axis))
    assert general_path
    assert_bitwise_equal(result, expected)


DECLINED = ["where", "numpy-int-axis", "fortran", "strided", "reversed", "byte-swapped",
            "float16", "list", "0-d", "out-overlapping-x", "out-fortran", "float16-out",
            "backward-where", "backward-grad_output-fortran", "backward-grad_output-float32",
            "backward-out-overlapping-grad_output", "backward-from-x-into-x",
            "backward-from-x-into-grad_output"]


def declined_call(f, case, x, g):
    """(the result of the call `case` of DECLINED, what it must equal) for float64 x, g."""
    if case == "where":
        return f(x, where=np.ones(x.shape, bool)), f(x)
    if case == "numpy-int-axis":
        return f(x, axis=np.int64(0)), f(x, axis=0)
    if case == "fortran":
        return f(np.asfortranarray(x)), f(x)
    if case == "strided":
        return f(np.repeat(x, 2, axis=1)[:, ::2]), f(x)
    if case == "reversed":
        return f(x[::-1]), f(x)[::-1]
    if case == "byte-swapped":
        return f(x.astype(x.dtype.newbyteorder())), f(x)
    if case == "float16":
        return f(x.astype(np.float16)), f(x.astype(np.float16).astype(np.float32)).astype(
            np.float16)
    if case == "list":
        return f(x.tolist()), f(x)
    if case == "0-d":
        return f(x[0, 0]), f(x[0, :1])[0]
    if case == "out-overlapping-x":
        buffer = np.concatenate([x.ravel(), x[0]])
        x_view, out = buffer[:x.size].reshape(x.shape), buffer[3:x.size + 3].reshape(x.shape)
        return f(x_view, out=out), f(x)
    if case == "out-fortran":
        return f(x, out=np.empty(x.shape, order="F")), f(x)
    if case == "float16-out":
        x16 = x.astype(np.float16)
        return f(x16, out=np.empty(x.shape, np.float16)), f(x16)
    if case == "backward-where":
        return f.backward(g, x, where=np.ones(x.shape, bool)), f.backward(g, x)
    if case == "backward-grad_output-fortran":
        return f.backward(np.asfortranarray(g), x), f.backward(g, x)
    if case == "backward-grad_output-float32":
        g32 = g.astype(np.float32)
        return f.backward(g32, x), f.backward(g32.astype(np.float64), x)
    if case == "backward-out-overlapping-grad_output":
        y = f(x)
        buffer = np.concatenate([g.ravel(), g[0]])
        g_view, out = buffer[:g.size].reshape(g.shape), buffer[5:g.size + 5].reshape(g.shape)
        return f.backward(g_view, output=y, out=out), f.backward(g, output=y)
    if case == "backward-from-x-into-x":
        x_copy = x.copy()
        return f.backward(g, x_copy, out=x_copy), f.backward(g, x)
    assert case == "backward-from-x-into-grad_output"
    g_copy = g.copy()
    return f.backward(g_copy, x, out=g_copy), f.backward(g, x)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("case", DECLINED)
def test_other_calls_take_the_general_path(name, case, rng, general_path):
    x = logits(rng, (20, 30), np.float64)
    g = grad_output_like(rng, x.shape, np.float64)
    f = function(name)
    result, expected = declined_call(f, case, x, g)
    assert general_path
    assert_bitwise_equal(result, expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["reduced", "keepdims"])
@pytest.mark.parametrize("into", [None, "new"])
@pytest.mark.parametrize("shape, axis", shape_params([((1, 16), -1), ((64, 1000), 1),
                                                     ((3, 2 * BLOCK + 77), -1),
                                                     ((4, 300, 33), 1), ((7,), 0)]))
def test_common_logsumexp_calls_take_the_compiled_path(dtype, direction, keepdims, into,
                                                       shape, axis, rng, general_path):
    x = logits(rng, shape, dtype)
    reduced = af.logsumexp(x, axis=np.int64(axis), keepdims=keepdims)
    assert general_path
    general_path.clear()
    g = grad_output_like(rng, np.shape(reduced), dtype)

    def call(axis):
        if direction == "forward":
            out = np.empty(np.shape(reduced), dtype) if into else None
            return af.logsumexp(x, axis=axis, keepdims=keepdims, out=out), out
        out = np.empty_like(x) if into else None
        return af.logsumexp.backward(g, x, axis=axis, keepdims=keepdims, out=out), out

    result, out = call(axis)
    assert general_path == []
    if out is not None:
        assert result is out
    elif direction == "forward" and len(shape) == 1 and not keepdims:
        assert isinstance(result, np.generic)   # a NumPy scalar, as from the general path
    expected, _ = call(np.int64(axis))
    assert general_path
    assert type(result) is type(expected)
    assert_bitwise_equal(result, expected)


LOGSUMEXP_DECLINED = ["where", "axis-None", "fortran", "out-overlapping-x",
                      "backward-into-x", "backward-grad_output-strided",
                      "backward-grad_output-float32"]


@pytest.mark.parametrize("case", LOGSUMEXP_DECLINED)
def test_other_logsumexp_calls_take_the_general_path(case, rng, general_path):
    x = logits(rng, (20, 30), np.float64)
    g = grad_output_like(rng, (20,), np.float64)
    f = af.logsumexp
    if case == "where":
        result, expected = f(x, where=np.ones(x.shape, bool)), f(x)
    elif case == "axis-None":
        result, expected = f(x, axis=None), f(x.ravel())
    elif case == "fortran":
        result, expected = f(np.asfortranarray(x)), f(x)
    elif case == "out-overlapping-x":
        x_copy = x.copy()
        result, expected = f(x_copy, out=x_copy.reshape(-1)[:20]), f(x)
    elif case == "backward-into-x":
        x_copy = x.copy()
        result, expected = f.backward(g, x_copy, out=x_copy), f.backward(g, x)
    elif case == "backward-grad_output-strided":
        result, expected = f.backward(np.repeat(g, 2)[::2], x), f.backward(g, x)
    else:
        g32 = g.astype(np.float32)
        result, expected = f.backward(g32, x), f.backward(g32.astype(np.float64), x)
    assert general_path
    assert_bitwise_equal(result, expected)


@pytest.mark.parametrize("name", ELEMENTWISE_FUNCTIONS)
@pytest.mark.parametrize("case", ["axis-out-of-range", "axis-float", "out-read-only",
                                  "out-shape", "grad_output-shape", "grad_output-list-shape"])
def test_errors_of_common_looking_calls(name, case, rng):
    # calls the compiled path declines raise the general path's errors
    x = logits(rng, (4, 6), np.float32)
    f = function(name)
    if case == "axis-out-of-range":
        with pytest.raises(AxisError):
            f(x, axis=2)
    elif case == "axis-float":
        with pytest.raises(TypeError, match="axis"):
            f(x, axis=1.0)
    elif case == "out-read-only":
        out = np.empty_like(x)
        out.flags.writeable = False
        with pytest.raises(ValueError, match="out"):
            f(x, out=out)
    elif case == "out-shape":
        with pytest.raises(ValueError, match="out"):
            f.backward(x, output=x, out=np.empty((6, 4), np.float32))
    elif case == "grad_output-shape":
        with pytest.raises(ValueError, match="grad_output"):
            f.backward(x[:, :5].copy(), output=x)
    else:
        with pytest.raises(ValueError, match="grad_output"):
            f.backward([[1.0]], output=x)


# ---- the public objects --------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCTIONS)
def test_exported_with_docstring(name):
    from actfast.softmax import FUNCTIONS as registry
    f = function(name)
    assert registry[name] is f and name in af.__all__
    doc = f.__doc__
    for section in ("Parameters", "Returns", "Backward", "Examples", "where", "axis"):
        assert section in doc, f"{name}'s docstring lacks {section}"
    assert (f.__module__, f.__qualname__, f.backward.__qualname__) == (
        "actfast", name, f"{name}.backward")
