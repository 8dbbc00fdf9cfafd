# Vectorisable elementary functions (pyx/vecmath.h) for the kernels, named as libm's so that
# the kernels read as formulas, and generic over `real`: a kernel written once with `real`
# arguments computes in float32 for float32 arrays (8 AVX2 lanes) and in float64 for float64
# arrays, each with the primitive of its precision. See vecmath.h for the methods and
# accuracy of each.

from libc.math cimport fabs as c_fabs, fabsf as c_fabsf
from libc.math cimport copysign as c_copysign, copysignf as c_copysignf

ctypedef fused real:
    float
    double

cdef extern from "vecmath.h" nogil:
    # a b + c rounded once (the FMA instruction; two roundings in the portable build)
    double af_fma "AF_FMA"(double a, double b, double c) noexcept
    float af_fmaf "AF_FMAF"(float a, float b, float c) noexcept
    double af_one_minus_square(double y) noexcept
    float af_one_minus_squaref(float y) noexcept
    double af_times_one_minus(double y) noexcept
    float af_times_one_minusf(float y) noexcept
    double af_exp(double x) noexcept
    double af_exp_parts(double x, double* scale) noexcept
    double af_exp_neg_parts(double x, double* scale) noexcept
    double af_exp_neg_dd_parts(double hi, double lo, double* scale) noexcept
    double af_two_product(double x, double y, double* lo) noexcept
    float af_exp_neg_dd_partsf(float hi, float lo, float* scale) noexcept
    float af_exp_neg_dd_moderatef(float hi, float lo) noexcept
    float af_two_product_df(float x, double c, float* lo) noexcept
    double af_expm1(double x) noexcept
    double af_tanh(double x) noexcept
    double af_log1p_unit(double z) noexcept
    double af_log_normal_positive(double v) noexcept
    double af_cos_sin_circle(double theta, double* sine) noexcept
    double af_gauss_parts(double a, double* scale) noexcept
    double af_mills_ratio(double a) noexcept
    double af_mills_ratio_minus_a(double a) noexcept
    float af_expf(float x) noexcept
    float af_exp_partsf(float x, float* scale) noexcept
    float af_exp_parts_df(double x, float* scale) noexcept
    float af_exp_neg_partsf(float x, float* scale) noexcept
    float af_exp_neg_moderatef(float x) noexcept
    double af_exp_neg_parts_m1(double x, double* scale, double* em) noexcept
    double af_exp_neg_moderate_m1(double x, double* em) noexcept
    float af_exp_neg_parts_df(double x, float* scale) noexcept
    float af_expm1f(float x) noexcept
    double af_expm1_neg(double x) noexcept
    float af_expm1_negf(float x) noexcept
    float af_tanhf(float x) noexcept
    float af_x_minus_tanhf(float x) noexcept
    double af_x_minus_tanh(double x) noexcept
    float af_log1p_unitf(float z) noexcept
    float af_gauss_partsf(float a, float* scale) noexcept
    double af_mills_ratiof(float a) noexcept
    float af_mills_ratio_minus_af(float a) noexcept
    double af_exprel_small(double d) noexcept
    float af_exprel_smallf(float d) noexcept
    float af_float_at_most(double c) noexcept
    float af_float_at_least(double c) noexcept


cdef inline real exp(real x) noexcept nogil:
    if real is float:
        return af_expf(x)
    else:
        return af_exp(x)

cdef inline real exp_parts(real x, real* scale) noexcept nogil:
    # exp(x) = exp_parts(x, &scale) * scale, both factors normal: multiply the first by the
    # other factors of a result and apply `scale` last, so that a result in the subnormal
    # range is rounded once
    if real is float:
        return af_exp_partsf(x, scale)
    else:
        return af_exp_parts(x, scale)

cdef inline real exp_neg_parts(real x, real* scale) noexcept nogil:
    # exp_parts for x <= 0 (or NaN) only (one clamp less: most kernels take exp(-|x|))
    if real is float:
        return af_exp_neg_partsf(x, scale)
    else:
        return af_exp_neg_parts(x, scale)

cdef inline real exp_neg_parts_for(real x, real* scale, bint moderate) noexcept nogil:
    # exp_neg_parts, or where the caller knows that x is moderate (>= -40 for float32, -400 for
    # double: see activations.pxd) e^x whole with scale 1: a normal number there, computed
    # without clamp in one factor 2^n, the product of exp_neg_parts' factors to the bit.
    # `moderate` is a constant at each call, so the compiler keeps one branch.
    cdef double em
    if real is double:
        return exp_neg_parts_m1_for(x, scale, &em, moderate)
    elif not moderate:
        return af_exp_neg_partsf(x, scale)
    else:
        scale[0] = 1
        return af_exp_neg_moderatef(x)

cdef inline double exp_neg_parts_m1_for(double x, double* scale, double* em,
                                        bint moderate) noexcept nogil:
    # (double) exp_neg_parts_for, also for x up to ln2/2, and into *em the exponential of the
    # reduced argument minus 1: where |x| < ln2/2 (no reduction), e^x - 1 to full relative
    # precision
    if not moderate:
        return af_exp_neg_parts_m1(x, scale, em)
    scale[0] = 1
    return af_exp_neg_moderate_m1(x, em)

