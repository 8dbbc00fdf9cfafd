"""Self-checks of the NumPy reference (actfast/reference.py), the oracle of the other tests.

The reference is loaded by path, so these tests need neither the compiled extension nor an
importable ``actfast`` package. They check it four ways: derivatives against central finite
differences, values against independently computed constants (mpmath, 50 digits), floating
point hygiene at large and special inputs, and, where torch is installed, against PyTorch's
autograd in float64.
"""
import importlib.util
import math
import pathlib
from typing import NamedTuple

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "actfast" / "reference.py"
_spec = importlib.util.spec_from_file_location("actfast_reference", _PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

INF = math.inf
NAN = math.nan


class Case(NamedTuple):
    name: str
    params: dict = {}
    kinks: tuple = ()          # where f or f' is not continuous: finite differences keep away
    torch: bool = True         # PyTorch has the same function with these parameters

    @property
    def id(self):
        return "-".join([self.name] + [f"{k}={v}" for k, v in self.params.items()])

    def functions(self):
        forward, derivative = ref.ELEMENTWISE[self.name]
        return (lambda x: forward(x, **self.params)), (lambda x: derivative(x, **self.params))


CASES = [
    Case("relu", kinks=(0.0,)),
    Case("leaky_relu", kinks=(0.0,)),
    Case("leaky_relu", {"negative_slope": 0.2}, (0.0,)),
    Case("leaky_relu", {"negative_slope": -0.5}, (0.0,)),
    Case("sigmoid"),
    Case("tanh"),
    Case("gelu"),
    Case("gelu", {"approximate": "tanh"}),
    Case("silu"),
    Case("relu6", kinks=(0.0, 6.0)),
    Case("elu", kinks=(0.0,)),
    Case("elu", {"alpha": 2.0}, (0.0,)),
    Case("elu", {"alpha": 0.5}, (0.0,)),
    Case("celu", kinks=(0.0,)),
    Case("celu", {"alpha": 2.0}, (0.0,)),
    Case("selu", kinks=(0.0,)),
    Case("softplus", kinks=(20.0,)),
    Case("softplus", {"beta": 2.0, "threshold": 10.0}, (5.0,)),
    Case("softsign"),
    Case("log_sigmoid"),
    Case("mish"),
    Case("hardsigmoid", kinks=(-3.0, 3.0)),
    Case("hardsigmoid", {"slope": 0.2, "offset": 0.5}, (-2.5, 2.5), torch=False),
    Case("hardtanh", kinks=(-1.0, 1.0)),
    Case("hardtanh", {"min_val": -2.0, "max_val": 3.0}, (-2.0, 3.0)),
    Case("hardswish", kinks=(-3.0, 3.0)),
    Case("hardshrink", kinks=(-0.5, 0.5)),
    Case("hardshrink", {"lambd": 1.0}, (-1.0, 1.0)),
    Case("softshrink", kinks=(-0.5, 0.5)),
    Case("softshrink", {"lambd": 1.0}, (-1.0, 1.0)),
    Case("tanhshrink"),
    Case("threshold", {"threshold": 1.0, "value": -2.0}, (1.0,)),
    Case("threshold", {"threshold": -0.5, "value": 0.0}, (-0.5,)),
]
ALL = [pytest.param(c, id=c.id) for c in CASES]
# the first case of each name: its default parameters (threshold has none)
DEFAULTS = {c.name: c for c in reversed(CASES) if c.name != "gelu" or not c.params}


def random_points(rng, kinks=(), n=400, margin=1e-3):
    """Random points of `rng` in [-30, 30], most of them near 0, none within `margin` of a kink."""
    x = np.concatenate([rng.normal(0.0, 3.0, n), rng.uniform(-30.0, 30.0, n // 4)])
    for k in kinks:
        x = x[np.abs(x - k) > margin]
    return x


def central_difference(f, x):
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    up, down = x + h, x - h
    return (f(up) - f(down)) / (up - down)   # up - down: the step actually taken


def test_every_elementwise_entry_is_covered():
    assert set(DEFAULTS) == set(ref.ELEMENTWISE)
    assert len(ref.ELEMENTWISE) == 21


# ---- (a) derivatives against finite differences --------------------------------------------

@pytest.mark.parametrize("case", ALL)
def test_derivative_matches_finite_differences(case, rng):
    f, d = case.functions()
    x = random_points(rng, case.kinks)
    np.testing.assert_allclose(d(x), central_difference(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("beta", [1.0, 0.5, -1.5])
def test_swish_grad_matches_finite_differences(beta, rng):
    x = random_points(rng)
    dx, dbeta = ref.swish_grad(x, beta=beta)
    np.testing.assert_allclose(dx, central_difference(lambda t: ref.swish(t, beta=beta), x),
                               rtol=1e-6, atol=1e-8)
    h = 1e-6
    fd_beta = (ref.swish(x, beta=beta + h) - ref.swish(x, beta=beta - h)) / (2 * h)
    np.testing.assert_allclose(dbeta, fd_beta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ref.swish(x, beta=1.0), ref.silu(x), rtol=1e-15)


def test_pact_grad_matches_finite_differences(rng):
    alpha = 2.5
    x = random_points(rng, kinks=(0.0, alpha))
    dx, dalpha = ref.pact_grad(x, alpha)
    np.testing.assert_allclose(dx, central_difference(lambda t: ref.pact(t, alpha), x), atol=1e-8)
    fd = (ref.pact(x, alpha + 1e-6) - ref.pact(x, alpha - 1e-6)) / 2e-6
    np.testing.assert_allclose(dalpha, fd, atol=1e-8)
    # kinks: d/dx is 1 on [0, alpha), d/dalpha is 1 on [alpha, inf]; NaN gives 0 and 0
    dx, dalpha = ref.pact_grad([-1.0, 0.0, alpha, INF, NAN], alpha)
    np.testing.assert_array_equal(dx, [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(dalpha, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(ref.pact([-1.0, 0.0, 1.0, 9.0, NAN], alpha), [0, 0, 1, alpha, NAN])


@pytest.mark.parametrize("weight", [[0.25], [0.1, -0.3, 2.0]], ids=["shared", "per-channel"])
def test_prelu_grad_matches_finite_differences(weight, rng):
    x = rng.normal(size=(4, 3, 5))
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    dx, dw = ref.prelu_grad(x, weight)
    assert dx.shape == dw.shape == x.shape
    np.testing.assert_allclose(dx, central_difference(lambda t: ref.prelu(t, weight), x), atol=1e-8)
    w, h = np.asarray(weight), 1e-6
    fd = (ref.prelu(x, w + h) - ref.prelu(x, w - h)) / (2 * h)
    np.testing.assert_allclose(dw, fd, atol=1e-8)


def test_prelu_broadcasting():
    # 1-D input: the channel axis is axis 0
    np.testing.assert_array_equal(ref.prelu([-1.0, -1.0, 2.0], [1.0, 2.0, 3.0]), [-1.0, -2.0, 2.0])
    with pytest.raises(ValueError):
        ref.prelu(np.ones((2, 4)), [1.0, 2.0, 3.0])


def test_rrelu_eval_is_leaky_relu_with_the_mean_slope(rng):
    x = random_points(rng)
    np.testing.assert_array_equal(ref.rrelu_eval(x), ref.leaky_relu(x, (1 / 8 + 1 / 3) / 2))
    np.testing.assert_array_equal(ref.rrelu_eval_grad(x, 0.1, 0.3), ref.leaky_relu_grad(x, 0.2))


def _check_vjp(f, vjp, x, rng, rtol=1e-6):
    """<vjp(g), v> against <g, directional finite difference of f along v>."""
    g = rng.normal(size=np.shape(f(x)))
    v = rng.normal(size=np.shape(x))
    h = 1e-6
    fd = np.sum(g * (f(x + h * v) - f(x - h * v))) / (2 * h)
    np.testing.assert_allclose(np.sum(vjp(g) * v), fd, rtol=rtol, atol=1e-8)


AXIS_FUNCTIONS = {
    "softmax": (ref.softmax, lambda g, x, a: ref.softmax_grad(g, ref.softmax(x, a), a)),
    "log_softmax": (ref.log_softmax,
                    lambda g, x, a: ref.log_softmax_grad(g, ref.log_softmax(x, a), a)),
    "softmin": (ref.softmin, lambda g, x, a: ref.softmin_grad(g, ref.softmin(x, a), a)),
    "logsumexp": (ref.logsumexp, lambda g, x, a: ref.logsumexp_grad(g, x, a)),
    "glu": (ref.glu, lambda g, x, a: ref.glu_grad(g, x, a)),
    "maxout": (lambda x, a: ref.maxout(x, 3, a), lambda g, x, a: ref.maxout_grad(g, x, 3, a)),
}


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("name", list(AXIS_FUNCTIONS))
def test_axis_gradients_match_finite_differences(name, axis, rng):
    f, vjp = AXIS_FUNCTIONS[name]
    x = rng.normal(size=(6, 12, 6)) * 3   # every axis splits in 2 and 3
    _check_vjp(lambda t: f(t, axis), lambda g: vjp(g, x, axis), x, rng)


def test_logsumexp_keepdims(rng):
    x = rng.normal(size=(3, 4))
    kept = ref.logsumexp(x, axis=0, keepdims=True)
    assert kept.shape == (1, 4)
    np.testing.assert_allclose(kept[0], ref.logsumexp(x, axis=0), rtol=1e-15)
    g = np.ones((1, 4))
    np.testing.assert_allclose(ref.logsumexp_grad(g, x, axis=0, keepdims=True),
                               ref.softmax(x, axis=0), rtol=1e-14)


def test_maxout_routes_ties_to_the_first_maximum():
    x = np.array([[1.0, 3.0, 3.0, 0.0, -1.0, -1.0]])
    np.testing.assert_array_equal(ref.maxout(x, 3), [[3.0, 0.0]])
    np.testing.assert_array_equal(ref.maxout_grad([[10.0, 20.0]], x, 3),
                                  [[0.0, 10.0, 0.0, 20.0, 0.0, 0.0]])
    # NaN wins its group, and the gradient goes to it; an infinite gradient stays where it goes
    x = np.array([1.0, NAN, 2.0, 5.0])
    np.testing.assert_array_equal(ref.maxout(x, 2), [NAN, 5.0])
    np.testing.assert_array_equal(ref.maxout_grad([INF, 1.0], x, 2), [0.0, INF, 0.0, 1.0])
    with pytest.raises(ValueError):
        ref.maxout(np.ones(5), 2)


# ---- (b) known values ----------------------------------------------------------------------

# (function, params, x, value): values from mpmath at 50 digits, rounded to double. The tail
# values are those a naive formula gets wrong (0, or with cancellation).
KNOWN = [
    ("gelu", {}, 1.0, 0.8413447460685429),
    ("gelu", {}, -10.0, -7.619853024160526e-23),
    ("gelu_grad", {}, -10.0, -7.618400096464814e-22),
    ("gelu", {"approximate": "tanh"}, 1.0, 0.8411919906082767),
    ("gelu", {"approximate": "tanh"}, -10.0, -1.204092348209806e-37),
    ("gelu_grad", {"approximate": "tanh"}, -5.0, -1.5463619875325946e-06),
    ("selu", {}, 1.0, 1.0507009873554805),
    ("selu", {}, -1.0, -1.1113307378125628),
    ("elu", {}, -1.0, -0.6321205588285577),
    ("sigmoid", {}, 0.0, 0.5),
    ("sigmoid", {}, -40.0, 4.248354255291589e-18),
    ("sigmoid_grad", {}, 40.0, 4.248354255291589e-18),
    ("tanh_grad", {}, 20.0, 1.6993417021166356e-17),
    ("log_sigmoid", {}, -1000.0, -1000.0),
    ("log_sigmoid", {}, 40.0, -4.248354255291589e-18),
    ("softplus", {}, 1000.0, 1000.0),
    ("softplus", {}, -40.0, 4.248354255291589e-18),
    ("silu", {}, -40.0, -1.6993417021166356e-16),
    ("mish", {}, 1.0, 0.8650983882673103),
    ("mish", {}, -40.0, -1.6993417021166356e-16),
    ("mish_grad", {}, 1.0, 1.0490362200997922),
    ("softsign", {}, 3.0, 0.75),
    ("hardswish", {}, 1.0, 2.0 / 3.0),
    ("hardsigmoid", {}, 1.5, 0.75),
    ("softshrink", {}, -2.0, -1.5),
]


@pytest.mark.parametrize("name, params, x, value", [
    pytest.param(*k, id=f"{k[0]}({k[2]}{''.join(f', {p}={v}' for p, v in k[1].items())})")
    for k in KNOWN])
def test_known_values(name, params, x, value):
    result = getattr(ref, name)(x, **params)
    assert isinstance(result, np.ndarray) and result.dtype == np.float64 and result.shape == ()
    np.testing.assert_allclose(result, value, rtol=1e-14, atol=0)


def test_softmax_family_known_values():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ref.logsumexp(x), 3.4076059644443806, rtol=1e-15)
    np.testing.assert_allclose(ref.softmax(x), np.exp(x - 3.4076059644443806), rtol=1e-15)
    np.testing.assert_allclose(ref.log_softmax(x), x - 3.4076059644443806, rtol=1e-15)
    np.testing.assert_allclose(ref.softmin(x), ref.softmax(-x), rtol=0)
    np.testing.assert_allclose(ref.glu([2.0, 0.0]), 1.0, rtol=0)


def test_shapes_and_dtypes():
    x = np.arange(-6, 6, dtype=np.float32).reshape(3, 4)
    for name, (f, d) in ref.ELEMENTWISE.items():
        params = DEFAULTS[name].params
        for result in (f(x, **params), d(x, **params), f(x.tolist(), **params)):
            assert isinstance(result, np.ndarray) and result.dtype == np.float64, name
            assert result.shape == x.shape, name


def test_cuts_only_skip_values_that_are_already_exact():
    # the cuts in gelu (|x| > 40 for the derivative, 25 for the tanh form) must not be
    # visible: just inside them the formula already gives the limit exactly
    for x, expected in [(39.99, 1.0), (-39.99, 0.0)]:
        assert ref.gelu_grad(x) == expected
    for x, value, grad in [(24.99, 24.99, 1.0), (-24.99, -0.0, 0.0)]:
        assert ref.gelu(x, approximate="tanh") == value
        assert ref.gelu_grad(x, approximate="tanh") == grad


# ---- (c) no overflow -----------------------------------------------------------------------

BIG = np.array([1000.0, -1000.0, 1e300, -1e300, INF, -INF])


@pytest.mark.parametrize("case", ALL)
def test_no_floating_point_errors_at_large_inputs(case):
    f, d = case.functions()
    # underflow to 0 is the right answer in the tails (exp(-1000)), everything else raises
    with np.errstate(all="raise", under="ignore"):
        y, g = f(BIG), d(BIG)
    assert not np.isnan(y).any() and not np.isnan(g).any()
    assert np.isfinite(y[:2]).all() and np.isfinite(g).all()


def test_axis_functions_do_not_overflow():
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0]])
    g = np.ones_like(x)
    with np.errstate(all="raise", under="ignore"):
        y = ref.softmax(x)
        np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0], atol=0)
        np.testing.assert_allclose(ref.logsumexp(x), [1000.0, -999.0 + math.log1p(2 * math.exp(-1))],
                                   rtol=1e-15)
        assert np.isfinite(ref.log_softmax(x)).all()
        assert np.isfinite(ref.softmin(x)).all()
        assert np.isfinite(ref.logsumexp_grad(g[:, 0], x)).all()
        assert np.isfinite(ref.glu(x[:, :2])).all()


# ---- (d) NaN and infinities ----------------------------------------------------------------

# f'(NaN) is NaN except where PyTorch's backward consistently returns a number (the branch
# its comparison falls into for NaN)
NAN_GRAD = {"relu": 1.0, "leaky_relu": 0.01, "hardsigmoid": 0.0, "threshold": 1.0}

# (f(-inf), f(+inf), f'(-inf), f'(+inf)) with the default parameters (threshold: 1, -2)
LIMITS = {
    "relu": (0, INF, 0, 1), "leaky_relu": (-INF, INF, 0.01, 1), "sigmoid": (0, 1, 0, 0),
    "tanh": (-1, 1, 0, 0), "gelu": (0, INF, 0, 1), "silu": (0, INF, 0, 1),
    "relu6": (0, 6, 0, 0), "elu": (-1, INF, 0, 1), "celu": (-1, INF, 0, 1),
    "selu": (-ref.SELU_SCALE * ref.SELU_ALPHA, INF, 0, ref.SELU_SCALE),
    "softplus": (0, INF, 0, 1), "softsign": (-1, 1, 0, 0), "log_sigmoid": (-INF, 0, 1, 0),
    "mish": (0, INF, 0, 1), "hardsigmoid": (0, 1, 0, 0), "hardtanh": (-1, 1, 0, 0),
    "hardswish": (0, INF, 0, 1), "hardshrink": (-INF, INF, 1, 1),
    "softshrink": (-INF, INF, 1, 1), "tanhshrink": (-INF, INF, 1, 1),
    "threshold": (-2, INF, 0, 1),
}
DEFAULT_CASES = [pytest.param(c, id=c.id) for c in CASES
                 if c is DEFAULTS[c.name] or c.params == {"approximate": "tanh"}]


@pytest.mark.parametrize("case", ALL)
def test_nan_propagates(case):
    f, _ = case.functions()
    assert np.isnan(f(np.full(5, NAN))).all()
    assert np.isnan(f(NAN))


@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_derivative_at_nan(case):
    _, d = case.functions()
    np.testing.assert_array_equal(d([NAN]), [NAN_GRAD.get(case.name, NAN)])


@pytest.mark.parametrize("case", DEFAULT_CASES)
def test_limits_at_infinity(case):
    f, d = case.functions()
    lo, hi, dlo, dhi = LIMITS[case.name]
    np.testing.assert_array_equal(f([-INF, INF]), [lo, hi])
    np.testing.assert_array_equal(d([-INF, INF]), [dlo, dhi])


def test_signed_zeros():
    neg0 = np.array([-0.0])
    for f in (ref.relu, ref.relu6, ref.hardtanh, ref.leaky_relu, ref.elu, ref.celu, ref.selu,
              ref.gelu, ref.silu, ref.mish, ref.hardswish, ref.tanh, ref.softsign):
        assert np.signbit(f(neg0)).all(), f.__name__      # -0.0 in, -0.0 out (as PyTorch)
    for f in (ref.hardshrink, ref.softshrink, ref.tanhshrink):
        assert not np.signbit(f(neg0)).any(), f.__name__  # +0.0 (PyTorch's vectorised kernels)
    # the negative tails round to -0.0, and -inf gives the same
    for f in (ref.gelu, ref.silu, ref.mish, ref.hardswish):
        y = f([-1000.0, -INF])
        assert (y == 0).all() and np.signbit(y).all(), f.__name__
    assert np.signbit(ref.swish(-INF, beta=2.0)) and ref.swish(INF, beta=-2.0) == 0


def test_axis_functions_special_rows():
    rows = np.array([[-INF, -INF, -INF], [INF, 1.0, 0.0], [NAN, 1.0, 0.0], [-INF, 1.0, 0.0]])
    sm = ref.softmax(rows)
    assert np.isnan(sm[:3]).all()
    np.testing.assert_allclose(sm[3], [0.0, math.e / (1 + math.e), 1 / (1 + math.e)], rtol=1e-15)
    np.testing.assert_array_equal(ref.logsumexp(rows)[:3], [-INF, INF, NAN])
    assert ref.log_softmax(rows)[3, 0] == -INF
    np.testing.assert_array_equal(ref.logsumexp(np.zeros((2, 0))), [-INF, -INF])
    assert np.isnan(ref.logsumexp_grad(np.ones(4), rows)[0]).all()


# ---- (e) PyTorch parity --------------------------------------------------------------------

# Where PyTorch gives NaN at +-inf and the reference returns the limit: (f or d, x)
TORCH_NAN_AT_INF = {
    "gelu": {("f", -INF), ("d", -INF), ("d", INF)},
    "silu": {("f", -INF), ("d", -INF), ("d", INF)},
    "mish": {("f", -INF), ("d", -INF), ("d", INF)},
    "softsign": {("f", -INF), ("f", INF), ("d", -INF), ("d", INF)},
    "hardswish": {("f", -INF)},
}
# PyTorch computes some values with cancellation the reference avoids (sigmoid' and tanh'
# from the output as y(1 - y) and 1 - y^2; 1 + erf and 1 + tanh in gelu), losing up to
# ~5e-15 absolute where the reference keeps its relative accuracy: hence the atol.
RTOL, ATOL = 1e-12, 1e-14
# PyTorch's hardsigmoid backward uses the float32 constant 1.0f/6.0f even in float64
GRAD_RTOL = {"hardsigmoid": 5e-8}
# PyTorch's softshrink gives +0.0 in the dead zone from its vectorised loop, but x * 0
# (-0.0 for negative x) from its scalar loop over the last few elements
SIGN_OF_ZERO_DEPENDS_ON_POSITION = {"softshrink"}
# The same split makes these derivatives at NaN 0 or NaN (vectorised) but 1, alpha or scale
# (scalar tail); the reference returns NaN (test_derivative_at_nan)
NAN_GRAD_DEPENDS_ON_POSITION = {"hardtanh", "relu6", "hardshrink", "softshrink", "elu", "celu",
                                "selu", "hardswish"}


def _torch_function(torch, name):
    functional = torch.nn.functional
    special = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "log_sigmoid": functional.logsigmoid}
    return special.get(name) or getattr(functional, name)


def _torch_value_and_grad(torch, fn, x, *args, **params):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(t, *args, **params)
    y.backward(torch.ones_like(y))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("case", ALL)
def test_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    if not case.torch:
        pytest.skip("PyTorch has no such parameters")
    f, d = case.functions()
    special = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 20.0, -20.0, 1000.0, -1000.0, INF, -INF, NAN]
    x = np.concatenate([special, case.kinks, np.nextafter(case.kinks, INF),
                        np.nextafter(case.kinks, -INF), random_points(rng, n=600, margin=0)])
    ty, tg = _torch_value_and_grad(torch, _torch_function(torch, case.name), x, **case.params)
    y, g = f(x), d(x)
    if case.name in NAN_GRAD_DEPENDS_ON_POSITION:
        tg = np.where(np.isnan(x), NAN, tg)

    # where torch gives NaN and the reference does not: only the documented limits at +-inf
    differ = {("f", v) for v in x[np.isnan(ty) & ~np.isnan(y)]}
    differ |= {("d", v) for v in x[np.isnan(tg) & ~np.isnan(g)]}
    assert differ == TORCH_NAN_AT_INF.get(case.name, set())
    assert not (np.isnan(y) & ~np.isnan(ty)).any() and not (np.isnan(g) & ~np.isnan(tg)).any()
    keep_y, keep_g = ~np.isnan(ty) | np.isnan(y), ~np.isnan(tg) | np.isnan(g)
    np.testing.assert_allclose(y[keep_y], ty[keep_y], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g[keep_g], tg[keep_g], rtol=GRAD_RTOL.get(case.name, RTOL),
                               atol=ATOL)

    if case.name not in SIGN_OF_ZERO_DEPENDS_ON_POSITION:
        zeros = (y == 0) & (ty == 0)
        np.testing.assert_array_equal(np.signbit(y[zeros]), np.signbit(ty[zeros]),
                                      err_msg=f"sign of zero at x = {x[zeros]}")


def test_torch_hardswish_kinks_differ_from_the_textbook():
    # recorded because it is easy to get wrong: PyTorch's hardswish'(-3) = 0 and
    # hardswish'(3) = 1, not -0.5 and 1.5 (the linear piece's values at its ends)
    np.testing.assert_array_equal(ref.hardswish_grad([-3.0, 3.0]), [0.0, 1.0])
    torch = pytest.importorskip("torch")
    _, tg = _torch_value_and_grad(torch, torch.nn.functional.hardswish, [-3.0, 3.0])
    np.testing.assert_array_equal(tg, [0.0, 1.0])


@pytest.mark.parametrize("weight", [[0.25], [0.1, -0.3, 2.0]], ids=["shared", "per-channel"])
def test_prelu_matches_torch(weight, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(4, 3, 5))
    x[0, 0, :3] = [0.0, -0.0, NAN]  # channel 0 gets a NaN weight gradient
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.prelu(tx, tw)
    ty.backward(torch.ones_like(ty))
    dx, dw = ref.prelu_grad(x, weight)
    np.testing.assert_allclose(ref.prelu(x, weight), ty.detach().numpy(), rtol=RTOL, atol=0)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL, atol=0)
    # per-element d/dweight summed over every axis but the channel axis is the weight's grad
    axes = (0, 1, 2) if len(weight) == 1 else (0, 2)
    np.testing.assert_allclose(np.sum(dw, axis=axes).reshape(-1), tw.grad.numpy(), rtol=1e-12,
                               equal_nan=True)


