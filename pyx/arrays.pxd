# Checks on ndarrays for the compiled fast paths (_elementwise.run_fast,
# _special.elementwise_fast): the common call handled without Python-level argument handling.
cimport numpy as cnp


cdef inline bint native(cnp.ndarray a):
    """In the machine's byte order and aligned: the kernels read and write the memory as C
    floats (a big-endian '>f4' array has the type number of float32 too)."""
    return cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int d
    if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b):
        return False
    for d in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True


cdef inline bint independent_or_same(cnp.ndarray a, cnp.ndarray out):
    """True when `a` is the very same view as `out` (plain in place: safe elementwise) or
    their memory extents do not overlap."""
    cdef int d
    cdef char* a_lo = <char*>cnp.PyArray_DATA(a)
    cdef char* a_hi = a_lo
    cdef char* o_lo = <char*>cnp.PyArray_DATA(out)
    cdef char* o_hi = o_lo
    cdef Py_ssize_t step
    cdef bint same = a_lo == o_lo
    for d in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_STRIDE(a, d) != cnp.PyArray_STRIDE(out, d):
            same = False
    if same or cnp.PyArray_SIZE(a) == 0:
        return True
    for d in range(cnp.PyArray_NDIM(a)):
        step = cnp.PyArray_STRIDE(a, d) * (cnp.PyArray_DIM(a, d) - 1)
        if step < 0:
            a_lo += step
        else:
            a_hi += step
        step = cnp.PyArray_STRIDE(out, d) * (cnp.PyArray_DIM(out, d) - 1)
        if step < 0:
            o_lo += step
        else:
            o_hi += step
    a_hi += cnp.PyArray_ITEMSIZE(a)
    o_hi += cnp.PyArray_ITEMSIZE(out)
    return a_hi <= o_lo or o_hi <= a_lo
