cdef extern from "stream.h" nogil:
    void af_stream_copy(char* dst, const char* src, size_t bytes) noexcept
    void af_stream_fence() noexcept

cdef enum:
    # A call whose operands take this many bytes or more writes its output with streaming
    # stores when its kernel is memory-bound: above the 32 MiB last-level cache of these
    # machines, relu's forward at 10^7 elements went 1.2-1.3x faster; below it, up to 2x
    # slower (the next call's reads miss). Most transcendental kernels are bound by their
    # arithmetic, and the buffer's extra pass cost them 5-15 %; the few that are not say so
    # in actfast/catalogue.py (Kernel.streamed).
    STREAM_FROM = 32 << 20
