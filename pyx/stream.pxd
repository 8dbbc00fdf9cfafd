cdef extern from "stream.h" nogil:
    void af_stream_copy(char* dst, const char* src, size_t bytes) noexcept
    void af_stream_fence() noexcept
