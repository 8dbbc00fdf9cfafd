# Scalar kernels: one small inline function per formula, no arrays, no Python.
#
# <name>_fwd(x, params...)                      the activation
# <name>_bwd(grad_output, x, params...)         grad_output * f'(x), PyTorch's convention at kinks
# <name>_bwd_from_output(grad_output, y, ...)   the same from y = f(x), where that is possible
# (a last argument `moderate` where actfast/catalogue.py says so: "the moderate range" below)
#
# Each kernel is written once over `real` (float or double, vecmath.pxd): float32 arrays are
# computed in float32 (8 AVX2 lanes, no conversions), float64 arrays in float64, with the
# primitives of that precision (pyx/vecmath.h: branch-free, so that the loops vectorise; the
# kernels' own cut-offs are selects GCC can if-convert). Parameters arrive as doubles; a
# kernel rounds them to `real` where the float32 result stays within an ulp, and compares
# float32 elements with them through at_most/at_least, which keep the double comparison's
# answer (so kinks sit where the float64 reference puts them).
# Writing `real` code: a double literal (0.5 * x) would promote float32 arithmetic to double
# in C: use integer literals or <real> casts of constants.
#
# Derivatives that cross 0 away from x = 0 (silu', mish', gelu', gelu_tanh': near their zeros
# any rounding of their terms is a large relative error of the result) are written as the
# distance to the zero times a sum of positive terms there. Where float32 arithmetic cannot
# reach float32 accuracy, a kernel says so and computes in double (gelu's Mills ratio, mish).
# In the tails, exp_parts (e^x as two factors, the second applied last) keeps results in the
# subnormal range rounded once (x e^x at x = -100 would otherwise lose 50 units).
#
# Limits: at +-inf every forward returns the mathematical limit (gelu(-inf) = silu(-inf) = 0),
# where the plain formula would give inf * 0 = NaN; NaN in gives NaN out.

from libc.float cimport FLT_MAX as FLOAT_MAX
from libc.math cimport INFINITY
from vecmath cimport (real, exp, exp_neg, exp_neg_parts, exp_neg_parts_for, exp_parts_of,
                      exp_neg_parts_of, exp_neg_dd_parts, two_product, expm1, expm1_neg, tanh,
                      log1p_unit, fabs, copysign, gauss_parts, mills_ratio, mills_ratio_minus_a,
                      exp_neg_parts_m1_for, exprel_small, at_most, at_least, af_x_minus_tanhf,
                      af_x_minus_tanh,
                      fma, one_minus_square, times_one_minus)

cdef extern from *:
    """
    #define ACTFAST_1_SQRT2PI 0.39894228040143267794  /* 1/sqrt(2 pi) */
    #define ACTFAST_SQRT2_PI 0.79788456080286535588   /* sqrt(2/pi) */
    /* SELU's constants (Klambauer et al. 2017) to full double precision */
    #define ACTFAST_SELU_ALPHA 1.6732632423543772848170429916717
    #define ACTFAST_SELU_SCALE 1.0507009873554804934193349852946
    """
    const double ONE_OVER_SQRT_2PI "ACTFAST_1_SQRT2PI"
    const double SQRT_2_OVER_PI "ACTFAST_SQRT2_PI"
    const double SELU_ALPHA "ACTFAST_SELU_ALPHA"
    const double SELU_SCALE "ACTFAST_SELU_SCALE"

cdef extern from *:
    """
    /* The zeros of silu', mish' and gelu_tanh' (their minima), as hi + lo in double and in
     * float32, and the constants of their expansions there (mpmath, 50 digits) */
    #define ACTFAST_SILU_X0_HI -1.2784645427610737
    #define ACTFAST_SILU_X0_LO -1.0946994183093437e-16
    #define ACTFAST_SILU_X0_HIF -1.2784645557403564f
    #define ACTFAST_SILU_X0_LOF 1.2979282537628478e-08f
    #define ACTFAST_SILU_E0 0.27846454276107379511       /* e^x0 = -(1 + x0) */
    #define ACTFAST_MISH_X0_HI -1.1924312145154952
    #define ACTFAST_MISH_X0_LO -4.8484829848031044e-17
    #define ACTFAST_MISH_X0_HIF -1.1924312114715576f
    #define ACTFAST_MISH_X0_LOF -3.0439375464652585e-09f
    #define ACTFAST_MISH_K1 1.19403393896393895e+00     /* E (3E^2 + 8E + 6 + 4 x0), E = e^x0 */
    #define ACTFAST_MISH_K2 4.52260322911128221e-01     /* E^2 (3E + 4) */
    #define ACTFAST_MISH_K3 2.79512420091701380e-02     /* E^3 */
    #define ACTFAST_MISH_K4 5.21393014112611564e+00     /* 4 (1 + E) */
    #define ACTFAST_MISH_K5 1.21393014112611564e+00     /* 4 E */
    #define ACTFAST_GELU_TANH_X0_HI -0.7524614220710163
    #define ACTFAST_GELU_TANH_X0_LO 3.635560509207687e-17
    #define ACTFAST_GELU_TANH_X0_HIF -0.7524614334106445f
    #define ACTFAST_GELU_TANH_X0_LOF 1.1339627903339533e-08f
    #define ACTFAST_GELU_TANH_2CZ0 4.65893112065442927e-01  /* 2 sqrt(2/pi) e^(2u(x0)) */
    """
    const double SILU_X0_HI "ACTFAST_SILU_X0_HI"
    const double SILU_X0_LO "ACTFAST_SILU_X0_LO"
    const float SILU_X0_HIF "ACTFAST_SILU_X0_HIF"
    const float SILU_X0_LOF "ACTFAST_SILU_X0_LOF"
    const double SILU_E0 "ACTFAST_SILU_E0"
    const double MISH_X0_HI "ACTFAST_MISH_X0_HI"
    const double MISH_X0_LO "ACTFAST_MISH_X0_LO"
    const float MISH_X0_HIF "ACTFAST_MISH_X0_HIF"
    const float MISH_X0_LOF "ACTFAST_MISH_X0_LOF"
    const double MISH_K1 "ACTFAST_MISH_K1"
    const double MISH_K2 "ACTFAST_MISH_K2"
    const double MISH_K3 "ACTFAST_MISH_K3"
    const double MISH_K4 "ACTFAST_MISH_K4"
    const double MISH_K5 "ACTFAST_MISH_K5"
    const double GELU_TANH_X0_HI "ACTFAST_GELU_TANH_X0_HI"
    const double GELU_TANH_X0_LO "ACTFAST_GELU_TANH_X0_LO"
    const float GELU_TANH_X0_HIF "ACTFAST_GELU_TANH_X0_HIF"
    const float GELU_TANH_X0_LOF "ACTFAST_GELU_TANH_X0_LOF"
    const double GELU_TANH_2CZ0 "ACTFAST_GELU_TANH_2CZ0"


