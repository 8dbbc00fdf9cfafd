/* Branch-free exp, expm1, log1p and tanh (and the pieces of gelu) that GCC vectorises, in
 * double and in float32.
 *
 * libm's functions are correct but scalar calls: a loop that calls them runs one element at a
 * time. These are plain arithmetic (a polynomial after a Cody-Waite range reduction, 2^n built
 * from exponent bits, limits handled by selects), so once inlined into a loop GCC turns them
 * into AVX2/FMA code (-O3 -mavx2 -mfma -fno-math-errno -fno-trapping-math). Accuracy: about
 * 1 ulp of the precision at hand over the whole range, subnormal results included; NaN
 * propagates; +-inf give the limits. tests/test_vecmath.py measures every function.
 *
 * Only bit tricks that AVX2 has as vector instructions are used: integer add, subtract and
 * shifts; no double<->int64 conversion (AVX-512 only) -- the "shifter" 1.5 * 2^52 turns
 * rounding and conversion into an addition.
 *
 * Same bits for an element wherever it sits: a vectorised loop and its scalar remainder must
 * round every operation alike. GCC contracts a * b + c into an FMA where it sees the pattern,
 * and vectorisation (if-conversion into blends between the multiply and the add) changes
 * where it sees it: a gelu result then differed by an ulp between the two paths. So
 * setup.py builds with -ffp-contract=off, and the FMAs that pay are written out (AF_FMA):
 * one rounding, in every code path. */
#ifndef ACTFAST_VECMATH_H
#define ACTFAST_VECMATH_H


#include <stdint.h>
#include <string.h>

/* Every function here is inlined: a call left in a loop keeps the loop scalar. GCC's inlining
 * limits for a translation unit decide otherwise once the unit grows (af_expm1_tail became a
 * call in double elu's loop when _elementwise gained the moderate kernels: 6x its time). */
#if defined(__GNUC__)
#define AF_INLINE static inline __attribute__((always_inline))
#else
#define AF_INLINE static inline
#endif

#ifdef __FMA__
#define AF_FMA(a, b, c) __builtin_fma((a), (b), (c))
#define AF_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else   /* no FMA instruction (the portable build): two roundings, the same in every path */
#define AF_FMA(a, b, c) ((a) * (b) + (c))
#define AF_FMAF(a, b, c) ((a) * (b) + (c))
#endif

/* 1 - y^2 and y (1 - y): tanh's and sigmoid's derivatives from their output y. Written
 * (1 - y)(1 + y) and y (1 - y), each use of y became its own memory operand (GCC folds a load
 * into every instruction that reads it), and the second load of a line still in flight cost
 * 15-25 % at 10^6 float64 elements, operands in the L3 (tanh's backward from the output on
 * one thread 299 -> 239 us, two 136 -> 117). With FMA: one load, one rounding of the exact
 * value. Without (the portable build), the forms that keep their relative precision as y
 * tends to 1 (1 - y is exact there), which 1 - y * y rounded twice would not. */
#ifdef __FMA__
AF_INLINE double af_one_minus_square(double y) { return __builtin_fma(-y, y, 1.0); }
AF_INLINE float af_one_minus_squaref(float y) { return __builtin_fmaf(-y, y, 1.0f); }
/* y - y^2 is inf - inf at y = +inf, where y (1 - y) is -inf: kept so */
AF_INLINE double af_times_one_minus(double y) {
    double r = __builtin_fma(-y, y, y);
    return y == __builtin_inf() ? -y : r;
}
AF_INLINE float af_times_one_minusf(float y) {
    float r = __builtin_fmaf(-y, y, y);
    return y == __builtin_inff() ? -y : r;
}
#else
AF_INLINE double af_one_minus_square(double y) { return (1.0 - y) * (1.0 + y); }
AF_INLINE float af_one_minus_squaref(float y) { return (1.0f - y) * (1.0f + y); }
AF_INLINE double af_times_one_minus(double y) { return y * (1.0 - y); }
AF_INLINE float af_times_one_minusf(float y) { return y * (1.0f - y); }
#endif

AF_INLINE int64_t af_bits(double x) { int64_t i; memcpy(&i, &x, 8); return i; }
AF_INLINE double af_from_bits(int64_t i) { double x; memcpy(&x, &i, 8); return x; }

/* x + SHIFTER rounds x (|x| < 2^51) to an integer n held in the low mantissa bits:
 * bits(x + SHIFTER) - bits(SHIFTER) == n. */
#define AF_SHIFTER 6755399441055744.0  /* 1.5 * 2^52 */

/* 2^n for an integer-valued double n in [-1022, 1024] (1024 gives +inf) */
AF_INLINE double af_exp2i(double n) {
    int64_t i = af_bits(n + AF_SHIFTER) - af_bits(AF_SHIFTER);
    return af_from_bits((i + 1023) << 52);
}

/* ln 2 split so that n * AF_LN2_HI is exact for |n| < 2^21 (fdlibm's split) */
#define AF_LN2_HI 6.93147180369123816490e-01
#define AF_LN2_LO 1.90821492927058770002e-10
#define AF_LOG2E 1.44269504088896338700e+00

/* e^r - 1 for |r| <= ln2/2 (a little more after rounding): r + r^2 P(r), P a minimax fit of
 * degree 9 (relative error of the result 4e-17), with no constant term so that it keeps full
 * relative precision near 0. P by Estrin's scheme (pairs in r, then r^2, r^4, r^8): four
 * dependent FMAs where Horner's rule chains nine. The kernels built on exp wait on that chain
 * (the out-of-order window fills before the arithmetic units do): in double, sigmoid, silu,
 * elu, softplus, tanh and the others took up to 15 % less time (most 5-15 %); in float32
 * (degree 5) 0-6 %, and its exp's largest error over every float32 rose from 0.98 to 1.01
 * ulp, above the test's bound of 1: float32 keeps Horner's rule. */
AF_INLINE double af_expm1_tail(double r) {   /* e^r - 1 - r */
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double q0 = AF_FMA(1.66666666666666435e-01, r, 5.00000000000000111e-01);
    double q1 = AF_FMA(8.33333333335647616e-03, r, 4.16666666666243093e-02);
    double q2 = AF_FMA(1.98412697838348844e-04, r, 1.38888889171372761e-03);
    double q3 = AF_FMA(2.75573564319807183e-06, r, 2.48015213978005029e-05);
    double q4 = AF_FMA(2.50678261473602614e-08, r, 2.76200460458385987e-07);
    double p = AF_FMA(AF_FMA(q3, r2, q2), r4, AF_FMA(q1, r2, q0));
    p = AF_FMA(q4, r8, p);
    return p * r2;
}

