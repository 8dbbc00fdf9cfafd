"""Pure-NumPy float64 reference implementations of actfast's activations and derivatives.

This module is the test oracle and the benchmark baseline. It is written for clarity and
accuracy, not speed, and imports only NumPy and the standard library, so it can be loaded on
its own (``importlib.util.spec_from_file_location``) without building the package.

Conventions
-----------
* ``<name>(x, **params)`` is the activation; ``<name>_grad(x, **params)`` is its derivative
  f'(x), elementwise (a backward pass is then ``grad_output * f'(x)``). Parameters have
  PyTorch's names and defaults. ``x`` is anything ``np.asarray(x, dtype=np.float64)``
  accepts; the results are float64 ndarrays of x's shape.
* Functions with a trainable parameter return a tuple from ``_grad``: ``prelu_grad`` gives
  (d/dx, d/dweight per element of x), ``swish_grad`` (d/dx, d/dbeta), ``pact_grad``
  (d/dx, d/dalpha). Sum the second over the broadcast axes to get the parameter's gradient.
* Functions over an axis (``maxout``, ``glu``, the softmax family) take ``grad_output``
  and return the gradient with respect to their input.
* At kinks the derivative is the one PyTorch's autograd (2.13, float64) returns, e.g.
  relu'(0) = 0, leaky_relu'(0) = negative_slope, elu'(0) = alpha, relu6'(0) = relu6'(6) = 0,
  hardtanh' = 0 at min_val and max_val, hardswish'(-3) = 0 and hardswish'(3) = 1.
* NaN in gives NaN out for every forward, and for every derivative except four where
  PyTorch's backward consistently returns a number: relu'(NaN) = 1,
  leaky_relu'(NaN) = negative_slope (so rrelu_eval and prelu's d/dx: the slope),
  threshold'(NaN) = 1 and hardsigmoid'(NaN) = 0. (For hardtanh, relu6, hardshrink,
  softshrink, elu, celu, selu and hardswish PyTorch's answer at NaN depends on where the
  element sits in the tensor: its vectorised loop and its scalar loop for the last few
  elements disagree. There is nothing to match, and these return NaN.)
* At +-inf the value is the mathematical limit, also where PyTorch gives NaN (inf * 0):
  gelu(-inf) = silu(-inf) = mish(-inf) = hardswish(-inf) = -0.0, softsign(+-inf) = +-1, and
  the derivatives' limits (gelu'(+inf) = 1, silu'(-inf) = 0, softsign'(+-inf) = 0, ...).
* Signed zeros follow PyTorch's forward: relu(-0.0) = -0.0, gelu(-1000) = -0.0,
  hardshrink(-0.0) = +0.0, softshrink(-0.0) = +0.0 (PyTorch's vectorised kernel).
  Derivatives make no promise about the sign of a zero.
* No exponential can overflow: each is of a number <= 0 (exp(-|x|) and friends), and the
  few polynomial terms that could (x**3 in gelu's tanh form) are cut off where the result is
  already exact. At +-1000 (and +-1e300) the only floating-point event is harmless underflow.
"""
import math

import numpy as np

__all__ = [
    "ELEMENTWISE",
    "relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "rrelu_eval", "rrelu_eval_grad",
    "prelu", "prelu_grad", "relu6", "relu6_grad", "hardtanh", "hardtanh_grad",
    "threshold", "threshold_grad", "pact", "pact_grad",
    "elu", "elu_grad", "celu", "celu_grad", "selu", "selu_grad",
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "log_sigmoid", "log_sigmoid_grad",
    "softplus", "softplus_grad", "softsign", "softsign_grad",
    "gelu", "gelu_grad", "silu", "silu_grad", "swish", "swish_grad", "mish", "mish_grad",
    "hardsigmoid", "hardsigmoid_grad", "hardswish", "hardswish_grad",
    "hardshrink", "hardshrink_grad", "softshrink", "softshrink_grad",
    "tanhshrink", "tanhshrink_grad",
    "maxout", "maxout_grad", "glu", "glu_grad",
    "softmax", "softmax_grad", "log_softmax", "log_softmax_grad", "softmin", "softmin_grad",
    "logsumexp", "logsumexp_grad",
]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SQRT1_2 = math.sqrt(0.5)                       # 1/sqrt(2)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)  # standard normal density at 0
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)      # gelu(approximate='tanh')
_GELU_TANH_KAPPA = 0.044715
_HUGE = np.finfo(np.float64).max


