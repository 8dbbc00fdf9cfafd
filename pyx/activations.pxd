# Scalar kernels: one small inline function per formula, no arrays, no Python.
#
# <name>_fwd(x, params...)                      the activation
# <name>_bwd(grad_output, x, params...)         grad_output * f'(x), PyTorch's convention at kinks
# <name>_bwd_from_output(grad_output, y, ...)   the same from y = f(x), where that is possible
#
# Every kernel computes in double, whatever the array's dtype: a float32 result is then the
# correctly rounded double result within a fraction of an ulp, and the same input gives the
# same bits wherever it sits in an array. The loops (pyx/_elementwise.pyx.tp) convert. A
# kernel whose Kernel entry says `single=True` also has <name>_fwd_single / _bwd_single
# variants used for float32 arrays: the same formula with a primitive that is accurate to
# float32 only but vectorises (erfc).
#
# exp, expm1, tanh and log1p_unit are actfast's own (pyx/vecmath.h): branch-free, so that the
# loops vectorise; the kernels' own cut-offs are written as selects GCC can if-convert.
#
# Limits: at +-inf every forward returns the mathematical limit (gelu(-inf) = silu(-inf) = 0),
# where the plain formula would give inf * 0 = NaN; NaN in gives NaN out.

from libc.math cimport fabs, copysign, erfc, INFINITY
from vecmath cimport exp, expm1, tanh, log1p_unit, erfc_single

cdef extern from *:
    """
    #define ACTFAST_SQRT1_2 0.70710678118654752440    /* 1/sqrt(2) */
    #define ACTFAST_1_SQRT2PI 0.39894228040143267794  /* 1/sqrt(2 pi) */
    #define ACTFAST_SQRT2_PI 0.79788456080286535588   /* sqrt(2/pi) */
    /* SELU's constants (Klambauer et al. 2017) to full double precision */
    #define ACTFAST_SELU_ALPHA 1.6732632423543772848170429916717
    #define ACTFAST_SELU_SCALE 1.0507009873554804934193349852946
    """
    const double SQRT1_2 "ACTFAST_SQRT1_2"
    const double ONE_OVER_SQRT_2PI "ACTFAST_1_SQRT2PI"
    const double SQRT_2_OVER_PI "ACTFAST_SQRT2_PI"
    const double SELU_ALPHA "ACTFAST_SELU_ALPHA"
    const double SELU_SCALE "ACTFAST_SELU_SCALE"


# ---- shared pieces -------------------------------------------------------------------------

cdef inline double logistic(double x) noexcept nogil:
    # exp(-|x|) never overflows; the two branches are the same function written so that
    # neither 1 + exp(-x) overflows (x << 0) nor 1/(1+z) loses the tiny tail (x << 0).
    cdef double z = exp(-fabs(x))
    return 1.0 / (1.0 + z) if x >= 0 else z / (1.0 + z)


cdef inline double logistic_slope(double x) noexcept nogil:
    # sigmoid'(x) = s (1 - s) = z / (1 + z)^2 with z = exp(-|x|): no cancellation in 1 - s
    # for large x, and exactly 0 at +-inf.
    cdef double z = exp(-fabs(x))
    return z / ((1.0 + z) * (1.0 + z))


cdef inline double nan_or(double x, double value) noexcept nogil:
    # x where x is NaN, else value: the gradient at NaN of the functions whose PyTorch
    # gradient at NaN depends on where the element sits (its vector body and scalar tail
    # disagree) is NaN here ("NaN in, NaN out").
    return value if x == x else x


# ---- relu ----------------------------------------------------------------------------------

cdef inline double relu_fwd(double x) noexcept nogil:
    # x < 0 -> 0, written so that NaN (for which every comparison is false) and -0.0 pass
    # through, as in PyTorch
    return 0.0 if x < 0 else x

cdef inline double relu_bwd(double grad_output, double x) noexcept nogil:
    # PyTorch's threshold_backward: x <= 0 -> 0, else grad (so relu'(0) = 0)
    return 0.0 if x <= 0 else grad_output

cdef inline double relu_bwd_from_output(double grad_output, double y) noexcept nogil:
    return 0.0 if y <= 0 else grad_output


# ---- leaky_relu ----------------------------------------------------------------------------

