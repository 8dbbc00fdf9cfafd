"""The kernels' moderate variant (pyx/activations.pxd, "the moderate range").

The loops compute a block of elements whose x are all moderate (|x| <= 20 in float32, 200 in
double) and whose multipliers (grad_output; glu's first half) are all 0 or moderate (2^-60 to
2^60 in float32, 2^-400 to 2^400 in double) with the kernels' short variant: e^-|x| whole,
no clamps, no limits. It must give the bits of the general variant, which every other test
checks for accuracy. Here each moderate array is computed twice: as it is (every block
moderate), and with a non-moderate element between every two of its elements (every block
general); the two results must agree bit for bit.
"""
import numpy as np
import pytest

import actfast as af
from actfast import _elementwise, _special
from actfast.catalogue import KERNELS
from conftest import CASES, assert_bitwise_equal, dtype_params

X_BOUND = {np.dtype(np.float32): 20.0, np.dtype(np.float64): 200.0}
TINY = {np.dtype(np.float32): 2.0 ** -60, np.dtype(np.float64): 2.0 ** -400}
SILU_X0 = -1.2784645427610737   # silu's minimum: its derivative's zero, an expansion around it


def moderate_x(rng, n, dtype):
    """Moderate x of every kind: normal around 0, uniform over the whole range, magnitudes
    from 1e-30 up, within 0.3 of silu's minimum (and of its negation), the bounds, +-0."""
    bound = X_BOUND[dtype]
    k = n // 5
    magnitudes = np.exp(rng.uniform(-69, np.log(bound), k))
    x = np.concatenate([rng.standard_normal(k) * 3, rng.uniform(-bound, bound, k),
                        np.copysign(magnitudes, rng.random(k) - 0.5),
                        SILU_X0 + rng.uniform(-0.3, 0.3, k), -SILU_X0 + rng.uniform(-0.3, 0.3, k),
                        [bound, -bound, 0.0, -0.0, 1e-45, -1e-45]])
    return rng.permutation(x.astype(dtype))


def moderate_multipliers(rng, n, dtype):
    """Moderate multipliers: normal, log-uniform over the whole range of either sign, the
    range's ends, zeros of both signs."""
    tiny = TINY[dtype]
    k = n // 3
    m = np.concatenate([rng.standard_normal(k),
                        np.copysign(np.exp(rng.uniform(np.log(tiny), -np.log(tiny), k)),
                                    rng.random(k) - 0.5),
                        rng.choice([0.0, -0.0, tiny, -tiny, 1 / tiny, -1 / tiny], n - 2 * k)])
    return rng.permutation(m.astype(dtype))


def with_general_between(a, value):
    """a's elements at the even positions, `value` at the odd ones: a value that is not
    moderate leaves no block of the result moderate."""
    spread = np.full(2 * a.size, value, a.dtype)
    spread[::2] = a
    return spread


# ---- the range test itself ------------------------------------------------------------------
# name -> (value for a dtype, moderate?), placed at a random position of a moderate block

def _next_up(value, dtype):
    return np.nextafter(dtype.type(value), dtype.type(np.inf))

