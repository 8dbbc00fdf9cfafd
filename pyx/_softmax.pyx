"""Loops of the softmax family: softmax, softmin, log_softmax, logsumexp, forward and backward.

The Python layer (actfast/softmax.py) hands over C-contiguous arrays viewed as
(outer, n, inner): the reduction runs along n, the middle axis. inner == 1 is the last-axis
case ("row mode": a row is n contiguous elements, the vector lanes run along it); inner > 1
("column mode") keeps the contiguous inner dimension as the vector dimension and walks the
axis with stride `inner`, so a non-last axis needs no transposed copy.

One canonical order of operations per row
-----------------------------------------
Every floating-point result depends on the order of the additions, so the order is fixed by
the row alone, never by the thread count, the mode or the layout:

* The row is cut into blocks of BLOCK elements from its start.
* In a block b: m_b = max of the (unmasked, non-NaN) elements, exact in any order;
  shift_b = m_b when finite, else 0 (PyTorch's rule for logsumexp: then x - shift never
  meets inf - inf); e_i = exp(x_i - shift_b) in the input's precision; and
  s_b = sum of e_i in double, element i of the block going to lane i % LANES, the lanes
  added in the fixed tree of lane_total().
* The row: M = max_b m_b, R = shift(M), S = sum over b in order of s_b * exp(shift_b - R).
  softmax_i = e_i * (exp(shift_b - R) / S), log_softmax_i = (x_i - R) - log S,
  logsumexp = R + log S.

The block is the unit of parallel work (threads take whole blocks, and their per-block results
are combined in block order by one thread), and a row of one block is the usual two-pass
softmax; a long row is read from memory once for (m_b, s_b) with the block in L1 for the
second look, which is the online max-and-sum of Milakov & Gimelshein (2018) with the rescaling
done once per block rather than once per element. Row mode and column mode compute the same
expressions in the same order, with the same exp (pyx/softmax_kernels.pxd, branch-free, so a
vector lane and a scalar tail give the same bits), hence identical results. Accumulating float32
data in double makes the sum exact to ~1e-16 relative whatever the row length.

Backward: the dot product sum(g * y) (or sum(g)) follows the same block and lane order.
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
from libc.math cimport log, INFINITY, NAN
from libc.stdint cimport uint8_t
from arrays cimport apart, float_type, independent_or_same, like, simple, writeable_like
from stream cimport STREAM_FROM, af_amd_cpu, af_stream_copy, af_stream_fence

cimport softmax_kernels as K

import numpy as np

cnp.import_array()

ctypedef fused real:
    float
    double

cdef enum:
    BLOCK = 2048        # elements per block along the axis (8 KiB of float32: stays in L1)
    LANES = 16          # partial sums per block (4 AVX2 registers of double: hides add latency)
    COLS = 1024         # columns per work unit in column mode (only speed depends on it)
    # Row mode streams the outputs of log_softmax's forward and of softmax's (and softmin's)
    # backward from the output (rows of up to STREAM_ROW elements) when the call's operands
    # take STREAM_FROM bytes or more (see pyx/stream.h) and the output is an array of its
    # own: each block's outputs are computed into a buffer in L1 and copied out with
    # streaming stores, so that the output's lines are not read from memory first.
    # Two threads, float32, plain against streamed: the backward at (4096, 4096) 3.55 ->
    # 3.04 ms, log_softmax at (4096, 4096) 4.40 -> 4.19 ms and at (8, 10^6) 1.90 -> 1.63 ms.
    # Not streamed, measured slower so (two threads, streamed against plain, (4096, 4096)):
    # - an output in place of an input (its lines are in the cache already, just read):
    #   log_softmax 3.41 against 3.11 ms, the backward into grad_output 3.28 against 3.07,
    #   the backwards from x (in place on the forward's output) 5.8 against 5.2;
    # - log_softmax's backward from the output, whose second pass reads y from memory while
    #   the stores stream (4.64 against 2.97 ms; float64 (2048, 4096) 5.45 against 3.59),
    #   prefetching y in the first pass as well did not help;
    # - the backward's longer rows, whose grad_output and y come back from L3 for the second
    #   pass (at (8, 10^6) 1.61 -> 1.73 ms streamed);
    # - softmax's forward, whose exps would have to be kept out of the output until the
    #   row's sum is known (in a row buffer: the same time at (4096, 4096)).
    STREAM_ROW = 32768

# forward operations
cdef enum:
    SOFTMAX = 0         # softmax(sign * x): sign = -1 is softmin
    LOG_SOFTMAX = 1
    LOGSUMEXP = 2       # one value per row, into rowvals
    SOFTMAX_SCALED = 3  # rowvals * softmax(x): logsumexp's backward

# backward operations (from the forward's output)
cdef enum:
    BWD_SOFTMAX = 0          # sign * y * (g - sum(g y)), y = softmax(sign * x)
    BWD_LOG_SOFTMAX = 1      # g - exp(z) sum(g), z = log_softmax(x)
    BWD_LOG_SOFTMAX_PROB = 2 # g - y sum(g), y = softmax(x) (log_softmax's backward from x)

FORWARD_OPS = {"softmax": SOFTMAX, "log_softmax": LOG_SOFTMAX, "logsumexp": LOGSUMEXP,
               "softmax_scaled": SOFTMAX_SCALED}
BACKWARD_OPS = {"softmax": BWD_SOFTMAX, "log_softmax": BWD_LOG_SOFTMAX,
                "log_softmax_prob": BWD_LOG_SOFTMAX_PROB}
BLOCK_SIZE = BLOCK
N_LANES = LANES
STREAM_FROM_BYTES = STREAM_FROM
# the operands' bytes from which row mode streams its outputs (STREAM_FROM but in the tests)
cdef Py_ssize_t stream_from = STREAM_FROM
# Does a backward's dot product over a row taken whole by one thread prefetch ahead (row_dot)?
# Not on AMD's CPUs (stream.h's af_amd_cpu): on the Zen 4 machine, float32, 2 threads, softmax's
# backward took 0.89-0.99x the time without (0.89-0.90 at 4096 x 4096), log_softmax's (a sum
# of g alone) 0.95-1.02x.
cdef bint PREFETCH_DOT = not af_amd_cpu()
PREFETCHES_DOT = PREFETCH_DOT    # for the tests


def set_stream_from(Py_ssize_t nbytes):
    """Set the bytes of operands from which row mode streams its outputs; return the old
    value (for the tests and benchmarks: they compare both paths on small arrays)."""
    global stream_from
    old, stream_from = stream_from, nbytes
    return old


def exp(cnp.ndarray x not None, cnp.ndarray out not None, bint nonpositive=False):
    """The kernels' exp on a contiguous float32/float64 array (for the accuracy tests):
    exp_f32/exp_f64, or with `nonpositive` the hot loop's variant (valid for x <= 43)."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef float* xf = <float*>cnp.PyArray_DATA(x)
    cdef float* of = <float*>cnp.PyArray_DATA(out)
    cdef double* xd = <double*>cnp.PyArray_DATA(x)
    cdef double* od = <double*>cnp.PyArray_DATA(out)
    if x.dtype != out.dtype or x.dtype not in (np.float32, np.float64) or \
            not (x.flags.c_contiguous and out.flags.c_contiguous) or out.size != n:
        raise ValueError("exp(): x and out must be contiguous float32/float64 of one size")
    cdef bint single = cnp.PyArray_ITEMSIZE(x) == 4
    with nogil:
        if single:
            exp_loop(xf, of, n, nonpositive)
        else:
            exp_loop(xd, od, n, nonpositive)


cdef void exp_loop(const real* x, real* out, Py_ssize_t n, bint nonpositive) noexcept nogil:
    """exp()'s loop: out = vexp(x), or vexp_capped(x) with nonpositive."""
    cdef Py_ssize_t i
    if nonpositive:
        for i in range(n):
            out[i] = vexp_capped(x[i])
    else:
        for i in range(n):
            out[i] = vexp(x[i])


# ---- small shared pieces -------------------------------------------------------------------

cdef inline real vexp(real x) noexcept nogil:
    """exp for any x."""
    if real is float:
        return K.exp_f32(x)
    else:
        return K.exp_f64(x)


cdef inline real vexp_capped(real x) noexcept nogil:
    """exp for x up to capped_limit(x): the hot loops' x - max <= 0 (and the discarded values
    of masked elements), log_softmax's outputs; the same bits as vexp there, in less time
    (vexp clamps twice and scales in two halves: 1.4x as long in a loop)."""
    if real is float:
        return K.exp_f32_nonpositive(x)
    else:
        return K.exp_f64_nonpositive(x)


