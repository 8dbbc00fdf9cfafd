"""The vectorisable elementary functions of pyx/vecmath.h (through actfast._vecmath), and the
kernel formulas built on them where the float64 reference cannot judge them.

- float32 primitives over a dense sweep of their domain, against float64 numpy/scipy (whose
  own error is far below a float32 ulp);
- float64 primitives at random points, against mpmath;
- special values (+-0, +-inf, NaN, subnormals, the overflow and underflow edges);
- the same bits from the vectorised loop and from the scalar code for one element;
- float32 comparison bounds (at_most / at_least) against exact rational comparisons;
- float64 kernels near the zeros of their derivatives and in the subnormal tails, against
  mpmath (there the float64 reference's own formulas cancel or round a subnormal first).
"""
import math
from fractions import Fraction

import numpy as np
import pytest

from actfast import _vecmath as V
import actfast as af

mpmath = pytest.importorskip("mpmath")
special = pytest.importorskip("scipy.special")

SQRT_PI_2 = np.sqrt(np.pi / 2)


def mills_ratio64(a):
    return SQRT_PI_2 * special.erfcx(a / np.sqrt(2))


def apply(name, x):
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    getattr(V, name)(x, out)
    return out


def ulp32(actual, expected):
    """|actual - expected| in float32 ulps at expected (subnormals: in units of 2^-149)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        spacing = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
        err = np.abs(actual - expected) / spacing
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    rounded_inf = np.isinf(expected.astype(np.float32)) & (actual == expected.astype(np.float32))
    return np.where(same | rounded_inf, 0.0, err)


def float32_sweep(lo, hi, count=1_000_000):
    """`count` float32 values evenly spaced in bit pattern over [lo, hi] (both signs where
    the interval has them), so that every binade, subnormals included, is covered."""
    top = np.float32(max(abs(lo), abs(hi))).view(np.int32)
    patterns = np.unique(np.linspace(0, top, count // 2).astype(np.int32))
    positive = patterns.view(np.float32)
    values = np.concatenate([positive, -positive])
    return values[(values >= lo) & (values <= hi)]


# ---- float32 primitives: name, domain, float64 reference, bound in ulps (measured maximum
# in the comment)
FLOAT32_PRIMITIVES = [
    ("exp", (-110.0, 89.0), np.exp, 1.0),                                  # 0.97
    ("expm1", (-30.0, 89.0), np.expm1, 1.5),                               # 1.30
    ("tanh", (-20.0, 20.0), np.tanh, 2.1),   # 2.03 over every float32 of [0, 11] (C scan)
    ("log1p_unit", (0.0, 1.0), np.log1p, 1.0),                             # 0.78
    ("gauss", (0.0, 15.0), lambda a: np.exp(-a * a / 2), 1.5),             # 1.11
    ("mills_ratio", (0.0, 15.0), mills_ratio64, 1.0),                      # 0.76
    ("mills_ratio_minus_a", (0.0, 15.0), lambda a: mills_ratio64(a) - a, 1.0),  # 0.69
    ("exprel_small", (-1.0, 1.0), lambda d: np.where(d == 0, 1.0, np.expm1(d) / np.where(d == 0, 1, d)), 1.5),
]


def x_minus_tanh64(x):
    """x - tanh(x) in float64 to ~1e-14 relative: the Taylor series below |x| = 1/8 (seven
    terms), the subtraction above (it loses at most 8 of double's 53 bits there)."""
    x2 = x * x
    series = x * x2 * np.polyval([929569 / 638512875, -21844 / 6081075, 1382 / 155925,
                                  -62 / 2835, 17 / 315, -2 / 15, 1 / 3], x2)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < 0.125, series, x - np.tanh(x))


