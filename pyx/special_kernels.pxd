# Scalar kernels of the functions in pyx/_special.pyx (learnable, random): one small inline
# function per formula, no arrays, no Python. The shared pieces (logistic, leaky_relu, relu,
# silu) come from activations.pxd; only what is new is written here.
#
# These compute in double whatever the arrays' dtype (the loops convert; pact's forward, a
# clip, in the arrays' own precision with the same bits; swish's float32 kernels below for
# its moderate float32 elements): the parameters' gradients are sums of double terms,
# swish's derivative crosses 0 (float32 arithmetic must take t - x0 there from more than t
# rounded to float32, as silu's takes it from x), and a random draw must not depend on the
# dtype (the float32 result is the float64 one rounded). The grouped loops (maxout, glu) use
# activations.pxd's kernels in the arrays' own precision.
#
# Random draws come from Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
# 1, 2, 3", SC 2011), a counter-based generator: the draw for an element is a pure function of
# (seed, stream, element index), so it does not depend on the thread that computes it, on the
# order of the elements in memory or on anything drawn before. One Philox call (128 bits)
# serves the pair of elements 2k and 2k + 1: two 52-bit uniforms, or two normals from one
# Box-Muller transform.

from cython cimport floating
from libc.math cimport sqrt, fabs, copysign
from libc.stdint cimport uint32_t, uint64_t

cimport activations as K
from vecmath cimport (af_log_normal_positive, af_cos_sin_circle, af_exp_neg_dd_moderatef,
                      two_product)


# ---- Philox4x32-10 -------------------------------------------------------------------------

cdef enum:
    # the third counter word: separate, independent streams for each function, so that the
    # same seed does not give rrelu's slopes and noisy_relu's noise from the same bits
    STREAM_RRELU = 1
    STREAM_NOISY_RELU = 2

cdef extern from "philox.h" nogil:
    # Philox4x32-10 in C: the scalar function, and runs of consecutive counters (four side by
    # side with AVX2)
    ctypedef struct af_words:
        uint32_t w0, w1, w2, w3
    af_words af_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                              uint32_t k1) noexcept
    # the two uniforms (multiples of 2^-52 on [0, 1)) of each of `pairs` consecutive pairs
    # from `first` (the 128 bits of pair k: counter (k lo, k hi, stream, 0), key the 64-bit
    # seed), into out[2 pairs]
    void af_philox_uniforms(uint64_t seed, uint32_t stream, uint64_t first, Py_ssize_t pairs,
                            double* out) noexcept


cdef struct Pair:
    double first, second    # the draws of elements 2 pair and 2 pair + 1


cdef inline Pair box_muller(double u1, double u2) noexcept nogil:
    """Two independent standard normals from the two uniforms of one draw: r cos(theta) and
    r sin(theta) with r = sqrt(-2 log(1 - u1)), theta = 2 pi u2, through vecmath.h's
    vectorisable log and cos/sin (libm's are scalar calls: 4-5x slower per pair).

    1 - u1 is on [2^-52, 1] (exact: u1 is a multiple of 2^-52), so that the log is finite:
    |z| <= sqrt(-2 log 2^-52) = 8.49.
    """
    cdef double r = sqrt(-2.0 * af_log_normal_positive(1.0 - u1))
    cdef double sine
    cdef double cosine = af_cos_sin_circle(6.283185307179586477 * u2, &sine)
    cdef Pair p
    p.first = r * cosine
    p.second = r * sine
    return p


# ---- swish (learnable beta) ----------------------------------------------------------------
# Selects only, no early exits (GCC if-converts and vectorises the loops, as silu's). The loops
# pick, once per call, silu's kernels for beta = 1 (the same bits as silu) and the swish0_*
# kernels for beta = 0 (where t = 0 * inf would be NaN at infinite x).

cdef inline bint swish_moderate_chunk(const floating* x, const floating* g, Py_ssize_t n,
                                      double beta) noexcept nogil:
    # Can a chunk take the moderate kernels alone: float64 arrays the double kernels below in
    # their moderate variant (activations.pxd), float32 arrays the float32 kernels further
    # down (swish32_*)? Every t = beta x moderate in the arithmetic at hand (in float32 the
    # product rounded to float32; it grows with |x|, so the largest |x| decides) and every
    # multiplier 0 or moderate in the arrays' dtype: x (x sigmoid(t), x s'(t)) and g (NULL in
    # the forward).
    if floating is float:
        if not (<float>(fabs(<float>beta) * K.largest_magnitude(x, n))
                <= K.MODERATE_X_BOUND_FLOAT):
            return False
    elif not fabs(beta) * K.largest_magnitude(x, n) <= K.MODERATE_X_BOUND_DOUBLE:
        return False
    if g != NULL and not K.moderate_multipliers(g, n):
        return False
    return K.moderate_multipliers(x, n)