cdef inline double leaky_relu_fwd(double x, double negative_slope) noexcept nogil:
    return x if x > 0 else x * negative_slope

cdef inline double leaky_relu_bwd(double grad_output, double x, double negative_slope) noexcept nogil:
    # leaky_relu'(0) = negative_slope, as in PyTorch
    return grad_output if x > 0 else grad_output * negative_slope

cdef inline double leaky_relu_bwd_from_output(double grad_output, double y, double negative_slope) noexcept nogil:
    # valid for negative_slope >= 0 only (then y > 0 exactly when x > 0); the API checks
    return grad_output if y > 0 else grad_output * negative_slope


# ---- sigmoid -------------------------------------------------------------------------------

cdef inline double sigmoid_fwd(double x) noexcept nogil:
    return logistic(x)

cdef inline double sigmoid_bwd(double grad_output, double x) noexcept nogil:
    return grad_output * logistic_slope(x)

cdef inline double sigmoid_bwd_from_output(double grad_output, double y) noexcept nogil:
    return grad_output * (y * (1.0 - y))


# ---- tanh ----------------------------------------------------------------------------------

cdef inline double tanh_fwd(double x) noexcept nogil:
    return tanh(x)

cdef inline double tanh_bwd(double grad_output, double x) noexcept nogil:
    # 1 - tanh(x)^2 = 4 sigmoid'(2x): accurate where tanh(x) rounds to +-1
    return grad_output * (4.0 * logistic_slope(2.0 * x))

cdef inline double tanh_bwd_from_output(double grad_output, double y) noexcept nogil:
    return grad_output * ((1.0 - y) * (1.0 + y))


# ---- gelu (erf form) -----------------------------------------------------------------------
# Phi(x) = 0.5 erfc(-x/sqrt 2) rather than 0.5 (1 + erf(x/sqrt 2)): no cancellation in the
# negative tail. libm's erfc (float64) is a scalar call; float32 arrays use the vectorising
# erfc_single, accurate to float32.

cdef inline double gelu_from_erfc(double x, double erfc_value) noexcept nogil:
    # Below -40 the true value is below 1e-340 in magnitude (a double's -0), and the formula
    # would give -inf * 0 = NaN at -inf.
    return -0.0 if x < -40.0 else 0.5 * x * erfc_value

cdef inline double gelu_grad_from_erfc(double grad_output, double x, double erfc_value) noexcept nogil:
    # Phi(x) + x phi(x); beyond |x| = 40 x phi(x) < 1e-340 and Phi is 0 or 1 (also at +-inf,
    # where x phi(x) would be inf * 0)
    if x < -40.0:
        return grad_output * 0.0
    if x > 40.0:
        return grad_output
    return grad_output * (0.5 * erfc_value + x * ONE_OVER_SQRT_2PI * exp(-0.5 * x * x))

cdef inline double gelu_fwd(double x) noexcept nogil:
    return gelu_from_erfc(x, erfc(-x * SQRT1_2))

cdef inline double gelu_bwd(double grad_output, double x) noexcept nogil:
    return gelu_grad_from_erfc(grad_output, x, erfc(-x * SQRT1_2))

cdef inline double gelu_fwd_single(double x) noexcept nogil:
    return gelu_from_erfc(x, erfc_single(-x * SQRT1_2))

cdef inline double gelu_bwd_single(double grad_output, double x) noexcept nogil:
    # not erfc_single: near gelu's minimum (x = -0.75) the derivative crosses 0, and
    # erfc_single's 1e-7 relative error there is thousands of float32 ulp of the result
    return gelu_bwd(grad_output, x)


# ---- gelu (tanh approximation) -------------------------------------------------------------

cdef inline double gelu_tanh_fwd(double x) noexcept nogil:
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation in 1 + tanh(u) for x << 0.
    # Below x = -25, 2u < -1150 and the value is below 1e-490 in magnitude (-0 in double);
    # the cut also avoids x^3 overflowing and -inf * 0 at -inf.
    cdef double u
    if x < -25.0:
        return -0.0
    u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
    return x * logistic(2.0 * u)