def test_float32_tanhshrink_accuracy():
    # tanhshrink's float32 kernel (vecmath.h's af_x_minus_tanhf: x^3 times a polynomial in
    # x^2 below |x| = 1.4, x - tanh(x) above) over a sweep of every binade, densely around
    # the switch, at 2.5 ulp (measured over every float32: 1.83, 2.47 without FMA)
    switch = np.float32(1.4).view(np.int32)
    near = np.arange(switch - 20000, switch + 20000, dtype=np.int32).view(np.float32)
    x = np.concatenate([float32_sweep(-20.0, 20.0), near, -near])
    with np.errstate(under="ignore"):
        err = ulp32(af.tanhshrink(x), x_minus_tanh64(x.astype(np.float64)))
    worst = int(np.argmax(err))
    assert err[worst] <= 2.5, f"{err[worst]:.3g} ulp at x={x[worst]!r}"


def _x_minus_tanh_mp(x):
    """x - tanh(x) exactly enough for a double: mpmath with 3 log2(1/|x|) bits more than
    double's for the cancellation (x - tanh x ~ x^3 / 3)."""
    bits = 120 + int(3 * max(0.0, -math.log2(abs(x)))) if x else 120
    with mpmath.workprec(bits):
        return +(mpmath.mpf(x) - mpmath.tanh(mpmath.mpf(x)))


def test_float64_tanhshrink_accuracy(rng):
    # tanhshrink's float64 kernel (vecmath.h's af_x_minus_tanh: x^3 times a polynomial in x^2
    # below |x| = 1.4, x - tanh(x) above) against mpmath at 2.5 ulp (1.54 in 2e4 points;
    # x - tanh(x) from |x| = 1/8 up, as before, was 265 ulp near 0.13, 21 near 0.6)
    x = np.concatenate([rng.uniform(0, 1.6, 300), rng.uniform(0.12, 0.14, 100),
                        rng.uniform(1.38, 1.42, 100), np.exp(rng.uniform(-700, 0, 100))])
    x = np.concatenate([x, -x])
    got = af.tanhshrink(x)
    worst, at = 0.0, None
    for value, result in zip(x, got):
        exact = _x_minus_tanh_mp(float(value))
        spacing = np.spacing(abs(float(exact))) if exact != 0 else 5e-324
        err = float(abs(mpmath.mpf(float(result)) - exact) / spacing)
        if err > worst:
            worst, at = err, value
    assert worst <= 2.5, f"tanhshrink({at!r}): {worst:.3f} ulp"


@pytest.mark.parametrize("name, domain, reference, bound", FLOAT32_PRIMITIVES,
                         ids=[p[0] for p in FLOAT32_PRIMITIVES])
def test_float32_primitive_accuracy(name, domain, reference, bound):
    x = float32_sweep(*domain)
    with np.errstate(over="ignore", under="ignore"):
        err = ulp32(apply(name, x), reference(x.astype(np.float64)))
    worst = int(np.argmax(err))
    assert err[worst] <= bound, f"{name}({x[worst]!r}): {err[worst]:.3f} ulp"


# Before the commit of this test, tanh took one of two forms by |x| below and above 0.625:
# -(e^y - 1) / ((e^y - 1) + 2), then (1 - e^y) / (1 + e^y). The first, with two roundings in
# its denominator, was worst just below the seam: 2.2 ulp at these float32 points (the largest
# over every float32 of [0, 11]), 2.63 at the float64 one. One form for all x, numerator and
# denominator each an fma rounded once: 0.21-0.26 and 1.63 ulp there.
TANH_OLD_WORST_FLOAT32 = [0.54861629, 0.542920768, 0.548818469, 0.543581128, 0.545738935,
                          0.539264858, 0.544113159, 0.53402102, 0.544811249, 0.546579063]


def test_tanh_where_the_two_forms_were_worst():
    x = np.array(TANH_OLD_WORST_FLOAT32 + [-v for v in TANH_OLD_WORST_FLOAT32], np.float32)
    err = ulp32(apply("tanh", x), np.tanh(x.astype(np.float64)))
    assert err.max() <= 1.0, f"tanh({x[np.argmax(err)]!r}): {err.max():.3f} ulp"
    x64 = np.array([0.20737657937636675, -0.20737657937636675])
    got = apply("tanh", x64)
    with mpmath.workdps(40):
        for value, result in zip(x64, got):
            exact = mpmath.tanh(mpmath.mpf(float(value)))
            err64 = float(abs(mpmath.mpf(float(result)) - exact) / np.spacing(abs(float(exact))))
            assert err64 <= 2.0, f"tanh({value!r}): {err64:.3f} ulp"