# ---- helpers -------------------------------------------------------------------------------

def _f64(a):
    # np.asarray, not np.array: no copy needed, since nothing here writes into its input.
    # Also turns the NumPy scalars that ufuncs return for 0-d input back into 0-d arrays.
    return np.asarray(a, dtype=np.float64)


_erfc_object = np.frompyfunc(math.erfc, 1, 1)


def _erfc(x):
    """Complementary error function, elementwise (math.erfc; NumPy has no erf)."""
    return _f64(_erfc_object(x))


def _where_not_positive(x):
    """x where x <= 0, else 0 (NaN and -0.0 kept).

    Feeding this to exp/expm1 in the x <= 0 branch of np.where keeps the branch that is
    thrown away from overflowing for large positive x.
    """
    return np.where(x > 0, 0.0, x)


def _nan_at_nan(x, derivative):
    """The derivative, with NaN wherever x is NaN.

    For the piecewise functions whose PyTorch backward gives a position-dependent number at
    NaN (see the module docstring): their comparisons are PyTorch's and send NaN to one of
    the branches; this overrides that.
    """
    return np.where(np.isnan(x), np.nan, derivative)


def _clip(x, low, high):
    """low if x < low, high if x > high, else x: NaN and -0.0 pass through unchanged."""
    return np.where(x < low, low, np.where(x > high, high, x))


def _with_tails(x, formula, below, above, cut=_HUGE):
    """formula(x) for -cut <= x <= cut (and NaN), ``below`` for x < -cut, ``above`` for x > cut.

    The caller picks ``cut`` where the formula already rounds to those values, so the result
    is the formula's: the cut only keeps its intermediates from overflowing (x**3, x*x) and
    from forming inf * 0 = NaN. The default cut leaves out just +-inf. ``below`` and ``above``
    may be arrays of x's shape (e.g. x itself).
    """
    inside = np.where(np.abs(x) > cut, 0.0, x)
    return np.where(x > cut, above, np.where(x < -cut, below, formula(inside)))


def _sigmoid(z):
    # With e = exp(-|z|) <= 1 nothing overflows: 1/(1+e) for z >= 0, and the same function
    # written as e/(1+e) for z < 0, which keeps the tiny tail (1/(1+exp(-z)) would overflow
    # in exp, and 1 - 1/(1+e) would cancel).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_slope(z):
    # sigmoid'(z) = s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): no cancellation in 1 - s
    # for large z, exactly 0 at +-inf.
    e = np.exp(-np.abs(z))
    return e / ((1.0 + e) * (1.0 + e))


def _sech2(y):
    # 1 - tanh(y)^2 = sech(y)^2 = (2e / (1 + e^2))^2 with e = exp(-|y|): no cancellation
    # where tanh(y) rounds to +-1, no overflow anywhere.
    e = np.exp(-np.abs(y))
    return (2.0 * e / (1.0 + e * e)) ** 2


def _softplus_unit(z):
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): exp never overflows, and log1p keeps
    # the tail exp(z) for z << 0.
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


# ---- piecewise linear ----------------------------------------------------------------------

def relu(x):
    """Rectified linear unit: max(x, 0). relu(-0.0) = -0.0 and relu(NaN) = NaN, as in PyTorch."""
    x = _f64(x)
    return _f64(np.where(x < 0, 0.0, x))


