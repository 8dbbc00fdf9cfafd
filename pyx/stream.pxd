cdef extern from "stream.h" nogil:
    void af_stream_copy(char* dst, const char* src, size_t bytes) noexcept
    void af_stream_fence() noexcept
    void af_prefetch(const char* p, size_t bytes) noexcept
    bint af_amd_cpu() noexcept
    ctypedef struct af_streamer:
        size_t held
    af_streamer af_streamer_to(char* dst, char* buf, size_t align, size_t unit) noexcept
    void af_stream_push(af_streamer* s, size_t bytes, bint last) noexcept

cdef enum:
    # A call whose operands take this many bytes or more writes its output with streaming
    # stores when its kernel is memory-bound: above the 32 MiB last-level cache of these
    # machines, relu's forward at 10^7 elements went 1.2-1.3x faster; below it, up to 2x
    # slower (the next call's reads miss). Most transcendental kernels are bound by their
    # arithmetic, and the buffer's extra pass cost them 5-15 %; the few that are not say so
    # in actfast/catalogue.py (Kernel.streamed).
    STREAM_FROM = 32 << 20
    # Bytes of an AVX-512 register (two AVX2 ones): a streamed output starts from such a
    # boundary (the elements before it stored directly), so no vector store crosses a cache
    # line
    VECTOR = 64
    # Output bytes computed into the buffer per step when streaming: with 2-4 KiB, loads and
    # streamed stores alternated in longer phases, and the memory-bound kernels at 10^7 took
    # 1.1-1.9x the time
    STREAM_BYTES = 512
    # A call whose operands take this many bytes or more, with a kernel that is not cheap,
    # prefetches its contiguous inputs (af_prefetch): PREFETCH_AHEAD bytes ahead of the
    # elements computed, PREFETCH_STEP bytes at a time (a kernel call each). On the Intel
    # machine, 10^6 elements: float64 backwards (24 MB) 0-17 % faster; float32 backwards
    # (12 MB) and float64 forwards (16 MB) from 9 % slower to 17 % faster, left out. Not on
    # AMD's CPUs, where it costs time (af_amd_cpu)
    PREFETCH_FROM = 16 << 20
    PREFETCH_AHEAD = 16384
    PREFETCH_STEP = 1024


cdef inline Py_ssize_t to_vector_boundary(const void* p, size_t itemsize) noexcept nogil:
    """Elements of `itemsize` bytes from p to its next VECTOR boundary (0 on one)."""
    return <Py_ssize_t>(((VECTOR - <size_t>p % VECTOR) % VECTOR) // itemsize)
