/* Streaming (non-temporal) stores: a copy that writes around the caches.
 *
 * An ordinary store to a line that is not in cache first reads the line (to own it): a kernel
 * whose output does not fit in the last-level cache moves three times the output's bytes
 * instead of two. Stores that bypass the caches skip that read; below the cache's size they
 * cost (the next call's reads miss). The elementwise driver computes a block into a small
 * buffer and streams it out with af_stream_copy when a call's operands exceed the cache and
 * its output is an array of its own: in place, the output's lines were just read as the
 * input's and are in the cache already (streaming them out was measured up to 1.5x slower).
 *
 * Streamed stores are weakly ordered: af_stream_fence makes them visible before the thread
 * reports its work done. */
#ifndef ACTFAST_STREAM_H
#define ACTFAST_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX__)
#include <immintrin.h>
#define AF_STREAM_BYTES 32
#elif defined(__SSE2__)
#include <emmintrin.h>
#define AF_STREAM_BYTES 16
#else
#define AF_STREAM_BYTES 0
#endif

/* Copy `bytes` bytes from src to dst (not overlapping). Whole vectors from dst's first
 * vector boundary are streamed; the bytes before and after it are copied with ordinary
 * stores. */
static inline void af_stream_copy(char* dst, const char* src, size_t bytes) {
#if AF_STREAM_BYTES
    size_t head = (AF_STREAM_BYTES - (uintptr_t)dst % AF_STREAM_BYTES) % AF_STREAM_BYTES;
    size_t i;
    if (head > bytes)
        head = bytes;
    memcpy(dst, src, head);
    for (i = head; i + AF_STREAM_BYTES <= bytes; i += AF_STREAM_BYTES) {
#if AF_STREAM_BYTES == 32
        _mm256_stream_si256((__m256i*)(dst + i), _mm256_loadu_si256((const __m256i*)(src + i)));
#else
        _mm_stream_si128((__m128i*)(dst + i), _mm_loadu_si128((const __m128i*)(src + i)));
#endif
    }
    memcpy(dst + i, src + i, bytes - i);
#else
    memcpy(dst, src, bytes);
#endif
}

/* Software prefetch of the 64-byte lines of [p, p + bytes) into the caches, for reading. On the
 * Intel machine under KVM here (README's Benchmarks) the hardware prefetcher did not run ahead
 * of a loop that spends tens of instructions per element: such a loop over arrays beyond the
 * last-level cache waited for memory (gelu's float32 forward on one thread: 0.83 ns per element
 * at 10^6 elements, 1.50 at 10^7; with its input prefetched 16 KiB ahead, 0.79 at both). A
 * prefetch never faults; the callers keep to their arrays anyway. */
static inline void af_prefetch(const char* p, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64)
        __builtin_prefetch(p + i, 0, 3);
}

/* Is this an AMD CPU? On the AMD EPYC (Zen 4) machine under KVM here, the hardware prefetcher
 * keeps ahead of the loops bound by their arithmetic beyond the cache, and af_prefetch (and
 * the steps of PREFETCH_STEP bytes it comes with), which helps them on the Intel machines,
 * costs time: the backwards took 1.02-1.27x the time (float32 at 10^7, float64 at 10^6 and
 * 10^7), the forwards 0.98-1.09x (A/Bs at 10^7, 2 threads, in the commit messages of 55d2365,
 * 7bcbda0, 9606243); _elementwise.pyx leaves it out on AMD's CPUs. (Streamed stores through a
 * buffer cost those loops time there too, float32 forwards 1.02-1.43x, backwards 1.1-1.6x,
 * and on the Intel Xeon of model 207: no loop with an exponential streams its stores.) */
static inline int af_amd_cpu(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

/* An output written with streaming stores from a small buffer that the caller fills piece by
 * piece, each piece's elements (of `unit` bytes) appended at buf + held. af_stream_push
 * streams out the buffer up to dst's last `align`-byte boundary reached (all of it when
 * `last`) and moves the rest (less than `align` bytes) to the buffer's start, so that pieces
 * of any length leave no line of dst written by both streaming and ordinary stores but at
 * dst's two ends. (Streamed piece by piece instead, each piece's end shared a cache line with
 * the next piece's start whenever it was not on a boundary, as NumPy's large arrays, 16
 * bytes past one, make it: prelu's float32 forward at 10^7 took twice the time.) The buffer
 * holds a piece plus `align` bytes. For a dst that is not a multiple of `unit` the cut moves
 * to the next whole element, so that the buffer holds whole elements. */
typedef struct {
    char* dst;        /* where the buffer's first byte goes */
    char* buf;
    size_t held;      /* bytes in the buffer */
    size_t align, unit;
} af_streamer;

static inline af_streamer af_streamer_to(char* dst, char* buf, size_t align, size_t unit) {
    af_streamer s = {dst, buf, 0, align, unit};
    return s;
}

static inline void af_stream_push(af_streamer* s, size_t bytes, int last) {
    size_t out, past;
    s->held += bytes;
    out = s->held;
    if (!last) {
        past = (uintptr_t)(s->dst + out) % s->align;
        past -= past % s->unit;   /* (whole elements) */
        out = past < out ? out - past : 0;
    }
    if (out == 0)
        return;
    af_stream_copy(s->dst, s->buf, out);
    s->dst += out;
    s->held -= out;
    memmove(s->buf, s->buf + out, s->held);
}

static inline void af_stream_fence(void) {
#if AF_STREAM_BYTES
    _mm_sfence();
#endif
}

#endif
