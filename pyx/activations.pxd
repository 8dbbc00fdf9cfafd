# Scalar kernels: one small inline function per formula, no arrays, no Python.
#
# <name>_fwd(x, params...)                      the activation
# <name>_bwd(grad_output, x, params...)         grad_output * f'(x), PyTorch's convention at kinks
# <name>_bwd_from_output(grad_output, y, ...)   the same from y = f(x), where that is possible
#
# Every kernel computes in double, whatever the array's dtype: a float32 result is then the
# correctly rounded double result within a fraction of an ulp, and the same input gives the
# same bits wherever it sits in an array. The loops (pyx/_elementwise.pyx.tp) convert.
#
# Limits: at +-inf every forward returns the mathematical limit (gelu(-inf) = silu(-inf) = 0),
# where the plain formula would give inf * 0 = NaN; NaN in gives NaN out.

from libc.math cimport exp, fabs, erfc, tanh as libm_tanh

cdef extern from *:
    """
    #define ACTFAST_SQRT1_2 0.70710678118654752440    /* 1/sqrt(2) */
    #define ACTFAST_1_SQRT2PI 0.39894228040143267794  /* 1/sqrt(2 pi) */
    #define ACTFAST_SQRT2_PI 0.79788456080286535588   /* sqrt(2/pi) */
    """
    const double SQRT1_2 "ACTFAST_SQRT1_2"
    const double ONE_OVER_SQRT_2PI "ACTFAST_1_SQRT2PI"
    const double SQRT_2_OVER_PI "ACTFAST_SQRT2_PI"


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


# ---- relu ----------------------------------------------------------------------------------

cdef inline double relu_fwd(double x) noexcept nogil:
    # x <= 0 -> 0, written so that NaN (for which every comparison is false) passes through
    return 0.0 if x <= 0 else x

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
    return libm_tanh(x)

cdef inline double tanh_bwd(double grad_output, double x) noexcept nogil:
    # 1 - tanh(x)^2 = 4 sigmoid'(2x): accurate where tanh(x) rounds to +-1
    return grad_output * (4.0 * logistic_slope(2.0 * x))

cdef inline double tanh_bwd_from_output(double grad_output, double y) noexcept nogil:
    return grad_output * ((1.0 - y) * (1.0 + y))


# ---- gelu (erf form) -----------------------------------------------------------------------

cdef inline double gelu_fwd(double x) noexcept nogil:
    # 0.5 x erfc(-x/sqrt 2) rather than 0.5 x (1 + erf(x/sqrt 2)): no cancellation in the
    # negative tail. Below -40 the true value is below 1e-340 in magnitude (a double's -0),
    # and the formula would give -inf * 0 = NaN at -inf.
    if x < -40.0:
        return -0.0
    return 0.5 * x * erfc(-x * SQRT1_2)

cdef inline double gelu_bwd(double grad_output, double x) noexcept nogil:
    # Phi(x) + x phi(x); beyond |x| = 40 x phi(x) < 1e-340 and Phi is 0 or 1 (also at +-inf,
    # where x phi(x) would be inf * 0)
    if x < -40.0:
        return grad_output * 0.0
    if x > 40.0:
        return grad_output
    return grad_output * (0.5 * erfc(-x * SQRT1_2) + x * ONE_OVER_SQRT_2PI * exp(-0.5 * x * x))


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