cdef inline real exp_neg_parts_of(double x, real* scale) noexcept nogil:
    # exp_parts_of for x <= 0 (or NaN) only
    if real is float:
        return af_exp_neg_parts_df(x, scale)
    else:
        return af_exp_neg_parts(x, scale)

cdef inline real exp_neg_dd_parts(real hi, real lo, real* scale) noexcept nogil:
    # exp(hi + lo) as parts, hi <= 0 (or NaN): an argument known to more than `real`
    # precision (two_product), whose rounding exp would multiply by |hi|
    if real is float:
        return af_exp_neg_dd_partsf(hi, lo, scale)
    else:
        return af_exp_neg_dd_parts(hi, lo, scale)

cdef inline real two_product(real x, double c, real* lo) noexcept nogil:
    # x c = result + lo (exactly for double; to 2^-48 for float32, c in two floats)
    if real is float:
        return af_two_product_df(x, c, lo)
    else:
        return af_two_product(x, c, lo)

cdef inline real exp_neg(real x) noexcept nogil:
    # exp for x <= 0 (or NaN) only
    cdef real scale
    cdef real y = exp_neg_parts(x, &scale)
    return y * scale

cdef inline real exp_parts_of(double x, real* scale) noexcept nogil:
    # exp_parts of a double argument: for float32, a product or quotient computed in double
    # (x beta, x / alpha), whose float32 rounding e^x would amplify |x| times
    if real is float:
        return af_exp_parts_df(x, scale)
    else:
        return af_exp_parts(x, scale)

cdef inline real expm1(real x) noexcept nogil:
    if real is float:
        return af_expm1f(x)
    else:
        return af_expm1(x)

cdef inline real expm1_neg(real x) noexcept nogil:
    # expm1 for x <= 0 (or NaN) only (fewer operations, the same bits there); other x give
    # unspecified finite or non-finite values, for a select to discard
    if real is float:
        return af_expm1_negf(x)
    else:
        return af_expm1_neg(x)

cdef inline real tanh(real x) noexcept nogil:
    if real is float:
        return af_tanhf(x)
    else:
        return af_tanh(x)

cdef inline real log1p_unit(real z) noexcept nogil:
    # log(1 + z) for z in [0, 1]
    if real is float:
        return af_log1p_unitf(z)
    else:
        return af_log1p_unit(z)

cdef inline real gauss_parts(real a, real* scale) noexcept nogil:
    # exp(-a^2/2) as parts (as exp_parts), for a in [0, 15] (float32) or [0, 39] (float64)
    if real is float:
        return af_gauss_partsf(a, scale)
    else:
        return af_gauss_parts(a, scale)

cdef inline double mills_ratio(real a) noexcept nogil:
    # Phi(-a) / phi(a), a >= 0 within gauss_parts' range (in double for float32 too: unrounded)
    if real is float:
        return af_mills_ratiof(a)
    else:
        return af_mills_ratio(a)

cdef inline real mills_ratio_minus_a(real a) noexcept nogil:
    # mills_ratio(a) - a, with full relative precision at its zero a0 = 0.7518 (gelu's minimum)
    if real is float:
        return af_mills_ratio_minus_af(a)
    else:
        return af_mills_ratio_minus_a(a)

cdef inline real exprel_small(real d) noexcept nogil:
    # (e^d - 1) / d for |d| <= 1 (float32), |d| <= 1/2 (double)
    if real is float:
        return af_exprel_smallf(d)
    else:
        return af_exprel_small(d)

cdef inline real fma(real a, real b, real c) noexcept nogil:
    if real is float:
        return af_fmaf(a, b, c)
    else:
        return af_fma(a, b, c)

cdef inline real one_minus_square(real y) noexcept nogil:
    # 1 - y^2, y read once (vecmath.h)
    if real is float:
        return af_one_minus_squaref(y)
    else:
        return af_one_minus_square(y)

cdef inline real times_one_minus(real y) noexcept nogil:
    # y (1 - y), y read once (vecmath.h)
    if real is float:
        return af_times_one_minusf(y)
    else:
        return af_times_one_minus(y)

cdef inline real fabs(real x) noexcept nogil:
    if real is float:
        return c_fabsf(x)
    else:
        return c_fabs(x)

cdef inline real copysign(real x, real y) noexcept nogil:
    if real is float:
        return c_copysignf(x, y)
    else:
        return c_copysign(x, y)

cdef inline real at_most(double c, real x) noexcept nogil:
    # the largest `real` <= c: for an element x of that type, x <= c <=> x <= at_most(c, x)
    # (float32 elements are compared in float32; the answer is the double comparison's)
    if real is float:
        return af_float_at_most(c)
    else:
        return c

cdef inline real at_least(double c, real x) noexcept nogil:
    # the smallest `real` >= c: x >= c <=> x >= at_least(c, x)
    if real is float:
        return af_float_at_least(c)
    else:
        return c