cdef inline double swish_fwd(double x, double beta, bint moderate) noexcept nogil:
    # x sigmoid(t), t = beta x, beta != 0, rounded once where the gate is subnormal
    # (logistic_times). Below t = -800 the gate is 0 in double and the value a zero of x's
    # sign: written so, because at infinite x, x * 0 would be NaN (for finite x the two are
    # the same). t = +inf gives x * 1; NaN x gives NaN.
    cdef double t = beta * x
    if moderate:
        return K.logistic_times(x, t, True)
    return copysign(0.0, x) if t < -800.0 else K.logistic_times(x, t, False)


cdef inline double swish_dbeta_parts(double grad_output, double x, double t, double zh,
                                     double scale, bint moderate) noexcept nogil:
    # d/dbeta [x s(beta x)] = x^2 s'(t), t = beta x, beta != 0, with exp(-|t|) = zh * scale
    # (exp_neg_parts). Beyond |t| = 800, s'(t) < 1e-347 is 0 in double: the term is 0 (at
    # infinite x the formula would give inf * 0). x (x s'(t)) rather than x^2 s'(t): x^2 can
    # overflow where the product does not (and x s'(t) is rounded once where s'(t) is
    # subnormal). (moderate: see activations.pxd)
    if moderate:
        return grad_output * (x * K.logistic_slope_times_parts(x, zh, scale))
    return grad_output * 0.0 if fabs(t) > 800.0 else \
        grad_output * (x * K.logistic_slope_times_parts(x, zh, scale))


cdef inline double swish_bwd_and_dbeta(double grad_output, double x, double beta,
                                       double* dbeta, bint moderate) noexcept nogil:
    # d/dx [x s(beta x)] = s(t) + t s'(t) with t = beta x: silu'(t), whose kernel handles the
    # tails (beta != 0); and the d/dbeta term into *dbeta, from the same exponential of t
    # (dbeta NULL: beta is not learned; inlined with a constant NULL, the term is not computed)
    cdef double t = beta * x
    cdef double scale, G
    cdef double zh = K.silu_exp_parts(t, &scale, &G, moderate)
    if dbeta != NULL:
        dbeta[0] = swish_dbeta_parts(grad_output, x, t, zh, scale, moderate)
    return K.silu_bwd_parts(grad_output, t, zh, scale, G, moderate)


cdef inline floating silu_bwd_and_dbeta(floating grad_output, floating x, double* dbeta,
                                        bint moderate) noexcept nogil:
    # beta = 1: silu's gradient in x's precision (silu's bits), and the d/dbeta term in
    # double into *dbeta, from one exponential in x's precision. For float32 the term then
    # carries that exponential's error (within an ulp, 6e-8 relative: the sum of the terms
    # stays within ~1e-7 of the sum of their magnitudes, before its rounding to float32), and
    # is 0 below t = -120, where silu's float32 gradient is 0 too (silu_cut).
    cdef floating scale, G
    cdef floating zh = K.silu_exp_parts(x, &scale, &G, moderate)
    dbeta[0] = swish_dbeta_parts(grad_output, x, x, zh, scale, moderate)
    return K.silu_bwd_parts(grad_output, x, zh, scale, G, moderate)


# ---- swish in float32 arithmetic (float32 arrays, beta not 0 or 1) --------------------------
# An element whose th = x beta (rounded to float32) is within float32's moderate bound
# (|th| <= 20) and whose x and grad_output are 0 or moderate float32 multipliers takes these
# float32 kernels; every other element the double kernels above. The loops run the float32
# kernels alone over a chunk that is moderate throughout (swish_moderate_chunk) and both,
# with a select per element (swish32_*_or_double), elsewhere: an element's bits depend on it
# alone, not on its neighbours. In a moderate element every exponential, product and
# quotient below is a normal float32 number.
# t = beta x is carried as th + tl (two_product, to 2^-48), so that e^-|t| does not amplify a
# rounding of t |t| times; d = t - x0 (silu's minimum, where the derivative crosses 0) is
# taken in double from x beta, as the reference's, since near x0 it is t's error over |d|.

cdef inline bint swish32_moderate_element(float x, float g, double beta) noexcept nogil:
    # swish_moderate_chunk's float32 test for one element (g = 1 in the forward)
    return (fabs(x * <float>beta) <= K.MODERATE_X_BOUND_FLOAT and K.moderate_multiplier_f(x)
            and K.moderate_multiplier_f(g))

cdef inline float swish32_exp(float x, double beta, float* th, float* tl) noexcept nogil:
    # e^-|t|, t = beta x = th + tl
    th[0] = two_product(x, beta, tl)
    return af_exp_neg_dd_moderatef(<float>-fabs(th[0]), tl[0] if th[0] < 0 else -tl[0])

cdef inline float swish32_fwd(float x, double beta) noexcept nogil:
    # x sigmoid(t) (logistic_times, moderate)
    cdef float th, tl
    cdef float z = swish32_exp(x, beta, &th, &tl)
    return (x if th >= 0 else x * z) / (<float>1 + z)

