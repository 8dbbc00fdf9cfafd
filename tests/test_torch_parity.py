"""Values and gradients against PyTorch (torch.nn.functional.<name> with the same keyword
names; torch.tanh / torch.sigmoid; autograd for the gradients), for every registry entry, in
float32 and float64: at the kinks and their neighbours, +-0, NaN, random points, with
special grad_output values, and at +-inf.

PyTorch's answer for a point is taken from its vectorised loop (the value repeated 64 times).
Where PyTorch's single-element call answers differently (PyTorch inconsistent with itself,
e.g. hardtanh's backward at NaN: 1 from a one-element tensor, 0 from a long one) there is no
PyTorch convention to follow and the point is left out of the comparison.

Documented exceptions:
- at +-inf actfast returns the mathematical limit where PyTorch's formula gives NaN (inf * 0
  or inf / inf); INF_LIMITS lists those values explicitly, and a test checks that each of
  them is indeed a point where PyTorch gives NaN;
- PyTorch's float64 hardsigmoid backward uses the float32 constant 1/6 (0.16666667163),
  hence a relative tolerance of 1e-7 there.

Tolerances are for parity, not accuracy (test_accuracy.py): PyTorch's formulas lose
precision in some tails (gelu's 1 + erf, tanhshrink near 0), so a small absolute error
(relative to |grad_output| for the backward) is allowed on top of the relative one.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import actfast as af  # noqa: E402
from conftest import (CASES, OUTPUT_CASES, assert_bitwise_equal, assert_rel_close,  # noqa: E402
                      case_params, dtype_params, torch_backward, torch_forward, torch_function)

TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}
DOCUMENTED_RTOL = {
    ("hardsigmoid", np.dtype(np.float64), "backward"): 1e-7,
    # PyTorch's float32 tanh-gelu backward computes 1 + tanh(u) and loses relative precision
    # in the negative tail (~2 % at x = -5.06: -1.3788e-6 where mpmath, PyTorch's float64
    # and actfast give -1.355962e-6); actfast's own bound there is test_accuracy's 8 ulp
    ("gelu-approximate=tanh", np.dtype(np.float32), "backward"): 5e-2,
}
# and, from x = -5.0614 down, its vectorised loop gives exactly 0 (1 + tanh(u) rounds to 0)
# where the derivative is still up to 1.04e-6: an absolute tolerance (times |grad_output|)
# above that, rather than the 1e-6 of TOLERANCE
DOCUMENTED_ATOL = {
    ("gelu-approximate=tanh", np.dtype(np.float32), "backward"): 2e-6,
    # PyTorch's float32 gelu (its vectorised erf) is off by up to 1.13e-6 absolute at
    # x in [-4, -3] (and 1.21e-6 at x = 3.49, where the relative tolerance covers it): over
    # 2e6 points of [-10, 10] against float64 x Phi(x). At x = -3.4947083 it gives
    # -0.0008302872 where x Phi(x) is -0.00082925955 (actfast: -0.0008292595), 1.03e-6 off:
    # beyond TOLERANCE's 1e-6, so a draw that hit such a point failed
    ("gelu", np.dtype(np.float32), "forward"): 1.5e-6,
}

# Where PyTorch gives NaN at +-inf: the limits actfast returns instead.
# name -> {x: (f(x), f'(x))}; the same for every parameter set of that entry.
INF_LIMITS = {
    "gelu": {np.inf: (np.inf, 1.0), -np.inf: (-0.0, 0.0)},
    "silu": {np.inf: (np.inf, 1.0), -np.inf: (-0.0, -0.0)},
    "mish": {np.inf: (np.inf, 1.0), -np.inf: (-0.0, 0.0)},
    "softsign": {np.inf: (1.0, 0.0), -np.inf: (-1.0, 0.0)},
    "hardswish": {-np.inf: (-0.0, 0.0)},
}

# PyTorch rounds a float32 call's lambd to float32 before it compares and subtracts; actfast
# compares with and subtracts the double lambd, as the reference does. Where no float32
# holds lambd (softshrink's example lambd=0.1), float32 points within 2^-7 lambd of +-lambd,
# where x - lambd and x - 0.1f differ by more than the tolerance, are left out.
ROUNDED_PARAMETER = {"softshrink": "lambd", "hardshrink": "lambd"}


def _away_from_rounded_parameter(case, dtype, x):
    name = ROUNDED_PARAMETER.get(case.name)
    if np.dtype(dtype) != np.float32 or name not in case.params:
        return np.ones(x.shape, dtype=bool)
    value = float(case.params[name])
    if float(np.float32(value)) == value:
        return np.ones(x.shape, dtype=bool)
    return np.abs(np.abs(x.astype(np.float64)) - value) > value * 2.0 ** -7


TORCH_CASES = [case for case in CASES if torch_function(case) is not None]
TORCH_OUTPUT_CASES = [case for case in OUTPUT_CASES if torch_function(case) is not None]
N_RANDOM = 400


def parity_points(case, dtype, rng):
    """Special points first (+-0, NaN, tiny and moderately large values, the kinks and their
    float neighbours), then N_RANDOM random points of [-20, 20]."""
    dtype = np.dtype(dtype)
    kinks = np.array(case.kinks(), dtype=dtype)
    fixed = np.array([0.0, -0.0, np.nan, 1e-30, -1e-30, 1e-3, -1e-3, 0.5, -0.5, 2.0, -2.0,
                      10.0, -10.0, 20.0, -20.0, 30.0, -30.0, 50.0, -50.0, 100.0, -100.0],
                     dtype=dtype)
    tiny = np.array([1e-40, -1e-40] if dtype == np.float32 else [1e-310, -1e-310], dtype=dtype)
    return np.concatenate([fixed, tiny, kinks, np.nextafter(kinks, dtype.type(np.inf)),
                           np.nextafter(kinks, dtype.type(-np.inf)),
                           rng.uniform(-20, 20, N_RANDOM).astype(dtype)])


def _torch(case, direction, x, grad_output=None):
    if direction == "forward":
        return torch_forward(case, x)
    return torch_backward(case, grad_output, x)


def torch_answers(case, direction, x, grad_output=None, n_single=None):
    """PyTorch's result at each point from its vectorised loop, and a mask of the points
    where it is self-consistent: its one-element call gives the same value (checked for the
    first n_single points, by default all but the random ones)."""
    n_single = x.size - N_RANDOM if n_single is None else n_single
    repeated_g = None if grad_output is None else np.repeat(grad_output, 64)
    vectorised = _torch(case, direction, np.repeat(x, 64), repeated_g)[::64]
    consistent = np.ones(x.shape, dtype=bool)
    for i in range(min(n_single, x.size)):
        alone = _torch(case, direction, x[i:i + 1],
                       None if grad_output is None else grad_output[i:i + 1])[0]
        same = alone == vectorised[i] or (np.isnan(alone) and np.isnan(vectorised[i]))
        consistent[i] = same
    return vectorised, consistent


def _assert_parity(case, direction, ours, theirs, consistent, dtype, inputs):
    dtype = np.dtype(dtype)
    rtol, atol = TOLERANCE[dtype]
    key = (case.name if not case.params else case.id, dtype, direction)
    rtol = DOCUMENTED_RTOL.get(key, rtol)
    atol = DOCUMENTED_ATOL.get(key, atol)
    scale = np.abs(np.asarray(inputs.get("grad_output", 1.0), dtype=np.float64))
    scale = np.broadcast_to(np.where(np.isfinite(scale), scale, 0.0), ours.shape)
    keep = consistent & _away_from_rounded_parameter(case, dtype, np.asarray(inputs["x"]))
    assert_rel_close(ours[keep], theirs[keep], rtol, atol * scale[keep],
                     {k: np.asarray(v)[keep] for k, v in inputs.items()}, what=direction)


# ---- values and gradients at finite points -------------------------------------------------

@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_forward(case, dtype, rng):
    x = parity_points(case, dtype, rng)
    theirs, consistent = torch_answers(case, "forward", x)
    _assert_parity(case, "forward", case.forward(x), theirs, consistent, dtype, {"x": x})


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_backward(case, dtype, rng):
    x = parity_points(case, dtype, rng)
    grad_output = rng.normal(0, 2, x.size).astype(dtype)
    theirs, consistent = torch_answers(case, "backward", x, grad_output)
    _assert_parity(case, "backward", case.backward(grad_output, x), theirs, consistent, dtype,
                   {"x": x, "grad_output": grad_output})


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_OUTPUT_CASES))
def test_backward_from_output(case, dtype, rng):
    # from the output, float32 keeps only the output's precision: f'(x) as a function of y
    # moves by about ulp(y) per ulp of y (see test_elementwise.py)
    x = parity_points(case, dtype, rng)
    grad_output = rng.normal(0, 2, x.size).astype(dtype)
    output = case.forward(x)
    ours = case.backward(grad_output, output=output)
    theirs, keep = torch_answers(case, "backward", x, grad_output)
    eps = float(np.finfo(dtype).eps)
    scale = np.abs(grad_output.astype(np.float64)) * np.maximum(
        1.0, np.abs(output.astype(np.float64)))
    assert_rel_close(ours[keep], theirs[keep], 8 * eps, 8 * eps * np.nan_to_num(scale[keep]),
                     {"x": x[keep], "output": output[keep], "grad_output": grad_output[keep]},
                     what="backward from output")


SPECIAL_GRADS = [0.0, -0.0, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_backward_special_grad_output(case, dtype, rng):
    # grad_output 0, -0, NaN at the special points, and +-inf where the derivative is 0:
    # whether the backward multiplies (inf * 0 = NaN) or selects (relu's backward gives 0
    # for x <= 0 whatever the grad_output) as PyTorch does. Left out: points where one
    # derivative (grad_output = 1) is 0 and the other is not (actfast computes in double:
    # where PyTorch's float32 derivative underflows to 0, actfast's may not), and +-inf where
    # the derivative is not 0 (PyTorch's formulas then often give inf - inf = NaN, e.g.
    # softsign's autograd: an artefact, not a convention).
    points = parity_points(case, dtype, rng)[:-N_RANDOM]
    # the derivative's zeros decided in float64 (where a float32 product underflows to 0, the
    # derivative is not a zero that selects)
    points64, ones = points.astype(np.float64), np.ones(points.size)
    ours_unit = case.backward(ones, points64)
    theirs_unit, consistent = torch_answers(case, "backward", points64, ones)
    zero = consistent & (ours_unit == 0) & (theirs_unit == 0)
    nonzero = consistent & (ours_unit != 0) & (theirs_unit != 0)
    pairs = [(x, g) for x, z, nz in zip(points, zero, nonzero)
             for g in SPECIAL_GRADS if z or (nz and not np.isinf(g))]
    x = np.array([p[0] for p in pairs], dtype=dtype)
    grad_output = np.array([p[1] for p in pairs], dtype=dtype)
    theirs, consistent = torch_answers(case, "backward", x, grad_output)
    _assert_parity(case, "backward", case.backward(grad_output, x), theirs, consistent, dtype,
                   {"x": x, "grad_output": grad_output})


# ---- signed zeros --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_zero_signs(case, dtype, rng):
    # Where both give a zero, it has PyTorch's sign (from its vectorised loop). Points where
    # PyTorch's float32 zero has another sign than its float64 result (PyTorch inconsistent
    # with itself, e.g. its float32 gelu gives +0.0 for negative x whose result underflows)
    # are left out.
    x = np.concatenate([parity_points(case, dtype, rng),
                        np.array([-1e4, -800.0, -200.0, 800.0, 1e4, np.inf, -np.inf],
                                 dtype=dtype)])
    ours = case.forward(x)
    theirs, _ = torch_answers(case, "forward", x, n_single=0)
    check = (ours == 0) & (theirs == 0)
    expected_sign = np.signbit(theirs)
    if np.dtype(dtype) == np.float32:
        theirs64, _ = torch_answers(case, "forward", x.astype(np.float64), n_single=0)
        check &= ~((theirs64 == 0) & (np.signbit(theirs64) != np.signbit(theirs)))
        # a nonzero float64 result that rounds to a float32 zero keeps its sign (correct
        # rounding), whatever PyTorch's float32 loop gives (gelu(-1e-45) = -0.0)
        with np.errstate(under="ignore", over="ignore"):   # (celu with alpha < 0 overflows)
            underflows = (theirs64 != 0) & (theirs64.astype(np.float32) == 0)
        expected_sign = np.where(underflows, np.signbit(theirs64), expected_sign)
    bad = check & (np.signbit(ours) != expected_sign)
    if bad.any():
        details = [f"x={x[i]!r}: actfast {ours[i]!r}, PyTorch {theirs[i]!r}"
                   for i in np.flatnonzero(bad)[:8]]
        pytest.fail(f"{int(bad.sum())} zeros of the wrong sign:\n  " + "\n  ".join(details))


@pytest.mark.parametrize("dtype", dtype_params())
def test_silu_gradient_zero_signs(dtype):
    # silu's gradient far below 0 is negative and too small for the dtype: -0.0 times
    # grad_output, as PyTorch's (its formula's 0 * (1 + x) there), also swish's at beta = 1.
    # (Other functions' zero gradients in their tails do not all follow PyTorch's signs, whose
    # float32 loops give +0.0 where the float64 gradient is negative: not checked here.)
    tail = ([-200.0, -800.0, -1e4, -130.0, -125.0] if np.dtype(dtype) == np.float32
            else [-761.0, -800.0, -1e4, -5000.0, -1e300])
    x = np.array((tail + [-np.inf]) * 2, dtype=dtype)
    grad_output = np.array([1.0] * 6 + [-1.0] * 6, dtype=dtype)
    ours = af.silu.backward(grad_output, x)
    finite = np.isfinite(x)
    silu = next(case for case in CASES if case.name == "silu")
    theirs = torch_backward(silu, grad_output[finite], x[finite])
    assert np.all(ours[finite] == 0) and np.all(theirs == 0)
    assert np.array_equal(np.signbit(ours[finite]), np.signbit(theirs))
    assert np.array_equal(np.signbit(ours), grad_output > 0)   # -inf: the limit, likewise
    assert_bitwise_equal(af.swish.backward(grad_output, x, beta=1.0)[0], ours)


# ---- +-inf ---------------------------------------------------------------------------------

def _expected_at_inf(case, x, torch_values, derivative):
    limits = INF_LIMITS.get(case.name, {})
    expected = np.array(torch_values, dtype=np.float64)
    listed = np.zeros(x.shape, dtype=bool)
    for i, value in enumerate(x):
        if float(value) in limits:
            expected[i] = limits[float(value)][1 if derivative else 0]
            listed[i] = True
    return expected, listed


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_forward_at_infinity(case, dtype):
    x = np.array([np.inf, -np.inf], dtype=dtype)
    ours = case.forward(x)
    expected, listed = _expected_at_inf(case, x, torch_forward(case, x), derivative=False)
    assert_rel_close(ours, expected, TOLERANCE[np.dtype(dtype)][0], 0.0, {"x": x},
                     what="forward at +-inf")
    # the listed limits' zeros are signed (torch's own zeros: test_zero_signs)
    zeros = listed & (expected == 0)
    assert (np.signbit(ours[zeros]) == np.signbit(expected[zeros])).all(), (ours, expected)


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(TORCH_CASES))
def test_backward_at_infinity(case, dtype, rng):
    x = np.array([np.inf, -np.inf], dtype=dtype)
    grad_output = rng.uniform(0.5, 2, 2).astype(dtype) * np.array([1, -1], dtype=dtype)
    ours = case.backward(grad_output, x)
    derivative, _ = _expected_at_inf(case, x, torch_backward(case, np.ones_like(x), x),
                                     derivative=True)
    assert_rel_close(ours, grad_output.astype(np.float64) * derivative,
                     TOLERANCE[np.dtype(dtype)][0], 0.0,
                     {"x": x, "grad_output": grad_output}, what="backward at +-inf")


def _limit_params():
    return [pytest.param(case, x, id=f"{case.id}-x={x}") for case in TORCH_CASES
            for x in INF_LIMITS.get(case.name, {})]


@pytest.mark.parametrize("case, x", _limit_params())
def test_inf_limits_are_where_torch_gives_nan(case, x):
    # each listed exception is a point where PyTorch has no value (forward or gradient)
    value = np.array([x])
    forward = torch_forward(case, value)[0]
    gradient = torch_backward(case, np.ones(1), value)[0]
    assert np.isnan(forward) or np.isnan(gradient), (forward, gradient)
