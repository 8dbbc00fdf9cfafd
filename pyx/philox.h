/* Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011): the random draws of rrelu and noisy_relu (pyx/special_kernels.pxd says how they
 * are used). One counter-based generator, written once as a scalar function and once for
 * runs of consecutive counters, which computes eight of them side by side with AVX-512, four
 * with AVX2, in four or two independent sets (the same bits: tests/test_special.py checks
 * Random123's known answers and every uniform of a run).
 * The multipliers and Weyl constants are Random123's.
 */
#ifndef ACTFAST_PHILOX_H
#define ACTFAST_PHILOX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* The vector operations (afv_) of the runs below, for eight counters side by side (AVX-512) or
 * four (AVX2): each counter in a 64-bit lane. */
#if defined(__AVX512F__)
#define AF_PHILOX_VECTOR 8
#define AF_PHILOX_SETS 4     /* independent sets of counters in flight (32 registers) */
typedef __m512i af_lanes;
typedef __m512d af_lanes_pd;
#define afv_mul_epu32 _mm512_mul_epu32
#define afv_xor _mm512_xor_si512
#define afv_or _mm512_or_si512
#define afv_and _mm512_and_si512
#define afv_srli_epi64 _mm512_srli_epi64
#define afv_slli_epi64 _mm512_slli_epi64
#define afv_add_epi64 _mm512_add_epi64
#define afv_set1_epi64 _mm512_set1_epi64
#define afv_setzero _mm512_setzero_si512
#define afv_castsi_pd _mm512_castsi512_pd
#define afv_sub_pd _mm512_sub_pd
#define afv_set1_pd _mm512_set1_pd
#define afv_lane_numbers() _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0)
/* out[0..15] = (a[0], b[0], a[1], b[1], ...) */
static inline void afv_store_interleaved(af_lanes_pd a, af_lanes_pd b, double* out) {
    _mm512_storeu_pd(out, _mm512_permutex2var_pd(a, _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), b));
    _mm512_storeu_pd(out + 8, _mm512_permutex2var_pd(a, _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4), b));
}
#elif defined(__AVX2__)
#define AF_PHILOX_VECTOR 4
#define AF_PHILOX_SETS 2     /* (16 registers) */
typedef __m256i af_lanes;
typedef __m256d af_lanes_pd;
#define afv_mul_epu32 _mm256_mul_epu32
#define afv_xor _mm256_xor_si256
#define afv_or _mm256_or_si256
#define afv_and _mm256_and_si256
#define afv_srli_epi64 _mm256_srli_epi64
#define afv_slli_epi64 _mm256_slli_epi64
#define afv_add_epi64 _mm256_add_epi64
#define afv_set1_epi64 _mm256_set1_epi64x
#define afv_setzero _mm256_setzero_si256
#define afv_castsi_pd _mm256_castsi256_pd
#define afv_sub_pd _mm256_sub_pd
#define afv_set1_pd _mm256_set1_pd
#define afv_lane_numbers() _mm256_set_epi64x(3, 2, 1, 0)
/* out[0..7] = (a[0], b[0], a[1], b[1], ...) */
static inline void afv_store_interleaved(af_lanes_pd a, af_lanes_pd b, double* out) {
    __m256d even = _mm256_unpacklo_pd(a, b);    /* a[0] b[0] a[2] b[2] */
    __m256d odd = _mm256_unpackhi_pd(a, b);     /* a[1] b[1] a[3] b[3] */
    _mm256_storeu_pd(out, _mm256_permute2f128_pd(even, odd, 0x20));
    _mm256_storeu_pd(out + 4, _mm256_permute2f128_pd(even, odd, 0x31));
}
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

#ifdef AF_PHILOX_VECTOR
/* One round for a vector of counters, each 32-bit word in the low half of a 64-bit lane (the
 * high halves are ignored until the end): mul_epu32 multiplies the low halves into the whole
 * lane, with no packing of words between the rounds. */