def relu_grad(x):
    """relu'(x) = 1 for x > 0, else 0 (relu'(0) = 0; relu'(NaN) = 1 as in PyTorch)."""
    x = _f64(x)
    return _f64(np.where(x <= 0, 0.0, 1.0))


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, else negative_slope * x."""
    x = _f64(x)
    return _f64(np.where(x > 0, x, negative_slope * x))


def leaky_relu_grad(x, negative_slope=0.01):
    """1 for x > 0, else negative_slope (also at 0 and at NaN, as in PyTorch)."""
    x = _f64(x)
    return _f64(np.where(x > 0, 1.0, negative_slope))


def rrelu_eval(x, lower=1.0 / 8.0, upper=1.0 / 3.0):
    """Randomized leaky ReLU in evaluation mode: leaky_relu with slope (lower + upper) / 2."""
    return leaky_relu(x, (lower + upper) / 2.0)


def rrelu_eval_grad(x, lower=1.0 / 8.0, upper=1.0 / 3.0):
    """1 for x > 0, else (lower + upper) / 2."""
    return leaky_relu_grad(x, (lower + upper) / 2.0)


def _prelu_weight(x, weight):
    """The weight reshaped to broadcast against x as torch.nn.functional.prelu does.

    One element applies everywhere; otherwise there is one per channel, and the channel axis
    is axis 1 (axis 0 for 1-D x).
    """
    w = _f64(weight).reshape(-1)
    if w.size == 1:
        return w.reshape(())
    axis = 1 if x.ndim >= 2 else 0
    if x.ndim == 0 or x.shape[axis] != w.size:
        raise ValueError(f"prelu: weight has {w.size} elements; expected 1 or the size of "
                         f"x's channel axis (x has shape {x.shape})")
    shape = [1] * x.ndim
    shape[axis] = w.size
    return w.reshape(shape)


def prelu(x, weight):
    """Parametric ReLU: x for x > 0, else weight * x (weight per channel, see above)."""
    x = _f64(x)
    w = _prelu_weight(x, weight)
    return _f64(np.where(x > 0, x, w * x))


def prelu_grad(x, weight):
    """(d/dx, d/dweight) per element of x: (1 if x > 0 else weight, 0 if x > 0 else x).

    d/dweight has x's shape: sum it over every axis but the channel axis (over all axes for
    a one-element weight) to get the weight's gradient.
    """
    x = _f64(x)
    w = _prelu_weight(x, weight)
    return _f64(np.where(x > 0, 1.0, w)), _f64(np.where(x > 0, 0.0, x))


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clip(x, min_val, max_val), with NaN and -0.0 passed through."""
    x = _f64(x)
    return _f64(_clip(x, min_val, max_val))


def hardtanh_grad(x, min_val=-1.0, max_val=1.0):
    """1 for min_val < x < max_val, 0 elsewhere (0 at both ends), NaN at NaN."""
    x = _f64(x)
    return _f64(_nan_at_nan(x, np.where((x <= min_val) | (x >= max_val), 0.0, 1.0)))


def relu6(x):
    """clip(x, 0, 6) (PyTorch's hardtanh(x, 0, 6)): relu6(-0.0) = -0.0."""
    return hardtanh(x, 0.0, 6.0)


def relu6_grad(x):
    """1 for 0 < x < 6, else 0 (0 at 0 and 6), NaN at NaN."""
    return hardtanh_grad(x, 0.0, 6.0)


def threshold(x, threshold, value):
    """x for x > threshold, else value (NaN passes through)."""
    x = _f64(x)
    return _f64(np.where(x <= threshold, value, x))


def threshold_grad(x, threshold, value):
    """1 for x > threshold, else 0 (1 at NaN, as in PyTorch). ``value`` does not matter."""
    x = _f64(x)
    return _f64(np.where(x <= threshold, 0.0, 1.0))


def pact(x, alpha):
    """PACT (parameterized clipping activation): clip(x, 0, alpha)."""
    x = _f64(x)
    return _f64(_clip(x, 0.0, alpha))