cdef inline real capped_limit(real x) noexcept nogil:
    """The largest argument of vexp_capped in x's type (x's value unused)."""
    return 43 if real is float else 354


cdef bint in_capped_range(const real* x, Py_ssize_t m) noexcept nogil:
    """Are x[0 .. m-1] all arguments of vexp_capped (NaN and -inf are)?"""
    cdef int above = 0
    cdef Py_ssize_t i
    for i in range(m):
        above |= x[i] > capped_limit(x[i])
    return above == 0


cdef inline real vmax(const real* x, const uint8_t* mask, Py_ssize_t n, real sign) noexcept nogil:
    if real is float:
        return K.max_f32(x, mask, n, sign)
    else:
        return K.max_f64(x, mask, n, sign)


# The last pass over an unmasked block of a row: plain loops GCC vectorises, the same
# operations as the masked and column loops. (Streaming: see STREAM_ROW.)

cdef inline void vscale(real* out, const real* e, Py_ssize_t m, real fs,
                        real sc) noexcept nogil:
    """out = (e * fs) * sc: softmax (see split_factor)."""
    cdef Py_ssize_t i
    for i in range(m):
        out[i] = (e[i] * fs) * sc


cdef inline void vlog(real* out, const real* x, Py_ssize_t m, real sign, real r, real lhi,
                      real llo) noexcept nogil:
    """out = ((sign x - r) - lhi) - llo: log_softmax (see row_block_finish)."""
    cdef Py_ssize_t i
    for i in range(m):
        out[i] = ((sign * x[i] - r) - lhi) - llo


cdef inline double shift_of(double m) noexcept nogil:
    # The max when finite (+ 0.0 turns -0 into +0, so the sign of a zero max never shows),
    # else 0: with an infinite max, x - max would be inf - inf, and the unshifted terms are
    # already right (exp(-inf) = 0, exp(+inf) = inf).
    return m + 0.0 if m - m == 0.0 else 0.0


cdef inline double lane_total(const double* acc, Py_ssize_t stride) noexcept nogil:
    """The fixed summation tree over the LANES partial sums acc[l * stride]."""
    cdef double t[8]
    cdef int l
    for l in range(8):
        t[l] = acc[l * stride] + acc[(l + 8) * stride]
    for l in range(4):
        t[l] = t[l] + t[l + 4]
    return (t[0] + t[2]) + (t[1] + t[3])


cdef inline double canonical_nan(double d) noexcept nogil:
    """d, or the positive quiet NaN when d is NaN. The backward's dot product keeps the sign
    of whichever NaN operand an addition's instruction keeps (inf + -inf gives a negative one
    on x86, an input NaN its own), and which operand that is depends on how GCC ordered the
    terms of a commutative addition in each loop: row and column mode gave NaNs of opposite
    signs for the same row (a grad_output with +inf, -inf and NaN). PyTorch's is positive."""
    return NAN if d != d else d


cdef inline bint nan_stats(double M, double R, double S) noexcept nogil:
    """A row's statistics are NaN (a NaN in it, or inf - inf): then its outputs are NaN."""
    return M != M or R != R or S != S


cdef void canonical_nans(real* out, Py_ssize_t m, Py_ssize_t stride) noexcept nogil:
    """The NaNs among out[0], out[stride], ... out[(m - 1) stride] made the positive quiet
    NaN, in a row whose statistics are NaN: a NaN output's sign came from whichever NaN
    operand (of x, of the row's max or sum) an instruction kept, which differs between row
    mode's and column mode's loops (as canonical_nan's)."""
    cdef Py_ssize_t i
    for i in range(m):
        if out[i * stride] != out[i * stride]:
            out[i * stride] = NAN