AF_INLINE double af_expm1_reduced(double r) {
    return r + af_expm1_tail(r);
}

/* (1 + em) 2^k from em = e^r - 1 and two_k = 2^k, rounded once: the bits of 1 + em rounded
 * and then scaled wherever the result is a normal number (scaling by a power of two commutes
 * with the rounding there), which every caller below ensures; one FMA instead of an addition
 * and a product on the kernels' dependency chain */
AF_INLINE double af_exp_from_m1(double em, double two_k) {
    return AF_FMA(two_k, em, two_k);
}

/* exp(x) = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2], returned as two
 * factors: exp(x) = af_exp_parts(x, &scale) * scale. 2^n is applied as 2^n1 * 2^n2, each a
 * normal double: the first product is exact and the second rounds once, so subnormal results
 * are correctly graded and 2^1024 is inf. A caller that multiplies the first factor by the
 * other factors of its result before applying `scale` keeps that single rounding (x e^x in the
 * subnormal range). */
/* e^r - 1 for r = xc - n ln 2, n = round(xc / ln 2) into *n: exp's reduction and polynomial,
 * before the 1 is added: where |xc| < ln2/2, n = 0 and r = xc, so that it is e^xc - 1 to full
 * relative precision (silu's derivative near its zero takes e^d - 1 from the same polynomial
 * as its exponential, activations.pxd; af_exp_parts_clamped and the functions named _m1 pass
 * it on, af_exp_parts and af_exp_neg_parts drop it). */
AF_INLINE double af_exp_reduced_m1(double xc, double* n) {
    *n = AF_FMA(xc, AF_LOG2E, AF_SHIFTER) - AF_SHIFTER;
    double r = AF_FMA(-*n, AF_LN2_LO, AF_FMA(-*n, AF_LN2_HI, xc));
    return af_expm1_reduced(r);
}

AF_INLINE double af_exp_parts_clamped(double xc, double x, double* scale, double* em) {
    double n;
    *em = af_exp_reduced_m1(xc, &n);
    double n1 = (n * 0.5 + AF_SHIFTER) - AF_SHIFTER;
    *scale = af_exp2i(n - n1);
    /* below the clamp, 0: grad * exp_parts(x) * scale is then grad * 0 (NaN for an infinite
     * grad, as where the product of grad and an underflowed derivative is formed) */
    return x < -760.0 ? 0.0 : af_exp_from_m1(*em, af_exp2i(n1));
}

AF_INLINE double af_exp_parts(double x, double* scale) {
    /* Above 710 the result is inf; below -746 it is 0, but x e^x is not until x = -751:
     * clamping at -760 keeps n within [-1097, 1025], where both halves of 2^n are normal
     * doubles. NaN passes the clamps (comparisons are false) and propagates. */
    double em;
    return af_exp_parts_clamped(x < -760.0 ? -760.0 : (x > 710.0 ? 710.0 : x), x, scale, &em);
}

/* af_exp_parts for x <= 0 (or NaN) only: one clamp less (most kernels take exp(-|x|)); the
 * _m1 form for x <= ln2/2 */
AF_INLINE double af_exp_neg_parts_m1(double x, double* scale, double* em) {
    return af_exp_parts_clamped(x < -760.0 ? -760.0 : x, x, scale, em);
}

AF_INLINE double af_exp_neg_parts(double x, double* scale) {
    double em;
    return af_exp_neg_parts_m1(x, scale, &em);
}

/* e^x for x in [-400, ln2/2] (the kernels' moderate range, activations.pxd, and silu's
 * argument near its derivative's zero), where it is a normal double: 2^n applied as one
 * factor, no clamp. There it is the product of af_exp_neg_parts' two factors, to the bit
 * (both products exact). */
AF_INLINE double af_exp_neg_moderate_m1(double x, double* em) {
    double n;
    *em = af_exp_reduced_m1(x, &n);
    return af_exp_from_m1(*em, af_exp2i(n));
}

/* exp(hi + lo) as parts, hi <= 0 (or NaN), |lo| <= ulp(hi): an argument known to more than
 * double precision (an exact product x beta = hi + lo); lo enters the reduced argument */
AF_INLINE double af_exp_neg_dd_parts(double hi, double lo, double* scale) {
    double xc = hi < -760.0 ? -760.0 : hi;
    double n = AF_FMA(xc, AF_LOG2E, AF_SHIFTER) - AF_SHIFTER;
    double r = AF_FMA(-n, AF_LN2_LO, AF_FMA(-n, AF_LN2_HI, xc) + lo);
    double em = af_expm1_reduced(r);
    double n1 = (n * 0.5 + AF_SHIFTER) - AF_SHIFTER;
    *scale = af_exp2i(n - n1);
    return hi < -760.0 ? 0.0 : af_exp_from_m1(em, af_exp2i(n1));
}

/* x * y = hi + lo exactly, hi = x * y rounded (returned) */
AF_INLINE double af_two_product(double x, double y, double* lo) {
    double hi = x * y;
#ifdef __FMA__
    *lo = __builtin_fma(x, y, -hi);
#else
    /* Dekker's product; a factor beyond 2^995 is scaled by 2^-60 first (exact), else
     * 134217729 times it overflows and the low part is NaN (softplus(-1e301, beta=2) was NaN
     * in the portable build); the partial products then make hi scaled, the low part's scale
     * restored at the end */
    double sx = __builtin_fabs(x) > 0x1p995 ? 0x1p-60 : 1.0;
    double sy = __builtin_fabs(y) > 0x1p995 ? 0x1p-60 : 1.0;
    double xs = x * sx, ys = y * sy, hs = xs * ys;
    double c = 134217729.0 * xs, xh = c - (c - xs), xl = xs - xh;
    double d = 134217729.0 * ys, yh = d - (d - ys), yl = ys - yh;
    *lo = (((xh * yh - hs) + xh * yl + xl * yh) + xl * yl) / (sx * sy);
#endif
    return hi;
}

AF_INLINE double af_exp(double x) {
    double scale;
    double y = af_exp_parts(x, &scale);
    return y * scale;
}

/* exp(x) - 1 without cancellation near 0: 2^n (e^r - 1) + (2^n - 1). */
/* expm1's reduction of a clamped argument xc: n, r = xc - n ln 2, the tail t = e^r - 1 - r,
 * and (returned) half = 2^(n-1), a normal double for n in [-72, 1024], where 2^n itself may
 * overflow */