# ---- the moderate range --------------------------------------------------------------------
# The kernels built on exp(-|x|) pay for its tails: e^x in two factors, the second applied last
# (exp_parts), so that a result in the subnormal range is rounded once; clamps; the limits at
# +-inf. Where every x is moderate (|x| <= 20 in float32, 200 in double) and every multiplier
# m (grad_output, or what else multiplies the exponential) is 0 or moderate (2^-60 <= |m| <=
# 2^60 in float32, 2^-400 <= |m| <= 2^400 in double), e^-|x| (e^-2|x| in tanh_bwd) and every
# product, quotient and result of these kernels are normal numbers, with margin, both ways of
# computing them; and between normal numbers multiplying by a power of two commutes with
# rounding: e^-|x| taken whole (exp_neg_parts_for) gives the same bits with fewer operations
# (silu's forward: ~30 % less time). The kernels that take `moderate` drop their tails when it
# is true; the loops (_elementwise.pyx.tp, _special.pyx) test each block and pass true (a
# constant) only for a block that is moderate throughout. NaN and +-inf are not moderate.
# (Double's e^-400 = 2^-577, its scale >= 2^-289 and |m| in 2^-400..2^400 keep them within
# 2^-980..2^700; float32's e^-40 = 2^-58, 2^-29 and 2^-60..2^60 within 2^-118..2^90.)

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* The tests of the moderate range over a block: the largest |x| (NaN if an x is NaN, which
     * fails the comparison with the bound), and the smallest nonzero
     * and largest |m|, found as bit patterns (for non-negative numbers their order is the
     * numbers' order, and NaN's patterns lie above inf's) by integer max/min reductions that
     * GCC vectorises: fewer operations than three comparisons and their masks per element. A
     * zero m maps to the largest pattern in the minimum (|m| - 1, without the sign bit). The
     * multipliers are m[i], or the products m[i] w[i] (w not NULL: glu's backward). */
    #define ACTFAST_MODERATE(T, BITS, SUFFIX, X_BOUND, TINY, HUGE)                        \
        static inline T actfast_largest_magnitude_##SUFFIX(const T* x, Py_ssize_t n) {    \
            const BITS magnitude = ~((BITS)1 << (8 * sizeof(T) - 1));                    \
            BITS largest = 0, b;                                                          \
            T v;                                                                          \
            for (Py_ssize_t i = 0; i < n; i++) {                                          \
                memcpy(&b, &x[i], sizeof b);                                              \
                b &= magnitude;                                                           \
                largest = b > largest ? b : largest;                                      \
            }                                                                             \
            memcpy(&v, &largest, sizeof v);                                               \
            return v;                                                                     \
        }                                                                                 \
        static inline int actfast_moderate_inputs_##SUFFIX(const T* x, Py_ssize_t n) {    \
            return actfast_largest_magnitude_##SUFFIX(x, n) <= X_BOUND;                   \
        }                                                                                 \
        static inline int actfast_moderate_multipliers_##SUFFIX(const T* m, const T* w,   \
                                                                Py_ssize_t n) {           \
            const BITS magnitude = ~((BITS)1 << (8 * sizeof(T) - 1));                    \
            const T tiny = TINY, huge = HUGE;                                             \
            BITS smallest = magnitude, largest = 0, b, tiny_bits, huge_bits;              \
            memcpy(&tiny_bits, &tiny, sizeof tiny);                                       \
            memcpy(&huge_bits, &huge, sizeof huge);                                       \
            for (Py_ssize_t i = 0; i < n; i++) {                                          \
                T v = w ? m[i] * w[i] : m[i];                                             \
                memcpy(&b, &v, sizeof b);                                                 \
                b &= magnitude;                                                           \
                largest = b > largest ? b : largest;                                      \
                b = (b - 1) & magnitude;                                                  \
                smallest = b < smallest ? b : smallest;                                   \
            }                                                                             \
            return smallest >= tiny_bits - 1 && largest <= huge_bits;                     \
        }                                                                                 \
        static inline int actfast_moderate_multiplier_##SUFFIX(T m) {                     \
            return actfast_moderate_multipliers_##SUFFIX(&m, NULL, 1);  /* one element */  \
        }
    #define ACTFAST_MODERATE_X_BOUND_F 20.0f
    #define ACTFAST_MODERATE_X_BOUND_D 200.0
    ACTFAST_MODERATE(float, int32_t, f, ACTFAST_MODERATE_X_BOUND_F, 0x1p-60f, 0x1p60f)
    ACTFAST_MODERATE(double, int64_t, d, ACTFAST_MODERATE_X_BOUND_D, 0x1p-400, 0x1p400)
    """
    const float MODERATE_X_BOUND_FLOAT "ACTFAST_MODERATE_X_BOUND_F"
    const double MODERATE_X_BOUND_DOUBLE "ACTFAST_MODERATE_X_BOUND_D"
    float largest_magnitude_f "actfast_largest_magnitude_f"(const float* x,
                                                          Py_ssize_t n) noexcept nogil
    double largest_magnitude_d "actfast_largest_magnitude_d"(const double* x,
                                                           Py_ssize_t n) noexcept nogil
    bint moderate_multiplier_f "actfast_moderate_multiplier_f"(float m) noexcept nogil
    bint moderate_inputs_f "actfast_moderate_inputs_f"(const float* x,
                                                      Py_ssize_t n) noexcept nogil
    bint moderate_inputs_d "actfast_moderate_inputs_d"(const double* x,
                                                      Py_ssize_t n) noexcept nogil
    bint moderate_multipliers_f "actfast_moderate_multipliers_f"(const float* m, const float* w,
                                                                Py_ssize_t n) noexcept nogil
    bint moderate_multipliers_d "actfast_moderate_multipliers_d"(const double* m,
                                                                const double* w,
                                                                Py_ssize_t n) noexcept nogil


cdef inline real largest_magnitude(const real* x, Py_ssize_t n) noexcept nogil:
    # max |x[i]|, NaN if an x[i] is NaN
    if real is float:
        return largest_magnitude_f(x, n)
    else:
        return largest_magnitude_d(x, n)

cdef inline bint moderate_inputs(const real* x, Py_ssize_t n) noexcept nogil:
    # every x[i] moderate (not NaN or inf)
    if real is float:
        return moderate_inputs_f(x, n)
    else:
        return moderate_inputs_d(x, n)

cdef inline bint moderate_multipliers(const real* m, Py_ssize_t n) noexcept nogil:
    # every m[i] 0 or moderate
    if real is float:
        return moderate_multipliers_f(m, NULL, n)
    else:
        return moderate_multipliers_d(m, NULL, n)

cdef inline bint moderate_inputs_and_multipliers(const real* x, const real* m,
                                                 Py_ssize_t n) noexcept nogil:
    # a backward's block: every x[i] moderate and every m[i] (grad_output) 0 or moderate
    return moderate_inputs(x, n) and moderate_multipliers(m, n)

cdef inline bint moderate_products(const real* m, const real* w, Py_ssize_t n) noexcept nogil:
    # every product m[i] w[i] (rounded) 0 or moderate
    if real is float:
        return moderate_multipliers_f(m, w, n)
    else:
        return moderate_multipliers_d(m, w, n)


# ---- shared pieces -------------------------------------------------------------------------

cdef inline real logistic(real x, bint moderate) noexcept nogil:
    # exp(-|x|) never overflows; 1/(1+z) for x >= 0 and z/(1+z) below are the same function
    # written so that neither 1 + exp(-x) overflows (x << 0) nor 1/(1+z) loses the tiny tail
    cdef real scale
    cdef real z = exp_neg_parts_for(-fabs(x), &scale, moderate) * scale
    return (<real>1 if x >= 0 else z) / (<real>1 + z)


cdef inline real logistic_times(real m, real x, bint moderate) noexcept nogil:
    # m * logistic(x), rounded once in the subnormal range (m is a gradient: a subnormal
    # logistic(x) rounded first and then multiplied by |m| > 1 would lose |m| units)
    cdef real scale
    cdef real zh = exp_neg_parts_for(-fabs(x), &scale, moderate)
    cdef real z = zh * scale
    cdef bint positive = x >= 0
    if moderate:   # scale is 1 (a select: 12-15 % less time than either() here)
        return (m if positive else m * zh) / (<real>1 + z)
    return (either(positive, m, m * zh) / (<real>1 + z)) * either(positive, <real>1, scale)


cdef inline real logistic_slope_times(real m, real x, bint moderate) noexcept nogil:
    # m * sigmoid'(x), sigmoid'(x) = s (1 - s) = z / (1 + z)^2 with z = exp(-|x|) (no
    # cancellation in 1 - s for large x, exactly 0 at +-inf), rounded once (as logistic_times)
    cdef real scale
    cdef real zh = exp_neg_parts_for(-fabs(x), &scale, moderate)
    return logistic_slope_times_parts(m, zh, scale)

cdef inline real logistic_slope_times_parts(real m, real zh, real scale) noexcept nogil:
    # logistic_slope_times with exp(-|x|) given as its parts zh * scale
    cdef real z = zh * scale
    return (m * zh / ((<real>1 + z) * (<real>1 + z))) * scale


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* kept: v where keep, else +0, as a bitwise and with keep's mask, so that v is an operand
     * whatever keep is. The select `keep ? v : 0` gives the same bits, but with AVX-512 GCC
     * turns it into a load of v masked by keep, which waits for the comparison (in relu_bwd:
     * for x's load): the memory-bound backward kernels at 10^7 elements took 1.5-2x the time.
     * or: the bitwise or of a and b. For float (f) and double (d). */
    #define ACTFAST_BIT_OPERATIONS(T, BITS, SUFFIX)                                    \
        static inline T actfast_kept_##SUFFIX(int keep, T v) {                          \
            BITS bits;                                                                  \
            memcpy(&bits, &v, sizeof v);                                                \
            bits &= -(BITS)(keep != 0);                                                 \
            memcpy(&v, &bits, sizeof v);                                                \
            return v;                                                                   \
        }                                                                               \
        static inline T actfast_or_##SUFFIX(T a, T b) {                                 \
            BITS x, y;                                                                  \
            memcpy(&x, &a, sizeof a);                                                   \
            memcpy(&y, &b, sizeof b);                                                   \
            x |= y;                                                                     \
            memcpy(&a, &x, sizeof a);                                                   \
            return a;                                                                   \
        }
    ACTFAST_BIT_OPERATIONS(float, int32_t, f)
    ACTFAST_BIT_OPERATIONS(double, int64_t, d)
    """
    float kept_f "actfast_kept_f"(bint keep, float value) noexcept nogil
    double kept_d "actfast_kept_d"(bint keep, double value) noexcept nogil
    float or_f "actfast_or_f"(float a, float b) noexcept nogil
    double or_d "actfast_or_d"(double a, double b) noexcept nogil