def pact_grad(x, alpha):
    """(d/dx, d/dalpha): (1 for 0 <= x < alpha else 0, 1 for x >= alpha else 0).

    Both are 0 at NaN. Sum d/dalpha over x to get alpha's gradient.
    """
    x = _f64(x)
    return (_f64(np.where((x >= 0) & (x < alpha), 1.0, 0.0)),
            _f64(np.where(x >= alpha, 1.0, 0.0)))


def hardsigmoid(x, slope=1.0 / 6.0, offset=0.5):
    """clip(slope * x + offset, 0, 1); PyTorch's is the default (x + 3) / 6 clipped."""
    x = _f64(x)
    return _f64(_clip(slope * x + offset, 0.0, 1.0))


def hardsigmoid_grad(x, slope=1.0 / 6.0, offset=0.5):
    """slope strictly inside the linear part (0 < slope * x + offset < 1), else 0 (0 at NaN).

    PyTorch's float64 kernel uses the float32 constant 1.0f/6.0f = 0.1666666716337204; this
    returns the exact slope.
    """
    x = _f64(x)
    # decided on x against the ends of the linear part, -offset/slope and (1-offset)/slope
    # (exactly -3 and 3 by default): slope * x + offset itself rounds to 0 or 1 one ulp inside
    inverse_slope = 1.0 / slope
    ends = sorted([-offset * inverse_slope, (1.0 - offset) * inverse_slope])
    return _f64(np.where((x > ends[0]) & (x < ends[1]), slope, 0.0))


def hardswish(x):
    """x * relu6(x + 3) / 6; hardswish(-inf) = -0.0 (the limit, where the formula gives NaN)."""
    x = _f64(x)
    # same operation order as PyTorch: (x * clip(x + 3, 0, 6)) / 6
    return _f64(_with_tails(x, lambda t: t * _clip(t + 3.0, 0.0, 6.0) / 6.0, -0.0, x))


def hardswish_grad(x):
    """0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 for x >= 3 (as in PyTorch), NaN at NaN."""
    x = _f64(x)
    return _f64(_nan_at_nan(x, np.where(x <= -3.0, 0.0, np.where(x < 3.0, x / 3.0 + 0.5, 1.0))))


def hardshrink(x, lambd=0.5):
    """x for |x| > lambd, else +0.0 (NaN passes through)."""
    x = _f64(x)
    return _f64(np.where((x >= -lambd) & (x <= lambd), 0.0, x))


def hardshrink_grad(x, lambd=0.5):
    """1 for |x| > lambd, else 0, NaN at NaN."""
    x = _f64(x)
    return _f64(_nan_at_nan(x, np.where((x >= -lambd) & (x <= lambd), 0.0, 1.0)))


def softshrink(x, lambd=0.5):
    """x - lambd for x > lambd, x + lambd for x < -lambd, else 0: that is x - clip(x, -lambd, lambd).

    The clip form gives +0.0 in the whole dead zone (also for -0.0, like PyTorch's
    vectorised kernel) and keeps NaN.
    """
    x = _f64(x)
    return _f64(x - _clip(x, -lambd, lambd))


def softshrink_grad(x, lambd=0.5):
    """1 for |x| > lambd, else 0, NaN at NaN."""
    return hardshrink_grad(x, lambd)


# ---- exponential family --------------------------------------------------------------------

def elu(x, alpha=1.0):
    """x for x > 0, else alpha * expm1(x)."""
    x = _f64(x)
    # expm1 keeps the relative accuracy near 0 that exp(x) - 1 would lose
    return _f64(np.where(x <= 0, alpha * np.expm1(_where_not_positive(x)), x))


def elu_grad(x, alpha=1.0):
    """alpha * exp(x) for x <= 0 (so elu'(0) = alpha, as in PyTorch), else 1; NaN at NaN."""
    x = _f64(x)
    return _f64(_nan_at_nan(x, np.where(x <= 0, alpha * np.exp(_where_not_positive(x)), 1.0)))