AF_INLINE double af_expm1_reduction(double xc, double* n, double* r, double* t) {
    *n = AF_FMA(xc, AF_LOG2E, AF_SHIFTER) - AF_SHIFTER;
    *r = AF_FMA(-*n, AF_LN2_LO, AF_FMA(-*n, AF_LN2_HI, xc));
    *t = af_expm1_tail(*r);
    return af_exp2i(*n - 1.0);
}

AF_INLINE double af_expm1(double x) {
    /* below -50, e^x < 2^-72: the result is -1; above 710 it is inf */
    double n, r, t;
    double half = af_expm1_reduction(x < -50.0 ? -50.0 : (x > 710.0 ? 710.0 : x), &n, &r, &t);
    double q = r + t;
    /* for n > 0, 2^n r + (2^n - 1) in one rounding, then the small 2^n (e^r - 1 - r): 2 q + 1
     * would carry q's rounding twice into a result that can be as small as 1.4 q; for n <= 0
     * 2^n q + (2^n - 1) in one rounding */
    double small = n > 0.0 ? AF_FMA(2.0 * half, r, 2.0 * half - 1.0) + 2.0 * half * t
                           : AF_FMA(2.0 * half, q, 2.0 * half - 1.0);
    /* above n = 60 the -1 is below half an ulp: e^x = 2 (2^(n-1) e^r), which does not
     * overflow before the result does (n = 1024 for x in (709.4, 709.78]) */
    double large = 2.0 * AF_FMA(half, q, half);
    /* (x itself at +-0: the sum above gives +0 for -0) */
    return n > 60.0 ? large : (x == 0.0 ? x : small);
}

/* af_expm1 for x <= 0 (or NaN) only, with its bits there: one clamp, one form (n <= 0).
 * elu's and selu's forward take expm1 of non-positive arguments alone (celu's too when its
 * alpha is positive, but a negative alpha is allowed). */
AF_INLINE double af_expm1_neg(double x) {
    double n, r, t;
    double half = af_expm1_reduction(x < -50.0 ? -50.0 : x, &n, &r, &t);
    return x == 0.0 ? x : AF_FMA(2.0 * half, r + t, 2.0 * half - 1.0);
}

/* log(2^k (1 + f)) for an integer-valued k and f in [sqrt(1/2) - 1, sqrt(2) - 1], f exact:
 * fdlibm's log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f / (2 + f), with R a fit over
 * |s| <= 0.172 (relative error of the result's R term 6e-17), and k ln 2 in two parts. */
AF_INLINE double af_log_reduced(double k, double f) {
    double s = f / (2.0 + f);
    double w = s * s;
    double R = 1.51144156256387330e-01;
    R = AF_FMA(R, w, 1.52841445810724563e-01);
    R = AF_FMA(R, w, 1.81845925621853671e-01);
    R = AF_FMA(R, w, 2.22221830987118729e-01);
    R = AF_FMA(R, w, 2.85714288334466215e-01);
    R = AF_FMA(R, w, 3.99999999993430222e-01);
    R = AF_FMA(R, w, 6.66666666666669405e-01) * w;
    double hfsq = 0.5 * f * f;
    return k * AF_LN2_HI - ((hfsq - (s * (hfsq + R) + k * AF_LN2_LO)) - f);
}

/* log(1 + z) for z in [0, 1] (z = exp(-|x|) in softplus and log_sigmoid), or NaN.
 * 1 + z = 2^k (1 + f) with f = z (k = 0) for z < 1/2, f = (z - 1)/2 (k = 1) above: both
 * exact, so there is no rounding of 1 + z to correct for (fdlibm's log1p divides by 1 + z for
 * that); f in [-1/4, 1/2), where af_log_reduced's fit holds too (|s| <= 1/5). */
AF_INLINE double af_log1p_unit(double z) {
    double k = z >= 0.5 ? 1.0 : 0.0;
    double f = z >= 0.5 ? (z - 1.0) * 0.5 : z;
    return af_log_reduced(k, f);
}

/* log(v) for a positive, normal, finite v (within an ulp): v = 2^k m with m in
 * [sqrt(1/2), sqrt(2)), both read off the bits (k as a double through the shifter's trick,
 * no int64 -> double conversion), f = m - 1 exact. */
