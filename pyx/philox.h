/* Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011): the random draws of rrelu and noisy_relu (pyx/special_kernels.pxd says how they
 * are used). One counter-based generator, written once as a scalar function and once for
 * runs of consecutive counters, which with AVX2 computes four of them side by side (the same
 * bits: tests/test_special.py checks Random123's known answers and every uniform of a run).
 * The multipliers and Weyl constants are Random123's.
 */
#ifndef ACTFAST_PHILOX_H
#define ACTFAST_PHILOX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define AF_PHILOX_M0 0xD2511F53u
#define AF_PHILOX_M1 0xCD9E8D57u
#define AF_PHILOX_W0 0x9E3779B9u    /* the key schedule: a Weyl sequence */
#define AF_PHILOX_W1 0xBB67AE85u

typedef struct { uint32_t w0, w1, w2, w3; } af_words;

/* Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1) */
static inline af_words af_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                        uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) {    /* the key is bumped between rounds */
            k0 += AF_PHILOX_W0;
            k1 += AF_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)AF_PHILOX_M0 * c0, p1 = (uint64_t)AF_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    af_words w = {c0, c1, c2, c3};
    return w;
}

/* The 128 bits of pair k of a stream: counter (k lo, k hi, stream, 0), key the 64-bit seed */
static inline af_words af_philox_draw(uint64_t seed, uint32_t stream, uint64_t pair) {
    return af_philox4x32_10((uint32_t)pair, (uint32_t)(pair >> 32), stream, 0,
                            (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* A uniform double on [0, 1), a multiple of 2^-52: the top 52 of the 64 bits (hi, lo) as the
 * mantissa of a number in [1, 2), minus 1 (exact). Bit operations only (AVX2 has no vector
 * conversion from 64-bit integers to doubles). */
static inline double af_unit_interval(uint32_t hi, uint32_t lo) {
    uint64_t bits = ((((uint64_t)hi << 32) | lo) >> 12) | 0x3FF0000000000000ull;
    double one_to_two;
    memcpy(&one_to_two, &bits, 8);
    return one_to_two - 1.0;
}

#ifdef __AVX2__
/* One round for four counters side by side, each 32-bit word in the low half of a 64-bit
 * lane (the high halves are ignored until the end): _mm256_mul_epu32 multiplies the low
 * halves into the whole lane, with no packing of words between the rounds. */
#define AF_PHILOX_ROUND(x0, x1, x2, x3, key0, key1) do {                                    \
        __m256i p0_ = _mm256_mul_epu32(x0, m0), p1_ = _mm256_mul_epu32(x2, m1);             \
        x0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1_, 32), x1), key0);      \
        x2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0_, 32), x3), key1);      \
        x1 = p1_;                                                                           \
        x3 = p0_;                                                                           \
    } while (0)

/* the uniforms af_unit_interval(w0, w1) and (w2, w3) of four draws, stored interleaved as
 * out[0..7] = (u01[0], u23[0], u01[1], u23[1], ...) */
static inline void af_philox_store_uniforms(__m256i x0, __m256i x1, __m256i x2, __m256i x3,
                                            double* out) {
    const __m256i low = _mm256_set1_epi64x(0xFFFFFFFF);
    const __m256i exponent = _mm256_set1_epi64x(0x3FF0000000000000ll);
    const __m256d one = _mm256_set1_pd(1.0);
    __m256i b01 = _mm256_or_si256(_mm256_slli_epi64(x0, 32), _mm256_and_si256(x1, low));
    __m256i b23 = _mm256_or_si256(_mm256_slli_epi64(x2, 32), _mm256_and_si256(x3, low));
    __m256d u01 = _mm256_sub_pd(_mm256_castsi256_pd(
        _mm256_or_si256(_mm256_srli_epi64(b01, 12), exponent)), one);
    __m256d u23 = _mm256_sub_pd(_mm256_castsi256_pd(
        _mm256_or_si256(_mm256_srli_epi64(b23, 12), exponent)), one);
    __m256d even = _mm256_unpacklo_pd(u01, u23);    /* u01[0] u23[0] u01[2] u23[2] */
    __m256d odd = _mm256_unpackhi_pd(u01, u23);     /* u01[1] u23[1] u01[3] u23[3] */
    _mm256_storeu_pd(out, _mm256_permute2f128_pd(even, odd, 0x20));
    _mm256_storeu_pd(out + 4, _mm256_permute2f128_pd(even, odd, 0x31));
}
#endif

/* The uniforms of pairs first .. first + pairs - 1 of a stream: out[2 j] and out[2 j + 1] =
 * af_unit_interval(w0, w1) and (w2, w3) of pair first + j. With AVX2, eight pairs at a time
 * in two independent sets of four (a round's multiplies wait for the previous round's: two
 * chains keep the multiplier busy). */
static inline void af_philox_uniforms(uint64_t seed, uint32_t stream, uint64_t first,
                                      ptrdiff_t pairs, double* out) {
    ptrdiff_t j = 0;
#ifdef __AVX2__
    const __m256i m0 = _mm256_set1_epi64x(AF_PHILOX_M0), m1 = _mm256_set1_epi64x(AF_PHILOX_M1);
    __m256i key0[10], key1[10];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += AF_PHILOX_W0;
            k1 += AF_PHILOX_W1;
        }
        key0[r] = _mm256_set1_epi64x(k0);
        key1[r] = _mm256_set1_epi64x(k1);
    }
    const __m256i lanes = _mm256_set_epi64x(3, 2, 1, 0), four = _mm256_set1_epi64x(4);
    const __m256i stream_word = _mm256_set1_epi64x(stream);
    for (; j + 8 <= pairs; j += 8) {
        __m256i a0 = _mm256_add_epi64(_mm256_set1_epi64x((long long)(first + j)), lanes);
        __m256i b0 = _mm256_add_epi64(a0, four);
        /* counter words: the pair's low word (the low half of the lane), its high word,
         * the stream, 0 */
        __m256i a1 = _mm256_srli_epi64(a0, 32), b1 = _mm256_srli_epi64(b0, 32);
        __m256i a2 = stream_word, b2 = stream_word;
        __m256i a3 = _mm256_setzero_si256(), b3 = a3;
        for (int r = 0; r < 10; r++) {
            AF_PHILOX_ROUND(a0, a1, a2, a3, key0[r], key1[r]);
            AF_PHILOX_ROUND(b0, b1, b2, b3, key0[r], key1[r]);
        }
        af_philox_store_uniforms(a0, a1, a2, a3, out + 2 * j);
        af_philox_store_uniforms(b0, b1, b2, b3, out + 2 * j + 8);
    }
#endif
    for (; j < pairs; j++) {
        af_words w = af_philox_draw(seed, stream, first + (uint64_t)j);
        out[2 * j] = af_unit_interval(w.w0, w.w1);
        out[2 * j + 1] = af_unit_interval(w.w2, w.w3);
    }
}

#endif
