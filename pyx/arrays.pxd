# Checks on ndarrays for the compiled fast paths (_elementwise.run_fast,
# _special.elementwise_fast and grouped_fast): the common call handled without Python-level
# argument handling. And the copies of strided runs to and from contiguous buffers, which
# the loops of both modules compute from.
from cython cimport floating
from libc.string cimport memcpy
cimport numpy as cnp


cdef inline void gather_run(floating* dst, const char* src, Py_ssize_t stride,
                            Py_ssize_t n) noexcept nogil:
    """dst[i] = the element at src + i * stride bytes, i < n. Sixteen at a time through
    registers, stored as one vector: element by element, a load could wait on an earlier store
    to the buffer whose address it seemed to share (0.45 against 0.16-0.19 ns per float32
    element, every other or reversed, in a C test on the Zen 4 machine)."""
    cdef Py_ssize_t i, l, n16 = n - n % 16
    cdef floating values[16]
    for i in range(0, n16, 16):
        for l in range(16):
            values[l] = (<const floating*>(src + (i + l) * stride))[0]
        memcpy(dst + i, values, sizeof(values))
    for i in range(n16, n):
        dst[i] = (<const floating*>(src + i * stride))[0]


cdef inline void scatter_run(char* dst, Py_ssize_t stride, const floating* src,
                             Py_ssize_t n) noexcept nogil:
    """The element at dst + i * stride bytes = src[i], i < n; sixteen at a time loaded as one
    vector (as gather_run's stores)."""
    cdef Py_ssize_t i, l, n16 = n - n % 16
    cdef floating values[16]
    for i in range(0, n16, 16):
        memcpy(values, src + i, sizeof(values))
        for l in range(16):
            (<floating*>(dst + (i + l) * stride))[0] = values[l]
    for i in range(n16, n):
        (<floating*>(dst + i * stride))[0] = src[i]


cdef inline bint native(cnp.ndarray a):
    """In the machine's byte order and aligned: the kernels read and write the memory as C
    floats (a big-endian '>f4' array has the type number of float32 too)."""
    return cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)


cdef inline bint simple(cnp.ndarray a):
    """C-contiguous and native: the loops may take its data pointer as a flat array."""
    return cnp.PyArray_IS_C_CONTIGUOUS(a) and native(a)


cdef inline int float_type(cnp.ndarray a):
    """a's type number when it is a native float32/float64 array of at least one dimension,
    else -1."""
    cdef int type_num = cnp.PyArray_TYPE(a)
    if ((type_num != cnp.NPY_FLOAT and type_num != cnp.NPY_DOUBLE)
            or cnp.PyArray_NDIM(a) == 0 or not native(a)):
        return -1
    return type_num


cdef inline bint has_shape(cnp.ndarray a, int nd, const cnp.npy_intp* dims):
    cdef int d
    if cnp.PyArray_NDIM(a) != nd:
        return False
    for d in range(nd):
        if cnp.PyArray_DIM(a, d) != dims[d]:
            return False
    return True


cdef inline bint like(object a, int type_num, int nd, const cnp.npy_intp* dims, bint flat):
    """a is an ndarray of this type number and shape in native byte order (and C-contiguous
    when `flat`: the loop takes its data pointer as a flat array): the fast paths' test of
    every operand but the first."""
    if type(a) is not cnp.ndarray:
        return False
    return (cnp.PyArray_TYPE(<cnp.ndarray>a) == type_num and has_shape(<cnp.ndarray>a, nd, dims)
            and (simple(<cnp.ndarray>a) if flat else native(<cnp.ndarray>a)))


cdef inline bint writeable_like(object out, int type_num, int nd, const cnp.npy_intp* dims,
                                bint flat):
    """`like`, and writeable: `out` can take the result directly (its overlap with the
    inputs is the caller's to check)."""
    return like(out, type_num, nd, dims, flat) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)