# ---- float64 primitives against mpmath

def _mills_ratio_mp(a):
    return mpmath.erfc(a / mpmath.sqrt(2)) * mpmath.exp(a * a / 2) * mpmath.sqrt(mpmath.pi / 2)


def _circle_angles(rng, n):
    """Box-Muller's angles 2 pi u (u a multiple of 2^-52 on [0, 1)): spread over the circle,
    and next to each multiple of pi/2 (u = k/4 + j 2^-52, small j of either sign)."""
    near = rng.integers(0, 5, n) / 4 + rng.integers(-2 ** 12, 2 ** 12, n) * 2.0 ** -52
    u = np.concatenate([rng.integers(0, 2 ** 52, n) * 2.0 ** -52, near[(near >= 0) & (near < 1)]])
    return 2 * np.pi * u


# Each bound is above the largest error found where the primitive is worst (the comment: that
# error, in scans of 1e5-5e6 random points against mpmath or long double): the test draws a
# few hundred fresh points, so a bound at the few hundred points' maximum fails now and then.
FLOAT64_PRIMITIVES = [
    ("exp", lambda rng, n: np.concatenate([rng.uniform(-745, 709, n), rng.uniform(-2, 2, n)]),
     mpmath.exp, 1.5),                                                      # 1.03
    ("expm1", lambda rng, n: np.concatenate([rng.uniform(-40, 709, n), rng.uniform(-1, 1, n),
                                             np.exp(rng.uniform(-40, 0, n))]),
     mpmath.expm1, 2.5),                                                    # 1.86
    ("tanh", lambda rng, n: np.concatenate([rng.uniform(-20, 20, n), np.exp(rng.uniform(-30, 1, n))]),
     mpmath.tanh, 2.5),                                  # 2.18 (6e7 points, long double)
    ("log1p_unit", lambda rng, n: np.concatenate([rng.uniform(0, 1, n), np.exp(rng.uniform(-40, 0, n))]),
     mpmath.log1p, 1.5),                                                    # 1.25
    ("gauss", lambda rng, n: rng.uniform(0, 39, n), lambda a: mpmath.exp(-a * a / 2), 1.5),  # 1.11
    # the rational fit's polynomials, evaluated in a up to 2 and in 1/a above: worst near a = 4
    # (more in a build without FMA)
    ("mills_ratio", lambda rng, n: np.concatenate([rng.uniform(0, 39, n), rng.uniform(0, 2, n)]),
     _mills_ratio_mp, 8.0),                                                 # 6.14
    ("mills_ratio_minus_a",
     lambda rng, n: np.concatenate([rng.uniform(0, 39, n), 0.7517915246935645 + rng.uniform(-1e-3, 1e-3, n)]),
     lambda a: _mills_ratio_mp(a) - a, 6.5),                               # 4.96
    ("exprel_small", lambda rng, n: rng.uniform(-0.5, 0.5, n),
     lambda d: mpmath.expm1(d) / d if d else mpmath.mpf(1), 1.5),          # 0.64
    # Box-Muller's log(1 - u) (u a multiple of 2^-52 on [0, 1)) and its cos/sin of 2 pi u:
    # the whole normal range, 1 - u down to 2^-52 and just below 1 (relative accuracy of a
    # tiny log), angles next to the multiples of pi/2 (tiny results)
    ("log_normal_positive",
     lambda rng, n: np.concatenate([np.exp(rng.uniform(-708, 709, n)),
                                    np.exp(rng.uniform(-36.05, 0, n)),
                                    1.0 - rng.integers(1, 2 ** 20, n) * 2.0 ** -52]),
     mpmath.log, 1.5),                                                     # 0.82
    ("cos_circle", _circle_angles, mpmath.cos, 2.0),                     # 1.33
    ("sin_circle", _circle_angles, mpmath.sin, 2.0),                     # 1.30
]