def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha * expm1(x / alpha)): x for x > 0, else alpha * expm1(x / alpha)."""
    x = _f64(x)
    return _f64(np.where(x <= 0, alpha * np.expm1(_where_not_positive(x) / alpha), x))


def celu_grad(x, alpha=1.0):
    """exp(x / alpha) for x <= 0 (1 at 0), else 1; NaN at NaN."""
    x = _f64(x)
    return _f64(_nan_at_nan(x, np.where(x <= 0, np.exp(_where_not_positive(x) / alpha), 1.0)))


def selu(x):
    """scale * (x for x > 0, else alpha * expm1(x)), SELU_ALPHA ~ 1.6733, SELU_SCALE ~ 1.0507."""
    x = _f64(x)
    negative = (SELU_SCALE * SELU_ALPHA) * np.expm1(_where_not_positive(x))
    return _f64(np.where(x <= 0, negative, SELU_SCALE * x))


def selu_grad(x):
    """scale * alpha * exp(x) for x <= 0 (so at 0 too), else scale; NaN at NaN."""
    x = _f64(x)
    negative = (SELU_SCALE * SELU_ALPHA) * np.exp(_where_not_positive(x))
    return _f64(_nan_at_nan(x, np.where(x <= 0, negative, SELU_SCALE)))


# ---- sigmoid family ------------------------------------------------------------------------

def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), computed without overflow (see _sigmoid)."""
    return _f64(_sigmoid(_f64(x)))


def sigmoid_grad(x):
    """sigmoid(x) * (1 - sigmoid(x)), written as exp(-|x|) / (1 + exp(-|x|))^2."""
    return _f64(_sigmoid_slope(_f64(x)))


def tanh(x):
    """Hyperbolic tangent."""
    return _f64(np.tanh(_f64(x)))