cdef inline Py_ssize_t n_blocks(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


cdef inline double rescale(double shift_b, double R) noexcept nogil:
    """exp(shift_b - R) (both finite): 1 without the exp for the block holding the row's max,
    which is every short row's only block (exp(0) is exactly 1: the same bits)."""
    return 1.0 if shift_b == R else K.exp_f64(shift_b - R)


cdef void combine(const double* bmax, const double* bsum, Py_ssize_t nb, Py_ssize_t stride,
                  double* M, double* R, double* S) noexcept nogil:
    """The row's max M, shift R and sum S (relative to R) from its blocks' (m_b, s_b)."""
    cdef double mx = -INFINITY, r, s = 0.0, v
    cdef Py_ssize_t b
    for b in range(nb):
        v = bmax[b * stride]
        mx = v if v > mx else mx
    r = shift_of(mx)
    for b in range(nb):
        s += bsum[b * stride] * rescale(shift_of(bmax[b * stride]), r)
    M[0] = mx
    R[0] = r
    S[0] = s


cdef inline double softmax_factor(int op, double shift_b, double M, double R, double S,
                                  double scale) noexcept nogil:
    """What the stored e_i of block b are multiplied by."""
    if M == INFINITY:
        return NAN      # x - max = inf - inf for the +inf elements: PyTorch's NaN row
    return rescale(shift_b, R) / S * scale


cdef inline void split_factor(double f, real* fs, real* sc) noexcept nogil:
    """y = (e * fs) * sc gives e * f with the rounding of the data's type: fs = f rounded and
    sc = 1, except where f is below the type's smallest normal number (a block whose max is
    ~87 (float) below the row's): there fs = f * 2^k, sc = 2^-k, so that e * f rounds once,
    into the subnormal range, instead of f losing digits first."""
    if real is float:
        if 0.0 < f < 1.1754943508222875e-38:
            fs[0] = <float>(f * 1.8446744073709552e19)     # 2^64
            sc[0] = <float>5.421010862427522e-20           # 2^-64
            return
    else:
        if 0.0 < f < 2.2250738585072014e-308:
            fs[0] = f * 1.3407807929942597e154             # 2^512
            sc[0] = 7.458340731200207e-155                 # 2^-512
            return
    fs[0] = <real>f
    sc[0] = 1


cdef inline void split_log(double L, real* hi, real* lo) noexcept nogil:
    """L as hi + lo in the data's type (lo = 0 for double)."""
    hi[0] = <real>L
    lo[0] = <real>(L - <double>hi[0]) if L - L == 0.0 else 0


# ---- row mode: one block of a contiguous row -----------------------------------------------

cdef double row_sum(const real* e, Py_ssize_t m) noexcept nogil:
    cdef double acc[LANES]
    cdef Py_ssize_t j = 0, l
    for l in range(LANES):
        acc[l] = 0.0
    while j + LANES <= m:
        for l in range(LANES):
            acc[l] += <double>e[j + l]
        j += LANES
    for l in range(m - j):
        acc[l] += <double>e[j + l]
    return lane_total(acc, 1)


cdef inline void prefetch_lines(const real* p) noexcept nogil:
    """Prefetch ahead of the LANES elements at p (one line of float32, two of float64)."""
    K.prefetch_ahead(p)
    if real is double:
        K.prefetch_ahead(p + 8)


cdef double row_dot(const real* g, const real* y, const uint8_t* mask, Py_ssize_t m,
                    double* scratch, bint ahead) noexcept nogil:
    """sum(g * y) over the block (sum(g) when y is NULL), masked elements left out. The
    unmasked loops read the row from memory; with `ahead` they prefetch ahead
    (K.prefetch_ahead): for a row taken whole by one thread, whose other passes run in L1
    meanwhile. Not for blocks of a long row split between threads, which each read a long
    run of blocks that the hardware prefetchers follow (at (8, 10^6), two threads, the
    backward took 1.50 ms with the prefetches, 1.35 ms without).

    With a mask, the terms go through `scratch` (m doubles) first: GCC 12 miscompiles a lane
    reduction whose terms are selected in the same loop (`acc[l] += mask ? t : 0` under -O3
    gives wrong sums), so the select is a map and the sum is the unconditional lane loop."""
    cdef double acc[LANES]
    cdef Py_ssize_t j = 0, l, i
    if mask != NULL:
        if y != NULL:
            for i in range(m):
                scratch[i] = <double>(g[i] * y[i]) if mask[i] else 0.0
        else:
            for i in range(m):
                scratch[i] = <double>g[i] if mask[i] else 0.0
        return row_sum[double](scratch, m)
    for l in range(LANES):
        acc[l] = 0.0
    if y != NULL:
        while j + LANES <= m:
            if ahead:
                prefetch_lines(g + j)
                prefetch_lines(y + j)
            for l in range(LANES):
                acc[l] += <double>(g[j + l] * y[j + l])
            j += LANES
        for l in range(m - j):
            acc[l] += <double>(g[j + l] * y[j + l])
    else:
        while j + LANES <= m:
            if ahead:
                prefetch_lines(g + j)
            for l in range(LANES):
                acc[l] += <double>g[j + l]
            j += LANES
        for l in range(m - j):
            acc[l] += <double>g[j + l]
    return lane_total(acc, 1)


cdef void row_block_exps(const real* x, real* e, Py_ssize_t m, real sign,
                         double bmax) noexcept nogil:
    """e = exp(sign x - shift_b) over an unmasked block whose max is bmax (e may be x)."""
    cdef real shift = <real>shift_of(bmax)
    cdef Py_ssize_t i
    if bmax == INFINITY:
        # shift = 0 and arguments up to the float max: the exp for any x (the same bits as
        # the capped one wherever both are valid)
        for i in range(m):
            e[i] = vexp(sign * x[i] - shift)
    else:
        for i in range(m):
            e[i] = vexp_capped(sign * x[i] - shift)


cdef void row_block_stats(const real* x, const uint8_t* mask, real* e, Py_ssize_t m,
                          real sign, double* bmax, double* bsum) noexcept nogil:
    """(m_b, s_b) of one block; e receives exp(sign x - shift_b) (0 where masked). e may be x.

    The sum is a second pass over e, in L1: fused into the exp loop, GCC keeps the lane sums
    in memory and the loop runs slower."""
    cdef real mx = vmax(x, mask, m, sign)
    cdef real shift = <real>shift_of(mx)
    cdef Py_ssize_t i
    bmax[0] = mx
    if mask == NULL:
        row_block_exps(x, e, m, sign, mx)
    elif mx == INFINITY:
        for i in range(m):
            e[i] = vexp(sign * x[i] - shift) if mask[i] else 0
    else:
        for i in range(m):
            e[i] = vexp_capped(sign * x[i] - shift) if mask[i] else 0
    bsum[0] = row_sum(e, m)


cdef void row_block_finish(int op, const real* x, const uint8_t* mask, real* out,
                           Py_ssize_t m, real sign, double bmax, double M, double R, double S,
                           double scale) noexcept nogil:
    """row_block_outputs, and in a row whose statistics are NaN its NaNs made positive."""
    row_block_outputs(op, x, mask, out, m, sign, bmax, M, R, S, scale)
    if nan_stats(M, R, S):
        canonical_nans(out, m, 1)


cdef inline void row_block_outputs(int op, const real* x, const uint8_t* mask, real* out,
                                   Py_ssize_t m, real sign, double bmax, double M, double R,
                                   double S, double scale) noexcept nogil:
    """The outputs of one block, from the row's (M, R, S) and the block's e, in out.

    log_softmax = ((x - R) - L_hi) - L_lo in the data's type, L = log S = L_hi + L_lo: both
    x - R and -L are <= 0, so nothing cancels, and x - R is exact near the max (Sterbenz);
    the result is within ~1.5 ulp. softmax = (e * fs) * sc (split_factor).
    """
    cdef Py_ssize_t i
    cdef double f
    cdef real r = <real>R, lhi, llo, fs, sc
    if op == LOG_SOFTMAX:
        split_log(log(S) if M != INFINITY else NAN, &lhi, &llo)
        if mask == NULL:
            vlog(out, x, m, sign, r, lhi, llo)
        else:
            for i in range(m):
                out[i] = ((sign * x[i] - r) - lhi) - llo if mask[i] else -INFINITY
        return
    if op == SOFTMAX_SCALED:
        # the backward of logsumexp: the factor may be anything, so the product in double
        if M == INFINITY and S == INFINITY:
            # logsumexp = +inf without NaN: PyTorch's g * exp(x - lse) is g * 0 for finite x
            # and NaN for x = +inf
            for i in range(m):
                if mask == NULL or mask[i]:
                    out[i] = <real>(scale * (NAN if x[i] == INFINITY else 0.0))
                else:
                    out[i] = 0
            return
        f = softmax_factor(op, shift_of(bmax), M, R, S, scale)
        for i in range(m):
            out[i] = <real>(<double>out[i] * f) if mask == NULL or mask[i] else 0
        return
    split_factor(softmax_factor(op, shift_of(bmax), M, R, S, 1.0), &fs, &sc)
    if mask == NULL:
        vscale(out, out, m, fs, sc)
    else:
        for i in range(m):
            out[i] = (out[i] * fs) * sc if mask[i] else 0


cdef void row_block_backward(int op, const real* g, const real* y, const uint8_t* mask,
                             real* out, Py_ssize_t m, real sign, real dot) noexcept nogil:
    """grad_input of one block from the row's dot product (rounded to the data's type: the
    products and differences here are those of the data's precision, as in PyTorch)."""
    cdef Py_ssize_t i
    cdef bint capped
    cdef int above
    if op == BWD_SOFTMAX:
        if mask == NULL:
            for i in range(m):
                out[i] = sign * (y[i] * (g[i] - dot))
        else:
            for i in range(m):
                out[i] = sign * (y[i] * (g[i] - dot)) if mask[i] else 0
    elif op == BWD_LOG_SOFTMAX:
        # exp(y) by vexp_capped, whose range holds every output of log_softmax (<= 0): at
        # (1024, 1000), one thread, 1.2-1.3x faster than by vexp; a block with a y beyond
        # it (no log_softmax gives one) again by vexp. The check rides along the loop when
        # out is neither input (in place, or masked, it comes first).
        if (mask == NULL and <const void*>out != <const void*>y
                and <const void*>out != <const void*>g):
            above = 0
            for i in range(m):
                out[i] = g[i] - vexp_capped(y[i]) * dot
                above |= y[i] > capped_limit(y[i])
            if above == 0:
                return
            capped = False
        else:
            capped = in_capped_range(y, m)
        if mask == NULL and capped:
            for i in range(m):
                out[i] = g[i] - vexp_capped(y[i]) * dot
        elif mask == NULL:
            for i in range(m):
                out[i] = g[i] - vexp(y[i]) * dot
        elif capped:
            for i in range(m):
                out[i] = g[i] - vexp_capped(y[i]) * dot if mask[i] else 0
        else:
            for i in range(m):
                out[i] = g[i] - vexp(y[i]) * dot if mask[i] else 0
    else:
        if mask == NULL:
            for i in range(m):
                out[i] = g[i] - y[i] * dot
        else:
            for i in range(m):
                out[i] = g[i] - y[i] * dot if mask[i] else 0


cdef inline const uint8_t* offset(const uint8_t* mask, Py_ssize_t k) noexcept nogil:
    return mask + k if mask != NULL else NULL


cdef void forward_row(int op, const real* x, const uint8_t* mask, real* out, Py_ssize_t n,
                      real sign, real* rowval, real* scratch, double* bmax,
                      double* bsum, bint stream) noexcept nogil:
    """A whole row in one thread. bmax, bsum: n_blocks(n) doubles each; scratch: BLOCK reals
    (the exps of log_softmax and logsumexp, which do not keep them; with stream, then each
    block's outputs of log_softmax before they are streamed to out)."""
    cdef Py_ssize_t nb = n_blocks(n), b, lo, m
    cdef bint store = op == SOFTMAX or op == SOFTMAX_SCALED
    cdef double M, R, S, scale
    for b in range(nb):
        lo = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - lo)
        row_block_stats(x + lo, offset(mask, lo), out + lo if store else scratch, m, sign,
                        &bmax[b], &bsum[b])
    combine(bmax, bsum, nb, 1, &M, &R, &S)
    if op == LOGSUMEXP:
        rowval[0] = <real>canonical_nan(R + log(S))
        return
    scale = <double>rowval[0] if op == SOFTMAX_SCALED else 1.0
    for b in range(nb):
        lo = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - lo)
        row_block_finish(op, x + lo, offset(mask, lo), scratch if stream else out + lo, m,
                         sign, bmax[b], M, R, S, scale)
        if stream:
            af_stream_copy(<char*>(out + lo), <char*>scratch, m * sizeof(real))
    if stream:
        af_stream_fence()