@pytest.mark.parametrize("name, draw, reference, bound", FLOAT64_PRIMITIVES,
                         ids=[p[0] for p in FLOAT64_PRIMITIVES])
def test_float64_primitive_accuracy(name, draw, reference, bound, rng):
    x = draw(rng, 300)
    result = apply(name, x)
    with mpmath.workdps(40):
        worst, at = 0.0, None
        for value, got in zip(x, result):
            exact = reference(mpmath.mpf(float(value)))
            spacing = np.spacing(abs(float(exact))) if exact != 0 else 5e-324
            err = float(abs(mpmath.mpf(float(got)) - exact) / spacing)
            if err > worst:
                worst, at = err, value
    assert worst <= bound, f"{name}({at!r}): {worst:.3f} ulp"


# ---- special values

INF, NAN = np.inf, np.nan
SPECIALS = [
    # name, x, expected (exact)
    ("exp", 0.0, 1.0), ("exp", -0.0, 1.0), ("exp", INF, INF), ("exp", -INF, 0.0),
    ("exp", NAN, NAN), ("exp", 1e30, INF), ("exp", -1e30, 0.0), ("exp", 1000.0, INF),
    ("expm1", 0.0, 0.0), ("expm1", -0.0, -0.0), ("expm1", INF, INF), ("expm1", -INF, -1.0),
    ("expm1", NAN, NAN), ("expm1", 1e-40, 1e-40), ("expm1", -1e30, -1.0),
    ("tanh", 0.0, 0.0), ("tanh", -0.0, -0.0), ("tanh", INF, 1.0), ("tanh", -INF, -1.0),
    ("tanh", NAN, NAN), ("tanh", 1e-40, 1e-40), ("tanh", -1e30, -1.0),
    ("log1p_unit", 0.0, 0.0), ("log1p_unit", 1.0, np.log(2.0)), ("log1p_unit", NAN, NAN),
    ("log1p_unit", 1e-40, 1e-40),
    ("gauss", 0.0, 1.0), ("gauss", NAN, NAN),
    ("mills_ratio", 0.0, SQRT_PI_2), ("mills_ratio", NAN, NAN),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, x, expected", SPECIALS,
                         ids=[f"{n}({x!r})" for n, x, _ in SPECIALS])