def tanh_grad(x):
    """1 - tanh(x)^2 = sech(x)^2, written without the cancellation near +-1."""
    return _f64(_sech2(_f64(x)))


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); log_sigmoid(-1000) = -1000."""
    x = _f64(x)
    return _f64(np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x))))


def log_sigmoid_grad(x):
    """sigmoid(-x) = 1 - sigmoid(x), computed directly (no cancellation for x >> 0)."""
    return _f64(_sigmoid(-_f64(x)))


def softplus(x, beta=1.0, threshold=20.0):
    """x where beta * x > threshold, else log(1 + exp(beta * x)) / beta.

    The log part is computed as (max(z, 0) + log1p(exp(-|z|))) / beta with z = beta * x:
    no overflow, and the tail exp(z) is kept for z << 0 (softplus(-40) = 4.2e-18, not 0).
    """
    x = _f64(x)
    z = beta * x
    return _f64(np.where(z > threshold, x, _softplus_unit(z) / beta))


def softplus_grad(x, beta=1.0, threshold=20.0):
    """1 where beta * x > threshold, else sigmoid(beta * x)."""
    x = _f64(x)
    z = beta * x
    return _f64(np.where(z > threshold, 1.0, _sigmoid(z)))


def softsign(x):
    """x / (1 + |x|); softsign(+-inf) = +-1 (the limit, where inf / inf would give NaN)."""
    x = _f64(x)
    return _f64(_with_tails(x, lambda t: t / (1.0 + np.abs(t)), -1.0, 1.0))


def softsign_grad(x):
    """1 / (1 + |x|)^2, written as (1 / (1 + |x|))^2 so it cannot overflow (0 at +-inf)."""
    x = _f64(x)
    return _f64((1.0 / (1.0 + np.abs(x))) ** 2)


# ---- smooth gated (x times a gate) ---------------------------------------------------------

def _gelu_erf(x):
    # 0.5 x erfc(-x/sqrt 2) rather than 0.5 x (1 + erf(x/sqrt 2)) (PyTorch's form): no
    # cancellation in the negative tail (gelu(-10) = -7.6e-23, not -0.0).
    return 0.5 * x * _erfc(-x * _SQRT1_2)


def _gelu_erf_grad(x):
    # Phi(x) + x phi(x). Beyond |x| = 40 (the cut used below) x phi(x) < 1e-340 underflows to
    # 0 and Phi(x) is exactly 0 or 1.
    return 0.5 * _erfc(-x * _SQRT1_2) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _gelu_tanh_arg(x):
    # 2u with u = sqrt(2/pi) (x + 0.044715 x^3): 0.5 x (1 + tanh(u)) = x sigmoid(2u)
    return 2.0 * _SQRT_2_OVER_PI * (x + _GELU_TANH_KAPPA * x * x * x)


def _gelu_tanh(x):
    # x sigmoid(2u) rather than 0.5 x (1 + tanh(u)): no cancellation in 1 + tanh(u) for x << 0.
    # Beyond |x| = 25 (the cut used below) |2u| > 1150, so sigmoid(2u) is exactly 0 or 1.
    return x * _sigmoid(_gelu_tanh_arg(x))


def _gelu_tanh_grad(x):
    # d/dx [x s(2u)] = s(2u) + x s'(2u) 2u'(x), which is
    # 0.5 (1 + tanh u) + 0.5 x (1 - tanh(u)^2) u'(x) with 1 + tanh u = 2 s(2u) and
    # 1 - tanh(u)^2 = 4 s(2u) (1 - s(2u)): both without cancellation.
    d2u = 2.0 * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_KAPPA * x * x)
    z = _gelu_tanh_arg(x)
    return _sigmoid(z) + x * d2u * _sigmoid_slope(z)


def gelu(x, approximate="none"):
    """Gaussian error linear unit x * Phi(x) = 0.5 x erfc(-x / sqrt(2)).

    approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    gelu(-inf) = -0.0 (the limit, where PyTorch gives NaN), gelu(+inf) = inf.
    """
    x = _f64(x)
    if approximate == "none":
        return _f64(_with_tails(x, _gelu_erf, -0.0, x))
    if approximate == "tanh":
        # the cut also stops x**3 overflowing for |x| > 1e102
        return _f64(_with_tails(x, _gelu_tanh, -0.0, x, cut=25.0))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_grad(x, approximate="none"):
    """Phi(x) + x phi(x) (or the tanh form's exact derivative); limits 0 and 1 at -inf and +inf."""
    x = _f64(x)
    if approximate == "none":
        # the cut keeps x*x from overflowing and inf * 0 out of x phi(x)
        return _f64(_with_tails(x, _gelu_erf_grad, 0.0, 1.0, cut=40.0))
    if approximate == "tanh":
        return _f64(_with_tails(x, _gelu_tanh_grad, 0.0, 1.0, cut=25.0))
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x):
    """Sigmoid linear unit x * sigmoid(x); silu(-inf) = -0.0 (the limit), silu(+inf) = inf."""
    x = _f64(x)
    return _f64(_with_tails(x, lambda t: t * _sigmoid(t), -0.0, x))


def silu_grad(x):
    """s (1 + x (1 - s)) = s + x s (1 - s) with s = sigmoid(x); limits 0 and 1 at -inf and +inf."""
    x = _f64(x)
    return _f64(_with_tails(x, lambda t: _sigmoid(t) + t * _sigmoid_slope(t), 0.0, 1.0))


def swish(x, beta=1.0):
    """x * sigmoid(beta * x) (silu for beta = 1); the limit 0 at infinite x where the gate is 0."""
    x = _f64(x)
    s = _sigmoid(beta * x)
    with np.errstate(invalid="ignore"):  # inf * 0 at infinite x with a closed gate, replaced
        y = x * s
    return _f64(np.where(np.isinf(x) & (s == 0), np.copysign(0.0, x), y))