def test_rrelu_eval_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = np.concatenate([[0.0, -0.0, NAN, INF, -INF], random_points(rng)])
    fn = lambda t: torch.nn.functional.rrelu(t, 0.1, 0.4, training=False)  # noqa: E731
    ty, tg = _torch_value_and_grad(torch, fn, x)
    np.testing.assert_array_equal(ref.rrelu_eval(x, 0.1, 0.4), ty)
    np.testing.assert_array_equal(ref.rrelu_eval_grad(x, 0.1, 0.4), tg)


@pytest.mark.parametrize("beta", [1.0, 0.5, -1.5])
def test_swish_matches_torch(beta, rng):
    torch = pytest.importorskip("torch")
    x = random_points(rng)
    tx = torch.tensor(x, requires_grad=True)
    tb = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    y = tx * torch.sigmoid(tb * tx)
    y.backward(torch.ones_like(y))
    dx, dbeta = ref.swish_grad(x, beta)
    np.testing.assert_allclose(ref.swish(x, beta), y.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dbeta.sum(), tb.grad.item(), rtol=1e-10)


AXIS_TORCH = {
    "softmax": lambda torch, t, a: torch.softmax(t, a),
    "log_softmax": lambda torch, t, a: torch.log_softmax(t, a),
    "softmin": lambda torch, t, a: torch.nn.functional.softmin(t, a),
    "logsumexp": lambda torch, t, a: torch.logsumexp(t, a),
    "glu": lambda torch, t, a: torch.nn.functional.glu(t, a),
}