def test_special_values(name, x, expected, dtype):
    with np.errstate(over="ignore"):
        value = np.array([x], dtype=dtype)
        want = np.array([expected], dtype=dtype)
    got = apply(name, value)
    if np.isnan(want[0]):
        assert np.isnan(got[0])
    elif np.isinf(want[0]):
        assert got[0] == want[0]
    else:
        assert abs(float(got[0]) - float(want[0])) <= float(np.spacing(np.abs(want[0]))), (got, want)
        assert np.signbit(got[0]) == np.signbit(want[0]) or want[0] != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_subnormal_results(dtype):
    # every result in the subnormal range is within a unit of the exact value (the second
    # half of 2^n applied last rounds once; near the normal range the polynomial's relative
    # error adds up to half a unit)
    tiny = np.finfo(dtype).smallest_subnormal
    lo, hi = (-103.9, -87.4) if dtype == np.float32 else (-744.4, -708.4)
    x = np.linspace(lo, hi, 20001).astype(dtype)
    result = apply("exp", x)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.exp(mpmath.mpf(float(v)))) for v in x[::50]])
    units = np.abs(result[::50].astype(np.float64) - exact) / tiny
    assert units.max() <= 1.0, units.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_times_rounds_once(dtype, rng):
    # exp(x) * m with exp(x) subnormal and |m| up to 100. A subnormal product is within 1.5
    # of its units (exp rounded to a subnormal first would be off by up to 50 units). A normal
    # one carries exp's relative error (up to ~0.8 ulp of 2^-n exp(x) in [0.7, 1.4]), which
    # at the bottom of the product's binade is up to ~1.6 of its units, and the product's
    # half unit: within 2.5 units (2.0 seen against the float64 reference rounded to double)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    lo, hi = (-110.0, -88.0) if dtype == np.float32 else (-750.0, -709.0)
    x = rng.uniform(lo, hi, 400).astype(dtype)
    m = rng.uniform(-100, 100, 400).astype(dtype)
    out = np.empty_like(x)
    V.exp_times(x, m, out)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.exp(mpmath.mpf(float(a))) * mpmath.mpf(float(b)))
                          for a, b in zip(x, m)])
    units = np.abs(out.astype(np.float64) - exact) / np.maximum(np.spacing(np.abs(exact).astype(dtype)), tiny)
    subnormal = np.abs(exact) < np.finfo(dtype).tiny
    assert subnormal.sum() > 100 and (~subnormal).sum() > 10
    assert units[subnormal].max() <= 1.5, units[subnormal].max()
    assert units[~subnormal].max() <= 2.5, units[~subnormal].max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_expm1_neg_has_expm1s_bits_below_zero(dtype, rng):
    # elu's and selu's forward take expm1_neg, expm1 without the clamp and the form for
    # positive arguments: the same bits for every x <= 0 (and NaN)
    info = np.finfo(dtype)
    x = -np.concatenate([rng.uniform(0, 60, 20000), np.exp(rng.uniform(-100, 7, 20000)),
                         [0.0, info.smallest_subnormal, info.tiny, 17.9, 18.0, 18.1, 49.9,
                          50.0, 50.1, 88.0, 104.0, 745.0, 1e30, float(info.max), np.inf]])
    x = np.concatenate([x, [0.0, np.nan, -np.nan]]).astype(dtype)   # +0.0 and -0.0 both
    assert (apply("expm1_neg", x).view(f"u{x.itemsize}")
            == apply("expm1", x).view(f"u{x.itemsize}")).all()


# ---- the vector loop and the scalar code agree

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["exp", "expm1", "expm1_neg", "tanh", "log1p_unit", "gauss",
                                  "mills_ratio", "mills_ratio_minus_a", "exprel_small"])
def test_same_bits_scalar_and_vector(name, dtype, rng):
    domains = {"log1p_unit": (0, 1), "gauss": (0, 15), "mills_ratio": (0, 15),
               "mills_ratio_minus_a": (0, 15), "exprel_small": (-0.5, 0.5),
               "expm1_neg": (-30, 0)}
    x = rng.uniform(*domains.get(name, (-30, 30)), 203).astype(dtype)
    x[::17] = np.nan
    together = apply(name, x)
    alone = np.concatenate([apply(name, x[i:i + 1]) for i in range(x.size)])
    same = (together == alone) | (np.isnan(together) & np.isnan(alone))
    assert same.all(), x[~same][:5]


# ---- comparison bounds

@pytest.mark.parametrize("kind", ["at_most", "at_least"])
def test_float_comparison_bounds(kind, rng):
    values = np.concatenate([rng.normal(0, 10, 300), np.float32(rng.normal(0, 10, 50)).astype(float),
                             [0.0, -0.0, 1e-50, -1e-50, 1e-40, 1e39, -1e39, 3.4028235677973366e38,
                              0.1, -0.1, 1 / 3]])
    for c in values:
        with np.errstate(over="ignore"):
            bound = np.float32(V.float_at_most(c) if kind == "at_most" else V.float_at_least(c))
            up = np.nextafter(bound, np.float32(np.inf))
            down = np.nextafter(bound, np.float32(-np.inf))
        if np.isinf(bound):     # c beyond the float32 range
            assert abs(c) > np.finfo(np.float32).max and (bound > 0) == (c > 0)
        elif kind == "at_most":
            assert Fraction(float(bound)) <= Fraction(c)
            assert np.isinf(up) or Fraction(float(up)) > Fraction(c)
        else:
            assert Fraction(float(bound)) >= Fraction(c)
            assert np.isinf(down) or Fraction(float(down)) < Fraction(c)