cdef inline double gelu_tanh_bwd(double grad_output, double x) noexcept nogil:
    # d/dx [x s(2u)] = s(2u) + x s'(2u) 2 u'(x); beyond |x| = 25 the second term is below
    # 1e-490 and s is 0 or 1 (and at +-inf the formula would give inf * 0)
    cdef double u, du
    if x < -25.0:
        return grad_output * 0.0
    if x > 25.0:
        return grad_output
    u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return grad_output * (logistic(2.0 * u) + 2.0 * x * du * logistic_slope(2.0 * u))


# ---- silu ----------------------------------------------------------------------------------

cdef inline double silu_fwd(double x) noexcept nogil:
    # below -800, x sigmoid(x) underflows to -0 in double; at -inf the formula gives -inf * 0
    if x < -800.0:
        return -0.0
    return x * logistic(x)

cdef inline double silu_bwd(double grad_output, double x) noexcept nogil:
    # s + x s (1 - s); |x| s(1-s) < 1e-340 beyond |x| = 800 (and is inf * 0 at +-inf)
    if x < -800.0:
        return grad_output * 0.0
    if x > 800.0:
        return grad_output
    return grad_output * (logistic(x) + x * logistic_slope(x))


# ---- hardtanh and relu6 --------------------------------------------------------------------
# Comparisons are written so that NaN (every comparison false) passes through the forward;
# the backward is PyTorch's hardtanh_backward: 0 at and beyond the ends, grad strictly inside.
# `|` and `&` rather than `or` and `and`: no short circuit, so GCC can vectorise.

cdef inline double hardtanh_fwd(double x, double min_val, double max_val) noexcept nogil:
    if x < min_val:
        return min_val
    if x > max_val:
        return max_val
    return x

cdef inline double hardtanh_bwd(double grad_output, double x, double min_val, double max_val) noexcept nogil:
    return 0.0 if (x <= min_val) | (x >= max_val) else nan_or(x, grad_output)

cdef inline double hardtanh_bwd_from_output(double grad_output, double y, double min_val, double max_val) noexcept nogil:
    return 0.0 if (y <= min_val) | (y >= max_val) else nan_or(y, grad_output)

cdef inline double relu6_fwd(double x) noexcept nogil:
    return hardtanh_fwd(x, 0.0, 6.0)

cdef inline double relu6_bwd(double grad_output, double x) noexcept nogil:
    return hardtanh_bwd(grad_output, x, 0.0, 6.0)

cdef inline double relu6_bwd_from_output(double grad_output, double y) noexcept nogil:
    return hardtanh_bwd_from_output(grad_output, y, 0.0, 6.0)


# ---- elu, celu, selu: x for x > 0, else scale * alpha * expm1(x / alpha_in) ------------------
# expm1 keeps full precision near 0; PyTorch's derivative at 0 is the left branch's
# (alpha for elu, 1 for celu, scale*alpha for selu).

cdef inline double elu_fwd(double x, double alpha) noexcept nogil:
    return x if x > 0 else alpha * expm1(x)

cdef inline double elu_bwd(double grad_output, double x, double alpha) noexcept nogil:
    return grad_output if x > 0 else grad_output * (alpha * exp(x))

cdef inline double elu_bwd_from_output(double grad_output, double y, double alpha) noexcept nogil:
    # y = alpha (exp(x) - 1) for x <= 0, so alpha exp(x) = y + alpha (needs alpha >= 0, so
    # that y > 0 exactly when x > 0; the API checks)
    return grad_output if y > 0 else grad_output * (y + alpha)

cdef inline double celu_fwd(double x, double alpha) noexcept nogil:
    return x if x > 0 else alpha * expm1(x / alpha)

cdef inline double celu_bwd(double grad_output, double x, double alpha) noexcept nogil:
    return grad_output if x > 0 else grad_output * exp(x / alpha)

cdef inline double celu_bwd_from_output(double grad_output, double y, double alpha) noexcept nogil:
    return grad_output if y > 0 else grad_output * ((y + alpha) / alpha)


cdef inline double selu_fwd(double x) noexcept nogil:
    return SELU_SCALE * x if x > 0 else (SELU_SCALE * SELU_ALPHA) * expm1(x)

cdef inline double selu_bwd(double grad_output, double x) noexcept nogil:
    return grad_output * SELU_SCALE if x > 0 else grad_output * ((SELU_SCALE * SELU_ALPHA) * exp(x))