cdef void backward_row(int op, const real* g, const real* y, const uint8_t* mask, real* out,
                       Py_ssize_t n, double sign, double* scratch, bint stream) noexcept nogil:
    """A whole row in one thread. scratch: BLOCK doubles (the masked dot's terms; with
    stream, then each block's outputs before they are streamed to out)."""
    cdef Py_ssize_t nb = n_blocks(n), b, lo, m
    cdef double dot = 0.0
    cdef const real* yb
    for b in range(nb):
        lo = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - lo)
        yb = y + lo if op == BWD_SOFTMAX else NULL
        dot += row_dot(g + lo, yb, offset(mask, lo), m, scratch, PREFETCH_DOT)
    dot = canonical_nan(dot)
    for b in range(nb):
        lo = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - lo)
        row_block_backward(op, g + lo, y + lo, offset(mask, lo),
                           <real*>scratch if stream else out + lo, m, <real>sign, <real>dot)
        if stream:
            af_stream_copy(<char*>(out + lo), <char*>scratch, m * sizeof(real))
    if stream:
        af_stream_fence()


# ---- column mode: w adjacent columns, the axis walked with stride `inner` ------------------
# The same expressions as row mode, per column: acc[lane * w + c] is lane `lane` of column c.

cdef void forward_cols(int op, const real* x, const uint8_t* mask, real* out, Py_ssize_t n,
                       Py_ssize_t inner, Py_ssize_t w, real sign, real* rowval,
                       double* work) noexcept nogil:
    """Columns c0 .. c0 + w - 1 (x, mask, out and rowval point at column c0 of row 0).

    work: (2 * n_blocks(n) + LANES + 8) * w doubles.
    """
    cdef Py_ssize_t nb = n_blocks(n), b, j, j0, m, c, lane
    cdef bint store = op == SOFTMAX or op == SOFTMAX_SCALED
    cdef double* bmax = work
    cdef double* bsum = bmax + nb * w
    cdef double* acc = bsum + nb * w
    cdef double* M = acc + LANES * w
    cdef double* R = M + w
    cdef double* S = R + w
    cdef double* fac = S + w
    cdef real* shift = <real*>(fac + w)
    cdef real* cmax = shift      # the block's column maxima, then their shifts
    cdef real* hi = shift + w    # per column: log S as hi + lo, or the factor as fs, sc
    cdef real* lo = hi + w
    cdef real* rr = lo + w
    cdef const real* xr
    cdef const uint8_t* mr
    cdef real* orow
    cdef double* a
    cdef real v, ev
    cdef bint capped
    for b in range(nb):
        j0 = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - j0)
        for c in range(w):
            cmax[c] = -INFINITY
        for j in range(j0, j0 + m):
            xr = x + j * inner
            if mask == NULL:
                for c in range(w):
                    v = sign * xr[c]
                    cmax[c] = v if v > cmax[c] else cmax[c]
            else:
                mr = mask + j * inner
                for c in range(w):
                    v = sign * xr[c] if mr[c] else -INFINITY
                    cmax[c] = v if v > cmax[c] else cmax[c]
        for c in range(w):
            bmax[b * w + c] = cmax[c]
            shift[c] = <real>shift_of(cmax[c])
        for c in range(LANES * w):
            acc[c] = 0.0
        capped = True         # (see row_block_stats: a +inf max needs the exp for any x)
        for c in range(w):
            if bmax[b * w + c] == INFINITY:
                capped = False
        for j in range(j0, j0 + m):
            xr = x + j * inner
            orow = out + j * inner
            a = acc + ((j - j0) % LANES) * w
            if mask == NULL and store and capped:
                for c in range(w):
                    ev = vexp_capped(sign * xr[c] - shift[c])
                    orow[c] = ev
                    a[c] += <double>ev
            elif mask == NULL and capped:
                for c in range(w):
                    a[c] += <double>vexp_capped(sign * xr[c] - shift[c])
            elif mask == NULL:
                for c in range(w):
                    ev = vexp(sign * xr[c] - shift[c])
                    if store:
                        orow[c] = ev
                    a[c] += <double>ev
            else:
                mr = mask + j * inner
                for c in range(w):
                    ev = (vexp_capped(sign * xr[c] - shift[c]) if capped
                          else vexp(sign * xr[c] - shift[c])) if mr[c] else 0
                    if store:
                        orow[c] = ev
                    a[c] += <double>ev
        for c in range(w):
            bsum[b * w + c] = lane_total(acc + c, w)
    for c in range(w):
        combine(bmax + c, bsum + c, nb, w, &M[c], &R[c], &S[c])
    if op == LOGSUMEXP:
        for c in range(w):
            rowval[c] = <real>canonical_nan(R[c] + log(S[c]))
        return
    if op == LOG_SOFTMAX:
        for c in range(w):
            split_log(log(S[c]) if M[c] != INFINITY else NAN, &hi[c], &lo[c])
            rr[c] = <real>R[c]
        for j in range(n):
            xr = x + j * inner
            orow = out + j * inner
            if mask == NULL:
                for c in range(w):
                    orow[c] = ((sign * xr[c] - rr[c]) - hi[c]) - lo[c]
            else:
                mr = mask + j * inner
                for c in range(w):
                    orow[c] = ((sign * xr[c] - rr[c]) - hi[c]) - lo[c] if mr[c] else -INFINITY
        canonical_nan_columns(out, n, inner, w, M, R, S)
        return
    for b in range(nb):
        j0 = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - j0)
        for c in range(w):
            fac[c] = softmax_factor(op, shift_of(bmax[b * w + c]), M[c], R[c], S[c],
                                    <double>rowval[c] if op == SOFTMAX_SCALED else 1.0)
            split_factor(fac[c], &hi[c], &lo[c])
        for j in range(j0, j0 + m):
            orow = out + j * inner
            mr = offset(mask, j * inner)
            if op == SOFTMAX_SCALED:
                for c in range(w):
                    orow[c] = <real>(<double>orow[c] * fac[c]) if mask == NULL or mr[c] else 0
            elif mask == NULL:
                for c in range(w):
                    orow[c] = (orow[c] * hi[c]) * lo[c]
            else:
                for c in range(w):
                    orow[c] = (orow[c] * hi[c]) * lo[c] if mr[c] else 0
    if op == SOFTMAX_SCALED:
        for c in range(w):
            if M[c] == INFINITY and S[c] == INFINITY:
                for j in range(n):
                    if mask == NULL or mask[j * inner + c]:
                        out[j * inner + c] = <real>(<double>rowval[c] * (
                            NAN if x[j * inner + c] == INFINITY else 0.0))
                    else:
                        out[j * inner + c] = 0
    canonical_nan_columns(out, n, inner, w, M, R, S)


cdef inline void canonical_nan_columns(real* out, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t w,
                                       const double* M, const double* R,
                                       const double* S) noexcept nogil:
    """canonical_nans for each of the w columns whose statistics are NaN."""
    cdef Py_ssize_t c
    for c in range(w):
        if nan_stats(M[c], R[c], S[c]):
            canonical_nans(out + c, n, inner)


cdef void backward_cols(int op, const real* g, const real* y, const uint8_t* mask, real* out,
                        Py_ssize_t n, Py_ssize_t inner, Py_ssize_t w, double sign,
                        double* work) noexcept nogil:
    """work: (n_blocks(n) + LANES + 2) * w doubles."""
    cdef Py_ssize_t nb = n_blocks(n), b, j, j0, m, c
    cdef double* bdot = work
    cdef double* acc = bdot + nb * w
    cdef double* dot = acc + LANES * w
    cdef real* rdot = <real*>(dot + w)
    cdef real rsign = <real>sign
    cdef const real* gr
    cdef const real* yr
    cdef const uint8_t* mr
    cdef real* orow
    cdef double* a
    cdef bint capped
    cdef int above
    for b in range(nb):
        j0 = b * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - j0)
        for c in range(LANES * w):
            acc[c] = 0.0
        for j in range(j0, j0 + m):
            gr = g + j * inner
            yr = y + j * inner
            a = acc + ((j - j0) % LANES) * w
            if op == BWD_SOFTMAX and mask == NULL:
                for c in range(w):
                    a[c] += <double>(gr[c] * yr[c])
            elif op == BWD_SOFTMAX:
                mr = mask + j * inner
                for c in range(w):
                    a[c] += <double>(gr[c] * yr[c]) if mr[c] else 0.0
            elif mask == NULL:
                for c in range(w):
                    a[c] += <double>gr[c]
            else:
                mr = mask + j * inner
                for c in range(w):
                    a[c] += <double>gr[c] if mr[c] else 0.0
        for c in range(w):
            bdot[b * w + c] = lane_total(acc + c, w)
    for c in range(w):
        dot[c] = 0.0
    for b in range(nb):
        for c in range(w):
            dot[c] += bdot[b * w + c]
    for c in range(w):
        rdot[c] = <real>canonical_nan(dot[c])
    for j in range(n):
        gr = g + j * inner
        yr = y + j * inner
        orow = out + j * inner
        mr = offset(mask, j * inner)
        if op == BWD_SOFTMAX:
            if mask == NULL:
                for c in range(w):
                    orow[c] = rsign * (yr[c] * (gr[c] - rdot[c]))
            else:
                for c in range(w):
                    orow[c] = rsign * (yr[c] * (gr[c] - rdot[c])) if mr[c] else 0
        elif op == BWD_LOG_SOFTMAX:   # (exp as in row_block_backward)
            if (mask == NULL and <const void*>orow != <const void*>yr
                    and <const void*>orow != <const void*>gr):
                above = 0
                for c in range(w):
                    orow[c] = gr[c] - vexp_capped(yr[c]) * rdot[c]
                    above |= yr[c] > capped_limit(yr[c])
                if above == 0:
                    continue
                capped = False
            else:
                capped = in_capped_range(yr, w)
            if mask == NULL and capped:
                for c in range(w):
                    orow[c] = gr[c] - vexp_capped(yr[c]) * rdot[c]
            elif mask == NULL:
                for c in range(w):
                    orow[c] = gr[c] - vexp(yr[c]) * rdot[c]
            elif capped:
                for c in range(w):
                    orow[c] = gr[c] - vexp_capped(yr[c]) * rdot[c] if mr[c] else 0
            else:
                for c in range(w):
                    orow[c] = gr[c] - vexp(yr[c]) * rdot[c] if mr[c] else 0
        else:
            if mask == NULL:
                for c in range(w):
                    orow[c] = gr[c] - yr[c] * rdot[c]
            else:
                for c in range(w):
                    orow[c] = gr[c] - yr[c] * rdot[c] if mr[c] else 0