cdef inline real kept(bint keep, real value) noexcept nogil:
    # value where keep, else +0 (a gradient passed or stopped; see actfast_kept_f)
    if real is float:
        return kept_f(keep, value)
    else:
        return kept_d(keep, value)


cdef inline real bitwise_or(real a, real b) noexcept nogil:
    if real is float:
        return or_f(a, b)
    else:
        return or_d(a, b)


cdef inline real either(bint first, real a, real b) noexcept nogil:
    # a where first, else b, as two ands and an or: no branch, so GCC's jump threading does not
    # copy the arithmetic after it into both sides (a division each, in silu's forward)
    return bitwise_or(kept(first, a), kept(not first, b))


cdef inline real kept_or_nan(bint keep, real value, real x) noexcept nogil:
    # value where keep, x where x is NaN (keep must be false there: the callers' comparisons
    # are), else +0, as two ands and an or: the gradient at NaN of the functions whose PyTorch
    # gradient at NaN depends on where the element sits (its vector body and scalar tail
    # disagree) is NaN here ("NaN in, NaN out"). A select for the NaN became a masked and
    # with the gradient's load, waiting for x's (as kept's select; 1.6x the time at 10^7).
    return bitwise_or(kept(keep, value), kept(x != x, x))


cdef inline real nan_passing(real x, real result) noexcept nogil:
    # x itself where x is NaN. A kernel's arithmetic turns a NaN x into NaNs of either sign
    # (-|x| flips it) and which one comes out of an operation on two NaNs depends on the
    # operand order the compiler picked, which differs between a vectorised loop and its
    # scalar remainder: the loops (pyx/_elementwise.pyx.tp) pass every transcendental
    # kernel's result through this, so that the bits are the same wherever the element sits.
    return result if x == x else x


cdef inline real silu_cut(real x) noexcept nogil:
    # below this, |x| e^x is below half the smallest subnormal of `real` (the exp_parts clamp
    # is there too)
    if real is float:
        return -120
    else:
        return -760


cdef inline real from_zero(real x, double hi, double lo, float hi_single, float lo_single) noexcept nogil:
    # d = x - x0 for a zero x0 = hi + lo of a derivative: x - hi is exact near x0 (Sterbenz),
    # so d keeps its relative precision however close x is to x0
    if real is float:
        return (x - hi_single) - lo_single
    else:
        return (x - hi) - lo


cdef inline real window(real x, double for_float, double for_double) noexcept nogil:
    # half-width of the interval around a derivative's zero where it is computed from its
    # expansion (exprel_small's range bounds it: 1 in float32, 1/2 in double, where the
    # rounding errors it avoids are smaller too)
    if real is float:
        return <float>for_float
    else:
        return for_double


# ---- relu ----------------------------------------------------------------------------------

cdef inline real relu_fwd(real x) noexcept nogil:
    # x < 0 -> 0, written so that NaN (for which every comparison is false) and -0.0 pass
    # through, as in PyTorch
    return 0 if x < 0 else x

cdef inline real relu_bwd(real grad_output, real x) noexcept nogil:
    # PyTorch's threshold_backward: x <= 0 -> 0, else grad (so relu'(0) = 0)
    return kept(not (x <= 0), grad_output)

cdef inline real relu_bwd_from_output(real grad_output, real y) noexcept nogil:
    return kept(not (y <= 0), grad_output)


# ---- leaky_relu ----------------------------------------------------------------------------
# float32: the slope is rounded to float32, as in PyTorch (the product within 1 ulp)

cdef inline real leaky_relu_fwd(real x, double negative_slope) noexcept nogil:
    return x if x > 0 else x * <real>negative_slope

cdef inline real leaky_relu_bwd(real grad_output, real x, double negative_slope) noexcept nogil:
    # leaky_relu'(0) = negative_slope, as in PyTorch
    return grad_output if x > 0 else grad_output * <real>negative_slope

cdef inline real leaky_relu_bwd_from_output(real grad_output, real y, double negative_slope) noexcept nogil:
    # valid for negative_slope >= 0 only (then y > 0 exactly when x > 0); the API checks
    return grad_output if y > 0 else grad_output * <real>negative_slope


# ---- sigmoid -------------------------------------------------------------------------------

cdef inline real sigmoid_fwd(real x, bint moderate) noexcept nogil:
    return logistic(x, moderate)

cdef inline real sigmoid_bwd(real grad_output, real x, bint moderate) noexcept nogil:
    return logistic_slope_times(grad_output, x, moderate)

cdef inline real sigmoid_bwd_from_output(real grad_output, real y) noexcept nogil:
    return grad_output * times_one_minus(y)


