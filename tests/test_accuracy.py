"""Accuracy against the float64 reference over a dense sweep of [-20, 20] plus special values.

float32 (the contract): forward within 4 ulp, backward within 8 ulp (grad_output = 1, random
grad_output, and grad_output that puts grad_output * f'(x) just below a power of two, where
an ulp is the smallest relative to the value) of the float64 reference, in units of the
float32 spacing at the
reference value, at every point (PyTorch's error elsewhere is no excuse: its float32 gelu and
mish tails are off by far more). The sweep includes the inputs where earlier versions broke
the bound (HARD_POINTS), which a random sweep would almost never draw again.

float64: within a relative 1e-13 (forward) / 1e-12 (backward) of the reference, which is a
float64 computation itself and not correctly rounded: a few of its rounding errors,
amplified by the function's condition number, are allowed. Where the reference's formula
cancels (tanhshrink near 0, hardsigmoid near its kinks; Case.reference_slack) its documented
absolute error is forgiven on top; backward results may be off by a few rounding errors of
|grad_output| (cancellation inside derivatives such as gelu' = Phi + x phi near their zeros,
and subnormal derivatives).
"""
import numpy as np
import pytest

from conftest import (CASES, EPS64, assert_rel_close, case_params, special_values, ulp_error)

FORWARD_ULP, BACKWARD_ULP = 4, 8
FLOAT64_RTOL_FORWARD, FLOAT64_RTOL_BACKWARD = 1e-13, 1e-12
TINY64 = 5e-324

# float32 inputs where an earlier version was beyond the bound (found by sweeping every
# float32 of [-20, 20]): gelu's forward assembled from float products (4.22 ulp at the
# first), mish's forward for x < 0 in five float roundings (4.52 ulp); mish's backward at
# -0.29618338 (its derivative 8.4 2^-24 off: 9.3 ulp with grad_output 0.038027808) and the
# tanh form's at -0.8568475 (8.15 ulp with grad_output -0.3839013), denominators rounded
# four times
HARD_POINTS = {
    "gelu": [-7.4178653, -6.086547, -7.5992484, -2.7827907, -7.4139061, -0.8568475],
    "mish": [-6.786379337310791, -6.7640533447265625, -0.29618338],
}


def _bit_sweep(rng, dtype, count):
    """`count` values of `dtype` evenly spaced in bit pattern over [0, 20] (so every binade,
    subnormals included, gets its share), from a random start, and their negatives."""
    uint = np.uint32 if dtype == np.float32 else np.uint64
    top = int(np.array(20.0, dtype=dtype).view(uint))
    step = top // count
    start = int(rng.integers(0, step))
    patterns = np.arange(start, top, step, dtype=np.uint64).astype(uint)
    positive = patterns.view(dtype)
    return np.concatenate([positive, -positive])


def sweep(rng, case, dtype):
    """~2e5 points of [-20, 20] (bit-pattern sweep + linear grid with a random phase) plus
    the case's special values and hard points."""
    dtype = np.dtype(dtype)
    linear = np.linspace(-20, 20, 100_001) + rng.uniform(0, 40 / 100_000)
    return np.concatenate([_bit_sweep(rng, dtype, 50_000),
                           np.clip(linear, -20, 20).astype(dtype),
                           special_values(case, dtype),
                           np.array(HARD_POINTS.get(case.name, []), dtype=dtype)])


def _assert_within(case, direction, x, grad_output, result, expected, bound, slack):
    err = ulp_error(result, expected, np.float32, slack)
    bad = err > bound
    if bad.any():
        worst = np.argsort(err)[::-1][:8]
        lines = [f"  x={x[i]!r} grad_output={grad_output[i] if grad_output is not None else 1!r}"
                 f": got {result[i]!r}, reference {expected[i]!r}: {err[i]:.3g} ulp"
                 for i in worst if bad[i]]
        pytest.fail(f"{case.id} {direction} float32: {int(bad.sum())} of {x.size} points beyond "
                    f"{bound} ulp (max {err.max():.4g} ulp)\n" + "\n".join(lines))