# ---- float64 kernels where the float64 reference cannot judge them

def _sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _mish(x):
    return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


def _gelu_tanh(x):
    return x * _sigmoid(2 * mpmath.sqrt(2 / mpmath.pi) * (x + mpmath.mpf("0.044715") * x ** 3))


# function, params, exact derivative, zero of the derivative
DERIVATIVE_ZEROS = [
    ("silu", {}, lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))), -1.2784645427610738),
    # swish's general kernel (beta != 1) takes silu's derivative at t = beta x: beta = 2 keeps
    # t exact, so that t - x0 is as small as x - x0 / 2
    ("swish", {"beta": 2.0}, lambda x: _sigmoid(2 * x) * (1 + 2 * x * (1 - _sigmoid(2 * x))),
     -1.2784645427610738 / 2),
    ("mish", {}, lambda x: mpmath.diff(_mish, x), -1.1924312145154952),
    ("gelu", {}, lambda x: mpmath.ncdf(x) + x * mpmath.npdf(x), -0.7517915246935645),
    ("gelu", {"approximate": "tanh"}, lambda x: mpmath.diff(_gelu_tanh, x), -0.7524614220710163),
]


@pytest.mark.parametrize("name, params, derivative, zero", DERIVATIVE_ZEROS,
                         ids=["silu", "swish", "mish", "gelu", "gelu-tanh"])
def test_float64_derivative_near_its_zero(name, params, derivative, zero, rng):
    # relative accuracy where the derivative crosses 0: the kernels expand around the zero
    # (Phi(x) + x phi(x), s + x s (1 - s), ... would lose every bit there)
    x = np.concatenate([zero + rng.uniform(-1, 1, 60) * 10.0 ** rng.uniform(-15, 0, 60),
                        np.nextafter(zero, [-np.inf, np.inf])])
    result = getattr(af, name).backward(np.ones_like(x), x, **params)
    if name == "swish":
        result = result[0]   # (grad_input, grad_beta)
    with mpmath.workdps(50):
        for value, got in zip(x, result):
            exact = derivative(mpmath.mpf(float(value)))
            err = float(abs(mpmath.mpf(float(got)) - exact) / np.spacing(abs(float(exact))))
            assert err <= 16, f"{name}'({value!r}) = {got!r}: {err:.1f} ulp from {exact}"


# (not gelu(approximate='tanh'): the rounding of 2u = 2 sqrt(2/pi) (x + 0.044715 x^3), some
# 700 in the tail, is multiplied by 700 in e^(2u), in any float64 computation)
TAILS = [
    ("silu", {}, lambda x: x * _sigmoid(x), (-745.0, -708.0)),
    ("mish", {}, _mish, (-745.5, -708.0)),
    ("gelu", {}, lambda x: x * mpmath.ncdf(x), (-38.5, -37.0)),
]


@pytest.mark.parametrize("name, params, function, interval", TAILS, ids=["silu", "mish", "gelu"])
def test_float64_subnormal_tail(name, params, function, interval, rng):
    # results in and near the subnormal range, rounded once (x e^x with e^x rounded to a
    # subnormal first would be off by up to |x| / 2 units): within 6 units of the last place
    # (the smallest subnormal's in the subnormal range; gelu's Mills ratio has up to 3.7 ulp,
    # and its product with phi rounds once more: 5 units seen in rare draws)
    x = rng.uniform(*interval, 100)
    result = getattr(af, name)(x, **params)
    with mpmath.workdps(50):
        exact = [function(mpmath.mpf(float(v))) for v in x]
    units = [float(abs(mpmath.mpf(float(r)) - e) / max(np.spacing(abs(float(e))), 5e-324))
             for r, e in zip(result, exact)]
    assert max(units) <= 6.0, (x[int(np.argmax(units))], max(units))