# ---- tanh ----------------------------------------------------------------------------------

cdef inline real tanh_fwd(real x) noexcept nogil:
    return tanh(x)

cdef inline real tanh_bwd(real grad_output, real x, bint moderate) noexcept nogil:
    # 1 - tanh(x)^2 = 4 sigmoid'(2x): accurate where tanh(x) rounds to +-1 (the 4 goes
    # inside: 4 grad_output could overflow)
    cdef real scale
    cdef real zh = exp_neg_parts_for(<real>-2 * fabs(x), &scale, moderate)
    cdef real z = zh * scale
    return (grad_output * (<real>4 * zh) / ((<real>1 + z) * (<real>1 + z))) * scale

cdef inline real tanh_bwd_from_output(real grad_output, real y) noexcept nogil:
    return grad_output * one_minus_square(y)


# ---- gelu (erf form) -----------------------------------------------------------------------
# Phi(-a) = phi(a) R(a) with a = |x| and R the Mills ratio (vecmath.h): no erfc, no
# cancellation in the negative tail, and the derivative Phi(x) + x phi(x) as
# phi(a) (R(a) - a), whose zero (gelu's minimum, x = -0.75) mills_ratio_minus_a keeps exact.

cdef inline real gelu_limit(real x) noexcept nogil:
    # |x| beyond which gelu is x or -0 and gelu' is 1 or 0 in `real` (Phi(-15) < 1e-50, below
    # float32's subnormals; Phi(-39) < 1e-330): the range of gauss_parts and mills_ratio
    if real is float:
        return 15
    else:
        return 39

cdef inline real gelu_abs(real x) noexcept nogil:
    # |x| clamped to gelu_limit (NaN stays NaN)
    cdef real a = fabs(x)
    cdef real limit = gelu_limit(x)
    return limit if a > limit else a

cdef inline real gelu_tail(real x, real a, real scaled_ratio, real* scale) noexcept nogil:
    # phi(a) sqrt(2 pi) scaled_ratio as parts (see exp_parts), for a = |x| clamped to
    # gelu_limit; 0 beyond the limit (where gelu is x or -0 and gelu' is 1 or 0)
    cdef real t = gauss_parts(a, scale) * scaled_ratio
    return 0 if fabs(x) > gelu_limit(x) else t

cdef inline real gelu_fwd(real x) noexcept nogil:
    # a Phi(-a) = |gelu(-a)| as a phi(a) R(a), where a R(a) / sqrt(2 pi) is rounded once from
    # double (float32's mills_ratio is double too; rounding R, R / sqrt(2 pi) and the products
    # one by one in float reached 4.2 ulp); gelu(x) = -a Phi(-a) for x < 0 (rounded once
    # into the subnormal range) and x - a Phi(-a) above (gelu(x) - gelu(-x) = x). Beyond the
    # limit, -0 (also at -inf) or x.
    cdef real scale
    cdef real a = gelu_abs(x)
    cdef real v = gelu_tail(x, a, <real>(a * mills_ratio(a) * ONE_OVER_SQRT_2PI), &scale)
    return -(v * scale) if x < 0 else x - v * scale

cdef inline real gelu_bwd(real grad_output, real x) noexcept nogil:
    # Phi(x) + x phi(x) = H for x < 0, 1 - H for x >= 0, H = phi(a) (R(a) - a); beyond the
    # limit H = 0 (grad * 0 for x < 0: NaN for an infinite grad, as PyTorch's; grad above)
    cdef real scale
    cdef real a = gelu_abs(x)
    cdef real h = gelu_tail(x, a, mills_ratio_minus_a(a) * <real>ONE_OVER_SQRT_2PI, &scale)
    return (grad_output * h) * scale if x < 0 else grad_output * (<real>1 - h * scale)


# ---- gelu (tanh approximation) -------------------------------------------------------------
# 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): no cancellation in
# 1 + tanh(u) for x << 0. e^(2u) multiplies the rounding error of 2u by |2u| (up to 87 where
# the float32 result is not 0), so 2u and 2x u'(x) are computed in double for float32 too,
# and the exponential of a double argument taken (exp_parts_of).

cdef inline double gelu_tanh_2u(double x) noexcept nogil:
    return 2.0 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)

cdef inline real gelu_tanh_fwd(real x) noexcept nogil:
    # Below x = -25, 2u < -1150 and the value is below 1e-490 in magnitude (-0 in either
    # type); the cut also avoids -inf * 0 at -inf.
    cdef real scale
    cdef double u2 = gelu_tanh_2u(x)
    cdef real zh = exp_neg_parts_of(-fabs(u2), &scale)
    cdef real z = zh * scale
    if x < -25:
        return -0.0
    if x >= 0:
        return x / (<real>1 + z)
    return (x * zh / (<real>1 + z)) * scale

cdef inline real gelu_tanh_bwd(real grad_output, real x) noexcept nogil:
    # s + v s (1 - s) with s = sigmoid(2u) and v = 2x u'(x). With z = exp(-|2u|): for x >= 0,
    # (1 + z + v z) / (1+z)^2, all positive; for x < 0, z G / (1+z)^2 with G = 1 + z + v,
    # which crosses 0 at x0 = -0.7525. Near it, with d = x - x0 and Q = x^2 + x x0 + x0^2 (so
    # that x^3 - x0^3 = d Q): 2u - 2u0 = 2c d (1 + k Q) and v - v0 = 2c d (1 + 3k Q) (c =
    # sqrt(2/pi), k = 0.044715), so G = (z - z0) + (v - v0) = d (2c z0 (1 + kQ)
    # exprel(2u - 2u0) + 2c (1 + 3kQ)), a sum of positive terms (window: exprel's argument
    # stays within its range). Outside, G is summed in double (z's rounding alone remains).
    # Beyond |x| = 25 the second term is below 1e-490 and s is 0 or 1 (at +-inf the formula
    # would give inf * 0).
    cdef real scale
    cdef double xd = x
    cdef double u2 = gelu_tanh_2u(xd)
    cdef double v = 2.0 * SQRT_2_OVER_PI * xd * (1.0 + 3.0 * 0.044715 * xd * xd)
    cdef real zh = exp_neg_parts_of(-fabs(u2), &scale)
    cdef real z = zh * scale
    cdef real d = from_zero(x, GELU_TANH_X0_HI, GELU_TANH_X0_LO, GELU_TANH_X0_HIF, GELU_TANH_X0_LOF)
    cdef real Q = x * x + x * <real>GELU_TANH_X0_HI + <real>(GELU_TANH_X0_HI * GELU_TANH_X0_HI)
    cdef real q = exprel_small(<real>(2 * SQRT_2_OVER_PI) * d * (<real>1 + <real>0.044715 * Q))
    cdef real numerator
    if fabs(d) < window(x, 0.5, 0.25):
        numerator = zh * (d * (<real>GELU_TANH_2CZ0 * (<real>1 + <real>0.044715 * Q) * q
                               + <real>(2 * SQRT_2_OVER_PI) * (<real>1 + <real>(3 * 0.044715) * Q)))
    else:
        numerator = zh * <real>((1.0 + z) + v)
    if x >= 0:
        numerator = <real>((1.0 + z) + v * z)
        scale = 1
    if x < -25:
        return grad_output * <real>0
    if x > 25:
        return grad_output
    return (grad_output * (numerator / fma(z, z + <real>2, <real>1))) * scale


# ---- silu ----------------------------------------------------------------------------------