X_VALUES = {
    "bound": (lambda d: X_BOUND[d], True),
    "-bound": (lambda d: -X_BOUND[d], True),
    "zero": (lambda d: 0.0, True),
    "-zero": (lambda d: -0.0, True),
    "subnormal": (lambda d: np.nextafter(d.type(0), d.type(1)), True),
    "above-bound": (lambda d: _next_up(X_BOUND[d], d), False),
    "below-minus-bound": (lambda d: -_next_up(X_BOUND[d], d), False),
    "inf": (lambda d: np.inf, False),
    "-inf": (lambda d: -np.inf, False),
    "nan": (lambda d: np.nan, False),
    "-nan": (lambda d: -np.nan, False),
    "max": (lambda d: np.finfo(d).max, False),
}
MULTIPLIER_VALUES = {
    "zero": (lambda d: 0.0, True),
    "-zero": (lambda d: -0.0, True),
    "tiny": (lambda d: TINY[d], True),
    "-tiny": (lambda d: -TINY[d], True),
    "huge": (lambda d: 1 / TINY[d], True),
    "-huge": (lambda d: -1 / TINY[d], True),
    "below-tiny": (lambda d: np.nextafter(d.type(TINY[d]), d.type(0)), False),
    "-below-tiny": (lambda d: -np.nextafter(d.type(TINY[d]), d.type(0)), False),
    "above-huge": (lambda d: _next_up(1 / TINY[d], d), False),
    "subnormal": (lambda d: np.nextafter(d.type(0), d.type(1)), False),
    "inf": (lambda d: np.inf, False),
    "nan": (lambda d: np.nan, False),
    "max": (lambda d: np.finfo(d).max, False),
}


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("name", list(X_VALUES))
def test_moderate_range_of_x(name, dtype, rng):
    value, moderate = X_VALUES[name]
    x = rng.uniform(-1, 1, 256).astype(dtype)
    assert _elementwise.moderate_block(x)
    x[rng.integers(0, x.size)] = value(dtype)
    assert _elementwise.moderate_block(x) == moderate


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("name", list(MULTIPLIER_VALUES))
def test_moderate_range_of_multipliers(name, dtype, rng):
    value, moderate = MULTIPLIER_VALUES[name]
    x = rng.uniform(-1, 1, 256).astype(dtype)
    m = rng.uniform(-1, 1, 256).astype(dtype)
    assert _elementwise.moderate_block(x, m)
    m[rng.integers(0, m.size)] = value(dtype)
    assert _elementwise.moderate_block(x, m) == moderate


# ---- the short variant gives the general one's bits ----------------------------------------

_MODERATE_KERNELS = {kernel.name: kernel.moderate for kernel in KERNELS if kernel.moderate}
ELEMENTWISE = [pytest.param(case, direction, id=f"{case.id}-{direction}")
               for case in CASES
               for direction in ("forward", "backward")
               if {"forward": "fwd", "backward": "bwd"}[direction]
               in _MODERATE_KERNELS.get(case.entry.kernel_name(case.values), ())]


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case, direction", ELEMENTWISE)
def test_moderate_blocks_give_the_general_bits(case, direction, dtype, rng):
    n = 20000 + int(rng.integers(0, 64))
    x = moderate_x(rng, n, dtype)
    general_x = 2 * X_BOUND[dtype]
    if direction == "forward":
        assert _elementwise.moderate_block(x)
        moderate = case.forward(x)
        general = case.forward(with_general_between(x, general_x))[::2]
        assert_bitwise_equal(moderate, general, {"x": x}, what="forward")
        return
    grad_output = moderate_multipliers(rng, x.size, dtype)
    assert _elementwise.moderate_block(x, grad_output)
    moderate = case.backward(grad_output, x)
    inputs = {"x": x, "grad_output": grad_output}
    # general through x, and through grad_output alone
    general = case.backward(with_general_between(grad_output, 1.0),
                            with_general_between(x, general_x))[::2]
    assert_bitwise_equal(moderate, general, inputs, what="backward, x not moderate")
    general = case.backward(with_general_between(grad_output, TINY[dtype] / 2),
                            with_general_between(x, 1.0))[::2]
    assert_bitwise_equal(moderate, general, inputs, what="backward, grad_output not moderate")


# swish with beta = 1 (silu's kernels, and the d/dbeta terms from the same exponential) and
# glu's forward (a sigmoid(b): a is the multiplier) have their own loops (pyx/_special.pyx)

@pytest.mark.parametrize("dtype", dtype_params())
def test_moderate_swish_forward_gives_the_general_bits(dtype, rng):
    x = moderate_x(rng, 20000 + int(rng.integers(0, 64)), dtype)
    general = af.swish(with_general_between(x, 2 * X_BOUND[dtype]), beta=1.0)[::2]
    assert_bitwise_equal(af.swish(x, beta=1.0), general, {"x": x}, what="forward")