def swish_grad(x, beta=1.0):
    """(d/dx, d/dbeta) = (s + beta x s (1 - s), x^2 s (1 - s)) with s = sigmoid(beta * x).

    z s(1-s) with z = beta * x tends to 0 as z -> +-inf; at infinite x (beta != 0) both
    derivatives are given their limits (d/dx: 1 or 0, d/dbeta: 0).
    """
    x = _f64(x)
    z = beta * x
    slope = _sigmoid_slope(z)
    with np.errstate(invalid="ignore"):  # inf * 0 at z = +-inf, replaced below
        z_slope = np.where(np.isinf(z), 0.0, z * slope)
        # x * (x * slope) rather than x**2 * slope: x**2 overflows where slope is already 0
        dbeta = np.where(np.isinf(z), 0.0, x * (x * slope))
    return _f64(_sigmoid(z) + z_slope), _f64(dbeta)


def mish(x):
    """x * tanh(softplus(x)); mish(-inf) = -0.0 (the limit), mish(+inf) = inf."""
    x = _f64(x)
    return _f64(_with_tails(x, lambda t: t * np.tanh(_softplus_unit(t)), -0.0, x))


def mish_grad(x):
    """tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) with sp = softplus(x); limits 0 and 1 at -inf, +inf."""
    x = _f64(x)

    def formula(t):
        sp = _softplus_unit(t)
        return np.tanh(sp) + t * _sigmoid(t) * _sech2(sp)

    return _f64(_with_tails(x, formula, 0.0, 1.0))


def tanhshrink(x):
    """x - tanh(x).

    Near 0 the subtraction cancels (the result is x^3/3 to within ~1e-16 absolute, not
    relative), as in PyTorch.
    """
    x = _f64(x)
    return _f64(x - np.tanh(x))


def tanhshrink_grad(x):
    """1 - (1 - tanh(x)^2) = tanh(x)^2."""
    x = _f64(x)
    return _f64(np.tanh(x) ** 2)


# ---- over an axis --------------------------------------------------------------------------