cdef inline real silu_fwd(real x, bint moderate) noexcept nogil:
    # x sigmoid(x): x / (1 + e^-x) for x >= 0, x e^x / (1 + e^x) below, rounded once into the
    # subnormal range (logistic_times); -0 below silu_cut (where it would give -inf * 0 at -inf)
    cdef real y = logistic_times(x, x, moderate)
    if not moderate and x < silu_cut(x):
        return -0.0
    return y

cdef inline real silu_bwd(real grad_output, real x, bint moderate) noexcept nogil:
    cdef real scale, G
    cdef real zh = silu_exp_parts(x, &scale, &G, moderate)
    return silu_bwd_parts(grad_output, x, zh, scale, G, moderate)

cdef inline float silu_G_near(float d) noexcept nogil:
    # float32 G = d (1 + e^x0 exprel(d)) for d = x - x0 near silu's minimum (silu_exp_parts)
    return d * fma(fma(fma(fma(fma(<float>3.929607337e-04, d, <float>2.352081938e-03), d,
                                   <float>1.160224713e-02), d, <float>4.640899971e-02), d,
                           <float>1.392322779e-01), d, <float>1.278464556e+00)

cdef inline real silu_exp_parts(real x, real* scale, real* G, bint moderate) noexcept nogil:
    # exp(-|x|) as parts zh * scale (exp_neg_parts), and into *G silu_bwd_parts' G = 1 + x + z
    # (for x < 0, z = e^x), which crosses 0 at x0 = -1.2785 (silu's minimum), where
    # e^x0 = -(1 + x0). With d = x - x0, G = d + e^x0 (e^d - 1), two terms of d's sign, used
    # near x0 (|d| < 1/4; beyond, 1 + x is exact and z's rounding at most about an ulp of G):
    # - float32: G = d (1 + e^x0 exprel(d)), that factor one polynomial fitted for relative
    #   error (1.0e-8 with these float coefficients; Horner's rule within 5.8e-8)
    # - double: the exponential is taken of d rather than of -|x| (no reduction there: its
    #   polynomial gives e^d - 1 to full relative precision), and z = e^x0 + e^x0 (e^d - 1):
    #   one polynomial for both (in float32, the fitted one took less time than the selects)
    cdef real d = from_zero(x, SILU_X0_HI, SILU_X0_LO, SILU_X0_HIF, SILU_X0_LOF)
    cdef bint near = fabs(d) < <real>0.25
    cdef real zh, em
    if real is float:
        zh = exp_neg_parts_for(-fabs(x), scale, moderate)
        if near:
            G[0] = silu_G_near(d)
        else:
            G[0] = (<real>1 + x) + zh * scale[0]
        return zh
    else:
        zh = exp_neg_parts_m1_for(d if near else -fabs(x), scale, &em, moderate)
        if near:   # n = 0: scale is 1
            G[0] = fma(SILU_E0, em, d)
            return fma(SILU_E0, em, SILU_E0)
        G[0] = (<real>1 + x) + zh * scale[0]
        return zh


cdef inline real silu_bwd_parts(real grad_output, real x, real zh, real scale, real G,
                                bint moderate) noexcept nogil:
    # silu_bwd with exp(-|x|) given as its parts zh * scale and G (silu_exp_parts): swish's
    # kernels need the exponential for more than silu'.
    # silu' = s (1 + x (1 - s)), s = sigmoid(x). With z = exp(-|x|): for x >= 0, s = 1/(1+z),
    # 1 - s = z/(1+z): (1 + z + x z) / (1+z)^2, all positive. For x < 0, s = z/(1+z),
    # 1 - s = 1/(1+z): z G / (1+z)^2. One division; rounded once at the end (exp_parts);
    # beyond silu_cut the derivative is 1 above, and below a negative number too small for
    # `real`: -0 (PyTorch's sign too; the formula gives inf * 0 at +-inf).
    cdef real z = zh * scale
    cdef real numerator, result, zero
    numerator = zh * G
    if moderate:   # scale is 1
        numerator = (<real>1 + z) + x * z if x >= 0 else numerator
        return grad_output * (numerator / ((<real>1 + z) * (<real>1 + z)))
    if x >= 0:
        numerator = (<real>1 + z) + x * z
        scale = 1
    result = (grad_output * (numerator / ((<real>1 + z) * (<real>1 + z)))) * scale
    # below the cut, -0 times grad_output, negated only where not NaN: as grad_output * -0,
    # GCC took -(grad_output * 0) in some loops, which flipped the sign of inf * 0's NaN
    zero = grad_output * <real>0
    result = (zero if zero != zero else -zero) if x < silu_cut(x) else result
    return grad_output if x > -silu_cut(x) else result


# ---- hardtanh and relu6 --------------------------------------------------------------------
# Comparisons are written so that NaN (every comparison false) passes through the forward;
# the backward is PyTorch's hardtanh_backward: 0 at and beyond the ends, grad strictly inside.
# `|` and `&` rather than `or` and `and`: no short circuit, so GCC can vectorise. The
# forward's clamp against the bounds rounded to `real` gives the double clamp's result at
# every x (the one float32 between a bound and its rounding is the rounding itself).

cdef inline real hardtanh_fwd(real x, double min_val, double max_val) noexcept nogil:
    # min(max(x, low), high) as two selects, each a vmaxps/vminps (NaN passes: the
    # comparisons are false); with low <= high (checked), the same result as testing x
    # against both bounds
    cdef real low = <real>min_val, high = <real>max_val
    cdef real y = low if x < low else x
    return high if y > high else y

cdef inline real hardtanh_bwd(real grad_output, real x, double min_val, double max_val) noexcept nogil:
    # grad strictly inside, else 0 (the comparisons are false at NaN), and NaN at NaN
    return kept_or_nan((x > at_most(min_val, x)) & (x < at_least(max_val, x)), grad_output, x)

cdef inline real hardtanh_bwd_from_output(real grad_output, real y, double min_val, double max_val) noexcept nogil:
    # y is the forward's clamp: at its ends the bounds rounded to `real` (for float32 the
    # nearest floats, which may lie inside [min_val, max_val]: compared with the double bounds
    # a clipped element passed the gradient, for min_val = 0.1, say); strictly between them
    # x was strictly inside
    return kept_or_nan((y > <real>min_val) & (y < <real>max_val), grad_output, y)

cdef extern from *:
    """
    /* The clamps' constants 0, 1, 6 and -3 in memory whose values GCC cannot assume (a weak
       definition may be replaced at link time): with them folded in, GCC 12 merges two
       clamping selects into compares and blends (10 operations per vector instead of a
       vmaxps and a vminps), and turns hardswish's (x < -3 ? -3 : x) + 3 into a masked add
       that reads x from memory a second time */
    __attribute__((weak, visibility("hidden"))) const double actfast_clamp_bounds[4] = {0.0, 1.0, 6.0, -3.0};
    """
    const double* CLAMP_BOUNDS "actfast_clamp_bounds"   # 0, 1, 6, -3

cdef inline real relu6_fwd(real x) noexcept nogil:
    return hardtanh_fwd(x, CLAMP_BOUNDS[0], CLAMP_BOUNDS[2])

cdef inline real relu6_bwd(real grad_output, real x) noexcept nogil:
    return hardtanh_bwd(grad_output, x, 0.0, 6.0)

cdef inline real relu6_bwd_from_output(real grad_output, real y) noexcept nogil:
    return hardtanh_bwd_from_output(grad_output, y, 0.0, 6.0)


