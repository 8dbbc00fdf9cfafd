"""Loops of the functions whose shape needs its own loop (see actfast/special.py).

- Learnable parameters (swish, pact, prelu): elementwise, plus the parameter's gradient, a sum
  over the elements. Sums are bitwise identical for any thread count: the elements are cut
  into blocks of a size fixed by the shape alone, each block is summed in double in a fixed
  order by whichever thread gets it, and the block sums are added in block order.
- Random (rrelu in training mode, noisy_relu): the draw for an element is a pure function of
  (seed, the element's index): threads and layouts do not change it.
- Grouped (maxout, glu): over one axis.

The Python layer hands every array over in the compute dtype (float or double), C-contiguous
(to `elementwise` also as a 1-D view of any stride, whose blocks the loop copies as it goes),
so the element index of the loops is the element's logical C-order index in x, and reshapes it
to the two or three dimensions the loop needs. It has checked shapes, dtypes and overlap.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport UINT32_MAX, uint32_t, uint64_t

import numpy as np

cimport numpy as cnp
cimport activations as K
cimport special_kernels as S
from arrays cimport (apart, float_type, gather_run, independent_or_same, like, scatter_run,
                    simple, writeable_like)
from stream cimport (STREAM_BYTES, STREAM_FROM, VECTOR, af_stream_copy,
                    af_stream_fence, af_stream_push, af_streamer, af_streamer_to,
                    to_vector_boundary)

cnp.import_array()

cdef enum:
    # Elements per work item and per reduction block: large enough that a parallel loop's
    # bookkeeping is negligible, small enough that 2 threads share the work evenly from 2
    # blocks on. It fixes the summation order of the parameters' gradients, so it must not
    # depend on the thread count.
    BLOCK = 4096
    # prelu: the fewest elements of one channel summed into one block sum (where the shape
    # has them): at most size / 256 block sums in all, 0.4 % of x's memory
    CHANNEL_BLOCK = 256
    # Elements handled per inner chunk: their parameter-gradient terms or random draws are
    # stored in a stack buffer of this size, so that the elementwise loops stay free of
    # reductions and calls (GCC vectorises them) and the sums run in a fixed order; maxout's
    # groups side by side
    CHUNK = 256
    # elementwise runs from this length store aligned (run_elementwise), as the elementwise
    # loops' contiguous runs (PEEL_FROM in _elementwise.pyx.tp)
    PEEL_FROM = 1024
    # prelu with at most this many channels side by side (inner == 1): runs of whole rows of
    # this many elements (prelu_rows)
    PRELU_LANES = 256


# ---- elementwise, with an optional sum -----------------------------------------------------

# The operations of `elementwise` (actfast/special.py passes _special.Op members)
cpdef enum Op:
    SWISH_FWD = 0
    SWISH_BWD = 1           # grad_input; returns the sum of the d/dbeta terms
    PACT_FWD = 2
    PACT_BWD = 3            # grad_input; returns the sum of the d/dalpha terms
    RRELU_TRAIN_FWD = 4     # also writes the noise (the derivative) where one is given
    RRELU_TRAIN_BWD = 5     # from x, or from the output (the same test: <= 0)
    NOISY_RELU_FWD = 6
    NOISY_RELU_BWD = 7      # from x: recomputes the noise
    NOISY_RELU_BWD_FROM_OUTPUT = 8
    RRELU_NOISE_BWD = 9     # grad_output * the forward's noise (passed as x)
    SWISH_BWD_INPUT = 10    # grad_input alone: beta not learned (no d/dbeta terms)


cdef struct Params:
    double a, b            # swish: beta; pact: alpha; rrelu: lower, upper - lower; noisy: sigma
    uint64_t seed
    void* noise            # RRELU_TRAIN_FWD: where to write the noise (all n elements), or NULL
    Py_ssize_t noise_start # the element whose noise is noise[0] (0 but for the streamed buffer)
    bint stream            # the output streamed (PACT_BWD reads it: pact_grad)


cdef inline void add_terms(double* partial, const double* terms, Py_ssize_t n) noexcept nogil:
    """terms[0] ... terms[n-1] added in order to sixteen interleaved partial sums, term i to
    partial[i % 16] (GCC keeps them in vector registers, so the additions do not wait for each
    other). A block's chunks (each a multiple of 16 terms but its last) add to the same
    partial sums, reduced once at the block's end (total_of): reduced after every chunk, their
    reduction took a tenth of swish's backward."""
    cdef Py_ssize_t i, l, n16 = n - n % 16
    for i in range(0, n16, 16):
        for l in range(16):
            partial[l] += terms[i + l]
    for i in range(n16, n):
        partial[i - n16] += terms[i]


cdef inline double total_of(double* partial) noexcept nogil:
    """The sixteen partial sums of add_terms added pairwise (partial l + partial l + 8, then
    l + 4, l + 2, l + 1), in place."""
    cdef Py_ssize_t l, width = 8
    while width > 0:
        for l in range(width):
            partial[l] += partial[l + width]
        width //= 2
    return partial[0]


cdef inline double sum_terms(const double* terms, Py_ssize_t n) noexcept nogil:
    """terms[0] + ... + terms[n-1] in the order of add_terms and total_of, for prelu's channel
    loops, written out: made of calls to the two, it changed GCC's register allocation in
    prelu_item, whose rows loop (prelu_rows) then spilt a register inside the loop (its
    backward at (125000, 8) float32 took 1.25-1.4x the time)."""
    cdef double partial[16]
    cdef Py_ssize_t i, l, width, n16 = n - n % 16
    for l in range(16):
        partial[l] = 0.0
    for i in range(0, n16, 16):
        for l in range(16):
            partial[l] += terms[i + l]
    for i in range(n16, n):
        partial[i - n16] += terms[i]
    width = 8
    while width > 0:
        for l in range(width):
            partial[l] += partial[l + width]
        width //= 2
    return partial[0]


cdef void fill_draws(double* draws, bint normal, uint64_t seed, uint32_t stream,
                     uint64_t start, Py_ssize_t n) noexcept nogil:
    """The draws of elements start..start+n-1 (uniform on [0, 1) or standard normal), start
    even (chunks start at multiples of CHUNK): one Philox call per pair of elements
    (2k, 2k + 1), whole pairs written (draws holds n + 1). The uniforms come four pairs
    side by side (pyx/philox.h); the normals from them, pair by pair (Box-Muller)."""
    cdef Py_ssize_t k, pairs = (n + 1) // 2
    cdef uint64_t first = start >> 1
    cdef S.Pair p
    S.af_philox_uniforms(seed, stream, first, pairs, draws)
    if normal:
        for k in range(pairs):
            p = S.box_muller(draws[2 * k], draws[2 * k + 1])
            draws[2 * k] = p.first
            draws[2 * k + 1] = p.second