# ---- drivers: how the work is cut between threads ------------------------------------------
# The cut never changes a result (see the module docstring); it only balances the threads.
# forward_all and backward_all cut alike but stay two functions: a driver shared by both
# directions (tried inline and out of line) had forward_cols inlined into it and column mode
# 2-4 % slower, or (when this module was at GCC's unit inlining budget, which setup.py's
# INLINE_BUDGET now lifts) left exp un-inlined in hot float64 loops. Check a change here
# with -fopt-info-inline-missed; tests/test_build.py checks that no inline kernel has code
# of its own.

cdef Py_ssize_t column_width(Py_ssize_t outer, Py_ssize_t inner, int n_threads) noexcept nogil:
    """Columns per work unit (a multiple of 8, at most COLS): as wide as possible, because a
    unit walks the axis with a stride of `inner` elements and the longer each contiguous
    run, the better the hardware prefetchers keep up (measured at (1000, 1024), axis 0:
    0.95 ns/element with 1024 columns, 1.7 with 64); narrower when that gives the threads an
    even share of units."""
    cdef Py_ssize_t per_outer = (inner + COLS - 1) // COLS, w
    if n_threads > 1 and outer * per_outer < 4 * n_threads:
        while (outer * per_outer) % n_threads != 0 and per_outer < inner:
            per_outer += 1
    w = (inner + per_outer - 1) // per_outer
    w = (w + 7) // 8 * 8
    return max(<Py_ssize_t>8, min(<Py_ssize_t>COLS, w))


cdef bint split_rows(Py_ssize_t outer, Py_ssize_t nb, int n_threads) noexcept nogil:
    """Cut long rows into blocks across threads (else each thread takes whole rows)?"""
    if n_threads <= 1 or nb <= 1:
        return False
    return outer < n_threads or (outer < 4 * n_threads and outer % n_threads != 0)


cdef int forward_all(int op, const real* x, const uint8_t* mask, real* out, real* rowvals,
                     Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t sx,
                     Py_ssize_t so, real sign, int n_threads, double* work,
                     Py_ssize_t work_per_thread, double* row_work,
                     bint stream) noexcept nogil:
    """stream: row mode streams its outputs (log_softmax; see STREAM_ROW). sx, so: in row
    mode (inner 1), the elements from one row of x, of out to the next (n when C-contiguous;
    the mask's rows are n apart)."""
    cdef Py_ssize_t nb = n_blocks(n), i, r, b, lo, m, w, units, per_outer, o, c0
    cdef bint store = op == SOFTMAX or op == SOFTMAX_SCALED
    cdef double* tw
    cdef double* bmax
    cdef double* bsum
    cdef double* stats
    cdef double scale
    if inner == 1 and split_rows(outer, nb, n_threads):
        # phase 1: blocks of all rows in parallel; phase 2: each row's (M, R, S) from its
        # blocks in order; phase 3: the outputs, blocks in parallel again
        bmax = row_work
        bsum = bmax + outer * nb
        stats = bsum + outer * nb        # M, R, S per row
        for i in prange(outer * nb, nogil=True, schedule='static', num_threads=n_threads):
            r = i // nb
            b = i % nb
            lo = b * BLOCK
            m = min(<Py_ssize_t>BLOCK, n - lo)
            tw = work + threadid() * work_per_thread
            row_block_stats(x + r * sx + lo, offset(mask, r * n + lo),
                            out + r * so + lo if store else <real*>tw, m, sign,
                            &bmax[i], &bsum[i])
        for r in range(outer):
            combine(bmax + r * nb, bsum + r * nb, nb, 1, &stats[3 * r], &stats[3 * r + 1],
                    &stats[3 * r + 2])
        if op == LOGSUMEXP:
            for r in range(outer):
                rowvals[r] = <real>canonical_nan(stats[3 * r + 1] + log(stats[3 * r + 2]))
            return 0
        for i in prange(outer * nb, nogil=True, schedule='static', num_threads=n_threads):
            r = i // nb
            b = i % nb
            lo = b * BLOCK
            m = min(<Py_ssize_t>BLOCK, n - lo)
            scale = <double>rowvals[r] if op == SOFTMAX_SCALED else 1.0
            tw = work + threadid() * work_per_thread
            row_block_finish(op, x + r * sx + lo, offset(mask, r * n + lo),
                             <real*>tw if stream else out + r * so + lo, m, sign, bmax[i],
                             stats[3 * r], stats[3 * r + 1], stats[3 * r + 2], scale)
            if stream:
                af_stream_copy(<char*>(out + r * so + lo), <char*>tw, m * sizeof(real))
                af_stream_fence()
        return 0
    if inner == 1:
        if n_threads == 1:
            for r in range(outer):
                forward_row(op, x + r * sx, offset(mask, r * n), out + r * so, n, sign,
                            rowvals + r if rowvals != NULL else NULL,
                            <real*>(work + 2 * nb), work, work + nb, stream)
            return 0
        for r in prange(outer, nogil=True, schedule='static', num_threads=n_threads):
            tw = work + threadid() * work_per_thread
            forward_row(op, x + r * sx, offset(mask, r * n), out + r * so, n, sign,
                        rowvals + r if rowvals != NULL else NULL,
                        <real*>(tw + 2 * nb), tw, tw + nb, stream)
        return 0
    w = column_width(outer, inner, n_threads)
    per_outer = (inner + w - 1) // w
    units = outer * per_outer
    if n_threads == 1:
        for i in range(units):
            forward_unit(op, x, mask, out, rowvals, n, inner, w, per_outer, i, sign, work)
        return 0
    for i in prange(units, nogil=True, schedule='static', num_threads=n_threads):
        forward_unit(op, x, mask, out, rowvals, n, inner, w, per_outer, i, sign,
                     work + threadid() * work_per_thread)
    return 0


cdef inline void forward_unit(int op, const real* x, const uint8_t* mask, real* out,
                              real* rowvals, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t w,
                              Py_ssize_t per_outer, Py_ssize_t i, real sign,
                              double* work) noexcept nogil:
    """Work unit i of column mode: outer index i // per_outer, w columns."""
    cdef Py_ssize_t o = i // per_outer, c0 = (i % per_outer) * w
    cdef Py_ssize_t start = o * n * inner + c0
    forward_cols(op, x + start, offset(mask, start), out + start, n, inner,
                 min(w, inner - c0), sign, rowvals + o * inner + c0 if rowvals != NULL else NULL,
                 work)