# ---- float32 -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params(CASES))
def test_float32_forward(case, rng):
    x = sweep(rng, case, np.float32)
    result = case.forward(x)
    expected = case.reference(x)
    _assert_within(case, "forward", x, None, result, expected, FORWARD_ULP,
                   case.reference_slack(x))


def _grad_below_power_of_two(rng, case, x):
    """x with the hard points again 63 times, and grad_output near 1 with grad_output * f'(x)
    just below a power of two, 2^m (1 - k 2^-24) (a relative error e of f' is then about
    e 2^24 ulp of the product, the most it can be): k random, 1 to 63 at the hard points;
    grad_output 1 where f'(x) is not within 1e-6..1e6."""
    hard = np.array(HARD_POINTS.get(case.name, []), dtype=np.float32)
    x = np.concatenate([x, np.repeat(hard, 63)])
    k = np.concatenate([rng.integers(1, 64, x.size - 63 * hard.size), np.tile(np.arange(1, 64), hard.size)])
    with np.errstate(all="ignore"):
        derivative = case.reference_grad(x.astype(np.float64))
        usable = np.isfinite(derivative) & (np.abs(derivative) > 1e-6) & (np.abs(derivative) < 1e6)
        power = 2.0 ** np.round(np.log2(np.abs(np.where(usable, derivative, 1.0))))
        grad_output = np.where(usable, power / np.where(usable, derivative, 1.0), 1.0)
    return x, (grad_output * (1.0 - k * 2.0 ** -24)).astype(np.float32)


@pytest.mark.parametrize("grad", ["unit-grad", "random-grad", "grad-below-power-of-two"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_float32_backward(case, grad, rng):
    x = sweep(rng, case, np.float32)
    if grad == "unit-grad":
        grad_output = np.ones_like(x)
    elif grad == "random-grad":
        grad_output = (rng.standard_normal(x.size) * 10.0 ** rng.uniform(-3, 3, x.size)
                       ).astype(np.float32)
    else:
        x, grad_output = _grad_below_power_of_two(rng, case, x)
    result = case.backward(grad_output, x)
    expected = case.reference_vjp(grad_output, x)
    _assert_within(case, "backward", x, grad_output, result, expected, BACKWARD_ULP, 0.0)


# ---- float64 -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params(CASES))
def test_float64_forward(case, rng):
    x = np.concatenate([sweep(rng, case, np.float64), rng.uniform(-20, 20, 50_000)])
    result = case.forward(x)
    # the condition number |x f'(x) / f(x)| times a few rounding errors: neither side rounds
    # x's image (e.g. gelu(approximate='tanh')'s 2u = 2 sqrt(2/pi) (x + 0.044715 x^3),
    # some 1500 times |x| near x = -19) exactly, and the tails amplify that
    with np.errstate(invalid="ignore", over="ignore"):
        conditioning = np.nan_to_num(4 * EPS64 * np.abs(x * case.reference_grad(x)),
                                     nan=0.0, posinf=0.0)
    assert_rel_close(result, case.reference(x), FLOAT64_RTOL_FORWARD,
                     case.reference_slack(x) + conditioning + TINY64, {"x": x},
                     what="float64 forward")


@pytest.mark.parametrize("grad", ["unit-grad", "random-grad"])
@pytest.mark.parametrize("case", case_params(CASES))
def test_float64_backward(case, grad, rng):
    x = np.concatenate([sweep(rng, case, np.float64), rng.uniform(-20, 20, 50_000)])
    if grad == "unit-grad":
        grad_output = np.ones_like(x)
    else:
        grad_output = rng.standard_normal(x.size) * 10.0 ** rng.uniform(-3, 3, x.size)
    result = case.backward(grad_output, x)
    g = np.abs(grad_output)
    assert_rel_close(result, case.reference_vjp(grad_output, x), FLOAT64_RTOL_BACKWARD,
                     4 * EPS64 * g + 8 * TINY64 * np.maximum(1.0, g),
                     {"x": x, "grad_output": grad_output}, what="float64 backward")