cdef double block(Op op, const floating* x, const floating* g, floating* out, Py_ssize_t start,
                  Py_ssize_t n, const Params* p) noexcept nogil:
    """Elements start..start+n-1: out = f(x) (forward) or the backward (g is grad_output);
    RRELU_TRAIN_FWD also writes their noise where p.noise is not NULL (element i's at
    p.noise[i - p.noise_start]). The ops that draw take the draws of pairs (2k, 2k + 1):
    start is even for them.

    Returns the block's sum for SWISH_BWD (add_terms, total_of), else 0. (PACT_BWD:
    pact_grad.)
    In the backward loops each element's x and g are read before its out is written: out may
    be x or g. swish's results go through K.nan_passing, as the elementwise loops' (a NaN x
    comes out as itself, the same bits wherever it sits; swish with beta = 1 as silu).
    """
    cdef Py_ssize_t i, c, m
    cdef double xv, gv
    cdef double buffer[CHUNK + 1]  # + 1: fill_draws writes whole pairs
    cdef double partial[16]
    # the parameters in locals: out could alias *p as far as the compiler knows, which would
    # reload them at every element and keep the loops from vectorising
    cdef double a = p.a, b = p.b
    cdef uint64_t seed = p.seed
    cdef floating* noise = NULL
    cdef bint sums = op == SWISH_BWD
    if sums:   # (not otherwise: block_streamed calls this every 512 bytes)
        for i in range(16):
            partial[i] = 0.0
    if p.noise != NULL:
        noise = <floating*>p.noise + (start - p.noise_start)
    if op == SWISH_FWD:
        if a == 1.0:  # silu, to the bit (by its shorter kernel in moderate chunks, as silu's loop)
            c = 0
            while c < n:
                m = min(<Py_ssize_t>CHUNK, n - c)
                if K.moderate_inputs(x + c, m):
                    for i in range(c, c + m):
                        out[i] = K.nan_passing(x[i], K.silu_fwd(x[i], True))
                else:
                    for i in range(c, c + m):
                        out[i] = K.nan_passing(x[i], K.silu_fwd(x[i], False))
                c += m
        elif a == 0.0:
            for i in range(n):
                out[i] = <floating>S.swish0_fwd(x[i])
        elif floating is float:  # float32 kernels by chunks, per element where not moderate
            c = 0
            while c < n:
                m = min(<Py_ssize_t>CHUNK, n - c)
                if S.swish_moderate_chunk(x + c, <const float*>NULL, m, a):
                    for i in range(c, c + m):
                        out[i] = S.swish32_fwd(x[i], a)
                else:
                    for i in range(c, c + m):
                        out[i] = S.swish32_fwd_or_double(x[i], a)
                c += m
        else:  # by chunks, each by the kernel's moderate variant where it can (the same bits)
            c = 0
            while c < n:
                m = min(<Py_ssize_t>CHUNK, n - c)
                if S.swish_moderate_chunk(x + c, <const floating*>NULL, m, a):
                    for i in range(c, c + m):
                        out[i] = <floating>S.swish_fwd(x[i], a, True)
                else:
                    for i in range(c, c + m):
                        out[i] = K.nan_passing(x[i], <floating>S.swish_fwd(x[i], a, False))
                c += m
    elif op == PACT_FWD:
        for i in range(n):
            out[i] = S.pact_fwd(x[i], <floating>a)
    elif op == NOISY_RELU_BWD_FROM_OUTPUT:
        for i in range(n):
            out[i] = <floating>K.relu_bwd_from_output(g[i], x[i])
    elif op == RRELU_NOISE_BWD:  # (the product in the dtype, as PyTorch's; a NaN g as itself)
        for i in range(n):
            out[i] = K.nan_passing(g[i], g[i] * x[i])
    else:
        c = 0
        while c < n:
            m = min(<Py_ssize_t>CHUNK, n - c)
            if op == SWISH_BWD and a == 0.0:
                for i in range(m):
                    xv, gv = x[c + i], g[c + i]
                    buffer[i] = S.swish0_dbeta(gv, xv)
                    out[c + i] = <floating>S.swish0_bwd(gv, xv)
                add_terms(partial, buffer, m)
            elif op == SWISH_BWD and a == 1.0:  # silu's gradient, to the bit (in x's precision)
                if K.moderate_inputs_and_multipliers(x + c, g + c, m):
                    for i in range(m):
                        out[c + i] = K.nan_passing(x[c + i], S.silu_bwd_and_dbeta(
                            g[c + i], x[c + i], &buffer[i], True))
                else:
                    for i in range(m):
                        out[c + i] = K.nan_passing(x[c + i], S.silu_bwd_and_dbeta(
                            g[c + i], x[c + i], &buffer[i], False))
                add_terms(partial, buffer, m)
            elif op == SWISH_BWD:
                if floating is float:  # float32 kernels, per element where not moderate
                    if S.swish_moderate_chunk(x + c, g + c, m, a):
                        for i in range(m):
                            out[c + i] = S.swish32_bwd_and_dbeta(g[c + i], x[c + i], a,
                                                                 &buffer[i])
                    else:
                        for i in range(m):
                            out[c + i] = S.swish32_bwd_or_double(g[c + i], x[c + i], a,
                                                                 &buffer[i])
                elif S.swish_moderate_chunk(x + c, g + c, m, a):
                    for i in range(m):
                        out[c + i] = <floating>S.swish_bwd_and_dbeta(g[c + i], x[c + i], a,
                                                                     &buffer[i], True)
                else:
                    for i in range(m):
                        out[c + i] = K.nan_passing(x[c + i], <floating>S.swish_bwd_and_dbeta(
                            g[c + i], x[c + i], a, &buffer[i], False))
                add_terms(partial, buffer, m)
            elif op == RRELU_TRAIN_FWD or op == RRELU_TRAIN_BWD:
                fill_draws(buffer, False, seed, S.STREAM_RRELU, <uint64_t>(start + c), m)
                if op == RRELU_TRAIN_FWD and noise != NULL:
                    for i in range(m):
                        xv = x[c + i]
                        out[c + i] = <floating>S.rrelu_train_fwd(xv, a + b * buffer[i])
                        noise[c + i] = <floating>S.rrelu_train_noise(xv, a + b * buffer[i])
                elif op == RRELU_TRAIN_FWD:
                    for i in range(m):
                        out[c + i] = <floating>S.rrelu_train_fwd(x[c + i], a + b * buffer[i])
                else:
                    for i in range(m):
                        out[c + i] = <floating>S.rrelu_train_bwd(g[c + i], x[c + i],
                                                                 a + b * buffer[i])
            elif op == NOISY_RELU_FWD or op == NOISY_RELU_BWD:
                fill_draws(buffer, True, seed, S.STREAM_NOISY_RELU, <uint64_t>(start + c), m)
                if op == NOISY_RELU_FWD:
                    for i in range(m):
                        out[c + i] = <floating>K.relu_fwd(x[c + i] + a * buffer[i])
                else:
                    for i in range(m):
                        out[c + i] = <floating>K.relu_bwd(g[c + i], x[c + i] + a * buffer[i])
            c += m
    return total_of(partial) if sums else 0.0


cdef double pact_grad(const floating* x, const floating* g, floating* out, Py_ssize_t n,
                      double alpha, bint stream) noexcept nogil:
    """PACT_BWD over n elements: grad_input into out, and the sum of the d/dalpha terms (by
    chunks, add_terms and total_of, as block()'s sums). With `stream`, grad_input is computed
    into a buffer in the first-level cache and streamed out from there (af_stream_push).
    Outside block(): inside, the streamed loop cost swish's float64 backward at 10^7 about 4 %
    (GCC allocated block()'s registers anew). The two loops written out: one loop storing
    through a pointer chosen per chunk took up to 8 % more time at 10^5."""
    cdef Py_ssize_t i, c = 0, m
    cdef double xv, gv
    cdef double terms[CHUNK]
    cdef double partial[16]
    cdef double buffer[CHUNK + (VECTOR >> 3)]
    cdef af_streamer streamer = af_streamer_to(<char*>out, <char*>buffer, VECTOR,
                                               sizeof(floating))
    cdef floating* dest = out
    for i in range(16):
        partial[i] = 0.0
    while c < n:
        m = min(<Py_ssize_t>CHUNK, n - c)
        if stream:
            dest = <floating*>(<char*>buffer + streamer.held)
            for i in range(m):
                xv, gv = x[c + i], g[c + i]
                terms[i] = S.pact_dalpha(gv, xv, alpha)
                dest[i] = <floating>S.pact_bwd(gv, xv, alpha)
            af_stream_push(&streamer, m * sizeof(floating), c + m == n)
        else:
            for i in range(m):
                xv, gv = x[c + i], g[c + i]
                terms[i] = S.pact_dalpha(gv, xv, alpha)
                out[c + i] = <floating>S.pact_bwd(gv, xv, alpha)
        add_terms(partial, terms, m)
        c += m
    if stream:
        af_stream_fence()
    return total_of(partial)


cdef void swish_grad_input(const floating* x, const floating* g, floating* out, Py_ssize_t n,
                           double beta) noexcept nogil:
    """SWISH_BWD_INPUT: the grad_input of SWISH_BWD, to the bit, without the d/dbeta terms
    (the kernels with a NULL term pointer compute none), by the same chunks and kernels.
    Written out beside block()'s SWISH_BWD loops rather than shared with them: one chunk
    function taking the term pointer as an argument was not inlined by GCC, so NULL was no
    longer a constant in it and its loops ran about 10x slower, unvectorised."""
    cdef Py_ssize_t i, c = 0, m
    if beta == 0.0:
        for i in range(n):
            out[i] = <floating>S.swish0_bwd(g[i], x[i])
        return
    while c < n:
        m = min(<Py_ssize_t>CHUNK, n - c)
        if beta == 1.0:  # silu's gradient
            if K.moderate_inputs_and_multipliers(x + c, g + c, m):
                for i in range(c, c + m):
                    out[i] = K.nan_passing(x[i], K.silu_bwd(g[i], x[i], True))
            else:
                for i in range(c, c + m):
                    out[i] = K.nan_passing(x[i], K.silu_bwd(g[i], x[i], False))
        elif floating is float:
            if S.swish_moderate_chunk(x + c, g + c, m, beta):
                for i in range(c, c + m):
                    out[i] = S.swish32_bwd_and_dbeta(g[i], x[i], beta, NULL)
            else:
                for i in range(c, c + m):
                    out[i] = S.swish32_bwd_or_double(g[i], x[i], beta, NULL)
        elif S.swish_moderate_chunk(x + c, g + c, m, beta):
            for i in range(c, c + m):
                out[i] = <floating>S.swish_bwd_and_dbeta(g[i], x[i], beta, NULL, True)
        else:
            for i in range(c, c + m):
                out[i] = K.nan_passing(x[i], <floating>S.swish_bwd_and_dbeta(
                    g[i], x[i], beta, NULL, False))
        c += m