AF_INLINE double af_log_normal_positive(double v) {
    int64_t bits = af_bits(v);
    double m = af_from_bits((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  /* [1, 2) */
    /* 2^52 + the biased exponent, minus 2^52 + 1023 */
    double k = af_from_bits((bits >> 52) | 0x4330000000000000LL) - 4503599627371519.0;
    int above = m > 1.41421356237309504880;
    k = above ? k + 1.0 : k;
    m = above ? m * 0.5 : m;
    return af_log_reduced(k, m - 1.0);
}

/* sin a = a + a^3 P(a^2), cos a = 1 - a^2/2 + a^4 Q(a^2): P's and Q's coefficients, the
 * highest degree first (P: -1/3! + ... + a^14/17!, Q: 1/4! - ... + a^12/16!) */
static const double AF_SIN_TAYLOR[8] = {
    1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0,
    1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0};
static const double AF_COS_TAYLOR[7] = {
    1.0 / 20922789888000.0, -1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0,
    1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0};

/* c[0] x^(n-1) + ... + c[n-1] by Horner's rule, the constant trip count unrolled. GCC unrolls
 * a loop of up to 16 trips by itself; af_x_minus_tanh's 21 stayed a loop, inside which the
 * calling loop was not vectorised: tanhshrink's float64 forward ran scalar, 6.1 ns per element
 * at 10^5 on two threads (unrolled: 1.1 ns). tests/test_build.py checks that every kernel is
 * vectorised. */
AF_INLINE double af_horner(const double* c, int n, double x) {
    double p = c[0];
#pragma GCC unroll 32
    for (int i = 1; i < n; i++)
        p = AF_FMA(p, x, c[i]);
    return p;
}

/* cos(theta), and sin(theta) into *sine, for theta in [0, 2 pi] (Box-Muller's angle), each
 * within about an ulp. theta = q pi/2 + a with q = round(theta 2/pi) in 0..4 and |a| <= pi/4,
 * pi/2 in three parts (Cody-Waite): the first two of 33 bits, so that q times them is exact,
 * and theta - q AF_PIO2_1 is exact (Sterbenz); one rounding each for the other two. sin a
 * and cos a by their Taylor series to a^17 / a^16 (the next terms < 3e-18 on |a| <= pi/4);
 * cos a = w + ((1 - w) - a^2/2 + ...) with w = 1 - a^2/2, fdlibm's way of keeping the
 * rounding of 1 - a^2/2 out of the result. Then the quadrant's signs and swap by selects. */
#define AF_PIO2_1 0x1.921fb544p+0
#define AF_PIO2_2 0x1.0b4611a6p-34
#define AF_PIO2_3 0x1.3198a2e037073p-69
AF_INLINE double af_cos_sin_circle(double theta, double* sine) {
    double q = AF_FMA(theta, 6.36619772367581382433e-01, AF_SHIFTER) - AF_SHIFTER;
    double a = ((theta - q * AF_PIO2_1) - q * AF_PIO2_2) - q * AF_PIO2_3;
    double a2 = a * a;
    double s = AF_FMA(a * a2, af_horner(AF_SIN_TAYLOR, 8, a2), a);
    double pc = af_horner(AF_COS_TAYLOR, 7, a2);
    double hz = 0.5 * a2;
    double w = 1.0 - hz;
    double c = w + (((1.0 - w) - hz) + a2 * a2 * pc);
    /* q = 0: (c, s); 1: (-s, c); 2: (-c, -s); 3: (s, -c); 4 as 0 */
    int odd = q == 1.0 || q == 3.0;
    double cosine = odd ? s : c;
    double sin_theta = odd ? c : s;
    *sine = q == 2.0 || q == 3.0 ? -sin_theta : sin_theta;
    return q == 1.0 || q == 2.0 ? -cosine : cosine;
}

/* tanh(|x|) with the sign of x (tanh(-0) = -0), from y = -2|x|: (1 - e^y) / (1 + e^y), with
 * e^y = 2^n (q + 1) from one reduction (q = e^r - 1). Numerator and denominator are each one
 * fma, rounded once: 1 - 2^n q - 2^n and 1 + 2^n q + 2^n (1 -+ 2^n exact for n >= -52), so
 * there is no cancellation near 0 (the numerator is -q there) and no rounding of e^y - 1 for
 * large |x|. Over 6e7 samples of [0, 21] against long double: 2.18 ulp at most; the earlier
 * select between -(e^y - 1) / ((e^y - 1) + 2) below |x| = 0.625 and (1 - e^y) / (1 + e^y)
 * above gave 2.63 ulp in more operations. */
AF_INLINE double af_tanh(double x) {
    double a = __builtin_fabs(x);
    /* beyond |x| = 20, e^y < 2^-57: the result rounds to 1 (also at inf) */
    double y = a > 20.0 ? -40.0 : -2.0 * a;
    double n = AF_FMA(y, AF_LOG2E, AF_SHIFTER) - AF_SHIFTER;
    double r = AF_FMA(-n, AF_LN2_LO, AF_FMA(-n, AF_LN2_HI, y));
    double q = af_expm1_reduced(r);
    double s = af_exp2i(n);                  /* n in [-58, 0] */
    double th = AF_FMA(-s, q, 1.0 - s) / AF_FMA(s, q, s + 1.0);
    return __builtin_copysign(th, x);
}

/* (e^d - 1) / d for |d| <= 1/2: its Taylor series to degree 15 (remainder below 1e-19); for
 * the expansions of derivatives around their zeros (activations.pxd) */
AF_INLINE double af_exprel_small(double d) {
    double p = 1.0 / 20922789888000.0;               /* 1/16! */
    p = AF_FMA(p, d, 1.0 / 1307674368000.0);
    p = AF_FMA(p, d, 1.0 / 87178291200.0);
    p = AF_FMA(p, d, 1.0 / 6227020800.0);
    p = AF_FMA(p, d, 1.0 / 479001600.0);
    p = AF_FMA(p, d, 1.0 / 39916800.0);
    p = AF_FMA(p, d, 1.0 / 3628800.0);
    p = AF_FMA(p, d, 1.0 / 362880.0);
    p = AF_FMA(p, d, 1.0 / 40320.0);
    p = AF_FMA(p, d, 1.0 / 5040.0);
    p = AF_FMA(p, d, 1.0 / 720.0);
    p = AF_FMA(p, d, 1.0 / 120.0);
    p = AF_FMA(p, d, 1.0 / 24.0);
    p = AF_FMA(p, d, 1.0 / 6.0);
    p = AF_FMA(p, d, 0.5);
    return AF_FMA(p, d, 1.0);
}

/* ---- pieces of gelu ------------------------------------------------------------------------
 * With a = |x|, phi the normal density and Phi its integral:
 *   Phi(-a) = phi(a) R(a), R the Mills ratio (smooth: R(0) = sqrt(pi/2), R ~ 1/a), so
 *   gelu(x) = x Phi(x) is -a phi(a) R(a) for x < 0 and x (1 - phi(a) R(a)) for x >= 0;
 *   gelu'(x) = Phi(x) + x phi(x) is H for x < 0 and 1 - H for x >= 0, H = phi(a) (R(a) - a).
 * No erfc, no cancellation: Phi(-a) keeps its relative precision in the tail, and R(a) - a,
 * which crosses 0 at a0 (gelu's minimum, where Phi(x) + x phi(x) would lose every bit), is
 * computed as (a0 - a) K(a) with a smooth K. phi(a) is exp(-a^2/2) with a^2 split exactly
 * into hi + lo. R and K are rational fits (relative error near 1e-16 for double, ~2e-8 for
 * float32) with positive coefficients, so that they evaluate to within about 1 ulp, on
 * [0, 39] (gelu is 0 in double below -38.6) and [0, 15] (float32). tests/test_vecmath.py
 * checks them against scipy. */

/* exp(-a^2/2) as parts (see af_exp_parts), for a in [0, 39] (or NaN) */
AF_INLINE double af_gauss_parts(double a, double* scale) {
    double lo;
    double hi = af_two_product(a, a, &lo);
    /* exp(-hi/2 - lo/2): af_exp_parts' reduction with lo added to r */
    double xc = -0.5 * hi;
    double n = AF_FMA(xc, AF_LOG2E, AF_SHIFTER) - AF_SHIFTER;
    double r = AF_FMA(-n, AF_LN2_LO, AF_FMA(-n, AF_LN2_HI, xc) - 0.5 * lo);
    double em = af_expm1_reduced(r);
    double n1 = (n * 0.5 + AF_SHIFTER) - AF_SHIFTER;
    *scale = af_exp2i(n - n1);
    return af_exp_from_m1(em, af_exp2i(n1));
}

/* A polynomial with coefficients c[0] (highest degree) .. c[n-1] (constant), by Horner's rule
 * in a below a = 2, else the reversed polynomial in w = 1/a (= P(a) / a^(n-1)): beyond a = 2
 * the highest-degree terms dominate, and Horner's rule in a would round them most. Both are
 * computed and one selected (no branch: the loops stay vectorisable); the constant trip count
 * is unrolled by the compiler. */
AF_INLINE double af_poly(const double *c, int n, double a) {
    double w = 1.0 / a, p = af_horner(c, n, a), pw = c[n - 1];
    for (int i = 1; i < n; i++)
        pw = AF_FMA(pw, w, c[n - 1 - i]);
    return a < 2.0 ? p : pw;
}


static const double AF_MILLS_P[10] = {
    3.48547117474560558e-06, 9.36505613818080910e-05, 1.23222970372374057e-03,
    1.02705822656284536e-02, 5.93072557507391199e-02, 2.45204251361580944e-01,
    7.25933252021429665e-01, 1.49000643407126288e+00, 1.94297557254086795e+00,
    1.25331413731550012e+00};
static const double AF_MILLS_Q[11] = {
    3.48547117475565224e-06, 9.36505613797226688e-05, 1.23571517509366057e-03,
    1.03642328160269501e-02, 6.05325149307763891e-02, 2.55287520948399960e-01,
    7.82811144297085981e-01, 1.71560210116334555e+00, 2.56240956831703626e+00,
    2.34815477215032109e+00, 1.0};
/* R(a) = Phi(-a) / phi(a), a in [0, 39]: rational 9/10, relative error 1.1e-16.
 * P(a) / Q(a) = P~(w) / (a Q~(w)) with w = 1/a and P~, Q~ the reversed polynomials. */
AF_INLINE double af_mills_ratio(double a) {
    double p = af_poly(AF_MILLS_P, 10, a);
    double q = af_poly(AF_MILLS_Q, 11, a);
    return p / (a < 2.0 ? q : a * q);
}

/* gelu's minimum, a0 = 0.75179152469356445746 (R(a0) = a0), as double hi + lo */
#define AF_GELU_A0_HI 0.7517915246935645
#define AF_GELU_A0_LO -1.4956759177009883e-17

static const double AF_MILLS_K_P[10] = {
    1.19811932028506763e-05, 3.11005391341268413e-04, 3.88258269450237259e-03,
    3.02371079739480672e-02, 1.60713827859626818e-01, 6.01943042907236436e-01,
    1.58578679305961900e+00, 2.83649418221112581e+00, 3.14277463323104111e+00,
    1.66710330743135215e+00};
static const double AF_MILLS_K_Q[10] = {
    1.19811932028621570e-05, 3.01998031833404556e-04, 3.66075267055760703e-03,
    2.76202132318154915e-02, 1.41630598195956026e-01, 5.08437955092585159e-01,
    1.27125708428989448e+00, 2.12603413335549041e+00, 2.15078402580494155e+00,
    1.0};
/* R(a) - a = (a0 - a) K(a), a in [0, 39]: K rational 9/9, relative error 9e-17 (in w = 1/a
 * beyond a = 2, as af_mills_ratio) */
AF_INLINE double af_mills_ratio_minus_a(double a) {
    double p = af_poly(AF_MILLS_K_P, 10, a);
    double q = af_poly(AF_MILLS_K_Q, 10, a);
    return ((AF_GELU_A0_HI - a) + AF_GELU_A0_LO) * (p / q);
}

/* ============================================================================================
 * float32: the same methods in single precision, for float32 arrays (8 lanes with AVX2, twice
 * the double lanes, and no conversions). Every function is accurate to float32 (about 1 ulp;
 * tests/test_vecmath.py measures each against a float64 reference), subnormal results included.
 * Only AVX2's 32-bit integer add, subtract and shifts are used for the bit tricks.
 * ============================================================================================ */

AF_INLINE int32_t af_bitsf(float x) { int32_t i; memcpy(&i, &x, 4); return i; }
AF_INLINE float af_from_bitsf(int32_t i) { float x; memcpy(&x, &i, 4); return x; }

/* x + SHIFTER rounds x (|x| < 2^22) to an integer n held in the low mantissa bits */
#define AF_SHIFTERF 12582912.0f  /* 1.5 * 2^23 */
#define AF_LOG2EF 1.44269504088896341f
/* ln 2 = AF_LN2_HIF + AF_LN2_LOF; AF_LN2_HIF = 355/512 has 9 bits, so n * AF_LN2_HIF is exact
 * for |n| < 2^15 (Cephes' split) */
#define AF_LN2_HIF 0.693359375f
#define AF_LN2_LOF -2.12194440e-4f

/* e^r - 1 for |r| <= ln2/2 (a little more after rounding): r + r^2 P(r), Cephes' minimax
 * expf polynomial (relative error ~2^-26), no constant term so that it keeps full relative
 * precision near 0. */
AF_INLINE float af_expm1_tailf(float r) {   /* e^r - 1 - r */
    float p = 1.9875691500e-4f;
    p = AF_FMAF(p, r, 1.3981999507e-3f);
    p = AF_FMAF(p, r, 8.3334519073e-3f);
    p = AF_FMAF(p, r, 4.1665795894e-2f);
    p = AF_FMAF(p, r, 1.6666665459e-1f);
    p = AF_FMAF(p, r, 5.0000001201e-1f);
    return p * (r * r);
}

AF_INLINE float af_expm1_reducedf(float r) {
    return r + af_expm1_tailf(r);
}

/* (1 + em) 2^k from em = e^r - 1 and two_k = 2^k, as af_exp_from_m1 */
AF_INLINE float af_exp_from_m1f(float em, float two_k) {
    return AF_FMAF(two_k, em, two_k);
}

/* exp(x) as two factors, exp(x) = af_exp_partsf(x, &scale) * scale, each a normal float (for
 * x >= -104; 0 and inf at the ends). A caller that multiplies the first factor by other terms
 * before applying `scale` rounds once, at the end: a result in the subnormal range keeps all
 * the precision it can have (x e^x for x = -100 would lose 50 units of the last place if e^x
 * were rounded to a subnormal first). For x >= -120 (see the clamp).
 * Method: n = round(x / ln 2), r = x - n ln 2 (exact to ~2^-35 with the split), e^r by the
 * polynomial, and 2^n applied as 2^(n>>1) * 2^(n - n>>1). */
/* e^r - 1 for r = xc - n ln 2, n = round(xc / ln 2) into *i (as an integer): exp's reduction
 * and polynomial */
AF_INLINE float af_exp_reduced_m1f(float xc, int32_t* i) {
    float k = AF_FMAF(xc, AF_LOG2EF, AF_SHIFTERF);
    float n = k - AF_SHIFTERF;
    float r = AF_FMAF(-n, AF_LN2_LOF, AF_FMAF(-n, AF_LN2_HIF, xc));
    *i = af_bitsf(k) - af_bitsf(AF_SHIFTERF);
    return af_expm1_reducedf(r);
}

/* af_exp_reduced_m1f of the argument xc + lo, lo a low part below an ulp of xc (an argument
 * known to more than float32 precision): lo added to the reduced argument */
AF_INLINE float af_exp_reduced_dd_m1f(float xc, float lo, int32_t* i) {
    float k = AF_FMAF(xc, AF_LOG2EF, AF_SHIFTERF);
    float n = k - AF_SHIFTERF;
    float r = AF_FMAF(-n, AF_LN2_LOF, AF_FMAF(-n, AF_LN2_HIF, xc) + lo);
    *i = af_bitsf(k) - af_bitsf(AF_SHIFTERF);
    return af_expm1_reducedf(r);
}

AF_INLINE float af_exp_parts_clampedf(float xc, float x, float* scale) {
    int32_t i;
    float em = af_exp_reduced_m1f(xc, &i);
    int32_t i1 = i >> 1;
    *scale = af_from_bitsf((i - i1 + 127) << 23);
    /* 0: see af_exp_parts */
    return x < -120.0f ? 0.0f : af_exp_from_m1f(em, af_from_bitsf((i1 + 127) << 23));
}

AF_INLINE float af_exp_partsf(float x, float* scale) {
    /* Above 89 the result is above FLT_MAX; below -104 it is below 2^-150 and rounds to 0,
     * but x e^x does not until x = -110: clamping at -120 keeps n within [-174, 128], where
     * both halves of 2^n are normal floats. NaN passes the clamps (comparisons are false). */
    return af_exp_parts_clampedf(x < -120.0f ? -120.0f : (x > 89.0f ? 89.0f : x), x, scale);
}

/* e^x for x in [-40, 0] (the kernels' moderate range, activations.pxd), where it is a normal
 * float: 2^n applied as one factor, no clamp. There it is the product of af_exp_neg_partsf's
 * two factors, to the bit (both products exact). */
AF_INLINE float af_exp_neg_moderatef(float x) {
    int32_t i;
    float em = af_exp_reduced_m1f(x, &i);
    return af_exp_from_m1f(em, af_from_bitsf((i + 127) << 23));
}

/* af_exp_partsf for x <= 0 (or NaN) only: one clamp less */
AF_INLINE float af_exp_neg_partsf(float x, float* scale) {
    return af_exp_parts_clampedf(x < -120.0f ? -120.0f : x, x, scale);
}

/* exp(hi + lo) as parts, hi <= 0 (or NaN), |lo| <= ulp(hi) (see af_exp_neg_dd_parts) */
AF_INLINE float af_exp_neg_dd_partsf(float hi, float lo, float* scale) {
    int32_t i;
    float em = af_exp_reduced_dd_m1f(hi < -120.0f ? -120.0f : hi, lo, &i);
    int32_t i1 = i >> 1;
    *scale = af_from_bitsf((i - i1 + 127) << 23);
    return hi < -120.0f ? 0.0f : af_exp_from_m1f(em, af_from_bitsf((i1 + 127) << 23));
}

/* exp(hi + lo) whole where hi >= -40 (a moderate argument, see pyx/activations.pxd): the
 * reduction of af_exp_neg_dd_partsf, no clamp, 2^n as one factor (as af_exp_neg_moderatef) */
AF_INLINE float af_exp_neg_dd_moderatef(float hi, float lo) {
    int32_t i;
    float em = af_exp_reduced_dd_m1f(hi, lo, &i);
    return af_exp_from_m1f(em, af_from_bitsf((i + 127) << 23));
}

/* x * y = hi + lo exactly (hi = x * y rounded, returned), in float32 */
AF_INLINE float af_two_productf(float x, float y, float* lo) {
    float hi = x * y;
#ifdef __FMA__
    *lo = __builtin_fmaf(x, y, -hi);
#else
    /* the product of two floats is exact in double: the same low part as the FMA's (Dekker's
     * split overflowed beyond 8.3e34, 4097 times a float, and made it NaN) */
    double p = (double)x * y;
    *lo = (float)(p - (double)hi);
#endif
    return hi;
}

/* x * c = hi + lo for a float x and a double c, to about 2^-48 relative: c = ch + cl in two
 * floats, x ch = hi + (exact error) by FMA, plus x cl */
AF_INLINE float af_two_product_df(float x, double c, float* lo) {
    float ch = (float)c, cl = (float)(c - (double)ch), exact;
    float hi = af_two_productf(x, ch, &exact);
    *lo = exact + x * cl;
    return hi;
}

/* af_exp_partsf for a double argument (x beta, x / alpha: products and quotients whose
 * float32 rounding would be amplified by |x| in e^x): the reduction in double, the
 * polynomial in float32. */
AF_INLINE float af_exp_parts_clamped_df(double xc, double x, float* scale) {
    double k = AF_FMA(xc, AF_LOG2E, AF_SHIFTER);
    double n = k - AF_SHIFTER;
    float r = (float)AF_FMA(-n, AF_LN2_LO, AF_FMA(-n, AF_LN2_HI, xc));
    float em = af_expm1_reducedf(r);
    int32_t i = (int32_t)n;
    int32_t i1 = i >> 1;
    *scale = af_from_bitsf((i - i1 + 127) << 23);
    return x < -120.0 ? 0.0f : af_exp_from_m1f(em, af_from_bitsf((i1 + 127) << 23));
}

AF_INLINE float af_exp_parts_df(double x, float* scale) {
    return af_exp_parts_clamped_df(x < -120.0 ? -120.0 : (x > 89.0 ? 89.0 : x), x, scale);
}

AF_INLINE float af_exp_neg_parts_df(double x, float* scale) {   /* x <= 0 or NaN */
    return af_exp_parts_clamped_df(x < -120.0 ? -120.0 : x, x, scale);
}

AF_INLINE float af_expf(float x) {
    float scale;
    float y = af_exp_partsf(x, &scale);
    return y * scale;
}

/* exp(x) - 1 without cancellation near 0: 2^n (e^r - 1) + (2^n - 1). */
/* expm1's reduction of a clamped argument xc (as af_expm1_reduction): half = 2^(n-1) is a
 * normal float for n in [-26, 128] */
AF_INLINE float af_expm1_reductionf(float xc, float* n, float* r, float* t) {
    float k = AF_FMAF(xc, AF_LOG2EF, AF_SHIFTERF);
    *n = k - AF_SHIFTERF;
    *r = AF_FMAF(-*n, AF_LN2_LOF, AF_FMAF(-*n, AF_LN2_HIF, xc));
    *t = af_expm1_tailf(*r);
    return af_from_bitsf((af_bitsf(k) - af_bitsf(AF_SHIFTERF) + 126) << 23);
}

AF_INLINE float af_expm1f(float x) {
    /* below -18, e^x < 2^-25: the result rounds to -1; above 89 it is inf */
    float n, r, t;
    float half = af_expm1_reductionf(x < -18.0f ? -18.0f : (x > 89.0f ? 89.0f : x), &n, &r, &t);
    float q = r + t;
    /* (the two forms of af_expm1) */
    float small = n > 0.0f ? AF_FMAF(2.0f * half, r, 2.0f * half - 1.0f) + 2.0f * half * t
                           : AF_FMAF(2.0f * half, q, 2.0f * half - 1.0f);
    /* above n = 24 the -1 is below half an ulp: e^x = 2 * (2^(n-1) e^r), which does not
     * overflow before the result does (n = 128 for x in (88.38, 88.72]) */
    float large = 2.0f * AF_FMAF(half, q, half);
    return n > 24.0f ? large : (x == 0.0f ? x : small);   /* x at +-0, as af_expm1 */
}

/* af_expm1f for x <= 0 (or NaN) only, with its bits there (as af_expm1_neg) */
AF_INLINE float af_expm1_negf(float x) {
    float n, r, t;
    float half = af_expm1_reductionf(x < -18.0f ? -18.0f : x, &n, &r, &t);
    return x == 0.0f ? x : AF_FMAF(2.0f * half, r + t, 2.0f * half - 1.0f);
}

/* log(1 + z) for z in [0, 1] (z = exp(-|x|) in softplus and log_sigmoid), or NaN.
 * 1 + z = 2^k (1 + f) with f = z (k = 0) for z < 1/2, f = (z - 1)/2 (k = 1) above: both
 * exact, so there is no rounding of 1 + z to correct for; f in [-1/4, 1/2). Then fdlibm's
 * log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f / (2 + f) in [-1/7, 1/5], with R
 * refitted to that interval (relative error 6e-9 of R, ~1e-10 of the result). */
AF_INLINE float af_log1p_unitf(float z) {
    float k = z >= 0.5f ? 1.0f : 0.0f;
    float f = z >= 0.5f ? (z - 1.0f) * 0.5f : z;
    float s = f / (2.0f + f);
    float w = s * s;
    float R = AF_FMAF(AF_FMAF(AF_FMAF(0.23746637f, w, 0.28532788f), w, 0.40000311f), w, 0.66666669f) * w;
    float hfsq = 0.5f * f * f;
    return k * AF_LN2_HIF - ((hfsq - (s * (hfsq + R) + k * AF_LN2_LOF)) - f);
}

/* tanh(|x|) with the sign of x (tanh(-0) = -0), as af_tanh: (1 - 2^n q - 2^n) / (1 + 2^n q +
 * 2^n), each an fma rounded once (1 -+ 2^n exact for n >= -23; below, 2^n is under half an ulp
 * of 1 either way). Every float32 of [0, 11] against double: 2.03 ulp at most (mean 0.072);
 * the earlier select between the forms -(e^y - 1) / ((e^y - 1) + 2) and (1 - e^y) / (1 + e^y)
 * gave 2.26 (mean 0.074) in six operations more. */
AF_INLINE float af_tanhf(float x) {
    float a = __builtin_fabsf(x);
    /* beyond |x| = 10, e^y < 2^-28: the result rounds to 1 (also at inf) */
    float y = a > 10.0f ? -20.0f : -2.0f * a;
    float k = AF_FMAF(y, AF_LOG2EF, AF_SHIFTERF);
    float n = k - AF_SHIFTERF;
    float r = AF_FMAF(-n, AF_LN2_LOF, AF_FMAF(-n, AF_LN2_HIF, y));
    float q = af_expm1_reducedf(r);
    float s = af_from_bitsf((af_bitsf(k) - af_bitsf(AF_SHIFTERF) + 127) << 23);  /* 2^n, n in [-29, 0] */
    float th = AF_FMAF(-s, q, 1.0f - s) / AF_FMAF(s, q, s + 1.0f);
    return __builtin_copysignf(th, x);
}

/* x - tanh(x) (tanhshrink). Below |x| = 1.4 the subtraction cancels (x^3/3 near 0): there
 * x^3 f(x^2), f(w) = (x - tanh x) / x^3 as a polynomial in w - 0.98 (degree 10, fitted for
 * relative error on [0, 1.96]: 1.1e-8 with these float coefficients, Horner's rule within
 * 8e-8), and x^3 as the pair c + c_lo (exact products), so that the result is rounded once:
 * within 2.5 ulp (over every float32: 1.83 with FMA, 2.47 in the portable build). From 1.4
 * on x - tanh(x) >= 1/2 as tanh(x) is: tanh's 1.5 ulp stay 1.5 (the subtraction exact or
 * rounded once). A zero result is +0 (-0 - -0, as in PyTorch). */
AF_INLINE float af_x_minus_tanhf(float x) {
    float w_lo, c_lo;
    float w = af_two_productf(x, x, &w_lo);
    float c = af_two_productf(x, w, &c_lo);
    float u = w - 0.98f;
    float p = 2.197622507e-06f;
    p = AF_FMAF(p, u, -3.992456186e-06f);
    p = AF_FMAF(p, u, 9.026844054e-06f);
    p = AF_FMAF(p, u, -4.033154619e-05f);
    p = AF_FMAF(p, u, 1.425007067e-04f);
    p = AF_FMAF(p, u, -4.829078971e-04f);
    p = AF_FMAF(p, u, 1.663793344e-03f);
    p = AF_FMAF(p, u, -5.739143584e-03f);
    p = AF_FMAF(p, u, 1.979151741e-02f);
    p = AF_FMAF(p, u, -6.838075817e-02f);
    p = AF_FMAF(p, u, 2.397655845e-01f);
    float small = AF_FMAF(p, c, p * (c_lo + x * w_lo));
    float big = x - af_tanhf(x);
    return (__builtin_fabsf(x) < 1.4f ? small : big) + 0.0f;
}

/* x - tanh(x) in double (tanhshrink), as af_x_minus_tanhf: below |x| = 1.4, x^3 f(x^2) with
 * f(w) = (x - tanh x) / x^3 a polynomial in w - 0.98 (degree 21: a Chebyshev fit on [0, 1.96]
 * in 200-bit arithmetic, coefficients rounded to double, relative error 1.9e-17), x^3 as an
 * exact pair, so that the result is rounded about once; above, x - tanh(x), at least half of
 * x there; against mpmath 1.54 ulp at most. (x - tanh(x) from |x| = 1/8 up, as before, lost
 * log2(3 / x^2) bits to the cancellation: 265 ulp near 0.13, 6 near 1.) A zero result is +0. */
static const double AF_X_MINUS_TANH_F[22] = {
    -1.9192122935278606e-12, 6.6162945723641475e-12, -1.2671358011621205e-11,
    4.3683253551207668e-11, -1.7371719917919709e-10, 5.9887286358659366e-10,
    -2.0347497473336339e-09, 7.0145985177370896e-09, -2.4205988760309748e-08,
    8.3447752285608665e-08, -2.876656097328999e-07, 9.9169873957733887e-07,
    -3.4187873762449125e-06, 1.178593140204861e-05, -4.0630832967875667e-05,
    0.00014007079956693394, -0.00048288072257406074, 0.0016646950073750386,
    -0.0057391387387170307, 0.019791398904669306, -0.068380758749672949,
    0.23976558830796171};

AF_INLINE double af_x_minus_tanh(double x) {
    double w_lo, c_lo;
    double w = af_two_product(x, x, &w_lo);
    double c = af_two_product(x, w, &c_lo);
    double p = af_horner(AF_X_MINUS_TANH_F, 22, w - 0.98);
    double small = AF_FMA(p, c, p * (c_lo + x * w_lo));
    double big = x - af_tanh(x);
    return (__builtin_fabs(x) < 1.4 ? small : big) + 0.0;
}

/* (e^d - 1) / d for |d| <= 1: Taylor series to degree 11 (remainder below 3e-9) */
AF_INLINE float af_exprel_smallf(float d) {
    float p = 1.0f / 479001600.0f;                   /* 1/12! */
    p = AF_FMAF(p, d, 1.0f / 39916800.0f);
    p = AF_FMAF(p, d, 1.0f / 3628800.0f);
    p = AF_FMAF(p, d, 1.0f / 362880.0f);
    p = AF_FMAF(p, d, 1.0f / 40320.0f);
    p = AF_FMAF(p, d, 1.0f / 5040.0f);
    p = AF_FMAF(p, d, 1.0f / 720.0f);
    p = AF_FMAF(p, d, 1.0f / 120.0f);
    p = AF_FMAF(p, d, 1.0f / 24.0f);
    p = AF_FMAF(p, d, 1.0f / 6.0f);
    p = AF_FMAF(p, d, 0.5f);
    return AF_FMAF(p, d, 1.0f);
}

/* The float32 bounds that make a float32 comparison with a double parameter c exact:
 * for float x, x <= c  <=>  x <= af_float_at_most(c) (the largest float <= c), and
 * x >= c  <=>  x >= af_float_at_least(c). Kernels compare float32 elements in float32 (8
 * lanes, no conversions) with these, and keep the double comparison's answer at every x.
 * Branch-free (selects), so that the computation is hoisted out of vectorised loops. */
AF_INLINE float af_float_below(float f) {   /* the next float towards -inf (f finite or +inf) */
    int32_t i = af_bitsf(f);
    return f > 0.0f ? af_from_bitsf(i - 1) : (f == 0.0f ? -1.40129846e-45f : af_from_bitsf(i + 1));
}
AF_INLINE float af_float_at_most(double c) {
    float f = (float)c;
    return (double)f > c ? af_float_below(f) : f;
}
AF_INLINE float af_float_at_least(double c) {
    return -af_float_at_most(-c);
}

/* ---- pieces of gelu (float32): the double ones' method (see above), with rational fits
 * of lower degree on [0, 15] (float32's gelu is -0 below -15). */

/* exp(-a^2/2) as parts (see af_exp_partsf), for a in [0, 15] (or NaN) */
AF_INLINE float af_gauss_partsf(float a, float* scale) {
    float lo;
    float hi = af_two_productf(a, a, &lo);
    /* exp(-hi/2 - lo/2) */
    int32_t i;
    float em = af_exp_reduced_dd_m1f(-0.5f * hi, -0.5f * lo, &i);
    int32_t i1 = i >> 1;
    *scale = af_from_bitsf((i - i1 + 127) << 23);
    return af_exp_from_m1f(em, af_from_bitsf((i1 + 127) << 23));
}

/* R(a) = Phi(-a) / phi(a), a in [0, 15]: rational 4/5, relative error 1.8e-8. Evaluated in
 * double: in float32, Horner's rule on these polynomials (whose terms grow with the degree for
 * a > 1) accumulates ~5 rounding errors, 4e-7 relative. The quotient is returned in double,
 * unrounded: gelu's forward multiplies it by a in double before its one rounding. */
AF_INLINE double af_mills_ratiof(float a) {
    double ad = a;
    double p = 0.010412197560071945;
    p = AF_FMA(p, ad, 0.10248428583145142);
    p = AF_FMA(p, ad, 0.46117278933525085);
    p = AF_FMA(p, ad, 1.1011608839035034);
    p = AF_FMA(p, ad, 1.2533141374588013);
    double q = 0.010412086732685566;
    q = AF_FMA(q, ad, 0.1024903804063797);
    q = AF_FMA(q, ad, 0.47144100069999695);
    q = AF_FMA(q, ad, 1.2055984735488892);
    q = AF_FMA(q, ad, 1.676484227180481);
    q = AF_FMA(q, ad, 1.0);
    return p / q;
}

/* R(a) - a = (a0 - a) K(a), a in [0, 15]: K rational 4/4, relative error 1.4e-8; in double
 * as af_mills_ratiof, where a0 - a is exact to a double rounding. */
AF_INLINE float af_mills_ratio_minus_af(float a) {
    double ad = a;
    double p = 0.02625030279159546;
    p = AF_FMA(p, ad, 0.2403571903705597);
    p = AF_FMA(p, ad, 0.9488023519515991);
    p = AF_FMA(p, ad, 1.8905298709869385);
    p = AF_FMA(p, ad, 1.6671032905578613);
    double q = 0.026250159367918968;
    q = AF_FMA(q, ad, 0.22062954306602478);
    q = AF_FMA(q, ad, 0.7942052483558655);
    q = AF_FMA(q, ad, 1.3996334075927734);
    q = AF_FMA(q, ad, 1.0);
    return (float)((AF_GELU_A0_HI - ad) * (p / q));
}

#endif