cdef inline float swish32_bwd_and_dbeta(float grad_output, float x, double beta,
                                        double* dbeta) noexcept nogil:
    # silu'(t) as silu_bwd_parts (moderate) with G = 1 + t + z as silu_exp_parts' float32
    # one; the d/dbeta term in double from the same exponential (as silu_bwd_and_dbeta)
    cdef float th, tl
    cdef float z = swish32_exp(x, beta, &th, &tl)
    cdef float d = <float>((<double>x * beta - K.SILU_X0_HI) - K.SILU_X0_LO)
    cdef float G = K.silu_G_near(d) if fabs(d) < 0.25 else ((<float>1 + th) + tl) + z
    cdef float numerator = (<float>1 + z) + th * z if th >= 0 else z * G
    if dbeta != NULL:   # (as swish_bwd_and_dbeta's)
        dbeta[0] = swish_dbeta_parts(grad_output, x, th, z, 1.0, True)
    return grad_output * (numerator / ((<float>1 + z) * (<float>1 + z)))

cdef inline float swish32_fwd_or_double(float x, double beta) noexcept nogil:
    # one element of a float32 chunk that is not moderate throughout: the float32 kernel's
    # result where the element is moderate, else the double kernel's (both computed: a
    # select, no branch)
    cdef float y32 = swish32_fwd(x, beta)
    cdef float y = K.nan_passing(x, <float>swish_fwd(x, beta, False))
    return y32 if swish32_moderate_element(x, 1.0, beta) else y

cdef inline float swish32_bwd_or_double(float g, float x, double beta,
                                        double* dbeta) noexcept nogil:
    # the backward and d/dbeta term of such an element, as swish32_fwd_or_double
    cdef double term32, term
    cdef float y32 = swish32_bwd_and_dbeta(g, x, beta, &term32)
    cdef float y = K.nan_passing(x, <float>swish_bwd_and_dbeta(g, x, beta, &term, False))
    cdef bint moderate = swish32_moderate_element(x, g, beta)
    if dbeta != NULL:   # (as swish_bwd_and_dbeta's)
        dbeta[0] = term32 if moderate else term
    return y32 if moderate else y


cdef inline double swish0_fwd(double x) noexcept nogil:
    return 0.5 * x  # beta = 0: x sigmoid(0) = x / 2, also at infinite x

cdef inline double swish0_bwd(double grad_output, double x) noexcept nogil:
    return grad_output * 0.5 if x == x else x

cdef inline double swish0_dbeta(double grad_output, double x) noexcept nogil:
    return grad_output * (0.25 * x * x)  # x^2 s'(0) = x^2 / 4


# ---- pact ----------------------------------------------------------------------------------

cdef inline floating pact_fwd(floating x, floating alpha) noexcept nogil:
    # clip(x, 0, alpha) written with the comparisons that fail for NaN, so NaN passes through;
    # -0.0 stays -0.0 (as torch.clamp). In the arrays' precision, with alpha rounded to it:
    # rounding is monotonic, so clip(x, 0, alpha) rounded is clip(x, 0, alpha rounded) for a
    # float32 x (the same bits as in double, 8 lanes instead of 4). As two selects (a vmaxps
    # against 0 from K.CLAMP_BOUNDS and a vminps): with alpha >= 0 (checked), the same result
    # as testing x against both ends
    cdef floating zero = <floating>K.CLAMP_BOUNDS[0]
    cdef floating y = zero if x < zero else x
    return alpha if y > alpha else y

cdef inline double pact_bwd(double grad_output, double x, double alpha) noexcept nogil:
    # 1 on [0, alpha), 0 elsewhere and at NaN (PACT's convention: at x == alpha the gradient
    # goes to alpha, not to x; torch.clamp gives it to x there). `&`, not `and`: no short
    # circuit, so GCC can vectorise.
    return grad_output if ((x >= 0) & (x < alpha)) else 0.0

cdef inline double pact_dalpha(double grad_output, double x, double alpha) noexcept nogil:
    return grad_output if x >= alpha else 0.0


# ---- prelu ---------------------------------------------------------------------------------

cdef inline floating prelu_fwd(floating x, floating weight) noexcept nogil:
    # leaky_relu_fwd with the channel's weight, but a NaN x as itself whatever the weight: where
    # both are NaN, x * weight gives the NaN of whichever operand the compiler put first, which
    # can differ between a loop and its remainder (and the forward runs in the memory's order,
    # so an element's place in the loops depends on the layout)
    return x * weight if x <= 0 else x


cdef inline double prelu_dweight(double grad_output, double x) noexcept nogil:
    # PyTorch's _prelu_kernel_backward: 0 for x > 0, else x * grad (so NaN for NaN x)
    return 0.0 if x > 0 else x * grad_output


# ---- rrelu in training mode ----------------------------------------------------------------

cdef inline double rrelu_train_fwd(double x, double slope) noexcept nogil:
    return x * slope if x <= 0 else x

cdef inline double rrelu_train_noise(double x, double slope) noexcept nogil:
    # the derivative, what PyTorch's rrelu_with_noise keeps as its noise: the slope where
    # x <= 0, else 1 (also at NaN; in eval mode leaky_relu gives the slope at NaN)
    return slope if x <= 0 else 1.0

cdef inline double rrelu_train_bwd(double grad_output, double x, double slope) noexcept nogil:
    return grad_output * rrelu_train_noise(x, slope)