cdef inline double selu_bwd_from_output(double grad_output, double y) noexcept nogil:
    return grad_output * SELU_SCALE if y > 0 else grad_output * (y + SELU_SCALE * SELU_ALPHA)


# ---- softplus, log_sigmoid -----------------------------------------------------------------

cdef inline double log1p_exp(double z) noexcept nogil:
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): exp never overflows, and log1p keeps
    # the tail exp(z) exactly for z << 0. +inf gives inf, -inf gives 0, NaN gives NaN.
    # (a select rather than fmax, which GCC does not vectorise; NaN propagates through log1p)
    return (z if z > 0 else 0.0) + log1p_unit(exp(-fabs(z)))

cdef inline double softplus_fwd(double x, double beta, double threshold) noexcept nogil:
    # PyTorch reverts to x where beta x > threshold (there log1p(exp(beta x))/beta - x <
    # exp(-threshold)/beta is below the precision the user asked for)
    cdef double z = x * beta
    return x if z > threshold else log1p_exp(z) / beta

cdef inline double softplus_bwd(double grad_output, double x, double beta, double threshold) noexcept nogil:
    cdef double z = x * beta
    return grad_output if z > threshold else grad_output * logistic(z)

cdef inline double log_sigmoid_fwd(double x) noexcept nogil:
    # log(sigmoid(x)) = -log(1 + exp(-x)): exact for x << 0 (= x - log1p(exp(x)))
    return -log1p_exp(-x)

cdef inline double log_sigmoid_bwd(double grad_output, double x) noexcept nogil:
    return grad_output * logistic(-x)


# ---- softsign ------------------------------------------------------------------------------

cdef inline double softsign_fwd(double x) noexcept nogil:
    # x / (1 + |x|) is inf / inf at +-inf, whose limit is +-1
    if fabs(x) == INFINITY:
        return copysign(1.0, x)
    return x / (1.0 + fabs(x))

cdef inline double softsign_bwd(double grad_output, double x) noexcept nogil:
    cdef double d = 1.0 + fabs(x)
    return grad_output / (d * d)


# ---- mish: x tanh(softplus(x)) -------------------------------------------------------------

cdef inline double tanh_softplus(double x) noexcept nogil:
    # tanh(log(1 + e)) with e = exp(x) is ((1+e)^2 - 1) / ((1+e)^2 + 1) = n / (n + 2) with
    # n = e (e + 2): no log, no cancellation. For x > 0 the same in t = exp(-x) (no
    # overflow): (1 + 2t) / (1 + 2t + 2t^2).
    cdef double e, n, t
    if x <= 0:
        e = exp(x)
        n = e * (e + 2.0)
        return n / (n + 2.0)
    t = exp(-x)
    return (1.0 + 2.0 * t) / (1.0 + 2.0 * t + 2.0 * t * t)

cdef inline double one_minus_tanh_softplus_squared(double x) noexcept nogil:
    # 1 - r^2 = (1 - r)(1 + r), with 1 - r written without cancellation on each side
    cdef double e, n, t, d, r
    if x <= 0:
        e = exp(x)
        n = e * (e + 2.0)
        r = n / (n + 2.0)
        return (2.0 / (n + 2.0)) * (1.0 + r)
    t = exp(-x)
    d = 1.0 + 2.0 * t + 2.0 * t * t
    return (2.0 * t * t / d) * (1.0 + (1.0 + 2.0 * t) / d)

cdef inline double mish_fwd(double x) noexcept nogil:
    # below -800, x tanh(softplus(x)) ~ 2 x e^x underflows to -0; at -inf the formula is -inf*0
    if x < -800.0:
        return -0.0
    return x * tanh_softplus(x)

cdef inline double mish_bwd(double grad_output, double x) noexcept nogil:
    # tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), PyTorch's mish_backward; beyond |x| = 800 the
    # second term is below 1e-340 (and inf * 0 at +-inf)
    if x < -800.0:
        return grad_output * 0.0
    if x > 800.0:
        return grad_output
    return grad_output * (tanh_softplus(x) + x * logistic(x) * one_minus_tanh_softplus_squared(x))


# ---- hardsigmoid, hardswish ----------------------------------------------------------------