# ---- elu, celu, selu: x for x > 0, else scale * alpha * expm1(x / alpha_in) ------------------
# expm1 keeps full precision near 0; PyTorch's derivative at 0 is the left branch's
# (alpha for elu, 1 for celu, scale*alpha for selu). float32: alpha rounded to float32 (as in
# PyTorch); the derivatives' exponentials as parts, so that grad * (a tiny exp) rounds once.

cdef inline real elu_fwd(real x, double alpha) noexcept nogil:
    return x if x > 0 else <real>alpha * expm1_neg(x)

cdef inline real elu_bwd(real grad_output, real x, double alpha) noexcept nogil:
    cdef real scale
    cdef real eh = exp_neg_parts(-fabs(x), &scale)   # (x <= 0 where it is used)
    return grad_output if x > 0 else (grad_output * (<real>alpha * eh)) * scale

cdef inline real elu_bwd_from_output(real grad_output, real y, double alpha) noexcept nogil:
    # y = alpha (exp(x) - 1) for x <= 0, so alpha exp(x) = y + alpha (needs alpha >= 0, so
    # that y > 0 exactly when x > 0; the API checks)
    return grad_output if y > 0 else grad_output * (y + <real>alpha)

cdef inline real celu_fwd(real x, double alpha) noexcept nogil:
    # any alpha != 0; the API takes it for alpha < 0 (celu_positive below for the rest). Then
    # x / alpha > 0 where expm1 is used, which grows with it: a float32 quotient's rounding
    # would be multiplied by x / alpha (up to 88; 36 ulp at x = -100, alpha = -1.5), so the
    # quotient, expm1 and the product are double, rounded once
    return x if x > 0 else <real>(alpha * expm1(<double>x / alpha))

cdef inline real celu_bwd(real grad_output, real x, double alpha) noexcept nogil:
    # alpha < 0 (the API's choice): exp(x / alpha) >= 1 where it is used, the quotient, the
    # exponential and the product in double, rounded once (for float32, the quotient's rounding
    # would be multiplied by x / alpha in the exponential; and a small grad times an
    # exponential beyond float32's range can be finite). Beyond double's range, inf (as the
    # reference's and PyTorch's exp).
    return grad_output if x > 0 else <real>(grad_output * exp(<double>x / alpha))

# celu for alpha > 0 (the API's choice): x / alpha <= 0 wherever expm1 is used, so expm1_neg
# (elu's), in the arrays' precision: there x / alpha's rounding moves expm1 by at most 0.4 of
# its relative size. Only here the derivative follows from the output (y > 0 exactly when
# x > 0; the API refuses the output for alpha < 0, as PyTorch).
cdef inline real celu_positive_fwd(real x, double alpha) noexcept nogil:
    # x itself where |x| < alpha 2^-26 (2^-55 for double): celu(x) = x (1 + x / 2 alpha + ...)
    # rounds to x there, while x / alpha could fall into the subnormal range and lose its
    # digits (50 ulp at x = -5.9e-39, alpha = 100; 0 instead of -1e-300 in double for
    # alpha = 1e30). x > -tiny is one comparison, as x > 0 was.
    cdef real tiny = <real>(alpha * (1.4901161193847656e-08 if real is float else 2.7755575615628914e-17))
    return x if x > -tiny else <real>alpha * expm1_neg(x / <real>alpha)

cdef inline real celu_positive_bwd(real grad_output, real x, double alpha) noexcept nogil:
    # exp(x / alpha) <= 1 where it is used, with the quotient in double: for float32, its
    # rounding would be multiplied by |x / alpha| (up to 100) in the exponential
    cdef real scale
    cdef real eh = exp_parts_of(x / alpha, &scale)
    return grad_output if x > 0 else (grad_output * eh) * scale

cdef inline real celu_positive_bwd_from_output(real grad_output, real y,
                                               double alpha) noexcept nogil:
    return grad_output if y > 0 else grad_output * ((y + <real>alpha) / <real>alpha)

cdef inline real selu_fwd(real x) noexcept nogil:
    return <real>SELU_SCALE * x if x > 0 else <real>(SELU_SCALE * SELU_ALPHA) * expm1_neg(x)

cdef inline real selu_bwd(real grad_output, real x) noexcept nogil:
    cdef real scale
    cdef real eh = exp_neg_parts(-fabs(x), &scale)   # (x <= 0 where it is used)
    if x > 0:
        return grad_output * <real>SELU_SCALE
    return (grad_output * (<real>(SELU_SCALE * SELU_ALPHA) * eh)) * scale

cdef inline real selu_bwd_from_output(real grad_output, real y) noexcept nogil:
    # the factor selected, then one product: with a product in each branch GCC read
    # grad_output twice (see af_one_minus_square in vecmath.h)
    return grad_output * (<real>SELU_SCALE if y > 0 else y + <real>(SELU_SCALE * SELU_ALPHA))


# ---- softplus, log_sigmoid -----------------------------------------------------------------

cdef inline real log1p_exp(real z) noexcept nogil:
    # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): exp never overflows, and log1p keeps
    # the tail exp(z) exactly for z << 0. +inf gives inf, -inf gives 0, NaN gives NaN.
    # (a select rather than fmax, which GCC does not vectorise; NaN propagates through log1p)
    return (z if z > 0 else <real>0) + log1p_unit(exp_neg(-fabs(z)))

cdef inline bint product_above(real z, real lo, double threshold) noexcept nogil:
    # z + lo > threshold, for the pair two_product gives (exact in double; in float32 the pair
    # against threshold split in two floats: no double comparison in the float32 loop)
    cdef float t_hi, t_lo
    if real is float:
        t_hi = <float>threshold
        t_lo = <float>(threshold - t_hi)
        return (z > t_hi) | ((z == t_hi) & (lo > t_lo))
    else:
        return (z > threshold) | ((z == threshold) & (lo > 0))


cdef inline real softplus_fwd(real x, double beta, double threshold) noexcept nogil:
    # PyTorch reverts to x where beta x > threshold (there log1p(exp(beta x))/beta - x <
    # exp(-threshold)/beta is below the precision the user asked for). z = beta x as z + lo
    # (two_product): exp(-|z|) would multiply z's rounding by |z|, and the comparison is the
    # exact product's. 1/beta rounded once, outside the loop.
    # Below z = -40, log1p(e) is e to either precision, and e * (1/beta) is taken from e's
    # parts, rounded once: with beta < 1 a subnormal e, its digits lost, was scaled up into
    # the normal range (6 ulp at x = -889.79 for beta = 0.1, 500 for beta = 0.001).
    cdef real lo, scale
    cdef real z = two_product(x, beta, &lo)
    cdef real eh = exp_neg_dd_parts(-fabs(z), -lo if z >= 0 else lo, &scale)
    cdef real e = eh * scale
    cdef real tail = (eh * <real>(1 / beta)) * scale
    if product_above(z, lo, threshold):
        return x
    if z < -40:
        return tail
    # (z + log1p(e)) / beta as x + log1p(e) / beta above 0: x is exact, where z / beta would
    # carry z's and 1/beta's roundings, and z overflowing (beta x > 3.4e38 in float32, with a
    # threshold beyond it) gave inf instead of x
    return (x if z > 0 else <real>0) + log1p_unit(e) * <real>(1 / beta)