cdef int backward_all(int op, const real* g, const real* y, const uint8_t* mask, real* out,
                      Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t sg,
                      Py_ssize_t sy, Py_ssize_t so, double sign, int n_threads,
                      double* work, Py_ssize_t work_per_thread, double* row_work,
                      bint stream) noexcept nogil:
    """stream: row mode streams its outputs (see STREAM_ROW). sg, sy, so: the row strides of
    g, y and out in row mode (as forward_all's)."""
    cdef Py_ssize_t nb = n_blocks(n), i, r, b, lo, m, w, units, per_outer, o, c0
    cdef double* tw
    cdef double* bdot
    cdef double* dots
    cdef double d
    cdef const real* yb
    if inner == 1 and split_rows(outer, nb, n_threads):
        bdot = row_work
        dots = bdot + outer * nb
        for i in prange(outer * nb, nogil=True, schedule='static', num_threads=n_threads):
            r = i // nb
            b = i % nb
            lo = b * BLOCK
            m = min(<Py_ssize_t>BLOCK, n - lo)
            yb = y + r * sy + lo if op == BWD_SOFTMAX else NULL
            bdot[i] = row_dot(g + r * sg + lo, yb, offset(mask, r * n + lo), m,
                              work + threadid() * work_per_thread, False)
        for r in range(outer):
            d = 0.0
            for b in range(nb):
                d = d + bdot[r * nb + b]
            dots[r] = canonical_nan(d)
        for i in prange(outer * nb, nogil=True, schedule='static', num_threads=n_threads):
            r = i // nb
            b = i % nb
            lo = b * BLOCK
            m = min(<Py_ssize_t>BLOCK, n - lo)
            tw = work + threadid() * work_per_thread
            row_block_backward(op, g + r * sg + lo, y + r * sy + lo, offset(mask, r * n + lo),
                               <real*>tw if stream else out + r * so + lo, m, <real>sign,
                               <real>dots[r])
            if stream:
                af_stream_copy(<char*>(out + r * so + lo), <char*>tw, m * sizeof(real))
                af_stream_fence()
        return 0
    if inner == 1:
        if n_threads == 1:
            for r in range(outer):
                backward_row(op, g + r * sg, y + r * sy, offset(mask, r * n), out + r * so,
                             n, sign, work, stream)
            return 0
        for r in prange(outer, nogil=True, schedule='static', num_threads=n_threads):
            backward_row(op, g + r * sg, y + r * sy, offset(mask, r * n), out + r * so, n,
                         sign, work + threadid() * work_per_thread, stream)
        return 0
    w = column_width(outer, inner, n_threads)
    per_outer = (inner + w - 1) // w
    units = outer * per_outer
    if n_threads == 1:
        for i in range(units):
            backward_unit(op, g, y, mask, out, n, inner, w, per_outer, i, sign, work)
        return 0
    for i in prange(units, nogil=True, schedule='static', num_threads=n_threads):
        backward_unit(op, g, y, mask, out, n, inner, w, per_outer, i, sign,
                      work + threadid() * work_per_thread)
    return 0


cdef inline void backward_unit(int op, const real* g, const real* y, const uint8_t* mask,
                               real* out, Py_ssize_t n, Py_ssize_t inner, Py_ssize_t w,
                               Py_ssize_t per_outer, Py_ssize_t i, double sign,
                               double* work) noexcept nogil:
    cdef Py_ssize_t o = i // per_outer, c0 = (i % per_outer) * w
    cdef Py_ssize_t start = o * n * inner + c0
    backward_cols(op, g + start, y + start, offset(mask, start), out + start, n, inner,
                  min(w, inner - c0), sign, work)


# ---- entry points --------------------------------------------------------------------------