cdef inline bint disjoint(cnp.ndarray a, cnp.ndarray b):
    """The memory extents of a and b (of any shapes) do not overlap; an empty array's is
    nothing."""
    cdef char* a_lo = <char*>cnp.PyArray_DATA(a)
    cdef char* a_hi = a_lo
    cdef char* b_lo = <char*>cnp.PyArray_DATA(b)
    cdef char* b_hi = b_lo
    cdef Py_ssize_t step
    cdef int d
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(b) == 0:
        return True
    for d in range(cnp.PyArray_NDIM(a)):
        step = cnp.PyArray_STRIDE(a, d) * (cnp.PyArray_DIM(a, d) - 1)
        if step < 0:
            a_lo += step
        else:
            a_hi += step
    for d in range(cnp.PyArray_NDIM(b)):
        step = cnp.PyArray_STRIDE(b, d) * (cnp.PyArray_DIM(b, d) - 1)
        if step < 0:
            b_lo += step
        else:
            b_hi += step
    a_hi += cnp.PyArray_ITEMSIZE(a)
    b_hi += cnp.PyArray_ITEMSIZE(b)
    return a_hi <= b_lo or b_hi <= a_lo


cdef extern from *:
    """
    /* No two elements of an array (dims, strides in bytes) share memory. A sufficient test:
     * taken in order of magnitude, the stride of every dimension longer than 1 is at least
     * the span of the smaller ones (true for every layout NumPy makes; false for a view made
     * with as_strided whose elements repeat, and for a few interleaved layouts that do not
     * overlap). A C function, not a `cdef inline` one: called once per call, its loops need
     * not be inlined (tests/test_build.py checks that every `cdef inline` function is). */
    static int actfast_self_disjoint(int nd, const npy_intp* dims, const npy_intp* strides,
                                     npy_intp itemsize) {
        npy_intp sorted_strides[NPY_MAXDIMS], lengths[NPY_MAXDIMS], span = itemsize;
        int n = 0;
        for (int d = 0; d < nd; d++) {   /* the dimensions longer than 1, sorted by stride */
            if (dims[d] > 1) {
                npy_intp stride = strides[d] < 0 ? -strides[d] : strides[d];
                int k = n;
                for (; k > 0 && sorted_strides[k - 1] > stride; k--) {
                    sorted_strides[k] = sorted_strides[k - 1];
                    lengths[k] = lengths[k - 1];
                }
                sorted_strides[k] = stride;
                lengths[k] = dims[d];
                n++;
            }
        }
        for (int k = 0; k < n; k++) {
            if (sorted_strides[k] < span)
                return 0;
            span += sorted_strides[k] * (lengths[k] - 1);
        }
        return 1;
    }
    """
    bint actfast_self_disjoint(int nd, const cnp.npy_intp* dims, const cnp.npy_intp* strides,
                               cnp.npy_intp itemsize)


cdef inline bint self_disjoint(cnp.ndarray a):
    """No two elements of `a` share memory (actfast_self_disjoint's test)."""
    if (cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_IS_C_CONTIGUOUS(a)
            or cnp.PyArray_IS_F_CONTIGUOUS(a)):
        return True
    return actfast_self_disjoint(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a),
                                 cnp.PyArray_STRIDES(a), cnp.PyArray_ITEMSIZE(a))


cdef inline bint independent_or_same(cnp.ndarray a, cnp.ndarray out):
    """True when `a` is the very same view as `out` (address, shape and strides) and no two
    elements of it share memory (plain in place: safe elementwise), or their memory extents
    do not overlap. (An array of another shape at out's address, such as out's first row,
    is not the same view: logsumexp's backward took one for it until b4643f5.)"""
    cdef int d
    cdef bint same = (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(out)
                      and cnp.PyArray_NDIM(a) == cnp.PyArray_NDIM(out))
    for d in range(cnp.PyArray_NDIM(a) if same else 0):
        if (cnp.PyArray_STRIDE(a, d) != cnp.PyArray_STRIDE(out, d)
                or cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(out, d)):
            same = False
    return (same and self_disjoint(out)) or disjoint(a, out)


cdef inline bint apart(cnp.ndarray a, cnp.ndarray b):
    """The memory of a and b (of any shapes) does not overlap (not even as the same view)."""
    return cnp.PyArray_DATA(a) != cnp.PyArray_DATA(b) and disjoint(a, b)