cdef void block_streamed(Op op, const floating* px, const floating* pg, floating* po,
                         Py_ssize_t start, Py_ssize_t stop, const Params* p) noexcept nogil:
    """One thread's elements start..stop-1 of a memory-bound op beyond the cache, as the
    elementwise loops' streamed rows (_elementwise.pyx.tp): block() of the elements before
    the output's first VECTOR boundary directly, then of STREAM_BYTES at a time into a buffer
    in the first-level cache, streamed from there (rrelu's noise, where it is written, from
    a second buffer); fenced once at the end. start is even, and so is every block's first
    element (the head rounded up to an even count: the draws come in pairs)."""
    cdef double buffer[STREAM_BYTES >> 3]
    cdef double noise_buffer[STREAM_BYTES >> 3]
    cdef floating* noise = <floating*>p.noise
    cdef Params q = p[0]   # (its noise the buffer)
    cdef Py_ssize_t per = STREAM_BYTES // sizeof(floating), m
    cdef Py_ssize_t head = to_vector_boundary(po + start, sizeof(floating))
    cdef Py_ssize_t c = start + min(stop - start, head + head % 2)
    block(op, px + start, pg + start, po + start, start, c - start, p)
    if noise != NULL:
        q.noise = noise_buffer
    while c < stop:
        m = min(per, stop - c)
        q.noise_start = c
        block(op, px + c, pg + c, <floating*>buffer, c, m, &q)
        af_stream_copy(<char*>(po + c), <char*>buffer, m * sizeof(floating))
        if noise != NULL:
            af_stream_copy(<char*>(noise + c), <char*>noise_buffer, m * sizeof(floating))
        c += m
    af_stream_fence()


cdef inline double one_block(Op op, const floating* x, const floating* g, floating* out,
                             Py_ssize_t start, Py_ssize_t m, const Params* p) noexcept nogil:
    """The m elements start..start+m-1 of a block (at these addresses; start: their index)."""
    if op == SWISH_BWD_INPUT:  # (outside block(): inside, it slowed block()'s other loops)
        swish_grad_input(x, g, out, m, p.a)
        return 0.0
    if op == PACT_BWD:
        return pact_grad(x, g, out, m, p.a, p.stream)
    return block(op, x, g, out, start, m, p)


cdef inline double one_of(Op op, const floating* px, const floating* pg, floating* po,
                          Py_ssize_t k, Py_ssize_t n, const Params* p) noexcept nogil:
    """Block k of run_elementwise's n elements."""
    cdef Py_ssize_t m = min(<Py_ssize_t>BLOCK, n - k * BLOCK)
    return one_block(op, px + k * BLOCK, pg + k * BLOCK, po + k * BLOCK, k * BLOCK, m, p)


cdef double run_elementwise(Op op, const floating* px, const floating* pg, floating* po,
                            Py_ssize_t n, double a, double b, uint64_t seed, int n_threads,
                            Py_ssize_t parallel_threshold, floating* noise=NULL) except? -1.0:
    """`elementwise` on n elements at these addresses (n > 0)."""
    cdef Py_ssize_t n_blocks = (n + BLOCK - 1) // BLOCK, k, per, t
    cdef Params p
    cdef double total = 0.0
    cdef double one_block
    cdef double* sums = &one_block
    cdef double[::1] block_sums
    # the memory-bound ops (pact's clip and its backward, rrelu's forward when it writes its
    # noise too, the backwards from the noise or the output) stream their output beyond the
    # cache, as the elementwise loops (and as there, not in place): by block_streamed, but
    # pact's backward, whose sums keep their blocks and stream within them (pact_grad). At
    # 10^7, streamed against plain (2 threads): rrelu's forward with its noise float64 8.8
    # against 22.9 ms, float32 6.8 against 7.2 (without it, streamed took 1.05x the time,
    # bound by its draws: not streamed); its backward from the noise float32 2.77 against
    # 3.26 ms, float64 5.13 against 6.62; pact's backward float32 3.40 against 4.33 ms,
    # float64 7.49 against 10.1. Not swish's forward, bound by its exponential as silu's:
    # streamed at beta = 1 it took 1.3-1.5x the time (once 0.99x) on the Intel Xeon of model
    # 207 in float32 at 5*10^6-10^7, 0.94-1.15x in float64, and 1.1-1.3x on the AMD EPYC
    # (Zen 4) in float32 at 10^7.
    cdef bint one_input = op == PACT_FWD
    cdef bint stream = ((one_input
                         or (op == RRELU_TRAIN_FWD and noise != NULL)
                         or op == PACT_BWD or op == RRELU_NOISE_BWD
                         or op == NOISY_RELU_BWD_FROM_OUTPUT)
                        and po != px and po != pg
                        and (2 if one_input else 3) * n * <Py_ssize_t>sizeof(floating)
                        >= STREAM_FROM)
    # NumPy's large arrays start 16 bytes past a 64-byte boundary, so every other vector store
    # would cross a cache line (pact's forward at 50,000 float64 elements, operands in the L2:
    # 1.37x the time of hardtanh's, whose loops start aligned; Intel Xeon). The ops whose
    # every element is computed alone compute a few elements first, and their blocks start
    # from the output's next VECTOR boundary (the same bits). Not the ops that sum (the block
    # partition is their summation order) or draw (a block's draws start at its index).
    cdef Py_ssize_t head = 0
    if (n >= PEEL_FROM and not stream
            and (op == SWISH_FWD or op == PACT_FWD or op == NOISY_RELU_BWD_FROM_OUTPUT
                 or op == RRELU_NOISE_BWD or op == SWISH_BWD_INPUT)):
        head = to_vector_boundary(po, sizeof(floating))
    p.a, p.b, p.seed, p.noise, p.noise_start, p.stream = a, b, seed, noise, 0, stream
    if head:
        one_of(op, px, pg, po, 0, head, &p)
        px, pg, po, n = px + head, pg + head, po + head, n - head
        n_blocks = (n + BLOCK - 1) // BLOCK
    if n_blocks > 1:
        block_sums = np.empty(n_blocks)
        sums = &block_sums[0]
    if n < parallel_threshold:
        n_threads = 1
    with nogil:
        if stream and op != PACT_BWD:   # (no sums) each thread a contiguous range, fenced once
            per = (n + n_threads - 1) // n_threads
            per += per % 2   # (even starts: the draws come in pairs)
            for t in prange(n_threads, schedule='static', num_threads=n_threads):
                block_streamed(op, px, pg, po, min(t * per, n), min((t + 1) * per, n), &p)
            return 0.0
        if n_threads <= 1 or n_blocks == 1:
            for k in range(n_blocks):
                sums[k] = one_of(op, px, pg, po, k, n, &p)
        else:
            for k in prange(n_blocks, schedule='static', num_threads=n_threads):
                sums[k] = one_of(op, px, pg, po, k, n, &p)
        for k in range(n_blocks):  # in block order, whatever the thread count
            total += sums[k]
    return total


cdef inline const floating* gathered(const floating* p, Py_ssize_t stride, floating* buffer,
                                     Py_ssize_t m) noexcept nogil:
    """The m elements p[0], p[stride], ... as a contiguous run: p itself where stride is 1,
    else their copy in buffer."""
    if stride == 1:
        return p
    gather_run(buffer, <const char*>p, stride * <Py_ssize_t>sizeof(floating), m)
    return buffer


