"""Internal: the primitives of pyx/vecmath.h applied over arrays, for tests/test_vecmath.py.

Each function takes a contiguous 1-d float32 or float64 array `x` and an output of the same
dtype and size, and runs the primitive of that precision in a plain loop (which GCC
vectorises as it does the kernels' loops). Not part of actfast's API.
"""
cimport vecmath as V
from vecmath cimport real


def exp(const real[::1] x, real[::1] out):
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = V.exp(x[i])


def exp_times(const real[::1] x, const real[::1] m, real[::1] out):
    """exp(x) * m, rounded once (exp_parts)."""
    cdef Py_ssize_t i
    cdef real scale
    for i in range(x.shape[0]):
        out[i] = (V.exp_parts(x[i], &scale) * m[i]) * scale


def expm1(const real[::1] x, real[::1] out):
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = V.expm1(x[i])


def tanh(const real[::1] x, real[::1] out):
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = V.tanh(x[i])


def log1p_unit(const real[::1] z, real[::1] out):
    cdef Py_ssize_t i
    for i in range(z.shape[0]):
        out[i] = V.log1p_unit(z[i])


def gauss(const real[::1] a, real[::1] out):
    """exp(-a^2/2)."""
    cdef Py_ssize_t i
    cdef real scale
    for i in range(a.shape[0]):
        out[i] = V.gauss_parts(a[i], &scale) * scale


def mills_ratio(const real[::1] a, real[::1] out):
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        out[i] = V.mills_ratio(a[i])


def mills_ratio_minus_a(const real[::1] a, real[::1] out):
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        out[i] = V.mills_ratio_minus_a(a[i])


def exprel_small(const real[::1] d, real[::1] out):
    cdef Py_ssize_t i
    for i in range(d.shape[0]):
        out[i] = V.exprel_small(d[i])


def float_at_most(double c):
    """The largest float32 <= c, as a Python float."""
    return V.af_float_at_most(c)


def float_at_least(double c):
    """The smallest float32 >= c, as a Python float."""
    return V.af_float_at_least(c)