@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("name", list(AXIS_TORCH))
def test_axis_functions_match_torch(name, axis, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(6, 4)) * 5
    if name != "glu":   # rows of all -inf, with +inf (NaN results) and with large values
        x[:3] = [[-INF] * 4, [INF, 1.0, 0.0, -INF], [-INF, 1.0, 1000.0, -1000.0]]
    if axis == 0:
        x = x.T.copy()
    f, vjp = AXIS_FUNCTIONS[name]
    g = rng.normal(size=np.shape(f(x, axis)))
    tx = torch.tensor(x, requires_grad=True)
    ty = AXIS_TORCH[name](torch, tx, axis)
    ty.backward(torch.tensor(g))
    y, dx = f(x, axis), vjp(g, x, axis)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=RTOL, atol=ATOL, equal_nan=True)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-11, atol=ATOL, equal_nan=True)


def test_maxout_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(3, 12, 2))   # no ties
    g = rng.normal(size=(3, 4, 2))
    tx = torch.tensor(x, requires_grad=True)
    ty = tx.unflatten(1, (4, 3)).amax(dim=2)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(ref.maxout(x, 3, axis=1), ty.detach().numpy())
    np.testing.assert_array_equal(ref.maxout_grad(g, x, 3, axis=1), tx.grad.numpy())