cdef void gathered_blocks(Op op, const floating* px, Py_ssize_t sx, const floating* pg,
                          Py_ssize_t sg, floating* po, Py_ssize_t so, Py_ssize_t n,
                          Py_ssize_t first, Py_ssize_t stop, floating* work, Py_ssize_t part,
                          const Params* p, double* sums) noexcept nogil:
    """Blocks first..stop-1 of run_gathered's n elements: each block's strided operands
    copied into `work` (3 parts of `part` >= its size: x, grad_output, out), computed there by
    the contiguous code (one_block), its output copied out. x's block is read whole before
    any output is written: out may be x (the same view)."""
    cdef Py_ssize_t k, lo, m
    cdef const floating* x
    cdef const floating* g
    cdef floating* o
    for k in range(first, stop):
        lo = k * BLOCK
        m = min(<Py_ssize_t>BLOCK, n - lo)
        x = gathered(px + lo * sx, sx, work, m)
        g = x if pg == px and sg == sx else gathered(pg + lo * sg, sg, work + part, m)
        o = po + lo if so == 1 else work + 2 * part
        sums[k] = one_block(op, x, g, o, lo, m, p)
        if so != 1:
            scatter_run(<char*>(po + lo * so), so * <Py_ssize_t>sizeof(floating), o, m)


cdef double run_gathered(Op op, const floating* px, Py_ssize_t sx, const floating* pg,
                         Py_ssize_t sg, floating* po, Py_ssize_t so, Py_ssize_t n, double a,
                         double b, uint64_t seed, int n_threads, Py_ssize_t parallel_threshold,
                         floating* noise) except? -1.0:
    """run_elementwise for operands of any stride (in elements; noise contiguous): the same
    blocks, with the same indices, summed in the same order, so the same bits. Each thread
    takes a range of blocks, and copies the strided operands of one block at a time through
    its part of a workspace: a strided input is never copied whole (that copy, into a new
    array, took swish's forward on every other element of 2 x 10^7 float32 11.6 ms against
    4.9 contiguous)."""
    cdef Py_ssize_t n_blocks = (n + BLOCK - 1) // BLOCK, t, per
    cdef Params p
    cdef double total = 0.0
    cdef double[::1] sums = np.empty(n_blocks)
    if n < parallel_threshold or n_blocks == 1:
        n_threads = 1
    per = (n_blocks + n_threads - 1) // n_threads
    # per thread, 3 parts of `part` elements (a block, or all n, rounded up to 64 bytes), the
    # whole 64-byte aligned
    cdef Py_ssize_t part = (min(<Py_ssize_t>BLOCK, n) + 15) // 16 * 16
    cdef cnp.ndarray space = np.empty(n_threads * 3 * part * sizeof(floating) + 64, np.uint8)
    cdef char* start = <char*>cnp.PyArray_DATA(space)
    cdef floating* work = <floating*>(start + (64 - <size_t>start % 64) % 64)
    p.a, p.b, p.seed, p.noise, p.noise_start, p.stream = a, b, seed, noise, 0, False
    with nogil:
        if n_threads == 1:
            gathered_blocks(op, px, sx, pg, sg, po, so, n, 0, n_blocks, work, part, &p,
                            &sums[0])
        else:
            for t in prange(n_threads, schedule='static', num_threads=n_threads):
                gathered_blocks(op, px, sx, pg, sg, po, so, n, min(t * per, n_blocks),
                                min((t + 1) * per, n_blocks), work + t * 3 * part, part, &p,
                                &sums[0])
        for t in range(n_blocks):  # in block order, whatever the thread count
            total += sums[t]
    return total


def elementwise(Op op, const floating[:] x, const floating[:] grad_output,
                floating[:] out, double a, double b, uint64_t seed, int n_threads,
                Py_ssize_t parallel_threshold, floating[::1] noise=None):
    """Run `op` over the 1-D arrays (grad_output is ignored by the forwards: pass x), of any
    strides that are multiples of the item size (out's not 0); `noise` contiguous.

    RRELU_TRAIN_FWD also writes `noise` when one is given (x's size, overlapping no other).
    Returns the sum of the parameter's gradient terms (SWISH_BWD, PACT_BWD), else 0.0.
    """
    cdef Py_ssize_t size = sizeof(floating)
    cdef Py_ssize_t sx = x.strides[0] // size, sg = grad_output.strides[0] // size
    cdef Py_ssize_t so = out.strides[0] // size
    cdef floating* pn = &noise[0] if noise is not None and noise.shape[0] else NULL
    if x.shape[0] == 0:
        return 0.0
    if sx == 1 and sg == 1 and so == 1:
        return run_elementwise(op, &x[0], &grad_output[0], &out[0], x.shape[0], a, b, seed,
                               n_threads, parallel_threshold, pn)
    return run_gathered(op, &x[0], sx, &grad_output[0], sg, &out[0], so, x.shape[0], a, b,
                        seed, n_threads, parallel_threshold, pn)


def elementwise_fast(Op op, object x, object grad_output, object out, double a, double b,
                     uint64_t seed, int n_threads, Py_ssize_t parallel_threshold,
                     object noise=None):
    """`elementwise` for the common call, without Python-level argument handling: x and
    grad_output C-contiguous float32/float64 ndarrays of one dtype and shape (not 0-d), `out`
    None or a writeable C-contiguous ndarray of that dtype and shape that is each input or
    overlaps none, `noise` (RRELU_TRAIN_FWD) None or one like `out` that overlaps neither x
    nor out. Returns (result, sum as a NumPy scalar of their dtype), or None when the call is
    not that simple (the Python layer then handles it, errors included)."""
    cdef cnp.ndarray ax, ag, target
    cdef void* noise_data = NULL
    cdef int type_num
    cdef Py_ssize_t n
    cdef double total = 0.0
    if type(x) is not cnp.ndarray:
        return None
    ax = x
    type_num = float_type(ax)
    if type_num < 0 or not simple(ax):
        return None
    cdef int nd = cnp.PyArray_NDIM(ax)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(ax)
    if grad_output is not x and not like(grad_output, type_num, nd, dims, True):
        return None
    ag = grad_output
    if out is None:
        target = cnp.PyArray_EMPTY(nd, dims, type_num, 0)
    else:
        if not writeable_like(out, type_num, nd, dims, True):
            return None
        target = out
        if not independent_or_same(ax, target) or not independent_or_same(ag, target):
            return None
    if noise is not None:
        if (not writeable_like(noise, type_num, nd, dims, True) or not apart(noise, ax)
                or not apart(noise, target)):
            return None
        noise_data = cnp.PyArray_DATA(<cnp.ndarray>noise)
    n = cnp.PyArray_SIZE(ax)
    cdef float total32
    if n > 0 and type_num == cnp.NPY_FLOAT:
        total = run_elementwise(op, <const float*>cnp.PyArray_DATA(ax),
                                <const float*>cnp.PyArray_DATA(ag),
                                <float*>cnp.PyArray_DATA(target), n, a, b, seed, n_threads,
                                parallel_threshold, <float*>noise_data)
    elif n > 0:
        total = run_elementwise(op, <const double*>cnp.PyArray_DATA(ax),
                                <const double*>cnp.PyArray_DATA(ag),
                                <double*>cnp.PyArray_DATA(target), n, a, b, seed, n_threads,
                                parallel_threshold, <double*>noise_data)
    # the sum as a NumPy scalar of the dtype, made here: np.float32(total) costs ~0.3 us
    if type_num == cnp.NPY_FLOAT:
        total32 = <float>total
        return target, cnp.PyArray_ToScalar(&total32, target)
    return target, cnp.PyArray_ToScalar(&total, target)


def swish_moderate_block(double beta, const floating[::1] x,
                         const floating[::1] grad_output=None):
    """For the tests: does swish's loop (beta not 0 or 1) take its moderate kernels alone for
    a chunk of these x (and grad_output, in the backward): for float32 the float32 kernels,
    for double the double kernels' moderate variant?"""
    cdef const floating* g = NULL
    if grad_output is not None:
        g = &grad_output[0]
    return S.swish_moderate_chunk(&x[0], g, x.shape[0], beta)


def philox_uniforms(uint64_t seed, uint32_t stream, uint64_t first, Py_ssize_t pairs):
    """The uniforms of `pairs` consecutive Philox draws from pair `first` (for the tests)."""
    cdef double[::1] out = np.empty(2 * pairs)
    if pairs > 0:
        S.af_philox_uniforms(seed, stream, first, pairs, &out[0])
    return np.asarray(out)


def philox_words(tuple counter, tuple key):
    """Philox4x32-10 of four 32-bit counter words under two 32-bit key words (for the tests)."""
    cdef S.af_words w = S.af_philox4x32_10(counter[0], counter[1], counter[2], counter[3],
                                           key[0], key[1])
    return (w.w0, w.w1, w.w2, w.w3)


# ---- prelu ---------------------------------------------------------------------------------

cdef struct Tiling:
    # x seen as (outer, channels, inner); a work item is rows n0..n1-1, channels c0..c1-1,
    # inner positions j0..j1-1
    Py_ssize_t outer, channels, inner
    Py_ssize_t rows, chunk, tile               # rows per group, inner chunk, channels per tile
    Py_ssize_t n_groups, n_chunks, n_tiles
    bint whole_rows                            # items of whole rows side by side (prelu_rows)