cdef inline real softplus_bwd(real grad_output, real x, double beta, double threshold) noexcept nogil:
    # grad * sigmoid(z), as logistic_times, z = beta x as z + lo
    cdef real lo, scale
    cdef real z = two_product(x, beta, &lo)
    cdef real eh = exp_neg_dd_parts(-fabs(z), -lo if z >= 0 else lo, &scale)
    cdef real e = eh * scale
    if product_above(z, lo, threshold):
        return grad_output
    if z >= 0:
        return grad_output / (<real>1 + e)
    return (grad_output * eh / (<real>1 + e)) * scale

cdef inline real softplus_beta1_fwd(real x, double threshold) noexcept nogil:
    # softplus_fwd for beta = 1 (chosen by the API): z = x exactly, so the same bits without
    # the product's low part and the division by beta. Computed, then selected (GCC
    # vectorises a select, not a branch around the computation); the threshold test as
    # product_above(x, 0, ...), which is x > threshold (with at_most(threshold, x) instead,
    # GCC leaves this loop scalar).
    cdef real y = log1p_exp(x)
    return x if product_above(x, 0, threshold) else y

cdef inline real softplus_beta1_bwd(real grad_output, real x, double threshold,
                                    bint moderate) noexcept nogil:
    cdef real g = logistic_times(grad_output, x, moderate)
    return grad_output if product_above(x, 0, threshold) else g

cdef inline real log_sigmoid_fwd(real x) noexcept nogil:
    # log(sigmoid(x)) = -log(1 + exp(-x)): exact for x << 0 (= x - log1p(exp(x)))
    # (0 - rather than unary -: log_sigmoid(+large) = +0.0, as in PyTorch)
    return <real>0 - log1p_exp(-x)

cdef inline real log_sigmoid_bwd(real grad_output, real x, bint moderate) noexcept nogil:
    return logistic_times(grad_output, -x, moderate)


# ---- softsign ------------------------------------------------------------------------------

cdef inline real softsign_fwd(real x) noexcept nogil:
    # x / (1 + |x|) is inf / inf at +-inf, whose limit is +-1
    if fabs(x) == INFINITY:
        return copysign(<real>1, x)
    return nan_passing(x, x / (<real>1 + fabs(x)))   # (fabs makes a NaN of the other sign)

cdef inline real softsign_bwd(real grad_output, real x) noexcept nogil:
    # grad / (1 + |x|)^2, divided twice in float32: the square overflows float32 from |x| =
    # 1.8e19. In double the square overflows from 1.3e154 (where grad / d^2 was 0 for any
    # grad: 1e-20 for grad = 1e300, x = 1e160): there grad / d^2 = (grad s / (d s)^2) s with
    # s = 2^-600, no overflow, the products by s exact until the last one's rounding (where
    # grad s underflows, the result is below the smallest subnormal anyway).
    cdef real d = <real>1 + fabs(x)
    cdef double s
    if real is float:
        return nan_passing(x, (grad_output / d) / d)
    else:
        s = 2.409919865102884e-181 if d > 3.273390607896142e+150 else 1.0   # 2^-600, 2^500
        return nan_passing(x, ((grad_output * s) / ((d * s) * (d * s))) * s)


# ---- mish: x tanh(softplus(x)) -------------------------------------------------------------

cdef inline real mish_fwd(real x) noexcept nogil:
    # tanh(log(1 + e)) with e = exp(x) is ((1+e)^2 - 1) / ((1+e)^2 + 1) = n / (n + 2) with
    # n = e (e + 2): no log, no cancellation. For x > 0 the same in t = exp(-x) (no
    # overflow): (1 + 2t) / (1 + 2t + 2t^2). For x <= 0, n is computed from the first part
    # of e (exp_parts), in double for float32 too (its five float roundings there reached
    # 4.6 ulp), and the result rounded once. -0 below silu_cut (x tanh(sp) ~ 2 x e^x
    # underflows there; -inf * 0 at -inf).
    cdef real scale
    cdef real th = exp_neg_parts(-fabs(x), &scale)
    cdef real t = th * scale
    cdef double nh
    if x < silu_cut(x):
        return -0.0
    if x > 0:
        return x * ((<real>1 + <real>2 * t) / (<real>1 + <real>2 * t + <real>2 * t * t))
    nh = th * (<double>t + 2)
    return <real>((x * (nh / (nh * scale + 2))) * scale)

cdef inline real mish_bwd(real grad_output, real x) noexcept nogil:
    # tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2), PyTorch's mish_backward, with e = exp(-|x|):
    # x > 0: with N = 1 + 2e, D = N + 2e^2 (tanh(sp) = N/D, sigmoid(x) = 1/(1+e),
    #   1 - tanh(sp)^2 = 4e^2 (1+e)^2 / D^2): (N D + 4x e^2 (1+e)) / D^2, all positive.
    # x <= 0: with n = e (e + 2) (tanh(sp) = n/(n+2), 1 - tanh(sp)^2 = 4 (1+e)^2 / (n+2)^2):
    #   e F / (n+2)^2, F = (e+2)(n+2) + 4x(1+e), which crosses 0 at x0 = -1.1924 (mish's
    #   minimum). Near it, with d = x - x0, E = e^x0, e = E (1 + d q), q = exprel(d), the
    #   cubic in e and the linear term in x expand exactly to F = d B with
    #   B = K4 + q (K1 + d (K5 + q (K2 + K3 d q))) > 0 (the K from E and x0), used near x0;
    #   outside the window F is summed in double (in float32 its roundings would still cost
    #   up to 7 ulp at x = -2.2, where 4x(1+e) is twice F), and (n+2)^2 too, rounded once
    #   (from float32's four roundings the derivative's error reached 8.4 2^-24 at x = -0.3,
    #   9.3 ulp of grad * f' with grad_output 0.038; now 5.7 2^-24).
    # One division; rounded once at the end for x < 0 (exp_parts); beyond silu_cut the
    # derivative is 0 or 1 (and the formula inf * 0 at +-inf).
    cdef real scale
    cdef real eh = exp_neg_parts(-fabs(x), &scale)
    cdef real e = eh * scale
    cdef real N = <real>1 + <real>2 * e
    cdef real D = N + <real>2 * e * e
    cdef real d = from_zero(x, MISH_X0_HI, MISH_X0_LO, MISH_X0_HIF, MISH_X0_LOF)
    cdef real q = exprel_small(d)
    cdef real F, numerator, denominator
    cdef double n_plus_2 = <double>e * (e + 2.0) + 2.0
    if fabs(d) < window(x, 1.0, 0.5):
        F = d * (<real>MISH_K4 + q * (<real>MISH_K1 + d * (<real>MISH_K5 + q * (<real>MISH_K2
                                                                           + <real>MISH_K3 * d * q))))
    else:
        F = <real>((e + 2.0) * n_plus_2 + 4.0 * x * (1.0 + e))
    if x < silu_cut(x):
        return grad_output * <real>0
    if x > -silu_cut(x):
        return grad_output
    if x > 0:
        numerator = N * D + <real>4 * x * e * e * (<real>1 + e)
        denominator = D * D
        scale = 1
    else:
        numerator = eh * F
        denominator = <real>(n_plus_2 * n_plus_2)
    return (grad_output * (numerator / denominator)) * scale


# ---- hardsigmoid, hardswish ----------------------------------------------------------------