cdef inline void* data(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if a is not None else NULL


cdef inline cnp.ndarray doubles(Py_ssize_t count):
    """An uninitialised float64 array of `count` elements (the loops' scratch)."""
    cdef cnp.npy_intp size = count
    return cnp.PyArray_EMPTY(1, &size, cnp.NPY_DOUBLE, 0)


cdef inline Py_ssize_t row_stride(cnp.ndarray a, Py_ssize_t n) noexcept:
    """Elements from one row of a (outer, n, 1) array to the next: n when it is C-contiguous
    (of any shape), its first stride when it is a 3-d row-strided array (rows_fit)."""
    if a is None or cnp.PyArray_NDIM(a) != 3 or cnp.PyArray_IS_C_CONTIGUOUS(a):
        return n
    return cnp.PyArray_STRIDE(a, 0) // cnp.PyArray_ITEMSIZE(a)


cdef int rows_fit(cnp.ndarray a, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                  str name) except -1:
    """forward() and backward() take C-contiguous (outer, n, inner) arrays and, when inner is
    1, row-strided ones: each row's n elements contiguous, rows farther apart (a slice such
    as x[:, :n]; no full copy for it). ValueError otherwise."""
    cdef Py_ssize_t size
    if a is None or cnp.PyArray_IS_C_CONTIGUOUS(a):
        return 0
    size = cnp.PyArray_ITEMSIZE(a)
    if (inner == 1 and cnp.PyArray_NDIM(a) == 3 and cnp.PyArray_DIM(a, 0) == outer
            and cnp.PyArray_DIM(a, 1) == n and cnp.PyArray_DIM(a, 2) == 1
            and cnp.PyArray_STRIDE(a, 1) == size and cnp.PyArray_STRIDE(a, 0) % size == 0
            and cnp.PyArray_STRIDE(a, 0) >= n * size):
        return 0
    raise ValueError(f"_softmax: {name} is neither C-contiguous nor row-strided")


cdef void run_forward(int op, cnp.ndarray x, cnp.ndarray out, cnp.ndarray mask,
                      cnp.ndarray rowvals, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                      double sign, int n_threads, Py_ssize_t parallel_threshold):
    """forward() on arrays whose memory is C-contiguous (outer, n, inner), of any shape, or
    (x, out) row-strided (rows_fit)."""
    cdef Py_ssize_t nb = n_blocks(n), per_thread, size = outer * n * inner
    cdef cnp.ndarray work, row_work
    if outer == 0 or inner == 0:
        return
    if size < parallel_threshold:
        n_threads = 1
    n_threads = max(1, n_threads)
    cdef bint stream = (op == LOG_SOFTMAX and inner == 1 and data(out) != data(x)
                        and 2 * size * cnp.PyArray_ITEMSIZE(x) >= stream_from)
    if inner == 1:
        per_thread = 2 * nb + BLOCK       # bmax, bsum, the exps (BLOCK doubles hold BLOCK reals)
    else:
        per_thread = (2 * nb + LANES + 8) * COLS
    work = doubles(n_threads * per_thread)
    row_work = (doubles((2 * nb + 3) * outer)
                if inner == 1 and split_rows(outer, nb, n_threads) else None)
    cdef void* px = data(x)
    cdef void* pout = data(out)
    cdef uint8_t* pmask = <uint8_t*>data(mask)
    cdef void* prow = data(rowvals)
    cdef double* pwork = <double*>data(work)
    cdef double* prow_work = <double*>data(row_work)
    cdef Py_ssize_t sx = row_stride(x, n), so = row_stride(out, n)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        with nogil:
            forward_all[float](op, <float*>px, pmask, <float*>pout, <float*>prow, outer, n,
                               inner, sx, so, <float>sign, n_threads, pwork, per_thread,
                               prow_work, stream)
    else:
        with nogil:
            forward_all[double](op, <double*>px, pmask, <double*>pout, <double*>prow, outer,
                                n, inner, sx, so, sign, n_threads, pwork, per_thread,
                                prow_work, stream)


cdef void run_backward(int op, cnp.ndarray grad_output, cnp.ndarray y, cnp.ndarray out,
                       cnp.ndarray mask, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                       double sign, int n_threads, Py_ssize_t parallel_threshold):
    """backward() on arrays whose memory is C-contiguous (outer, n, inner), of any shape, or
    row-strided (rows_fit)."""
    cdef Py_ssize_t nb = n_blocks(n), per_thread, size = outer * n * inner
    cdef cnp.ndarray work, row_work
    if outer == 0 or inner == 0 or n == 0:
        return
    if size < parallel_threshold:
        n_threads = 1
    n_threads = max(1, n_threads)
    cdef bint stream = (op == BWD_SOFTMAX and inner == 1 and n <= STREAM_ROW
                        and data(out) != data(grad_output) and data(out) != data(y)
                        and 3 * size * cnp.PyArray_ITEMSIZE(y) >= stream_from)
    per_thread = (nb + LANES + 2) * COLS if inner > 1 else BLOCK
    work = doubles(max(1, n_threads * per_thread))
    row_work = (doubles((nb + 1) * outer)
                if inner == 1 and split_rows(outer, nb, n_threads) else None)
    cdef void* pg = data(grad_output)
    cdef void* py = data(y)
    cdef void* pout = data(out)
    cdef uint8_t* pmask = <uint8_t*>data(mask)
    cdef double* pwork = <double*>data(work)
    cdef double* prow_work = <double*>data(row_work)
    cdef Py_ssize_t sg = row_stride(grad_output, n), sy = row_stride(y, n)
    cdef Py_ssize_t so = row_stride(out, n)
    if cnp.PyArray_TYPE(y) == cnp.NPY_FLOAT:
        with nogil:
            backward_all[float](op, <float*>pg, <float*>py, pmask, <float*>pout, outer, n,
                                inner, sg, sy, so, sign, n_threads, pwork, per_thread,
                                prow_work, stream)
    else:
        with nogil:
            backward_all[double](op, <double*>pg, <double*>py, pmask, <double*>pout, outer, n,
                                 inner, sg, sy, so, sign, n_threads, pwork, per_thread,
                                 prow_work, stream)


def forward(int op, cnp.ndarray x not None, cnp.ndarray out, cnp.ndarray mask,
            cnp.ndarray rowvals, double sign, int n_threads, Py_ssize_t parallel_threshold):
    """Run forward operation `op` on x, a C-contiguous (outer, n, inner) float32/float64 array
    (or, when inner is 1, a row-strided one: rows_fit).

    out: like x (unused for LOGSUMEXP; may be x itself); mask: None or a C-contiguous uint8
    array of x's shape; rowvals: (outer, inner) C-contiguous, x's dtype: LOGSUMEXP's result,
    SOFTMAX_SCALED's factors. The Python layer checks shapes, dtypes and overlap. Below
    parallel_threshold elements one thread does the work.
    """
    if (out is None) != (op == LOGSUMEXP) or (rowvals is None) == (op == LOGSUMEXP
                                                                   or op == SOFTMAX_SCALED):
        raise ValueError("_softmax.forward: out and rowvals do not fit the operation")
    rows_fit(x, x.shape[0], x.shape[1], x.shape[2], "x")
    rows_fit(out, x.shape[0], x.shape[1], x.shape[2], "out")
    run_forward(op, x, out, mask, rowvals, x.shape[0], x.shape[1], x.shape[2], sign,
                n_threads, parallel_threshold)


def backward(int op, cnp.ndarray grad_output not None, cnp.ndarray y not None,
             cnp.ndarray out not None, cnp.ndarray mask, double sign, int n_threads,
             Py_ssize_t parallel_threshold):
    """Run backward operation `op`: grad_output, y (the forward's output) and out are
    C-contiguous (outer, n, inner) arrays of one dtype (or row-strided: rows_fit); out may be
    grad_output or y."""
    rows_fit(grad_output, y.shape[0], y.shape[1], y.shape[2], "grad_output")
    rows_fit(y, y.shape[0], y.shape[1], y.shape[2], "y")
    rows_fit(out, y.shape[0], y.shape[1], y.shape[2], "out")
    run_backward(op, grad_output, y, out, mask, y.shape[0], y.shape[1], y.shape[2], sign,
                 n_threads, parallel_threshold)


# ---- logsumexp's backward from its output --------------------------------------------------
# grad_output * exp(x - L) with L = logsumexp(x), as PyTorch's autograd computes it from the
# forward's result: one pass, where the backward from x recomputes the row's statistics
# (two more passes). Each element alone, so the cut between threads changes no bit.

cdef inline real lse_gradient(real g, real x, real L) noexcept nogil:
    """g exp(x - L) (NaN for a row of -inf, as from x and in PyTorch: -inf - -inf); a NaN as
    the positive quiet NaN (canonical_nan: which operand's NaN an instruction keeps differs
    between loops)."""
    cdef real v = g * vexp(x - L)
    return NAN if v != v else v


cdef void lse_gradient_row(const real* x, const uint8_t* mask, real* out, real g, real L,
                           Py_ssize_t m) noexcept nogil:
    """m elements of one row (row mode): one g and L for all."""
    cdef Py_ssize_t k
    if mask == NULL:
        for k in range(m):
            out[k] = lse_gradient(g, x[k], L)
    else:
        for k in range(m):
            out[k] = lse_gradient(g, x[k], L) if mask[k] else 0


cdef void lse_gradient_columns(const real* x, const uint8_t* mask, real* out, const real* g,
                               const real* L, Py_ssize_t m) noexcept nogil:
    """m adjacent columns of one row (column mode): a g and L per column."""
    cdef Py_ssize_t k
    if mask == NULL:
        for k in range(m):
            out[k] = lse_gradient(g[k], x[k], L[k])
    else:
        for k in range(m):
            out[k] = lse_gradient(g[k], x[k], L[k]) if mask[k] else 0


cdef void lse_gradient_range(const real* x, Py_ssize_t sx, const uint8_t* mask, real* out,
                             Py_ssize_t so, const real* g, const real* L, Py_ssize_t n,
                             Py_ssize_t inner, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Elements start .. stop - 1, in the order of the C-contiguous (outer, n, inner) arrays
    (x's and out's rows sx and so elements apart when inner is 1: rows_fit)."""
    cdef Py_ssize_t i = start, o, j, c, end
    while i < stop:
        if inner == 1:
            o = i // n
            j = i - o * n
            end = min(stop, (o + 1) * n)
            lse_gradient_row(x + o * sx + j, offset(mask, i), out + o * so + j, g[o], L[o],
                             end - i)
        else:
            o = i // (n * inner)
            c = i % inner
            end = min(stop, i + inner - c)
            lse_gradient_columns(x + i, offset(mask, i), out + i, g + o * inner + c,
                                 L + o * inner + c, end - i)
        i = end


cdef void lse_gradient_all(const real* x, Py_ssize_t sx, const uint8_t* mask, real* out,
                           Py_ssize_t so, const real* g, const real* L, Py_ssize_t size,
                           Py_ssize_t n, Py_ssize_t inner, int n_threads) noexcept nogil:
    """Each thread one contiguous range, from a multiple of 16 elements."""
    cdef Py_ssize_t per = ((size + n_threads - 1) // n_threads + 15) // 16 * 16, t
    if n_threads <= 1:
        lse_gradient_range(x, sx, mask, out, so, g, L, n, inner, 0, size)
        return
    for t in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        lse_gradient_range(x, sx, mask, out, so, g, L, n, inner, min(t * per, size),
                           min((t + 1) * per, size))


cdef void run_lse_gradient(cnp.ndarray grad_output, cnp.ndarray x, cnp.ndarray output,
                           cnp.ndarray out, cnp.ndarray mask, Py_ssize_t outer, Py_ssize_t n,
                           Py_ssize_t inner, int n_threads, Py_ssize_t parallel_threshold):
    """logsumexp_backward_from_output() on checked arrays of these dimensions."""
    cdef Py_ssize_t size = outer * n * inner
    if size == 0:
        return
    if size < parallel_threshold:
        n_threads = 1
    n_threads = max(1, n_threads)
    cdef Py_ssize_t sx = row_stride(x, n), so = row_stride(out, n)
    cdef void* px = data(x)
    cdef void* pout = data(out)
    cdef void* pg = data(grad_output)
    cdef void* pL = data(output)
    cdef uint8_t* pmask = <uint8_t*>data(mask)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        with nogil:
            lse_gradient_all[float](<float*>px, sx, pmask, <float*>pout, so, <float*>pg,
                                    <float*>pL, size, n, inner, n_threads)
    else:
        with nogil:
            lse_gradient_all[double](<double*>px, sx, pmask, <double*>pout, so, <double*>pg,
                                     <double*>pL, size, n, inner, n_threads)


def logsumexp_backward_from_output(cnp.ndarray grad_output not None, cnp.ndarray x not None,
                                   cnp.ndarray output not None, cnp.ndarray out not None,
                                   cnp.ndarray mask, int n_threads,
                                   Py_ssize_t parallel_threshold):
    """out = grad_output exp(x - output), grad_output and output (logsumexp's result) taken
    along the axis: x and out (outer, n, inner) arrays as forward()'s (row-strided when inner
    is 1: rows_fit; out may be x), mask None or a C-contiguous uint8 array of x's shape,
    grad_output and output C-contiguous (outer, inner) arrays of x's dtype. The Python layer
    checks shapes, dtypes and overlap. Below parallel_threshold elements one thread works."""
    rows_fit(x, x.shape[0], x.shape[1], x.shape[2], "x")
    rows_fit(out, x.shape[0], x.shape[1], x.shape[2], "out")
    run_lse_gradient(grad_output, x, output, out, mask, x.shape[0], x.shape[1], x.shape[2],
                     n_threads, parallel_threshold)


# ---- the common call, checked and run here (the Python layer's fast path) ------------------
# A C-contiguous float32/float64 ndarray, an int axis, no mask, out None or a simple array:
# the same loops as the general path (so the same bits), without its Python-level work,
# which is most of a call on a small array (16 float32 elements into out=: softmax's forward
# 1.9 -> 0.6 us, its backward from the output 2.2 -> 0.4 us).

cdef struct Dims:
    Py_ssize_t outer, n, inner


cdef bint split_at(cnp.ndarray a, object axis, Dims* dims):
    """(outer, n, inner) of a's shape around `axis` when that is an int in range."""
    cdef int nd = cnp.PyArray_NDIM(a), d
    cdef Py_ssize_t k
    if type(axis) is not int or not -nd <= axis < nd:
        return False
    k = axis
    k = k + nd if k < 0 else k
    dims.outer = 1
    dims.inner = 1
    for d in range(nd):
        if d < k:
            dims.outer *= cnp.PyArray_DIM(a, d)
        elif d > k:
            dims.inner *= cnp.PyArray_DIM(a, d)
    dims.n = cnp.PyArray_DIM(a, k)
    return True


cdef int fast_input(object x, object axis, Dims* dims):
    """x's type number when it is a C-contiguous float32/float64 ndarray (native, not 0-d)
    and axis an int in range (dims: x's shape around it), else -1."""
    if type(x) is not cnp.ndarray:
        return -1
    cdef int type_num = float_type(<cnp.ndarray>x)
    if type_num < 0 or not simple(<cnp.ndarray>x) or not split_at(<cnp.ndarray>x, axis, dims):
        return -1
    return type_num


cdef inline bint writable_beside(cnp.ndarray operand, cnp.ndarray out, bint in_place_ok):
    """Can the loops write `out` while they read `operand` (of out's shape)?"""
    return independent_or_same(operand, out) if in_place_ok else apart(operand, out)


cdef object simple_target(object out, cnp.ndarray a, int type_num, bint in_place_ok,
                          cnp.ndarray other=None):
    """Where a fast call writes: a new array like `a` when `out` is None; `out` when it is a
    writeable C-contiguous array of a's type and shape that overlaps neither `a` nor `other`
    (or, with in_place_ok, is the very same view); else None."""
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(a)
    if out is None:
        return cnp.PyArray_EMPTY(nd, shape, type_num, 0)
    if (not writeable_like(out, type_num, nd, shape, True)
            or not writable_beside(a, out, in_place_ok)
            or (other is not None and not writable_beside(other, out, in_place_ok))):
        return None
    return out


def forward_fast(int op, object x, object axis, object out, double sign, int n_threads,
                 dict parallel_from):
    """forward() for the common call: x a C-contiguous float32/float64 ndarray (not 0-d),
    axis an int in range, out None or a writeable C-contiguous ndarray of x's dtype and shape
    (x itself, or overlapping it not). parallel_from: the thread threshold by item size.
    Returns out or the new result, or None when the call is not that simple (the Python
    layer then handles it, errors included)."""
    cdef Dims dims
    cdef int type_num = fast_input(x, axis, &dims)
    if type_num < 0:
        return None
    cdef cnp.ndarray ax = x
    target = simple_target(out, ax, type_num, True)
    if target is not None:
        run_forward(op, ax, target, None, None, dims.outer, dims.n, dims.inner, sign,
                    n_threads, parallel_from[cnp.PyArray_ITEMSIZE(ax)])
    return target


def backward_fast(int op, object grad_output, object y, object axis, object out, double sign,
                  int n_threads, dict parallel_from, int forward_op=-1,
                  double forward_sign=1.0, dict forward_parallel_from=None):
    """backward() for the common call: grad_output and y C-contiguous float32/float64
    ndarrays of one dtype and shape (not 0-d), axis and out as in forward_fast (out may be
    grad_output or y). With forward_op >= 0, y is the forward's input x: forward_op (with
    forward_sign, forward_parallel_from) first computes the forward's output into the
    target, which then must overlap neither x nor grad_output. Returns out or the new
    result, or None (see forward_fast)."""
    cdef Dims dims
    cdef int type_num = fast_input(y, axis, &dims)
    if type_num < 0:
        return None
    cdef cnp.ndarray ay = y
    if not like(grad_output, type_num, cnp.PyArray_NDIM(ay), cnp.PyArray_DIMS(ay), True):
        return None
    target = simple_target(out, ay, type_num, forward_op < 0, grad_output)
    if target is None:
        return None
    cdef int itemsize = cnp.PyArray_ITEMSIZE(ay)
    if forward_op >= 0:
        run_forward(forward_op, ay, target, None, None, dims.outer, dims.n, dims.inner,
                    forward_sign, n_threads, forward_parallel_from[itemsize])
        ay = target
    run_backward(op, grad_output, ay, target, None, dims.outer, dims.n, dims.inner, sign,
                 n_threads, parallel_from[itemsize])
    return target


cdef int reduced_shape(cnp.ndarray a, object axis, bint keepdims, cnp.npy_intp* shape):
    """The shape of a reduction of `a` along `axis` (an int in range: see split_at) into
    `shape` (room for a's dimensions); returns its number of dimensions."""
    cdef int nd = cnp.PyArray_NDIM(a), d, k = 0
    cdef Py_ssize_t along = axis
    along = along + nd if along < 0 else along
    for d in range(nd):
        if d != along:
            shape[k] = cnp.PyArray_DIM(a, d)
            k += 1
        elif keepdims:
            shape[k] = 1
            k += 1
    return k


def logsumexp_fast(object x, object axis, object keepdims, object out, int n_threads,
                   dict parallel_from):
    """logsumexp for the common call: x and axis as in forward_fast, out None or a writeable
    C-contiguous ndarray of the result's shape and x's dtype that overlaps x not (the
    result's memory is the loops' (outer, inner) array of row values). Returns out, the new
    result (a NumPy scalar when 0-d, as NumPy's reductions), or None (see forward_fast; also
    when keepdims is not a Python bool)."""
    cdef Dims dims
    cdef cnp.npy_intp shape[64]                  # NPY_MAXDIMS is 32 (NumPy 1) or 64
    cdef int type_num = fast_input(x, axis, &dims)
    if type_num < 0 or type(keepdims) is not bool:
        return None
    cdef cnp.ndarray ax = x
    cdef int nd = reduced_shape(ax, axis, keepdims, shape)
    if out is None:
        target = cnp.PyArray_EMPTY(nd, shape, type_num, 0)
    elif writeable_like(out, type_num, nd, shape, True) and apart(ax, out):
        target = out
    else:
        return None
    run_forward(LOGSUMEXP, ax, None, None, target, dims.outer, dims.n, dims.inner, 1.0,
                n_threads, parallel_from[cnp.PyArray_ITEMSIZE(ax)])
    return target[()] if out is None and nd == 0 else target


def logsumexp_backward_fast(object grad_output, object x, object axis, object keepdims,
                            object out, int n_threads, dict parallel_from, object output=None):
    """logsumexp.backward for the common call: x and axis as in forward_fast, grad_output
    (and output, the forward's result, when given) a C-contiguous ndarray of x's dtype and
    logsumexp's result shape (its memory is the loops' (outer, inner) values), out None or a
    writeable C-contiguous ndarray of x's dtype and shape overlapping neither (with output:
    x itself, or overlapping none). Returns out or the new result, or None (see
    logsumexp_fast)."""
    cdef Dims dims
    cdef cnp.npy_intp shape[64]
    cdef int type_num = fast_input(x, axis, &dims)
    if type_num < 0 or type(keepdims) is not bool:
        return None
    cdef cnp.ndarray ax = x
    cdef int nd = reduced_shape(ax, axis, keepdims, shape)
    if not like(grad_output, type_num, nd, shape, True):
        return None
    if output is not None and not like(output, type_num, nd, shape, True):
        return None
    # in place on x alone (from the output: each element read before it is written); out
    # must be apart from grad_output and output, of another shape (a row of out could be
    # their memory, written before the next row reads it)
    target = simple_target(out, ax, type_num, output is not None)
    if target is None or (out is not None and (
            not apart(<cnp.ndarray>grad_output, target)
            or (output is not None and not apart(<cnp.ndarray>output, target)))):
        return None
    if output is None:
        run_forward(SOFTMAX_SCALED, ax, target, None, grad_output, dims.outer, dims.n,
                    dims.inner, 1.0, n_threads, parallel_from[cnp.PyArray_ITEMSIZE(ax)])
    else:
        run_lse_gradient(grad_output, ax, output, target, None, dims.outer, dims.n, dims.inner,
                         n_threads, parallel_from[cnp.PyArray_ITEMSIZE(ax)])
    return target
