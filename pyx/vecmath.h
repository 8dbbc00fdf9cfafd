/* Branch-free double-precision exp, expm1, log1p and tanh that GCC vectorises.
 *
 * libm's functions are correct but scalar calls: a loop that calls them runs one element at a
 * time. These are plain arithmetic (a polynomial after a Cody-Waite range reduction, 2^n built
 * from exponent bits, limits handled by selects), so once inlined into a loop GCC turns them
 * into AVX2/FMA code (-O3 -mavx2 -mfma -fno-math-errno -fno-trapping-math), and the scalar
 * and vector versions of a loop give the same bits. Accuracy: within ~1 ulp of the true result
 * over the whole double range, subnormal results included; NaN propagates; +-inf give the
 * limits. tests/test_vecmath.py checks them against libm and mpmath-free references.
 *
 * Only bit tricks that AVX2 has as vector instructions are used: 64-bit integer add, subtract
 * and left shift; no double<->int64 conversion (AVX-512 only) -- the "shifter" 1.5 * 2^52 turns
 * rounding and conversion into an addition.
 */
#ifndef ACTFAST_VECMATH_H
#define ACTFAST_VECMATH_H

#include <stdint.h>
#include <string.h>

static inline int64_t af_bits(double x) { int64_t i; memcpy(&i, &x, 8); return i; }
static inline double af_from_bits(int64_t i) { double x; memcpy(&x, &i, 8); return x; }

/* x + SHIFTER rounds x (|x| < 2^51) to an integer n held in the low mantissa bits:
 * bits(x + SHIFTER) - bits(SHIFTER) == n. */
#define AF_SHIFTER 6755399441055744.0  /* 1.5 * 2^52 */

/* 2^n for an integer-valued double n in [-1022, 1024] (1024 gives +inf) */
static inline double af_exp2i(double n) {
    int64_t i = af_bits(n + AF_SHIFTER) - af_bits(AF_SHIFTER);
    return af_from_bits((i + 1023) << 52);
}

/* ln 2 split so that n * AF_LN2_HI is exact for |n| < 2^21 (fdlibm's split) */
#define AF_LN2_HI 6.93147180369123816490e-01
#define AF_LN2_LO 1.90821492927058770002e-10
#define AF_LOG2E 1.44269504088896338700e+00

/* e^r - 1 for |r| <= ln2/2: Taylor series to degree 13 (the next term is below 2^-57 of the
 * result), with no constant term so that it keeps full relative precision near 0. */
static inline double af_expm1_reduced(double r) {
    double p = 1.0 / 6227020800.0;                   /* 1/13! */
    p = p * r + 1.0 / 479001600.0;                   /* 1/12! */
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r;
}

/* exp(x) = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]. */
static inline double af_exp(double x) {
    /* Below -746 the result is 0, above 710 inf: clamping keeps n within [-1077, 1025] so
     * that 2^n splits into two normal factors. NaN passes the clamps (comparisons false). */
    double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
    double n = (xc * AF_LOG2E + AF_SHIFTER) - AF_SHIFTER;
    double r = (xc - n * AF_LN2_HI) - n * AF_LN2_LO;
    double p = af_expm1_reduced(r) + 1.0;
    /* 2^n as 2^n1 * 2^n2: each factor is a normal double, the first product is exact and
     * the second rounds once, so subnormal results are correctly graded and 2^1024 is inf. */
    double n1 = (n * 0.5 + AF_SHIFTER) - AF_SHIFTER;
    return p * af_exp2i(n1) * af_exp2i(n - n1);
}

/* exp(x) - 1 without cancellation near 0: 2^n (e^r - 1) + (2^n - 1). */
static inline double af_expm1(double x) {
    /* below -50, e^x < 2^-72: the result is -1 exactly; above 709 (n would reach 1024) the
     * result is exp(x) (the -1 is far below its precision) */
    double xc = x < -50.0 ? -50.0 : (x > 709.0 ? 709.0 : x);
    double n = (xc * AF_LOG2E + AF_SHIFTER) - AF_SHIFTER;
    double r = (xc - n * AF_LN2_HI) - n * AF_LN2_LO;
    double scale = af_exp2i(n);
    double small = scale * af_expm1_reduced(r) + (scale - 1.0);
    return x > 709.0 ? af_exp(x) : small;
}

/* log(1 + z) for z in [0, 1] (what softplus and log_sigmoid need: z = exp(-|x|)), or NaN.
 * fdlibm's method: 1 + z = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f),
 * log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), plus the rounding error of 1 + z. */
static inline double af_log1p_unit(double z) {
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    double u = 1.0 + z;
    double c = (z - (u - 1.0)) / u;           /* log(u + d) = log(u) + d/u to first order */
    /* (selects on doubles only: an int condition variable stops GCC vectorising) */
    double k = u > 1.41421356237309504880 ? 1.0 : 0.0;
    double f = (u > 1.41421356237309504880 ? 0.5 * u : u) - 1.0;  /* exact: m within 2x of 1 */
    double s = f / (2.0 + f);
    double s2 = s * s;
    double R = s2 * (Lg1 + s2 * (Lg2 + s2 * (Lg3 + s2 * (Lg4 + s2 * (Lg5 + s2 * (Lg6 + s2 * Lg7))))));
    double hfsq = 0.5 * f * f;
    return k * AF_LN2_HI - ((hfsq - (s * (hfsq + R) + (k * AF_LN2_LO + c))) - f);
}

/* tanh(x) = -expm1(-2|x|) / (expm1(-2|x|) + 2), with the sign of x: no cancellation near 0
 * (expm1 keeps relative precision) and exactly +-1 at +-inf. */
static inline double af_tanh(double x) {
    double a = x < 0 ? -x : x;
    double em = af_expm1(-2.0 * a);
    double t = -em / (em + 2.0);
    return x < 0 ? -t : (x == x ? t : x);
}

/* erfc(z) for float32 results only (relative error below 1.2e-7 for every z >= 0: Numerical
 * Recipes' Chebyshev fit erfcc); erfc(-z) = 2 - erfc(z). Not accurate enough for float64. */
static inline double af_erfc_single(double z) {
    double a = z < 0 ? -z : z;
    double t = 2.0 / (2.0 + a);
    double p = t * (-0.82215223 + t * 0.17087277);
    p = t * (1.48851587 + p);
    p = t * (-1.13520398 + p);
    p = t * (0.27886807 + p);
    p = t * (-0.18628806 + p);
    p = t * (0.09678418 + p);
    p = t * (0.37409196 + p);
    p = t * (1.00002368 + p);
    /* beyond a = 27 the result is below 1e-318: exp's clamp gives 0 */
    double e = t * af_exp(-a * a - 1.26551223 + p);
    return z < 0 ? 2.0 - e : e;
}

#endif