def _groups(x, pieces, axis):
    """x with `axis` moved last and split into (size / pieces, pieces)."""
    x = np.moveaxis(x, axis, -1)
    size = x.shape[-1]
    if pieces < 1 or size % pieces:
        raise ValueError(f"maxout: the axis has size {size}, not a multiple of pieces={pieces}")
    return x.reshape(x.shape[:-1] + (size // pieces, pieces))


def maxout(x, pieces, axis=-1):
    """Maximum over consecutive groups of `pieces` elements along `axis` (size / pieces out).

    A group holding NaN gives NaN.
    """
    x = _f64(x)
    return _f64(np.moveaxis(np.max(_groups(x, pieces, axis), axis=-1), -1, axis))


def maxout_grad(grad_output, x, pieces, axis=-1):
    """Gradient w.r.t. x: each output's gradient goes to the first maximum of its group.

    (np.argmax also picks the first NaN of a group, the element that np.max returned.)
    """
    x = _f64(x)
    groups = _groups(x, pieces, axis)
    g = np.moveaxis(_f64(grad_output), axis, -1)[..., None]
    first_max = np.argmax(groups, axis=-1)[..., None]
    # np.where, not one_hot * g: 0 * inf would put NaN into the other elements
    dx = np.where(np.arange(pieces) == first_max, g, 0.0)
    return _f64(np.moveaxis(dx.reshape(dx.shape[:-2] + (-1,)), -1, axis))


def glu(x, axis=-1):
    """Gated linear unit a * sigmoid(b), where a and b are the first and second half of x along axis."""
    a, b = np.split(_f64(x), 2, axis=axis)
    return _f64(a * _sigmoid(b))


def glu_grad(grad_output, x, axis=-1):
    """Gradient w.r.t. x: g * sigmoid(b) for the first half, g * a * sigmoid'(b) for the second."""
    a, b = np.split(_f64(x), 2, axis=axis)
    g = _f64(grad_output)
    return _f64(np.concatenate([g * _sigmoid(b), g * a * _sigmoid_slope(b)], axis=axis))


def _shifted(x, axis):
    # x - max(x): every exp() is then of a value <= 0, so nothing overflows, and the largest
    # term is exactly 1. `initial` lets an empty axis through. A row whose max is infinite
    # gives inf - inf = NaN, which is PyTorch's answer for softmax there, so the warning is
    # silenced.
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(invalid="ignore"):
        return x - m


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, computed as exp(x - max) / sum(exp(x - max)).

    A row of all -inf (or holding +inf or NaN) gives NaN, like PyTorch.
    """
    e = np.exp(_shifted(_f64(x), axis))
    with np.errstate(invalid="ignore"):  # 0/0 for a row of all -inf
        return _f64(e / np.sum(e, axis=axis, keepdims=True))


def softmax_grad(grad_output, y, axis=-1):
    """Gradient w.r.t. x from y = softmax(x): y * (g - sum(g * y, axis))."""
    g, y = _f64(grad_output), _f64(y)
    return _f64(y * (g - np.sum(g * y, axis=axis, keepdims=True)))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis, computed as (x - max) - log(sum(exp(x - max)))."""
    t = _shifted(_f64(x), axis)
    with np.errstate(invalid="ignore"):  # NaN rows, as in PyTorch
        return _f64(t - np.log(np.sum(np.exp(t), axis=axis, keepdims=True)))


def log_softmax_grad(grad_output, y_log, axis=-1):
    """Gradient w.r.t. x from y_log = log_softmax(x): g - exp(y_log) * sum(g, axis)."""
    g, y_log = _f64(grad_output), _f64(y_log)
    return _f64(g - np.exp(y_log) * np.sum(g, axis=axis, keepdims=True))


def softmin(x, axis=-1):
    """softmax(-x) along axis."""
    return softmax(-_f64(x), axis=axis)


def softmin_grad(grad_output, y, axis=-1):
    """Gradient w.r.t. x from y = softmin(x): -y * (g - sum(g * y, axis))."""
    return _f64(-softmax_grad(grad_output, y, axis=axis))


def _logsumexp_keepdims(x, axis):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    # Shift by a finite max only (PyTorch does the same): at an infinite max, x - max would
    # be inf - inf, while the unshifted sum is already exact (inf, or 0 for all -inf).
    m = np.where(np.isinf(m), 0.0, m)
    with np.errstate(divide="ignore"):  # log(0) = -inf for a row of all -inf (or empty)
        return np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along axis, computed as max + log(sum(exp(x - max))).

    All -inf (or an empty axis) gives -inf; any +inf gives +inf; NaN gives NaN.
    """
    r = _logsumexp_keepdims(_f64(x), axis)
    return _f64(r if keepdims else np.squeeze(r, axis=axis))


def logsumexp_grad(grad_output, x, axis=-1, keepdims=False):
    """Gradient w.r.t. x: g * exp(x - logsumexp(x)) = g * softmax(x) (NaN for a row of all -inf)."""
    x = _f64(x)
    g = _f64(grad_output)
    if not keepdims:
        g = np.expand_dims(g, axis)
    with np.errstate(invalid="ignore"):  # -inf - (-inf) for a row of all -inf, as PyTorch
        return _f64(g * np.exp(x - _logsumexp_keepdims(x, axis)))


# ---- the table -----------------------------------------------------------------------------

ELEMENTWISE = {
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "gelu": (gelu, gelu_grad),
    "silu": (silu, silu_grad),
    "relu6": (relu6, relu6_grad),
    "elu": (elu, elu_grad),
    "celu": (celu, celu_grad),
    "selu": (selu, selu_grad),
    "softplus": (softplus, softplus_grad),
    "softsign": (softsign, softsign_grad),
    "log_sigmoid": (log_sigmoid, log_sigmoid_grad),
    "mish": (mish, mish_grad),
    "hardsigmoid": (hardsigmoid, hardsigmoid_grad),
    "hardtanh": (hardtanh, hardtanh_grad),
    "hardswish": (hardswish, hardswish_grad),
    "hardshrink": (hardshrink, hardshrink_grad),
    "softshrink": (softshrink, softshrink_grad),
    "tanhshrink": (tanhshrink, tanhshrink_grad),
    "threshold": (threshold, threshold_grad),
}
"""Every plain elementwise activation: name -> (forward, derivative), both f(x, **params)."""
