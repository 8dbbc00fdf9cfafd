# distutils: depends = pyx/softmax_max.h
# (the line above: softmax_max.h is #included by the C block below, where Cython's dependency
# scan does not look; with it, a change to the header rebuilds the modules.)
#
# Scalar kernels of the softmax family: a branch-free exp in float and in double.
#
# libm's exp is correct but is a call GCC cannot vectorise (without -ffast-math it is not
# declared SIMD-callable); the functions below are plain arithmetic that GCC turns into 256-bit
# FMA code under -O3 -mavx2 -mfma -fno-math-errno -fno-trapping-math (see
# shared/PERFORMANCE-NOTES.md), and they give the same bits whether a loop runs them in vector
# lanes or one at a time, which the softmax's determinism relies on.
#
# Derivation (Cody & Waite range reduction, the scheme of Cephes' expf):
#
#   exp(x) = 2^n * exp(r),   n = round(x / ln 2),   r = x - n ln 2,   |r| <= ln(2)/2 = 0.3466
#
# * n: k = x * log2(e) + 1.5 * 2^p (p = 23 for float, 52 for double) rounds x / ln 2 to the
#   nearest integer in the addition itself (the "shifter" trick: the sum has no fraction bits
#   left), and n is then k - 1.5 * 2^p exactly. The low bits of k's representation hold n in
#   two's complement, which gives the integer n without a float-to-int conversion.
# * r: ln 2 is split into C1 + C2, C1 with few significant bits so that n * C1 is exact and
#   x - n * C1 is exact (Sterbenz); the error of r is then that of n * C2, far below an ulp of r.
# * exp(r) on |r| <= 0.3466: 1 + r + r^2 P(r). In double, P is the Taylor series to degree
#   13 (1/2! + r/3! + ... + r^11/13!): truncation below |r|^14 / 14! = 4.1e-18 (0.02 ulp,
#   ulp = 2.2e-16). In float, P is a degree-4 near-minimax polynomial (degree 6 in all): the
#   relative error of 1 + r + r^2 P is 4.1e-9 (0.03 ulp of 1, ulp = 1.19e-7) with the
#   coefficients rounded to float, less than the degree-7 Taylor polynomial's 5.2e-9, for
#   one fma fewer. The coefficients come from Lawson's algorithm (iteratively reweighted
#   least squares) for the weighted error r^2 (P(r) - (e^r - 1 - r) / r^2) / e^r on 20001
#   points of [-0.3473, 0.3473], in long double; they are within 2e-6 of 1/2!, ..., 1/6!.
#   Writing it as 1 + (r + r^2 P(r)) makes the last rounding the one of the final sum, so
#   the result is within 0.5 ulp + a few hundredths (tests/test_softmax.py measures <= 1.1
#   ulp). The sum 1 + q and the scaling by 2^n are one fma, q * 2^n + 2^n: the same single
#   rounding of (1 + q) 2^n when 2^n is a normal number, one operation and 3 cycles of
#   latency fewer.
# * 2^n: built from its exponent bits, (n + bias) << mantissa_bits. To keep subnormal results
#   (x between -103.97 and -87.34 in float, -745.13 and -708.40 in double) and to reach inf,
#   the scaling is applied in two halves, 2^n1 * 2^n2 with n1 + n2 = n, each a normal number:
#   the product rounds once, where the true value lands.
# * Limits: x is clamped below at -110 in float, -760 in double: there 2^n is below half the
#   smallest subnormal and the result rounds to exactly 0 (also for -inf). exp_f32 and exp_f64
#   also clamp above, at 89 and 710, where the result overflows to inf (also for +inf). The
#   softmax's hot loop calls the *_capped variants without the upper clamp (its arguments are
#   x - max <= 0), which are valid up to 177 (float) and 1400 (double): two clamps in one
#   loop make GCC emit three times the instructions for them. The clamps are written
#   `lo if x < lo else x` so that NaN (every comparison false) passes through as NaN.
# * The polynomials are evaluated by Estrin's scheme rather than Horner's: the same
#   operations, half the dependency chain, so more iterations of a loop overlap in the
#   out-of-order core.
# * exp_*_capped and exp_*_nonpositive each spell out the reduction (and, in double, the
#   polynomial) rather than share a helper: with one, GCC stopped inlining exp into hot
#   float64 loops of _softmax.c (then at GCC's unit inlining budget, which setup.py's
#   INLINE_BUDGET has since lifted; see the drivers there).

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    /* Bit casts that GCC vectorises (memcpy of a scalar is a register move). */
    static inline float actfast_f32_from_bits(int32_t b) { float f; memcpy(&f, &b, 4); return f; }
    static inline int32_t actfast_f32_bits(float f) { int32_t b; memcpy(&b, &f, 4); return b; }
    static inline double actfast_f64_from_bits(int64_t b) { double f; memcpy(&f, &b, 8); return f; }
    static inline int64_t actfast_f64_bits(double f) { int64_t b; memcpy(&b, &f, 8); return b; }
    /* A fused multiply-add where the hardware has one (the same instruction in scalar and
       vector code), a multiply and an add elsewhere. */
    #ifdef __FMA__
    #define ACTFAST_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
    #define ACTFAST_FMA(a, b, c) __builtin_fma((a), (b), (c))
    #else
    #define ACTFAST_FMAF(a, b, c) ((a) * (b) + (c))
    #define ACTFAST_FMA(a, b, c) ((a) * (b) + (c))
    #endif
    /* A prefetch of the line AF_AHEAD bytes past p. The loops that read a row from memory
       (the max of softmax's forward, the backward's dot product) ask for their data early:
       the hardware prefetchers stop at every 4 KiB page and start again only after misses
       there, and a row's other passes run in L1 meanwhile. A prefetch never faults, past the
       end of an array included (the address is formed as an integer). */
    #define AF_AHEAD 2048
    #if defined(__GNUC__)
    #define actfast_prefetch_ahead(p) __builtin_prefetch((const void*)((uintptr_t)(p) + AF_AHEAD), 0, 3)
    #else
    #define actfast_prefetch_ahead(p) ((void)0)
    #endif
    /* float constants: a plain literal would turn float arithmetic into double */
    #define ACTFAST_LOG2EF 1.44269504088896341f
    #define ACTFAST_SHIFTF 12582912.0f              /* 1.5 * 2^23 */
    #define ACTFAST_LN2_HIF 0.693359375f            /* 355/512: 9 significant bits */
    #define ACTFAST_LN2_LOF (-2.12194440e-4f)       /* ln 2 - 355/512 */
    #define ACTFAST_EXPF_LO (-110.0f)
    #define ACTFAST_EXPF_HI 89.0f
    #define ACTFAST_LOG2E 1.4426950408889634
    #define ACTFAST_SHIFT 6755399441055744.0        /* 1.5 * 2^52 */
    #define ACTFAST_LN2_HI 6.93147180369123816490e-01   /* fdlibm's ln2_hi: low 32 bits 0 */
    #define ACTFAST_LN2_LO 1.90821492927058770002e-10   /* ln 2 - ln2_hi */
    #define ACTFAST_EXP_LO (-760.0)
    #define ACTFAST_EXP_HI 710.0
    #define ACTFAST_TWO_M64F 5.42101086242752217e-20f   /* 2^-64 */
    #define ACTFAST_TWO_M512 7.45834073120020674e-155   /* 2^-512 */

    /* The max of a block (sign * x over the unmasked elements, NaN skipped), in AVX2 lanes:
       softmax_max.h, written once, here made for float and for double. */
    #define AF_T float
    #define AF_INT int32_t
    #define AF_LANES 8
    #define AF_SUFFIX f32
    #include "softmax_max.h"
    #define AF_T double
    #define AF_INT int64_t
    #define AF_LANES 4
    #define AF_SUFFIX f64
    #include "softmax_max.h"
    """
    float f32_from_bits "actfast_f32_from_bits"(int32_t b) noexcept nogil
    int32_t f32_bits "actfast_f32_bits"(float f) noexcept nogil
    double f64_from_bits "actfast_f64_from_bits"(int64_t b) noexcept nogil
    int64_t f64_bits "actfast_f64_bits"(double f) noexcept nogil
    void prefetch_ahead "actfast_prefetch_ahead"(const void* p) noexcept nogil
    float fmaf "ACTFAST_FMAF"(float a, float b, float c) noexcept nogil
    double fma "ACTFAST_FMA"(double a, double b, double c) noexcept nogil
    const float LOG2EF "ACTFAST_LOG2EF"
    const float SHIFTF "ACTFAST_SHIFTF"
    const float LN2_HIF "ACTFAST_LN2_HIF"
    const float LN2_LOF "ACTFAST_LN2_LOF"
    const float EXPF_LO "ACTFAST_EXPF_LO"
    const float EXPF_HI "ACTFAST_EXPF_HI"
    const double SHIFT "ACTFAST_SHIFT"
    const double LN2_HI "ACTFAST_LN2_HI"
    const double LN2_LO "ACTFAST_LN2_LO"
    const double LOG2E "ACTFAST_LOG2E"
    const double EXP_LO "ACTFAST_EXP_LO"
    const double EXP_HI "ACTFAST_EXP_HI"
    const float TWO_M64F "ACTFAST_TWO_M64F"
    const double TWO_M512 "ACTFAST_TWO_M512"
    float max_f32 "actfast_max_f32"(const float* x, const uint8_t* mask, Py_ssize_t n,
                                    float sign) noexcept nogil
    double max_f64 "actfast_max_f64"(const double* x, const uint8_t* mask, Py_ssize_t n,
                                     double sign) noexcept nogil


cdef inline float expm1_reduced_f32(float r) noexcept nogil:
    """r + r^2 P(r) = e^r - 1 for |r| <= 0.3466 (the derivation above), by Estrin's scheme:
    P = (c2 + c3 r) + r^2 ((c4 + c5 r) + r^2 c6)."""
    cdef float r2 = r * r
    cdef float a = fmaf(<float>1.666651964e-01, r, <float>4.999999404e-01)
    cdef float b = fmaf(<float>8.368856274e-03, r, <float>4.166840017e-02)
    return fmaf(fmaf(fmaf(<float>1.381429611e-03, r2, b), r2, a), r2, r)


cdef inline float exp_f32_capped(float x) noexcept nogil:
    """exp(x) in float for x <= 177 (and NaN, -inf): within 1.1 ulp, subnormal results
    included. The softmax's hot loop uses it on x - max <= 0; above 177, 2^n overflows the
    exponent field and the result is meaningless (exp_f32 clamps first)."""
    cdef float k, nf, r, p, s1
    cdef int32_t n, n1
    x = EXPF_LO if x < EXPF_LO else x
    k = fmaf(x, LOG2EF, SHIFTF)
    nf = k - SHIFTF
    n = f32_bits(k) - f32_bits(SHIFTF)
    r = fmaf(-nf, LN2_HIF, x)
    r = fmaf(-nf, LN2_LOF, r)
    p = expm1_reduced_f32(r)
    n1 = n >> 1
    s1 = f32_from_bits(<int32_t>(<uint32_t>(n1 + 127) << 23))
    return fmaf(p, s1, s1) * f32_from_bits(<int32_t>(<uint32_t>(n - n1 + 127) << 23))


cdef inline float exp_f32_nonpositive(float x) noexcept nogil:
    """exp(x) for x <= 43 (and NaN, -inf), the same bits as exp_f32_capped: the softmax's
    x - max <= 0. n <= 63 lets 2^n be applied as 2^(n + 64) (a normal number for every
    n >= -159 after the clamp) times 2^-64, a constant: one rounding, where the true value
    lands, as with the two halves, for two operations fewer."""
    cdef float k, nf, r, p, s
    cdef int32_t n
    x = EXPF_LO if x < EXPF_LO else x
    k = fmaf(x, LOG2EF, SHIFTF)
    nf = k - SHIFTF
    n = f32_bits(k) - f32_bits(SHIFTF)
    r = fmaf(-nf, LN2_HIF, x)
    r = fmaf(-nf, LN2_LOF, r)
    p = expm1_reduced_f32(r)
    s = f32_from_bits(<int32_t>(<uint32_t>(n + 64 + 127) << 23))
    return fmaf(p, s, s) * TWO_M64F


cdef inline float exp_f32(float x) noexcept nogil:
    """exp(x) in float for any x: exp_f32_capped after clamping x at 89 (exp(89) overflows),
    so the same bits as exp_f32_capped wherever that is valid."""
    return exp_f32_capped(EXPF_HI if x > EXPF_HI else x)


cdef inline double exp_f64_capped(double x) noexcept nogil:
    """exp(x) in double for x <= 1400 (and NaN, -inf): within 1 ulp, subnormal results
    included (see exp_f32_capped)."""
    cdef double k, nd, r, r2, r4, p, s1
    cdef int64_t n, n1
    x = EXP_LO if x < EXP_LO else x
    k = fma(x, LOG2E, SHIFT)
    nd = k - SHIFT
    n = f64_bits(k) - f64_bits(SHIFT)
    r = fma(-nd, LN2_HI, x)
    r = fma(-nd, LN2_LO, r)
    # P(r) = sum of r^(k-2) / k!, k = 2 .. 13, by Estrin's scheme (pairs, then r^2, r^4)
    r2 = r * r
    r4 = r2 * r2
    p = fma(fma(fma(1.0 / 6227020800.0, r, 1.0 / 479001600.0), r2,
                fma(1.0 / 39916800.0, r, 1.0 / 3628800.0)), r4,
            fma(fma(1.0 / 362880.0, r, 1.0 / 40320.0), r2,
                fma(1.0 / 5040.0, r, 1.0 / 720.0)))
    p = fma(p, r4, fma(fma(1.0 / 120.0, r, 1.0 / 24.0), r2, fma(1.0 / 6.0, r, 0.5)))
    p = fma(p, r2, r)
    # n1 = n / 2 rounded (any split into two normal halves will do), by the shifter again:
    # AVX2 has no 64-bit arithmetic shift
    n1 = f64_bits(fma(nd, 0.5, SHIFT)) - f64_bits(SHIFT)
    s1 = f64_from_bits(<int64_t>(<uint64_t>(n1 + 1023) << 52))
    return fma(p, s1, s1) * f64_from_bits(<int64_t>(<uint64_t>(n - n1 + 1023) << 52))


cdef inline double exp_f64_nonpositive(double x) noexcept nogil:
    """exp(x) for x <= 354 (and NaN, -inf), the same bits as exp_f64_capped: 2^n applied as
    2^(n + 512) * 2^-512 (see exp_f32_nonpositive)."""
    cdef double k, nd, r, r2, r4, p, s
    cdef int64_t n
    x = EXP_LO if x < EXP_LO else x
    k = fma(x, LOG2E, SHIFT)
    nd = k - SHIFT
    n = f64_bits(k) - f64_bits(SHIFT)
    r = fma(-nd, LN2_HI, x)
    r = fma(-nd, LN2_LO, r)
    r2 = r * r
    r4 = r2 * r2
    p = fma(fma(fma(1.0 / 6227020800.0, r, 1.0 / 479001600.0), r2,
                fma(1.0 / 39916800.0, r, 1.0 / 3628800.0)), r4,
            fma(fma(1.0 / 362880.0, r, 1.0 / 40320.0), r2,
                fma(1.0 / 5040.0, r, 1.0 / 720.0)))
    p = fma(p, r4, fma(fma(1.0 / 120.0, r, 1.0 / 24.0), r2, fma(1.0 / 6.0, r, 0.5)))
    p = fma(p, r2, r)
    s = f64_from_bits(<int64_t>(<uint64_t>(n + 512 + 1023) << 52))
    return fma(p, s, s) * TWO_M512


cdef inline double exp_f64(double x) noexcept nogil:
    """exp(x) in double for any x: exp_f64_capped after clamping x at 710."""
    return exp_f64_capped(EXP_HI if x > EXP_HI else x)