#define AF_PHILOX_ROUND(x0, x1, x2, x3, key0, key1) do {                                    \
        af_lanes p0_ = afv_mul_epu32(x0, m0), p1_ = afv_mul_epu32(x2, m1);                     \
        x0 = afv_xor(afv_xor(afv_srli_epi64(p1_, 32), x1), key0);                              \
        x2 = afv_xor(afv_xor(afv_srli_epi64(p0_, 32), x3), key1);                              \
        x1 = p1_;                                                                           \
        x3 = p0_;                                                                           \
    } while (0)

/* the uniforms af_unit_interval(w0, w1) and (w2, w3) of a vector of draws, stored
 * interleaved as out = (u01[0], u23[0], u01[1], u23[1], ...) */
static inline void af_philox_store_uniforms(af_lanes x0, af_lanes x1, af_lanes x2, af_lanes x3,
                                            double* out) {
    const af_lanes low = afv_set1_epi64(0xFFFFFFFF);
    const af_lanes exponent = afv_set1_epi64(0x3FF0000000000000ll);
    const af_lanes_pd one = afv_set1_pd(1.0);
    af_lanes b01 = afv_or(afv_slli_epi64(x0, 32), afv_and(x1, low));
    af_lanes b23 = afv_or(afv_slli_epi64(x2, 32), afv_and(x3, low));
    af_lanes_pd u01 = afv_sub_pd(afv_castsi_pd(afv_or(afv_srli_epi64(b01, 12), exponent)), one);
    af_lanes_pd u23 = afv_sub_pd(afv_castsi_pd(afv_or(afv_srli_epi64(b23, 12), exponent)), one);
    afv_store_interleaved(u01, u23, out);
}
#endif

/* The uniforms of pairs first .. first + pairs - 1 of a stream: out[2 j] and out[2 j + 1] =
 * af_unit_interval(w0, w1) and (w2, w3) of pair first + j. With vectors of V counters
 * (AF_PHILOX_VECTOR), SETS V pairs at a time in independent sets (a round's multiplies wait
 * for the previous round's: four chains with AVX-512 take 18 % less time than two). */
static inline void af_philox_uniforms(uint64_t seed, uint32_t stream, uint64_t first,
                                      ptrdiff_t pairs, double* out) {
    ptrdiff_t j = 0;
#ifdef AF_PHILOX_VECTOR
    enum { V = AF_PHILOX_VECTOR, SETS = AF_PHILOX_SETS };
    const af_lanes m0 = afv_set1_epi64(AF_PHILOX_M0), m1 = afv_set1_epi64(AF_PHILOX_M1);
    af_lanes key0[10], key1[10];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += AF_PHILOX_W0;
            k1 += AF_PHILOX_W1;
        }
        key0[r] = afv_set1_epi64(k0);
        key1[r] = afv_set1_epi64(k1);
    }
    const af_lanes lanes = afv_lane_numbers();
    const af_lanes stream_word = afv_set1_epi64(stream);
    for (; j + SETS * V <= pairs; j += SETS * V) {
        af_lanes x0[SETS], x1[SETS], x2[SETS], x3[SETS];
        for (int s = 0; s < SETS; s++) {
            /* counter words: the pair's low word (the low half of the lane), its high word,
             * the stream, 0 */
            x0[s] = afv_add_epi64(afv_set1_epi64((long long)(first + j + s * V)), lanes);
            x1[s] = afv_srli_epi64(x0[s], 32);
            x2[s] = stream_word;
            x3[s] = afv_setzero();
        }
        for (int r = 0; r < 10; r++)
            for (int s = 0; s < SETS; s++)
                AF_PHILOX_ROUND(x0[s], x1[s], x2[s], x3[s], key0[r], key1[r]);
        for (int s = 0; s < SETS; s++)
            af_philox_store_uniforms(x0[s], x1[s], x2[s], x3[s], out + 2 * (j + s * V));
    }
#endif
    for (; j < pairs; j++) {
        af_words w = af_philox_draw(seed, stream, first + (uint64_t)j);
        out[2 * j] = af_unit_interval(w.w0, w.w1);
        out[2 * j + 1] = af_unit_interval(w.w2, w.w3);
    }
}

#endif
