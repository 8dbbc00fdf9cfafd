cdef extern from "stream.h" nogil:
    void af_stream_copy(char* dst, const char* src, size_t bytes) noexcept
    void af_stream_fence() noexcept

cdef enum:
    # A call whose operands take this many bytes or more writes its output with streaming
    # stores when its kernel is memory-bound: above the 32 MiB last-level cache of these
    # machines, relu's forward at 10^7 elements went 1.2-1.3x faster; below it, up to 2x
    # slower (the next call's reads miss). A transcendental kernel is bound by its
    # arithmetic, and the buffer's extra pass cost it 5-15 %.
    STREAM_FROM = 32 << 20