cdef Tiling tiling(Py_ssize_t outer, Py_ssize_t channels, Py_ssize_t inner) noexcept nogil:
    """Cut (outer, channels, inner) into work items; a function of the shape only.

    Each channel's sum is made of block sums over `rows` x `chunk` >= CHANNEL_BLOCK elements
    where the shape allows (rows are grouped when inner is short), so there are at most
    ~size / CHANNEL_BLOCK block sums, whatever the number of channels. Channel tiles make work
    items of ~4 BLOCK elements; they do not change any sum.
    """
    cdef Tiling t
    t.outer, t.channels, t.inner = outer, channels, inner
    t.chunk = min(inner, <Py_ssize_t>BLOCK)
    t.rows = min(outer, max(<Py_ssize_t>1, (CHANNEL_BLOCK + t.chunk - 1) // t.chunk))
    t.tile = min(channels, max(<Py_ssize_t>1, 4 * BLOCK // (t.rows * t.chunk)))
    t.whole_rows = inner == 1 and channels <= PRELU_LANES
    if t.whole_rows:
        # whole rows side by side (prelu_rows): every channel in each item, and items of
        # about 2 BLOCK elements where the rows are short
        t.rows = min(outer, max(<Py_ssize_t>CHANNEL_BLOCK, 2 * BLOCK // channels))
        t.tile = channels
    t.n_groups = (outer + t.rows - 1) // t.rows
    t.n_chunks = (inner + t.chunk - 1) // t.chunk
    t.n_tiles = (channels + t.tile - 1) // t.tile
    return t


cdef inline Py_ssize_t segment_width(Py_ssize_t channels) noexcept nogil:
    """The elements per segment of prelu_rows: q whole rows, q a multiple of
    8 / gcd(channels, 8) where that fits in PRELU_LANES, so that a segment is whole 8-lane
    vectors."""
    cdef Py_ssize_t a = channels, b = 8, step
    while b:
        a, b = b, a % b
    step = channels * (8 // a)
    if step <= PRELU_LANES:
        return (PRELU_LANES // step) * step
    return (PRELU_LANES // channels) * channels


cdef inline void prelu_segment(const floating* x, const floating* g, const floating* pattern,
                               floating* dest, double* lane_sums, Py_ssize_t m) noexcept nogil:
    """Lanes 0..m-1 of a segment of prelu_rows (x, g and pattern from its lane 0) into dest;
    backward (g not NULL): each lane's d/dweight term added to its lane sum."""
    cdef Py_ssize_t k
    cdef floating xf, gf
    if g == NULL:
        for k in range(m):
            dest[k] = S.prelu_fwd(x[k], pattern[k])
        return
    for k in range(m):
        # (grad_input in the arrays' precision: a float32 product rounded once, as in
        # double; the term in double, where a float32 product is exact)
        xf, gf = x[k], g[k]
        lane_sums[k] += S.prelu_dweight(gf, xf)
        dest[k] = K.leaky_relu_bwd(gf, xf, pattern[k])


cdef void prelu_rows(const floating* x, const floating* g, const floating* pattern,
                     floating* out, Py_ssize_t rows, Py_ssize_t channels,
                     double* block_sums, bint stream) noexcept nogil:
    """prelu_item for whole rows of at most PRELU_LANES contiguous channels (inner == 1):
    the rows as one run, cut into segments of q whole rows against `pattern`, the weights
    repeated q times (segment_width elements), so that the loops run over stretches of up to
    PRELU_LANES elements (and vectorise) rather than over each row's few channels. Lane k of
    a segment is channel k % channels; its d/dweight terms add up in a lane sum, folded into
    the channels' block sums at the end.

    With `stream`, the segments are computed into a buffer in the first-level cache and
    streamed out from there (af_stream_push, stream.h): the same lanes, terms and sums."""
    cdef Py_ssize_t width = segment_width(channels), end = rows * channels
    cdef Py_ssize_t k, s, m, j, c
    cdef double lane_sums[PRELU_LANES]
    cdef double buffer[PRELU_LANES + (VECTOR >> 3)]
    cdef af_streamer streamer = af_streamer_to(<char*>out, <char*>buffer, VECTOR,
                                               sizeof(floating))
    cdef const floating* gs = g
    if g != NULL:
        for k in range(width):
            lane_sums[k] = 0.0
    s = 0
    while s < end:
        m = min(width, end - s)
        if g != NULL:
            gs = g + s
        if not stream:
            prelu_segment(x + s, gs, pattern, out + s, lane_sums, m)
        else:
            prelu_segment(x + s, gs, pattern,
                          <floating*>(<char*>buffer + streamer.held), lane_sums, m)
            af_stream_push(&streamer, m * sizeof(floating), s + m == end)
        s += m
    if stream:
        af_stream_fence()
    if g == NULL:
        return
    for j in range(width // channels):
        for c in range(channels):
            block_sums[c] += lane_sums[j * channels + c]


cdef void prelu_item(const Tiling* t, Py_ssize_t item, const floating* x, const floating* g,
                     const floating* weight, const floating* pattern, floating* out,
                     double* sums, bint stream) noexcept nogil:
    """One work item: forward when g is NULL, else backward, adding each channel's
    d/dweight terms to its block sum sums[(group * n_chunks + chunk) * channels + c]. Each
    element's x and g are read before its out is written (out may be x or g)."""
    cdef Py_ssize_t jc = item % t.n_chunks, rest = item // t.n_chunks
    cdef Py_ssize_t tile = rest % t.n_tiles, group = rest // t.n_tiles
    cdef Py_ssize_t n0 = group * t.rows, n1 = min(n0 + t.rows, t.outer)
    cdef Py_ssize_t c0 = tile * t.tile, c1 = min(c0 + t.tile, t.channels)
    cdef Py_ssize_t j0 = jc * t.chunk, j1 = min(j0 + t.chunk, t.inner)
    cdef Py_ssize_t n, c, j, k, m, row, base
    cdef double w, s, xv, gv
    cdef double buffer[CHUNK]
    cdef double* block_sums = sums + (group * t.n_chunks + jc) * t.channels if g != NULL else NULL
    if t.whole_rows:
        row = n0 * t.channels
        prelu_rows(x + row, g + row if g != NULL else NULL, pattern, out + row, n1 - n0,
                   t.channels, block_sums, stream)
        return
    for n in range(n0, n1):
        row = n * t.channels * t.inner
        if t.inner == 1:
            # one element per channel and row, the channels contiguous: the loops run over
            # them (and vectorise); each channel's sum adds its rows in order
            if g == NULL:
                for c in range(c0, c1):
                    out[row + c] = S.prelu_fwd(x[row + c], weight[c])
            else:
                for c in range(c0, c1):
                    xv, gv = x[row + c], g[row + c]
                    block_sums[c] += S.prelu_dweight(gv, xv)
                    out[row + c] = <floating>K.leaky_relu_bwd(gv, xv, weight[c])
            continue
        for c in range(c0, c1):
            base = row + c * t.inner
            w = weight[c]
            if g == NULL:
                for j in range(base + j0, base + j1):
                    out[j] = S.prelu_fwd(x[j], <floating>w)
                continue
            s = 0.0
            j = base + j0
            while j < base + j1:
                m = min(<Py_ssize_t>CHUNK, base + j1 - j)
                for k in range(m):
                    xv, gv = x[j + k], g[j + k]
                    buffer[k] = S.prelu_dweight(gv, xv)
                    out[j + k] = <floating>K.leaky_relu_bwd(gv, xv, w)
                s += sum_terms(buffer, m)
                j += m
            block_sums[c] += s  # rows in order: the same sums for any thread count


cdef void run_prelu(const Tiling* t, const floating* px, const floating* pg,
                    const floating* pw, floating* po, double* sums, double* grad_weight,
                    int n_threads, Py_ssize_t parallel_threshold) noexcept nogil:
    """prelu over the (outer, channels, inner) elements at px (forward when pg is NULL, else
    backward: each channel's gradient into grad_weight); sums holds the block sums, zeroed
    (n_sums(t) * channels of them)."""
    cdef Py_ssize_t n_items = t.n_groups * t.n_tiles * t.n_chunks, item, c, k
    cdef double total
    cdef floating pattern[PRELU_LANES]  # prelu_rows' weights, repeated once for all items
    # whole rows beyond the cache stream their output (prelu_rows), not in place. At
    # (1.25e6, 8), 2 threads, streamed against plain: float32 forward 1.64 against 3.12 ms,
    # backward 2.85 against 4.30; float64 3.92 against 6.33, 6.48 against 9.34
    cdef Py_ssize_t operands = 2 if pg == NULL else 3
    cdef bint stream = (t.whole_rows and po != px and po != pg and operands * t.outer
                        * t.channels * <Py_ssize_t>sizeof(floating) >= STREAM_FROM)
    if t.whole_rows:
        for k in range(segment_width(t.channels) // t.channels):
            for c in range(t.channels):
                pattern[k * t.channels + c] = pw[c]
    if t.outer * t.channels * t.inner < parallel_threshold:
        n_threads = 1
    if n_threads <= 1 or n_items == 1:
        for item in range(n_items):
            prelu_item(t, item, px, pg, pw, pattern, po, sums, stream)
    else:
        for item in prange(n_items, schedule='static', num_threads=n_threads):
            prelu_item(t, item, px, pg, pw, pattern, po, sums, stream)
    if pg != NULL:
        for c in range(t.channels):  # block sums in block order
            total = 0.0
            for k in range(t.n_groups * t.n_chunks):
                total += sums[k * t.channels + c]
            grad_weight[c] = total


def prelu(const floating[:, :, ::1] x, const floating[:, :, ::1] grad_output,
          const floating[::1] weight, floating[:, :, ::1] out, bint backward, int n_threads,
          Py_ssize_t parallel_threshold):
    """prelu over x seen as (outer, channels, inner) with one weight per channel.

    Forward (backward False; grad_output ignored) writes out; backward writes grad_input to out
    and returns the weight's gradient (float64, one per channel).
    """
    cdef Tiling t
    cdef double[::1] grad_weight = np.zeros(x.shape[1])
    cdef double[::1] sums
    if x.shape[0] * x.shape[1] * x.shape[2] == 0:
        return np.asarray(grad_weight) if backward else None
    t = tiling(x.shape[0], x.shape[1], x.shape[2])
    sums = np.zeros(t.n_groups * t.n_chunks * t.channels if backward else 1)
    with nogil:
        run_prelu(&t, &x[0, 0, 0], &grad_output[0, 0, 0] if backward else NULL, &weight[0],
                  &out[0, 0, 0], &sums[0], &grad_weight[0], n_threads, parallel_threshold)
    return np.asarray(grad_weight) if backward else None


def prelu_fast(bint backward, object x, object grad_output, object weight, object out,
               int n_threads, Py_ssize_t parallel_threshold):
    """prelu or its backward for the common call, without Python-level argument handling: x
    a C-contiguous float32/float64 ndarray (not 0-d), weight a C-contiguous ndarray of x's
    dtype with one element or one per channel, grad_output (backward) a C-contiguous ndarray
    of x's dtype and shape, `out` None or a writeable C-contiguous ndarray of that dtype and
    shape that is x (or grad_output) itself or overlaps no input. Returns the forward's
    result, or (grad_input, grad_weight of weight's shape and dtype: a NumPy scalar for 0-d
    weight), or None when the call is not that simple (the Python layer then handles it,
    errors included)."""
    cdef cnp.ndarray ax, aw, ag = None, target, grad_weight = None
    cdef int type_num, nd
    cdef Py_ssize_t size, channels, outer, inner, n_sums, c
    cdef Tiling t
    # a small call's block sums and gradient on the stack (no NumPy allocation)
    cdef double small_sums[PRELU_LANES]
    cdef double small_gradient[PRELU_LANES]
    cdef double* sums = small_sums
    cdef double* gw = small_gradient
    cdef double[::1] sums_array
    cdef double[::1] gw_array
    if type(x) is not cnp.ndarray or type(weight) is not cnp.ndarray:
        return None
    ax, aw = x, weight
    type_num = float_type(ax)
    if (type_num < 0 or not simple(ax) or cnp.PyArray_TYPE(aw) != type_num
            or not simple(aw)):
        return None
    nd = cnp.PyArray_NDIM(ax)
    size = cnp.PyArray_SIZE(ax)
    channels = cnp.PyArray_SIZE(aw)
    if channels == 1:
        outer, inner = 1, size
    elif nd == 1 and channels == cnp.PyArray_DIM(ax, 0):
        outer, inner = 1, 1
    elif nd >= 2 and channels == cnp.PyArray_DIM(ax, 1):
        outer = cnp.PyArray_DIM(ax, 0)
        inner = size // (outer * channels) if size else 0
    else:
        return None
    if backward:
        if not like(grad_output, type_num, nd, cnp.PyArray_DIMS(ax), True):
            return None
        ag = grad_output
    if out is None:
        target = cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(ax), type_num, 0)
    else:
        if not writeable_like(out, type_num, nd, cnp.PyArray_DIMS(ax), True):
            return None
        target = out
        if (not independent_or_same(ax, target) or not apart(aw, target)
                or (backward and not independent_or_same(ag, target))):
            return None
    if backward:
        grad_weight = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(aw), cnp.PyArray_DIMS(aw), type_num, 0)
    if size == 0:
        if backward:
            grad_weight[...] = 0
            return target, grad_weight if cnp.PyArray_NDIM(aw) else grad_weight[()]
        return target
    t = tiling(outer, channels, inner)
    n_sums = t.n_groups * t.n_chunks * channels if backward else 0
    if n_sums > PRELU_LANES:
        sums_array = np.zeros(n_sums)
        sums = &sums_array[0]
    else:
        for c in range(n_sums):
            small_sums[c] = 0.0
    if backward and channels > PRELU_LANES:
        gw_array = np.empty(channels)
        gw = &gw_array[0]
    cdef void* px = cnp.PyArray_DATA(ax)
    cdef void* pg = cnp.PyArray_DATA(ag) if backward else NULL
    cdef void* pw = cnp.PyArray_DATA(aw)
    cdef void* po = cnp.PyArray_DATA(target)
    with nogil:
        if type_num == cnp.NPY_FLOAT:
            run_prelu(&t, <const float*>px, <const float*>pg, <const float*>pw, <float*>po,
                      sums, gw, n_threads, parallel_threshold)
        else:
            run_prelu(&t, <const double*>px, <const double*>pg, <const double*>pw,
                      <double*>po, sums, gw, n_threads, parallel_threshold)
    if not backward:
        return target
    if type_num == cnp.NPY_FLOAT:
        for c in range(channels):
            (<float*>cnp.PyArray_DATA(grad_weight))[c] = <float>gw[c]
    else:
        for c in range(channels):
            (<double*>cnp.PyArray_DATA(grad_weight))[c] = gw[c]
    return target, grad_weight if cnp.PyArray_NDIM(aw) else grad_weight[()]


# ---- maxout --------------------------------------------------------------------------------

cdef inline bint replaces(floating v, floating top) noexcept nogil:
    """Does v replace the running maximum top? When greater, or when the first NaN (np.argmax's
    rule, so the gradient goes where the forward's value came from). `|` and `&`: no short
    circuit, so the loops can vectorise."""
    return (v > top) | ((v != v) & (top == top))


# The piece at which each group's maximum lies: an index of the data's width, so that the
# loops that set and compare it vectorise with the data (a 64-bit index beside float32 data
# left maxout's float32 backward a loop of unpredictable branches, and a 32-bit one beside
# double data its float64 backward: 6-7x the time)
ctypedef fused piece_index:
    uint32_t
    uint64_t


cdef void maxout_item(Py_ssize_t item, Py_ssize_t n_chunks, Py_ssize_t rows,
                      Py_ssize_t pieces, Py_ssize_t inner, const floating* x,
                      const floating* g, floating* out) noexcept nogil:
    """One work item of x seen as (rows, pieces, inner): up to CHUNK groups side by side, the
    "lanes" j of the loops (which vectorise over them). With inner > 1 they are CHUNK inner
    positions of row item // n_chunks (lane stride 1, piece stride inner); with inner == 1
    they are CHUNK rows, each a contiguous group (lane stride pieces, piece stride 1).

    Forward (g NULL): out[group] = its maximum. Backward: the group's gradient at its first
    maximum, 0 at its other elements (every group is read before it is written: out may be x).
    """
    cdef uint32_t narrow[CHUNK]
    cdef uint64_t wide[CHUNK]
    if floating is float and pieces <= UINT32_MAX:
        maxout_groups_of(item, n_chunks, rows, pieces, inner, x, g, out, narrow)
    else:
        maxout_groups_of(item, n_chunks, rows, pieces, inner, x, g, out, wide)


cdef inline void maxout_groups_of(Py_ssize_t item, Py_ssize_t n_chunks, Py_ssize_t rows,
                                  Py_ssize_t pieces, Py_ssize_t inner, const floating* x,
                                  const floating* g, floating* out,
                                  piece_index* where) noexcept nogil:
    """maxout_groups, with the common sizes of contiguous groups (inner 1) as constants: the
    compiler then reads their interleaved elements by vector loads and shuffles, where a
    stride known at run time only gathers them one by one (groups of 4 and 8: 0.35-0.92 of
    the time, of 3: 0.60-0.98)."""
    if inner == 1 and pieces == 3:
        maxout_groups(item, n_chunks, rows, 3, 1, x, g, out, where)
    elif inner == 1 and pieces == 4:
        maxout_groups(item, n_chunks, rows, 4, 1, x, g, out, where)
    elif inner == 1 and pieces == 8:
        maxout_groups(item, n_chunks, rows, 8, 1, x, g, out, where)
    else:
        maxout_groups(item, n_chunks, rows, pieces, inner, x, g, out, where)


cdef inline void maxout_groups(Py_ssize_t item, Py_ssize_t n_chunks, Py_ssize_t rows,
                               Py_ssize_t pieces, Py_ssize_t inner, const floating* x,
                               const floating* g, floating* out,
                               piece_index* where) noexcept nogil:
    """maxout_item's work, `where` its buffer of CHUNK piece indices."""
    cdef Py_ssize_t first, offset, m, lane, piece, j, p
    cdef floating v
    cdef floating top[CHUNK]
    cdef piece_index index
    if inner == 1:
        first = item * CHUNK
        m = min(<Py_ssize_t>CHUNK, rows - first)
        lane, piece = pieces, 1
        offset = first * pieces
    else:
        first = (item // n_chunks) * inner + (item % n_chunks) * CHUNK
        m = min(<Py_ssize_t>CHUNK, inner - (item % n_chunks) * CHUNK)
        lane, piece = 1, inner
        offset = (item // n_chunks) * pieces * inner + (item % n_chunks) * CHUNK
    # first: the index of the first group's output (and grad_output); offset: of its first
    # element in x (and grad_input)
    for j in range(m):
        top[j] = x[offset + j * lane]
        where[j] = 0
    for p in range(1, pieces):
        index = <piece_index>p
        for j in range(m):
            v = x[offset + p * piece + j * lane]
            if replaces(v, top[j]):
                top[j] = v
                where[j] = index
    if g == NULL:
        for j in range(m):
            out[first + j] = top[j]
        return
    for p in range(pieces):
        index = <piece_index>p
        for j in range(m):
            out[offset + p * piece + j * lane] = g[first + j] if where[j] == index else 0


cdef inline void pairs_run(const floating* pair, const floating* g, floating* dest,
                           Py_ssize_t m) noexcept nogil:
    """m pairs of neighbours (replaces' rule) into dest. Forward (g NULL): dest[j] = the maximum
    of pair[2 j] and pair[2 j + 1]. Backward (g the pairs' gradients, g[j] pair j's): g[j] at
    the pair's maximum and 0 at the other, dest[2 j] and dest[2 j + 1] (each pair read before
    it is written: dest may be pair)."""
    cdef Py_ssize_t j
    cdef floating gv
    cdef bint second
    if g == NULL:
        for j in range(m):
            dest[j] = pair[2 * j + 1] if replaces(pair[2 * j + 1], pair[2 * j]) else pair[2 * j]
        return
    for j in range(m):
        second = replaces(pair[2 * j + 1], pair[2 * j])
        gv = g[j]
        dest[2 * j] = 0 if second else gv
        dest[2 * j + 1] = gv if second else 0


cdef void maxout_pairs(Py_ssize_t item, Py_ssize_t rows, const floating* x, const floating* g,
                       floating* out) noexcept nogil:
    """maxout_item for pieces == 2 and inner == 1 (pairs of neighbours along the last axis,
    the common case): the strides are constants, so GCC vectorises the loops (with the
    general item's runtime strides they stay scalar: 3-4x slower)."""
    cdef Py_ssize_t first = item * CHUNK
    cdef Py_ssize_t m = min(<Py_ssize_t>CHUNK, rows - first)
    if g == NULL:
        pairs_run(x + 2 * first, g, out + first, m)
    else:
        pairs_run(x + 2 * first, g + first, out + 2 * first, m)


cdef void maxout_pairs_streamed(Py_ssize_t start, Py_ssize_t stop, const floating* x,
                                const floating* g, floating* out) noexcept nogil:
    """The pairs of rows start..stop-1 beyond the cache (g NULL: the forward), as
    block_streamed: the rows before out's first VECTOR boundary directly, then STREAM_BYTES of
    output at a time into a buffer in the first-level cache, streamed from there; fenced at
    the end. Each row's output is one element forward, two backward (`width`)."""
    cdef double buffer[STREAM_BYTES >> 3]
    cdef Py_ssize_t width = 1 if g == NULL else 2
    cdef Py_ssize_t per = STREAM_BYTES // (width * sizeof(floating)), m
    cdef Py_ssize_t c = start + min(stop - start, (to_vector_boundary(
        out + width * start, sizeof(floating)) + width - 1) // width)
    cdef const floating* grads = g   # (advanced with the rows: backward)
    if g != NULL:
        grads = g + start
    pairs_run(x + 2 * start, grads, out + width * start, c - start)
    while c < stop:
        m = min(per, stop - c)
        if g != NULL:
            grads = g + c
        pairs_run(x + 2 * c, grads, <floating*>buffer, m)
        af_stream_copy(<char*>(out + width * c), <char*>buffer, width * m * sizeof(floating))
        c += m
    af_stream_fence()


cdef void run_maxout(const floating* px, const floating* pg, floating* po, Py_ssize_t rows,
                     Py_ssize_t pieces, Py_ssize_t inner, int n_threads,
                     Py_ssize_t parallel_threshold) noexcept nogil:
    """`maxout` at these addresses (pg NULL: the forward), rows * pieces * inner > 0."""
    cdef Py_ssize_t n_chunks = (inner + CHUNK - 1) // CHUNK, item
    # work items of CHUNK groups: CHUNK rows when inner == 1, else CHUNK inner positions
    cdef Py_ssize_t n_items = (rows + CHUNK - 1) // CHUNK if inner == 1 else rows * n_chunks
    cdef bint pairs = pieces == 2 and inner == 1
    # the pairs are memory-bound beyond the cache (x and out: three times the forward's output
    # bytes; x, grad_output and out five times grad_output's) and stream their output, each
    # thread from a contiguous range of rows; not in place (out's lines were just read as x's)
    cdef bint stream = (pairs and (pg == NULL or po != px)
                        and (3 if pg == NULL else 5) * rows * <Py_ssize_t>sizeof(floating)
                        >= STREAM_FROM)
    cdef Py_ssize_t per, t
    if rows * pieces * inner < parallel_threshold or n_items == 1:
        n_threads = 1
    # (the pairs' loops apart from maxout_item's calls, whose registers would otherwise no
    # longer hold the pairs' shuffle constants across the items: 1.05-1.24x the time)
    if stream:
        per = (rows + n_threads - 1) // n_threads
        for t in prange(n_threads, schedule='static', num_threads=n_threads):
            maxout_pairs_streamed(min(t * per, rows), min((t + 1) * per, rows), px, pg, po)
    elif pairs and n_threads == 1:
        for item in range(n_items):
            maxout_pairs(item, rows, px, pg, po)
    elif pairs:
        for item in prange(n_items, schedule='static', num_threads=n_threads):
            maxout_pairs(item, rows, px, pg, po)
    elif n_threads == 1:
        for item in range(n_items):
            maxout_item(item, n_chunks, rows, pieces, inner, px, pg, po)
    else:
        for item in prange(n_items, schedule='static', num_threads=n_threads):
            maxout_item(item, n_chunks, rows, pieces, inner, px, pg, po)


def maxout(const floating[:, :, ::1] x, const floating[:, ::1] grad_output,
           floating[::1] out, bint backward, int n_threads, Py_ssize_t parallel_threshold):
    """x seen as (rows, pieces, inner); out is (rows, inner) forward, x's size backward
    (grad_output is (rows, inner), ignored by the forward)."""
    if x.shape[0] * x.shape[1] * x.shape[2] == 0:
        return
    with nogil:
        run_maxout(&x[0, 0, 0], &grad_output[0, 0] if backward else NULL, &out[0], x.shape[0],
                   x.shape[1], x.shape[2], n_threads, parallel_threshold)


# ---- glu -----------------------------------------------------------------------------------

cdef inline void glu_forward_run(const floating* a, const floating* b, floating* dest,
                                 Py_ssize_t n) noexcept nogil:
    """dest[m] = a[m] sigmoid(b[m]), m < n: by the shorter kernel where a and b are moderate
    (activations.pxd). In x's precision (float32 in float32, as the elementwise kernels), with
    logistic_times: the product is rounded once where sigmoid(b) is subnormal; a plain product
    at b = -inf (see glu_item)."""
    cdef Py_ssize_t m
    cdef floating av, bv
    if K.moderate_inputs_and_multipliers(b, a, n):
        for m in range(n):
            dest[m] = K.logistic_times(a[m], b[m], True)
    else:
        for m in range(n):
            av, bv = a[m], b[m]
            dest[m] = av * 0 if bv == -INFINITY else K.logistic_times(av, bv, False)


cdef void glu_item(Py_ssize_t item, Py_ssize_t n_chunks, Py_ssize_t half, const floating* x,
                   const floating* g, floating* out) noexcept nogil:
    """Row o = item // n_chunks of x seen as (rows, 2, half) = (a, b), one chunk: forward
    out[o, m] = a sigmoid(b) (glu_forward_run, CHUNK elements at a time); backward
    out[o, 0, m] = g sigmoid(b), out[o, 1, m] = g a sigmoid'(b), with the *_times kernels (the
    products rounded once where sigmoid(b) is subnormal)."""
    cdef Py_ssize_t o = item // n_chunks, mc = item % n_chunks, m
    cdef Py_ssize_t m0 = mc * BLOCK, m1 = min(m0 + BLOCK, half)
    cdef const floating* a = x + 2 * o * half
    cdef const floating* b = a + half
    cdef const floating* go
    cdef floating* ga
    cdef floating* gb
    cdef floating av, bv, gv
    cdef Py_ssize_t start, stop
    # At b = +-inf the gate is exactly 1 or 0 and its slope 0: plain products there, so that
    # an infinite a (or g) times the 0 gives NaN (inf * sigmoid(-inf) is undetermined, as in
    # PyTorch), which the *_times kernels (exp clamped) would not.
    if g == NULL:
        start = m0
        while start < m1:
            stop = min(start + CHUNK, m1)
            glu_forward_run(a + start, b + start, out + o * half + start, stop - start)
            start = stop
    else:
        go = g + o * half
        ga = out + 2 * o * half
        gb = ga + half
        start = m0
        while start < m1:   # (the multipliers are g and g a; out may be x: read, then write)
            stop = min(start + CHUNK, m1)
            if K.moderate_inputs_and_multipliers(b + start, go + start, stop - start) and \
                    K.moderate_products(go + start, a + start, stop - start):
                for m in range(start, stop):
                    av, bv, gv = a[m], b[m], go[m]
                    ga[m] = K.logistic_times(gv, bv, True)
                    gb[m] = K.logistic_slope_times(gv * av, bv, True)
            else:
                for m in range(start, stop):
                    av, bv, gv = a[m], b[m], go[m]
                    ga[m] = gv * 0 if bv == -INFINITY else K.logistic_times(gv, bv, False)
                    gb[m] = (gv * av) * 0 if (bv == INFINITY) | (bv == -INFINITY) else \
                        K.logistic_slope_times(gv * av, bv, False)
            start = stop


cdef void run_glu(const floating* px, const floating* pg, floating* po, Py_ssize_t rows,
                  Py_ssize_t half, int n_threads, Py_ssize_t parallel_threshold) noexcept nogil:
    """`glu` at these addresses (pg NULL: the forward), rows * half > 0."""
    cdef Py_ssize_t n_chunks = (half + BLOCK - 1) // BLOCK, n_items = rows * n_chunks, item
    # (the forward's stores are not streamed beyond the cache: bound by its exponential there,
    # as swish's, streamed it took 0.92-1.28x the time on the Intel Xeon of model 207 at
    # 5*10^6-10^7, 1.02-1.43x on the AMD EPYC (Zen 4) in float32 at 10^7 but once 0.89x)
    if 2 * rows * half < parallel_threshold:
        n_threads = 1
    if n_threads <= 1 or n_items == 1:
        for item in range(n_items):
            glu_item(item, n_chunks, half, px, pg, po)
    else:
        for item in prange(n_items, schedule='static', num_threads=n_threads):
            glu_item(item, n_chunks, half, px, pg, po)


def glu(const floating[:, ::1] x, const floating[:, ::1] grad_output, floating[::1] out,
        bint backward, int n_threads, Py_ssize_t parallel_threshold):
    """x seen as (rows, 2 * half); out is (rows, half) forward, x's size backward
    (grad_output is (rows, half), ignored by the forward)."""
    if x.shape[0] * (x.shape[1] // 2) == 0:
        return
    with nogil:
        run_glu(&x[0, 0], &grad_output[0, 0] if backward else NULL, &out[0], x.shape[0],
                x.shape[1] // 2, n_threads, parallel_threshold)


# ---- the common call of maxout and glu, checked in compiled code ----------------------------

def grouped_fast(bint is_glu, object x, object grad_output, object out, object pieces,
                 object axis, int n_threads, Py_ssize_t parallel_threshold):
    """maxout (groups of `pieces`) or glu (pieces = 2: the halves) along `axis` for the common
    call, without Python-level argument handling: x a C-contiguous float32/float64 ndarray
    (not 0-d), pieces and axis ints that fit it, grad_output None (the forward) or a
    C-contiguous ndarray of x's dtype and the forward's shape, `out` None or a writeable
    C-contiguous ndarray of that dtype and the result's shape that overlaps no input (the
    backward's may be x itself). Returns the result, or None when the call is not that simple
    (the Python layer then handles it, errors included)."""
    cdef cnp.ndarray ax, ag = None, target
    cdef int type_num, nd, d, a
    cdef Py_ssize_t p, size, outer = 1, inner = 1
    cdef cnp.npy_intp grouped[64]
    if type(x) is not cnp.ndarray or type(pieces) is not int or type(axis) is not int:
        return None
    ax = x
    type_num = float_type(ax)
    nd = cnp.PyArray_NDIM(ax)
    if type_num < 0 or nd > 64 or not simple(ax):
        return None
    # (compared as Python ints first: an int beyond C's range is the Python layer's error)
    if not -nd <= axis < nd or not 1 <= pieces <= cnp.PyArray_SIZE(ax):
        return None
    p, a = pieces, axis
    a = a + nd if a < 0 else a
    if p < 1 or not 0 <= a < nd:
        return None
    size = cnp.PyArray_DIM(ax, a)
    if size % p:
        return None
    for d in range(nd):
        grouped[d] = cnp.PyArray_DIM(ax, d)
        if d < a:
            outer *= grouped[d]
        elif d > a:
            inner *= grouped[d]
    grouped[a] = size // p
    if grad_output is not None:
        if not like(grad_output, type_num, nd, grouped, True):
            return None
        ag = grad_output
    # the result: the groups' shape forward, x's backward
    cdef cnp.npy_intp* result_dims = cnp.PyArray_DIMS(ax)
    if ag is None:
        result_dims = grouped
    if out is None:
        target = cnp.PyArray_EMPTY(nd, result_dims, type_num, 0)
    else:
        if not writeable_like(out, type_num, nd, result_dims, True):
            return None
        target = out
        if ag is None and not apart(ax, target):
            return None
        if ag is not None and (not independent_or_same(ax, target) or not apart(ag, target)):
            return None
    if outer * size * inner == 0:
        return target
    cdef void* px = cnp.PyArray_DATA(ax)
    cdef void* pg = cnp.PyArray_DATA(ag) if ag is not None else NULL
    cdef void* po = cnp.PyArray_DATA(target)
    cdef Py_ssize_t rows = outer if is_glu else outer * (size // p)
    with nogil:
        if type_num == cnp.NPY_FLOAT and is_glu:
            run_glu(<const float*>px, <const float*>pg, <float*>po, rows, size * inner // 2,
                    n_threads, parallel_threshold)
        elif type_num == cnp.NPY_FLOAT:
            run_maxout(<const float*>px, <const float*>pg, <float*>po, rows, p, inner,
                       n_threads, parallel_threshold)
        elif is_glu:
            run_glu(<const double*>px, <const double*>pg, <double*>po, rows, size * inner // 2,
                    n_threads, parallel_threshold)
        else:
            run_maxout(<const double*>px, <const double*>pg, <double*>po, rows, p, inner,
                       n_threads, parallel_threshold)
    return target