@pytest.mark.parametrize("dtype", dtype_params())
def test_moderate_swish_backward_gives_the_general_bits(dtype, rng):
    x = moderate_x(rng, 20000 + int(rng.integers(0, 64)), dtype)
    grad_output = moderate_multipliers(rng, x.size, dtype)
    grad_input, grad_beta = af.swish.backward(grad_output, x, beta=1.0)
    inputs = {"x": x, "grad_output": grad_output}
    general, _ = af.swish.backward(with_general_between(grad_output, 1.0),
                                   with_general_between(x, 2 * X_BOUND[dtype]), beta=1.0)
    assert_bitwise_equal(grad_input, general[::2], inputs, what="grad_input, x not moderate")
    general, _ = af.swish.backward(with_general_between(grad_output, TINY[dtype] / 2),
                                   with_general_between(x, 1.0), beta=1.0)
    assert_bitwise_equal(grad_input, general[::2], inputs,
                         what="grad_input, grad_output not moderate")
    # the d/dbeta terms (summed, so not comparable bit for bit with other sums) are those
    # of the general kernel: the sum of the spread call's terms, whose extra elements add 0
    # (grad_output 0 there)
    general, spread_beta = af.swish.backward(with_general_between(grad_output, 0.0),
                                             with_general_between(x, 2 * X_BOUND[dtype]),
                                             beta=1.0)
    assert np.isfinite(grad_beta)
    np.testing.assert_allclose(grad_beta, spread_beta, rtol=1e-5 if dtype == np.float32 else 1e-12)


# swish with any other beta (not 0): a chunk is moderate where every t = beta x is moderate
# (|t| <= 200 in double, computed in double for float64 arrays; |beta x| <= 20 rounded to
# float32 for float32 arrays, whose moderate elements take float32 kernels) and every x and
# grad_output is 0 or moderate in the arrays' dtype (x multiplies sigmoid(t) and s'(t)). In
# float32, a chunk that is not moderate throughout takes the float32 kernels' results for its
# moderate elements and the double kernels' for the others.
SWISH_BETAS = [pytest.param(beta, id=f"beta={beta}") for beta in (1.7, -0.6, 0.05)]
T_BOUND = {np.dtype(np.float32): 20.0, np.dtype(np.float64): 200.0}