cdef inline double hardsigmoid_linear(double x, double slope, double offset) noexcept nogil:
    # slope x + offset written as (x + offset/slope) / (1/slope): for the defaults that is
    # PyTorch's exact (x + 3) / 6 (1/6 and 0.5/(1/6) are not exact in binary, 6 and 3 are), so
    # the result is exactly 0 at x = -3 and 1 at x = 3; slope = 0.2 gives (x + 2.5) / 5.
    # The API refuses slope = 0. The divisions by loop invariants are hoisted by the compiler.
    cdef double inverse_slope = 1.0 / slope
    return (x + offset * inverse_slope) / inverse_slope

cdef inline double hardsigmoid_fwd(double x, double slope, double offset) noexcept nogil:
    return hardtanh_fwd(hardsigmoid_linear(x, slope, offset), 0.0, 1.0)

cdef inline double hardsigmoid_bwd(double grad_output, double x, double slope, double offset) noexcept nogil:
    # slope strictly inside the linear part, 0 at its ends (PyTorch's convention at +-3)
    cdef double y = hardsigmoid_linear(x, slope, offset)
    return grad_output * slope if 0.0 < y < 1.0 else 0.0

cdef inline double hardswish_fwd(double x) noexcept nogil:
    # PyTorch's x relu6(x + 3) / 6; below -3 it is x * 0 = -0 (and -inf * 0 = NaN at -inf)
    if x < -3.0:
        return -0.0
    return x * hardtanh_fwd(x + 3.0, 0.0, 6.0) / 6.0

cdef inline double hardswish_bwd(double grad_output, double x) noexcept nogil:
    # PyTorch's hardswish_backward: 0 up to -3, x/3 + 1/2 strictly inside, 1 from 3 on (so
    # 0 at -3 and 1 at 3); NaN falls through to the middle formula and gives NaN
    if x <= -3.0:
        return 0.0
    if x >= 3.0:
        return grad_output
    return grad_output * (x / 3.0 + 0.5)


# ---- hardshrink, softshrink, tanhshrink, threshold -----------------------------------------

cdef inline double hardshrink_fwd(double x, double lambd) noexcept nogil:
    return 0.0 if (-lambd <= x) & (x <= lambd) else x

cdef inline double hardshrink_bwd(double grad_output, double x, double lambd) noexcept nogil:
    return 0.0 if (-lambd <= x) & (x <= lambd) else nan_or(x, grad_output)

cdef inline double softshrink_fwd(double x, double lambd) noexcept nogil:
    if x > lambd:
        return x - lambd
    if x < -lambd:
        return x + lambd
    return x * 0.0   # 0 (signed as x, as PyTorch), and NaN for NaN

cdef inline double softshrink_bwd(double grad_output, double x, double lambd) noexcept nogil:
    return 0.0 if (-lambd <= x) & (x <= lambd) else nan_or(x, grad_output)

cdef inline double tanhshrink_fwd(double x) noexcept nogil:
    # x - tanh(x) cancels for small |x| (it is x^3/3 - ...): there the Taylor series, whose
    # terms fall by ~0.4 x^2 each, so seven reach double precision below |x| = 1/8. (+ 0.0:
    # tanhshrink(-0.0) = -0.0 - -0.0 = +0.0, as in PyTorch.)
    cdef double x2
    if fabs(x) < 0.125:
        x2 = x * x
        return x * x2 * (1.0 / 3.0 + x2 * (-2.0 / 15.0 + x2 * (17.0 / 315.0 + x2 * (-62.0 / 2835.0
            + x2 * (1382.0 / 155925.0 + x2 * (-21844.0 / 6081075.0 + x2 * (929569.0 / 638512875.0))))))) + 0.0
    return x - tanh(x)

cdef inline double tanhshrink_bwd(double grad_output, double x) noexcept nogil:
    # 1 - (1 - tanh^2) = tanh(x)^2
    cdef double t = tanh(x)
    return grad_output * (t * t)

cdef inline double threshold_fwd(double x, double threshold, double value) noexcept nogil:
    return value if x <= threshold else x

cdef inline double threshold_bwd(double grad_output, double x, double threshold, double value) noexcept nogil:
    return 0.0 if x <= threshold else grad_output