cdef inline real hardsigmoid_fwd(real x, double slope, double offset) noexcept nogil:
    # slope x + offset = (x + c) slope with c = offset/slope, clipped to [0, 1].
    # float64: (x + c) / (1/slope): for the defaults that is PyTorch's exact (x + 3) / 6 (1/6
    # and 0.5/(1/6) are not exact in binary, 6 and 3 are), so the result is exactly 0 at
    # x = -3 and 1 at x = 3; slope = 0.2 gives (x + 2.5) / 5.
    # float32, in float32 lanes (a double or a division per element would make this cheap
    # function cost as much as a sigmoid): c as two floats c_hi + c_lo, so that x + c_hi is
    # exact near the kink x = -c (Sterbenz) and the sum keeps its relative precision there
    # (c rounded to float32 would move the kink); then the product with slope rounded to
    # float32: within 2 ulp, exactly 0 at x = -3 and 1 at x = 3 for the defaults (c = 3, and
    # 6 * float32(1/6) rounds to 1).
    # The API refuses slope = 0; the operations on parameters alone are loop invariants,
    # hoisted by the compiler.
    cdef double inverse_slope = 1.0 / slope
    cdef double c = offset * inverse_slope
    cdef float c_hi, c_lo
    cdef real y
    if real is float:
        c_hi = <float>c
        c_lo = <float>(c - c_hi)
        y = ((x + c_hi) + c_lo) * <float>slope
    else:
        y = (x + c) / inverse_slope
    cdef real zero = <real>CLAMP_BOUNDS[0], one = <real>CLAMP_BOUNDS[1]
    y = (zero if y < zero else y) + <real>0   # (+ 0: -0 gives +0; NaN passes the selects)
    return one if y > one else y

cdef inline real hardsigmoid_bwd(real grad_output, real x, double slope, double offset) noexcept nogil:
    # slope strictly inside the linear part, 0 at its ends (PyTorch's convention at +-3),
    # decided on x against its ends (-offset/slope and (1-offset)/slope, exact for the
    # defaults: -3 and 3; y itself can round to 0 or 1 one ulp inside them), in `real` through
    # at_most/at_least; float32: slope rounded to float32, as in PyTorch
    cdef double inverse_slope = 1.0 / slope
    cdef double lower = -offset * inverse_slope, upper = (1.0 - offset) * inverse_slope
    cdef double low = lower if slope > 0 else upper
    cdef double high = upper if slope > 0 else lower
    cdef bint inside = (x > at_most(low, x)) & (x < at_least(high, x))
    return kept(inside, grad_output * <real>slope)

cdef inline real hardswish_fwd(real x) noexcept nogil:
    # PyTorch's x relu6(x + 3) / 6, as x (relu6(x + 3) * (1/6)): within an ulp of the quotient
    # (a product costs less than a division), exactly x from 3 on (6 * (1/6) rounds to 1 in
    # either type; x * 6 would overflow float32 from 5.7e37); below -3 it is -0: x is taken
    # as -3 there, -3 * 0 (x * 0 would be NaN at -inf). x enters once, through that select:
    # with a select on the result, GCC read x from memory three times, which cost 10-30 % at
    # 10^6 elements (see af_one_minus_square in vecmath.h).
    cdef real minus_three = <real>CLAMP_BOUNDS[3]
    cdef real xc = minus_three if x < minus_three else x
    return xc * (relu6_fwd(xc + <real>3) * (<real>1 / <real>6))

cdef inline real hardswish_bwd(real grad_output, real x) noexcept nogil:
    # PyTorch's hardswish_backward: 0 up to -3, x/3 + 1/2 strictly inside, 1 from 3 on (so
    # 0 at -3 and 1 at 3); NaN falls through to the middle formula and gives NaN. The middle
    # as (2x + 3) * (1/6), exact up to the product (x/3 + 1/2 cancels near its zero, x = -1.5)
    cdef real result = grad_output * ((<real>2 * x + <real>3) * (<real>1 / <real>6))
    result = grad_output if x >= 3 else result
    return kept(not (x <= -3), result)


# ---- hardshrink, softshrink, tanhshrink, threshold -----------------------------------------

cdef inline real hardshrink_fwd(real x, double lambd) noexcept nogil:
    return 0 if (at_least(-lambd, x) <= x) & (x <= at_most(lambd, x)) else x

cdef inline real hardshrink_bwd(real grad_output, real x, double lambd) noexcept nogil:
    # grad outside [-lambd, lambd], else 0 (the comparisons are false at NaN), and NaN at NaN
    return kept_or_nan((x < at_least(-lambd, x)) | (x > at_most(lambd, x)), grad_output, x)

cdef inline real softshrink_fwd(real x, double lambd) noexcept nogil:
    # x - clamp(x, -lambd, lambd): x - lambd above lambd, x + lambd below -lambd, x - x = +0
    # inside (as PyTorch's vector loop and the reference), NaN for NaN; the comparisons are
    # the double ones (at_most). A clamp and a subtraction: a third of the operations of
    # selecting among the three results. float32: lambd as three floats hi + mid + lo (72
    # bits: all of a double's), hi the largest float <= lambd; near the kink x - hi is exact,
    # and the result rounded twice, within an ulp everywhere. lambd rounded to float32
    # (PyTorch's way) lost its rounding error, softshrink(0.1f, lambd=0.1) was 0 instead of
    # 1.5e-9; as two floats (48 bits) 1408 ulp at x = 2.9042003, lambd = 2.9042003154218086;
    # the subtraction in double cost twice the time. Beyond float's range mid and lo are 0:
    # only +-inf is outside, and inf - hi is inf.
    cdef real hi, mid, lo, c, c_mid, c_lo
    if real is float:
        hi = at_most(lambd, x)
        mid = <float>(lambd - hi) if lambd <= FLOAT_MAX else 0
        lo = <float>((lambd - hi) - mid) if lambd <= FLOAT_MAX else 0
        c = hi if x > hi else (-hi if x < -hi else x)
        c_mid = mid if x > hi else (-mid if x < -hi else 0)
        c_lo = lo if x > hi else (-lo if x < -hi else 0)
        return ((x - c) - c_mid) - c_lo
    c = lambd if x > lambd else (-lambd if x < -lambd else x)
    return x - c

cdef inline real softshrink_bwd(real grad_output, real x, double lambd) noexcept nogil:
    return hardshrink_bwd(grad_output, x, lambd)   # the same derivative

cdef inline real tanhshrink_fwd(real x) noexcept nogil:
    # vecmath.h's x^3 f(x^2) below |x| = 1.4 (x - tanh(x) would lose ~log2(3 / x^2) bits
    # there), in the dtype's arithmetic
    if real is float:
        return af_x_minus_tanhf(x)
    else:
        return af_x_minus_tanh(x)

cdef inline real tanhshrink_bwd(real grad_output, real x) noexcept nogil:
    # 1 - (1 - tanh^2) = tanh(x)^2
    # (grad t) t: t t underflows for |x| < 1e-19 in float32 where grad (up to 1e3 in the
    # tests) times it would not; but an infinite grad times a t t that is 0 gives NaN, as
    # PyTorch's inf * 0
    cdef real t = tanh(x)
    if (t * t == 0) & (fabs(grad_output) == INFINITY):
        return grad_output * (t * t)
    return (grad_output * t) * t

cdef inline real threshold_fwd(real x, double threshold, double value) noexcept nogil:
    return <real>value if x <= at_most(threshold, x) else x

cdef inline real threshold_bwd(real grad_output, real x, double threshold, double value) noexcept nogil:
    return kept(not (x <= at_most(threshold, x)), grad_output)