def swish_moderate_x(rng, n, beta, dtype):
    """x whose t = beta x is moderate, of every kind: t normal around 0, uniform over the
    whole range and within 0.3 of silu's minimum (silu'(t) = 0) and of its negation; x
    log-uniform over the multipliers' range up to where t leaves it; +-0."""
    bound = T_BOUND[np.dtype(dtype)]
    largest = 0.999 * bound / abs(beta)
    k = n // 5
    t = np.concatenate([rng.standard_normal(k) * 3, rng.uniform(-bound, bound, k),
                        SILU_X0 + rng.uniform(-0.3, 0.3, k), -SILU_X0 + rng.uniform(-0.3, 0.3, k)])
    magnitudes = np.exp(rng.uniform(np.log(TINY[dtype]), np.log(largest), n - 4 * k - 4))
    x = np.concatenate([0.999 * t / beta, np.copysign(magnitudes, rng.random(magnitudes.size) - 0.5),
                        [largest, -largest, 0.0, -0.0]])
    x = x.astype(dtype)
    x[(x != 0) & (np.abs(x) < TINY[dtype])] = TINY[dtype]
    return rng.permutation(x)


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("beta", SWISH_BETAS)
def test_moderate_swish_other_beta_forward_gives_the_general_bits(beta, dtype, rng):
    x = swish_moderate_x(rng, 20000 + int(rng.integers(0, 64)), beta, dtype)
    assert _special.swish_moderate_block(beta, x)
    beyond = 4 * T_BOUND[np.dtype(dtype)] / abs(beta)
    for value in (beyond, TINY[dtype] / 2):  # t not moderate; x not a moderate multiplier
        spread = with_general_between(x, value)
        assert not _special.swish_moderate_block(beta, spread)
        assert_bitwise_equal(af.swish(x, beta=beta), af.swish(spread, beta=beta)[::2],
                             {"x": x}, what=f"forward, {value} between")


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("beta", SWISH_BETAS)
def test_moderate_swish_other_beta_backward_gives_the_general_bits(beta, dtype, rng):
    x = swish_moderate_x(rng, 20000 + int(rng.integers(0, 64)), beta, dtype)
    grad_output = moderate_multipliers(rng, x.size, dtype)
    assert _special.swish_moderate_block(beta, x, grad_output)
    grad_input, grad_beta = af.swish.backward(grad_output, x, beta=beta)
    inputs = {"x": x, "grad_output": grad_output}
    beyond = 4 * T_BOUND[np.dtype(dtype)] / abs(beta)
    # general through t, through x as a multiplier, through grad_output; the extra elements'
    # grad_output is 0 in the first, so that their d/dbeta terms add 0 to the sum
    for g_value, x_value, what in ((0.0, beyond, "t not moderate"),
                                   (0.0, TINY[dtype] / 2, "x not a moderate multiplier"),
                                   (TINY[dtype] / 2, 1.0, "grad_output not moderate")):
        spread_g = with_general_between(grad_output, g_value)
        spread_x = with_general_between(x, x_value)
        assert not _special.swish_moderate_block(beta, spread_x, spread_g)
        general, spread_beta = af.swish.backward(spread_g, spread_x, beta=beta)
        assert_bitwise_equal(grad_input, general[::2], inputs, what=f"grad_input, {what}")
        if g_value == 0.0:
            # the same terms summed in other chunks: equal up to the sums' rounding
            assert np.isfinite(grad_beta)
            np.testing.assert_allclose(grad_beta, spread_beta,
                                       rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", dtype_params())
def test_moderate_glu_forward_gives_the_general_bits(dtype, rng):
    b = moderate_x(rng, 20000 + int(rng.integers(0, 64)), dtype)
    a = moderate_multipliers(rng, b.size, dtype)
    moderate = af.glu(np.concatenate([a, b])[None, :], axis=-1)[0]
    inputs = {"a": a, "b": b}
    general = af.glu(np.concatenate([with_general_between(a, 1.0),
                                     with_general_between(b, 2 * X_BOUND[dtype])])[None, :],
                     axis=-1)[0, ::2]
    assert_bitwise_equal(moderate, general, inputs, what="b not moderate")
    general = af.glu(np.concatenate([with_general_between(a, TINY[dtype] / 2),
                                     with_general_between(b, 1.0)])[None, :], axis=-1)[0, ::2]
    assert_bitwise_equal(moderate, general, inputs, what="a not moderate")


@pytest.mark.parametrize("dtype", dtype_params())
def test_moderate_glu_backward_gives_the_general_bits(dtype, rng):
    # the multipliers of glu's backward are grad_output and grad_output * a
    b = moderate_x(rng, 20000 + int(rng.integers(0, 64)), dtype)
    n = b.size
    grad_output = moderate_multipliers(rng, n, dtype)
    # a such that grad_output * a is moderate too, of every magnitude (a = p / grad_output)
    log_tiny = np.log2(TINY[dtype])
    product = np.exp2(rng.uniform(log_tiny + 2, -log_tiny - 2, n)) * rng.choice([-1, 1], n)
    g64 = grad_output.astype(np.float64)
    a = np.where(g64 == 0, rng.standard_normal(n), product / np.where(g64 == 0, 1, g64))
    a = a.astype(dtype)
    assert _elementwise.moderate_block(b, grad_output) and \
        _elementwise.moderate_block(b, grad_output * a)
    x = np.concatenate([a, b])[None, :]
    moderate = af.glu.backward(grad_output[None, :], x, axis=-1)[0]
    inputs = {"a": a, "b": b, "grad_output": grad_output}

    def spread(a_between, b_between, g_between):
        x = np.concatenate([with_general_between(a, a_between),
                            with_general_between(b, b_between)])[None, :]
        grad = af.glu.backward(with_general_between(grad_output, g_between)[None, :], x,
                               axis=-1)[0]
        return np.concatenate([grad[:2 * n:2], grad[2 * n::2]])
    assert_bitwise_equal(moderate, spread(1.0, 2 * X_BOUND[dtype], 1.0), inputs,
                         what="b not moderate")
    assert_bitwise_equal(moderate, spread(1.0, 1.0, TINY[dtype] / 2), inputs,
                         what="grad_output not moderate")
    # a and grad_output moderate, their product not
    big = float(np.sqrt(2 / TINY[dtype]))
    assert_bitwise_equal(moderate, spread(big, 1.0, big), inputs,
                         what="grad_output * a not moderate")
