"""Forward and backward of every registry entry: values against actfast.reference, gradients
against finite differences, and bitwise identical results whatever the memory layout, the
``out=`` buffer, the element's position and the thread count.

The layout tests compare with the result of the same values in a contiguous array on one
thread, bit for bit (NaN positions included). Their large arrays (> 70000 elements, extents
that are not multiples of 8 or 16) take the parallel path on two threads.
"""
import functools
import math
import sys
from fractions import Fraction

import numpy as np
import pytest

import actfast as af
from actfast import _elementwise
from actfast.catalogue import KERNELS, PARALLEL_FROM
from conftest import (CASES, EPS64, OUTPUT_CASES, THREADS, amd_cpu, assert_bitwise_equal,
                      assert_rel_close, assert_ulp_close, bits, case_params, draw,
                      draw_grad_output, dtype_params, seeded_rng, single_thread)

# What surrounds a strided view (and out=) is filled with a NaN whose payload no computation
# produces, and must keep those bits.
SENTINEL_BITS = {np.dtype(np.float32): np.uint32(0x7FC0DEAD),
                 np.dtype(np.float64): np.uint64(0x7FF8DEADBEEF1234)}


def _sentinel_filled(shape, dtype, order="C"):
    dtype = np.dtype(dtype)
    return np.full(shape, SENTINEL_BITS[dtype], order=order).view(dtype)


def _assert_untouched(base, outside, what):
    """The elements of `base` under the mask `outside` still hold the sentinel."""
    kept = np.count_nonzero(bits(base)[outside] == SENTINEL_BITS[base.dtype])
    assert kept == np.count_nonzero(outside), f"{what}: elements outside the view were written"


# ---- layouts -------------------------------------------------------------------------------
# name -> (logical shape, base shape, base order, view of the base). The views are the
# arrays handed to actfast; their bases are filled with SENTINEL around them.

LARGE_1D = 71119                # > 70000, odd
ROWS, COLS = 263, 277           # 72851 elements, neither a multiple of 8

LAYOUTS = {
    "1d": ((LARGE_1D,), (LARGE_1D,), "C", lambda b: b),
    "short": ((13,), (13,), "C", lambda b: b),
    "C": ((ROWS, COLS), (ROWS, COLS), "C", lambda b: b),
    "F": ((ROWS, COLS), (ROWS, COLS), "F", lambda b: b),
    "transposed": ((ROWS, COLS), (COLS, ROWS), "C", lambda b: b.T),
    "strided": ((ROWS, COLS), (2 * ROWS, 3 * COLS), "C", lambda b: b[::2, ::3]),
    "reversed": ((LARGE_1D,), (LARGE_1D,), "C", lambda b: b[::-1]),
    "reversed-2d": ((ROWS, COLS), (2 * ROWS, COLS), "C", lambda b: b[::-2, ::-1]),
    # (45, 44, 41) taken from (45, 87, 41) by b[:, ::2, :]: no two neighbouring dimensions
    # merge (82 * 44 != 87 * 41), then transposed so that the innermost is not the fastest
    "3d": ((41, 45, 44), (45, 87, 41), "C", lambda b: b[:, ::2, :].transpose(2, 0, 1)),
    "unit-dims": ((1, LARGE_1D, 1), (1, 2 * LARGE_1D, 1), "C", lambda b: b[:, ::-2, :]),
    "0d": ((), (), "C", lambda b: b),
    "empty": ((0,), (0,), "C", lambda b: b),
    "empty-3d": ((4, 0, 3), (3, 0, 4), "C", lambda b: b.transpose(2, 1, 0)),
}

# (layout of the inputs, kind of out=): "out" a fresh C-ordered buffer, "strided-out" a
# strided view with a negative stride, "in-place" the input itself (x; output for the
# backward from the output).
OUT_COMBOS = [
    ("transposed", "out"), ("strided", "out"), ("0d", "out"), ("empty", "out"),
    ("C", "strided-out"), ("reversed-2d", "strided-out"), ("3d", "strided-out"),
    ("1d", "in-place"), ("F", "in-place"), ("strided", "in-place"), ("3d", "in-place"),
    ("0d", "in-place"),
]
# Every layout runs on 2 threads (the large ones then split between the threads, the small
# ones stay serial); these also on 1 thread. Both are compared with the contiguous 1-thread
# result, so the thread counts are compared too.
ALSO_ONE_THREAD = {"strided", "3d"}


def _layout_params():
    params = []
    for name in LAYOUTS:
        for threads in ([1, 2] if name in ALSO_ONE_THREAD else [2]):
            params.append(pytest.param((name, None), threads,
                                       id=f"{name}-{threads}thread{'s' * (threads > 1)}"))
    for name, kind in OUT_COMBOS:
        params.append(pytest.param((name, kind), 2, id=f"{name}-{kind}-2threads"))
    return params


LAYOUT_PARAMS = pytest.mark.parametrize("layout, n_threads", _layout_params(),
                                        indirect=["n_threads"])


def _partner(name):
    """Another layout of the same logical shape (the backward's grad_output uses it, so the
    operands of one call have different strides)."""
    same = [other for other in LAYOUTS if LAYOUTS[other][0] == LAYOUTS[name][0]]
    return same[(same.index(name) + 1) % len(same)]


_MASKS = {}


def _outside(base_shape, order, index):
    """Boolean mask of the base's elements that the view leaves out (cached per layout)."""
    key = (base_shape, order, index)
    if key not in _MASKS:
        mask = np.ones(base_shape, dtype=bool, order=order)
        index(mask)[...] = False
        _MASKS[key] = mask
    return _MASKS[key]


class Laid:
    """`values` copied into a view of layout `name` inside a SENTINEL-filled base."""

    def __init__(self, name, values):
        shape, base_shape, order, index = LAYOUTS[name]
        assert values.shape == shape
        self.base = _sentinel_filled(base_shape, values.dtype, order)
        self.view = index(self.base)
        self.view[...] = values
        self.outside = _outside(base_shape, order, index)

    def assert_outside_untouched(self, what):
        _assert_untouched(self.base, self.outside, what)


def _strided_index(b):
    view = b[tuple(slice(None, None, 2) for _ in range(b.ndim)) + (Ellipsis,)]
    return view[..., ::-1] if view.ndim else view


def _strided_out(shape, dtype):
    """A view of every other element of a SENTINEL-filled buffer, last axis reversed."""
    base_shape = tuple(2 * s for s in shape)
    base = _sentinel_filled(base_shape, dtype)
    return base, _strided_index(base), _outside(base_shape, "C", _strided_index)


def _check_result(result, out, expected_shape, dtype):
    if out is not None:
        assert result is out
    elif expected_shape == ():
        assert isinstance(result, np.generic) and result.dtype == dtype, type(result)
    else:
        assert isinstance(result, np.ndarray)
        assert result.shape == expected_shape and result.dtype == dtype


def _run_layout(call, operands, layout):
    """Lay out `operands` (a dict name -> contiguous values), call `call(**views, out=...)`
    and return its result, after checking that it is `out` (or a NumPy scalar for 0-d), that
    no input changed and that nothing outside the views and out was written. The last operand
    (x, or output) takes layout `name` and is the one overwritten in place; the others
    (grad_output) take a partner layout of the same shape, so their strides differ."""
    name, out_kind = layout
    first = next(iter(operands))
    laid = {}
    for i, (operand, values) in enumerate(operands.items()):
        laid[operand] = Laid(name if i == len(operands) - 1 else _partner(name), values)
    # the operand overwritten in place is the last one (x, or output): it has layout `name`
    target = list(operands)[-1]
    out, out_base, out_outside = None, None, None
    shape = LAYOUTS[name][0]
    dtype = operands[first].dtype
    if out_kind == "out":
        out = _sentinel_filled(shape, dtype)
    elif out_kind == "strided-out":
        out_base, out, out_outside = _strided_out(shape, dtype)
    elif out_kind == "in-place":
        out = laid[target].view
    kwargs = {operand: laid[operand].view for operand in operands}
    if out is not None:
        kwargs["out"] = out
    result = call(**kwargs)
    _check_result(result, out, shape, dtype)
    for operand, values in operands.items():
        laid[operand].assert_outside_untouched(operand)
        if not (out_kind == "in-place" and operand == target):
            assert_bitwise_equal(laid[operand].view, values, what=f"{operand} (must not change)")
    if out_base is not None:
        _assert_untouched(out_base, out_outside, "out=")
    return result


# ---- bitwise identical across layouts, out= and thread counts ------------------------------
# The inputs of one (case, dtype, direction, shape) and their contiguous 1-thread result are
# drawn once per test session (from the session's seed and those four) and shared by that
# shape's layouts, which pytest runs one after another: the few most recent are kept.

@functools.lru_cache(maxsize=6)
def _baseline(case_index, dtype, direction, shape):
    case = CASES[case_index]
    rng = seeded_rng(f"layouts {case.id} {np.dtype(dtype).name} {direction} {shape}")
    x = draw(rng, shape, case, dtype)
    grad_output = draw_grad_output(rng, shape, dtype)
    with single_thread():
        if direction == "forward":
            return {"x": x}, case.forward(x)
        if direction == "backward":
            return {"grad_output": grad_output, "x": x}, case.backward(grad_output, x)
        output = np.asarray(case.forward(x))
        return ({"grad_output": grad_output, "output": output},
                case.backward(grad_output, output=output))


def _check_layout(case, dtype, layout, direction):
    operands, expected = _baseline(CASES.index(case), dtype, direction,
                                   LAYOUTS[layout[0]][0])
    if direction == "forward":
        call = case.forward
    elif direction == "backward":
        call = case.backward
    else:
        def call(grad_output, output, **kwargs):
            return case.backward(grad_output, output=output, **kwargs)
    result = _run_layout(call, operands, layout)
    assert_bitwise_equal(result, expected, operands, what=direction)


@LAYOUT_PARAMS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_forward_layout(case, dtype, layout, n_threads):
    _check_layout(case, dtype, layout, "forward")


@LAYOUT_PARAMS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_backward_layout(case, dtype, layout, n_threads):
    _check_layout(case, dtype, layout, "backward")


@LAYOUT_PARAMS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(OUTPUT_CASES))
def test_backward_from_output_layout(case, dtype, layout, n_threads):
    _check_layout(case, dtype, layout, "backward-from-output")


# ---- rows in groups: an operand transposed against the output ----------------------------
# Where an operand's elements lie closer together across the output's rows than along them,
# the driver runs the rows in groups, a step of columns at a time (run_group). Rows of more
# than one column step (the last one partial), a last group of fewer rows, two threads whose
# chunks start inside a row; compared with the contiguous one-thread result, bit for bit.

GROUPED_SHAPE = (70, 1100)   # 1100 = 2 * 512 + 76 columns; 70 rows: 2 * 32 + 6, 4 * 16 + 6
GROUPED_CALLS = ["forward, x", "forward, out", "backward, x", "backward, grad_output"]


@THREADS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("transposed", GROUPED_CALLS)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "elu"])
def test_grouped_rows_give_the_contiguous_bits(name, transposed, dtype, n_threads, rng):
    # `transposed`: the call, and its operand laid out in Fortran order (the others and
    # out= in C order, out= filled with the sentinel: an element left unwritten keeps it)
    function = getattr(af, name)
    x = (rng.standard_normal(GROUPED_SHAPE) * 4).astype(dtype)
    x.flat[rng.integers(0, x.size, 40)] = np.nan
    grad_output = rng.standard_normal(GROUPED_SHAPE).astype(dtype)
    direction, operand = transposed.split(", ")
    with single_thread():
        expected = function(x) if direction == "forward" else function.backward(grad_output, x)
    out = _sentinel_filled(GROUPED_SHAPE, dtype)
    if operand == "out":
        out = np.asfortranarray(out)
    elif operand == "x":
        x = np.asfortranarray(x)
    else:
        grad_output = np.asfortranarray(grad_output)
    if direction == "forward":
        result = function(x, out=out)
    else:
        result = function.backward(grad_output, x, out=out)
    assert result is out
    assert_bitwise_equal(out, expected, {"x": x}, what=f"{transposed} transposed")


# _elementwise.copy: the driver with a copy for its kernel (the special functions and the
# softmax family copy their operands with it, actfast._api._copy_into): every element's bits
# (NaN payloads too) from one layout into another, nothing outside the destination written.
# the 2-d layouts of one shape (LAYOUTS)
COPY_LAYOUTS = [name for name, layout in LAYOUTS.items() if layout[0] == (ROWS, COLS)]


@THREADS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("destination", COPY_LAYOUTS)
@pytest.mark.parametrize("source", COPY_LAYOUTS)
def test_driver_copy_gives_every_bit(source, destination, dtype, n_threads, rng):
    values = rng.standard_normal((ROWS, COLS)).astype(dtype)
    values.flat[rng.integers(0, values.size, 40)] = np.nan
    payload = np.array([SENTINEL_BITS[np.dtype(dtype)] - 1])   # a NaN with another payload
    values.flat[5] = payload.astype(SENTINEL_BITS[np.dtype(dtype)].dtype).view(dtype)[0]
    src = Laid(source, values)
    dst = Laid(destination, _sentinel_filled((ROWS, COLS), dtype))
    _elementwise.copy(src.view, dst.view, n_threads)
    assert_bitwise_equal(dst.view, values, what=f"{source} into {destination}")
    dst.assert_outside_untouched("copy")


@pytest.mark.parametrize("source, destination", [
    (np.ones(3, np.float32), np.ones(4, np.float32)), (np.ones(3, np.float32), np.ones(3)),
    (np.ones(3, np.int32), np.ones(3, np.int32)),
    (np.ones(3), np.lib.stride_tricks.as_strided(np.ones(3), writeable=False))],
    ids=["shape", "dtype", "integers", "read-only"])
def test_driver_copy_refuses_what_it_cannot_copy(source, destination):
    with pytest.raises(ValueError, match="copy: src and dst must be"):
        _elementwise.copy(source, destination, 1)


# ---- the same value gives the same bits wherever it sits -----------------------------------

DIRECTIONS = ["forward", "backward", "backward-from-output"]   # in _elementwise's order
# the catalogue's name of each direction (Kernel.cost)
KERNEL_DIRECTION = {"forward": "fwd", "backward": "bwd", "backward-from-output": "from_output"}
POSITION_PARAMS = [pytest.param(case, direction, id=f"{case.id}-{direction}")
                   for case in CASES for direction in DIRECTIONS
                   if direction != "backward-from-output" or case.allows_output]


def _compute(case, direction, grad_output, x, **kwargs):
    if direction == "forward":
        return case.forward(x, **kwargs)
    if direction == "backward":
        return case.backward(grad_output, x, **kwargs)
    return case.backward(grad_output, output=np.asarray(case.forward(x)), **kwargs)


def _periodic(case, direction, dtype, rng, n):
    """A period of 127 values (specials included) repeated over n elements from an offset
    of 1 to 126 elements, and the result expected: each value's bits computed alone (a one-element array,
    which no vector loop body touches). Returns (x, grad_output, expected)."""
    period = draw(rng, (127,), case, dtype, special_fraction=0.3)
    grad_period = draw_grad_output(rng, (127,), dtype)
    offset = int(rng.integers(1, 127))
    reps = (offset + n) // 127 + 1
    with single_thread():
        alone = np.concatenate([
            np.asarray(_compute(case, direction, grad_period[i:i + 1], period[i:i + 1]))
            for i in range(127)])
    return tuple(np.tile(a, reps)[offset:offset + n] for a in (period, grad_period, alone))


@THREADS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case, direction", POSITION_PARAMS)
def test_position_independent(case, direction, dtype, n_threads, rng):
    # Periodic values over more than 70000 elements: every copy must give the bits computed
    # for the value alone, wherever it sits (vector body or remainder, either thread's chunk).
    x, grad_output, expected = _periodic(case, direction, dtype, rng,
                                         70001 + int(rng.integers(0, 16)))
    result = _compute(case, direction, grad_output, x)
    assert_bitwise_equal(result, expected, {"x": x, "grad_output": grad_output},
                         what=direction)


# ---- streamed stores: calls whose operands exceed the last-level cache ---------------------
# From STREAM_FROM bytes (32 MiB) of operands on, the memory-bound kernels (the cheap ones and
# every backward from the output) compute blocks into a buffer and stream them to the output:
# the same bits as any other call, with out= at an address off the vector boundary, in rows
# with gaps between them, and in place (there with ordinary stores: the output's lines are in
# the cache already). One example per kernel (the first).

STREAM_BYTES = _elementwise.STREAM_FROM_BYTES
_KERNELS = {kernel.name: kernel for kernel in KERNELS}
STREAM_PARAMS = [pytest.param(case, direction, id=f"{case.id}-{direction}")
                 for case in {c.name: c for c in reversed(CASES)}.values()
                 for direction in DIRECTIONS
                 if (direction == "backward-from-output" and case.allows_output)
                 or (direction != "backward-from-output"
                     and _KERNELS[case.entry.kernel_name(case.values)].cheap)]


def test_streamed_directions():
    # the cheap kernels' forward and backward and every backward from the output, on every CPU;
    # not the kernels with a transcendental function (the buffer's pass costs them more than
    # the stores save: _elementwise's STREAMED)
    for index, kernel in enumerate(KERNELS):
        for direction in (0, 1):
            assert _elementwise.streamed(direction, index) == kernel.cheap, (kernel.name,
                                                                             direction)
        assert _elementwise.streamed(2, index) == kernel.from_output, kernel.name
    with pytest.raises(IndexError):
        _elementwise.streamed(3, 0)


@THREADS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case, direction", STREAM_PARAMS)
def test_streamed_calls_give_the_same_bits(case, direction, dtype, n_threads, rng):
    operands = 2 if direction == "forward" else 3
    n = STREAM_BYTES // (operands * dtype.itemsize) + 1021 + int(rng.integers(1, 4096))
    _check_large_run_variant(case, direction, dtype, rng, n, row_lengths=(1021,))


def _check_large_run_variant(case, direction, dtype, rng, n, row_lengths):
    """The checks of a loop variant for contiguous runs (streamed, prefetched) over n
    elements: each value's bits alone, into a new array, out= off the vector boundary, rows of
    each of row_lengths contiguous elements with gaps between them (no longer one run), and in
    place (the forward)."""
    x, grad_output, expected = _periodic(case, direction, dtype, rng, n)
    inputs = {"x": x, "grad_output": grad_output}
    assert_bitwise_equal(_compute(case, direction, grad_output, x), expected, inputs,
                         what=direction)
    out = np.empty(n + 1, dtype)[1:]
    assert _compute(case, direction, grad_output, x, out=out) is out
    assert_bitwise_equal(out, expected, inputs, what=f"{direction}, out= off the boundary")
    for length in row_lengths:
        rows = n // length

        def in_rows(a):
            wide = np.empty((rows, length + 3), dtype)
            wide[:, :length] = a[:rows * length].reshape(rows, length)
            return wide[:, :length]
        out = in_rows(np.empty(n, dtype))
        _compute(case, direction, in_rows(grad_output), in_rows(x), out=out)
        assert_bitwise_equal(out, in_rows(expected), inputs,
                             what=f"{direction}, rows of {length} with gaps")
    if direction == "forward":
        x = x.copy()
        case.forward(x, out=x)
        assert_bitwise_equal(x, expected, inputs, what="forward in place")


# ---- prefetched inputs: calls beyond the cache whose kernels are not cheap -------------------
# From PREFETCH_FROM bytes of operands on (stream.pxd), the kernels that are not cheap
# (Kernel.cost) compute their contiguous runs PREFETCH_STEP bytes at a time, each step's inputs
# prefetched PREFETCH_AHEAD bytes ahead (streamed or not): the same bits as any other call.
# The threshold is lowered here so that small arrays take that path: runs longer and shorter
# than the distance ahead, out= off the vector boundary, rows with gaps, in place.

PREFETCH_PARAMS = [pytest.param(case, direction, id=f"{case.id}-{direction}")
                   for case in {c.name: c for c in reversed(CASES)}.values()
                   for direction in ("forward", "backward")
                   if _KERNELS[case.entry.kernel_name(case.values)].cost(
                       KERNEL_DIRECTION[direction]) != "cheap"]


@pytest.fixture
def prefetch_everywhere():
    old = _elementwise.set_prefetch_from(1)
    yield
    _elementwise.set_prefetch_from(old)


def test_prefetch_threshold():
    old = _elementwise.set_prefetch_from(1)
    assert _elementwise.set_prefetch_from(old) == 1
    # from PREFETCH_FROM, never on AMD's CPUs (stream.h's af_amd_cpu)
    if amd_cpu() is not None:
        assert old == (sys.maxsize if amd_cpu() else 16 << 20)
    with pytest.raises(ValueError, match="bytes"):
        _elementwise.set_prefetch_from(0)
    assert _elementwise.set_prefetch_from(old) == old


@THREADS
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case, direction", PREFETCH_PARAMS)
def test_prefetched_calls_give_the_same_bits(case, direction, dtype, n_threads, rng,
                                             prefetch_everywhere):
    # rows shorter and longer than PREFETCH_AHEAD
    _check_large_run_variant(case, direction, dtype, rng, 20011 + int(rng.integers(0, 4096)),
                             row_lengths=(1021, 5003))


# ---- the parallel thresholds -----------------------------------------------------------------
# A call runs on all its threads from PARALLEL_FROM's size for its kernel's direction and
# dtype (actfast/catalogue.py; the compiled table is generated from it). At the thresholds the
# two threads get the smallest chunks any call gives them: the bits must be those of each
# value alone, as everywhere.


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_parallel_thresholds_are_the_catalogues(kernel, direction):
    for dtype_index in (0, 1):
        expected = PARALLEL_FROM[kernel.cost(KERNEL_DIRECTION[direction])][dtype_index]
        assert _elementwise.parallel_from(DIRECTIONS.index(direction), dtype_index,
                                          _elementwise.KERNEL_NAMES.index(kernel.name)) == expected


def test_parallel_threshold_table_rejects_bad_entries():
    with pytest.raises(IndexError):
        _elementwise.parallel_from(3, 0, 0)
    with pytest.raises(IndexError):
        _elementwise.set_parallel_from(0, 2, 0, 10)
    with pytest.raises(ValueError, match="elements"):
        _elementwise.set_parallel_from(0, 0, 0, 0)


@pytest.mark.parametrize("n_threads", [2], indirect=True, ids=["2threads"])
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case, direction", POSITION_PARAMS)
def test_calls_at_the_parallel_threshold_give_the_same_bits(case, direction, dtype, n_threads,
                                                            rng):
    kernel = _KERNELS[case.entry.kernel_name(case.values)]
    threshold = PARALLEL_FROM[kernel.cost(KERNEL_DIRECTION[direction])][dtype.itemsize // 8]
    for n in (threshold - 1, threshold, threshold + 17):
        x, grad_output, expected = _periodic(case, direction, dtype, rng, n)
        assert_bitwise_equal(_compute(case, direction, grad_output, x), expected,
                             {"x": x, "grad_output": grad_output}, what=f"{direction}, n={n}")


# ---- values against the reference ---------------------------------------------------------
# A check of definitions, conventions and special values, at a tolerance a little looser
# than the contract's (test_accuracy.py holds the contract's bounds, over a dense sweep):
# float32 within 16 ulp (forward) / 32 ulp (backward) of the float64 reference, float64
# within a relative 1e-12. Backward results may also be off by a few rounding errors of
# grad_output's magnitude (float32 eps |g|, float64 4 eps |g|): a derivative that is a sum
# of O(1) terms (gelu' = Phi + x phi) cancels near its zeros; in float64, a derivative in the
# subnormal range carries its intermediates' absolute error (8 subnormal units) times |g|.
# Where the reference's own formula cancels, its documented error is forgiven on top.

N_REFERENCE = 20011
FLOAT64_RTOL = 1e-12
TINY64 = 5e-324


def _assert_forward_matches(result, expected, dtype, x, slack):
    if dtype == np.float32:
        assert_ulp_close(result, expected, dtype, 16, {"x": x}, slack=slack, what="forward")
    else:
        assert_rel_close(result, expected, FLOAT64_RTOL, slack + TINY64, {"x": x},
                         what="forward")


def _assert_backward_matches(result, expected, dtype, inputs, what="backward"):
    g = np.abs(np.asarray(inputs["grad_output"], dtype=np.float64))
    if dtype == np.float32:
        eps32 = float(np.finfo(np.float32).eps)
        assert_ulp_close(result, expected, dtype, 32, inputs, slack=eps32 * g, what=what)
    else:
        atol = 4 * EPS64 * g + 8 * TINY64 * np.maximum(1.0, g)
        assert_rel_close(result, expected, FLOAT64_RTOL, atol, inputs, what=what)


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_forward_reference(case, dtype, rng):
    x = draw(rng, (N_REFERENCE,), case, dtype)
    result = case.forward(x)
    expected = case.reference(x)
    assert result.dtype == dtype
    _assert_forward_matches(result, expected, dtype, x, case.reference_slack(x))


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_forward_nan_in_nan_out(case, dtype):
    x = np.array([np.nan, -np.nan, 1.0, np.nan], dtype=dtype)
    result = case.forward(x)
    assert np.isnan(result[[0, 1, 3]]).all() and not np.isnan(result[2])


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_backward_reference(case, dtype, rng):
    x = draw(rng, (N_REFERENCE,), case, dtype)
    grad_output = draw_grad_output(rng, x.shape, dtype)
    result = case.backward(grad_output, x)
    expected = case.reference_vjp(grad_output, x)
    assert result.dtype == dtype
    _assert_backward_matches(result, expected, dtype, {"x": x, "grad_output": grad_output})


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(CASES))
def test_backward_unit_grad_reference(case, dtype, rng):
    # grad_output = 1: the derivative itself, kinks and specials included
    x = draw(rng, (N_REFERENCE,), case, dtype)
    grad_output = np.ones_like(x)
    result = case.backward(grad_output, x)
    _assert_backward_matches(result, case.reference_grad(x), dtype,
                             {"x": x, "grad_output": grad_output}, what="derivative")


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("case", case_params(OUTPUT_CASES))
def test_backward_from_output_reference(case, dtype, rng):
    # From the rounded output the derivative is only as good as the output: f'(x) as a
    # function h of y = f(x) moves by |h'(y)| ulp(y) when y moves by an ulp. Allowed here:
    # 8 rounding errors of the dtype times max(1, |y|) (h' is at most 2|y| or 1 for these
    # functions), plus 8 ulp relative.
    x = draw(rng, (N_REFERENCE,), case, dtype)
    grad_output = draw_grad_output(rng, x.shape, dtype)
    output = case.forward(x)
    result = case.backward(grad_output, output=output)
    expected = case.reference_vjp(grad_output, x)
    eps = float(np.finfo(dtype).eps)
    with np.errstate(invalid="ignore", over="ignore"):
        atol = 8 * eps * np.abs(grad_output.astype(np.float64)) * np.maximum(
            1.0, np.abs(output.astype(np.float64)))
    atol = np.where(np.isfinite(atol), atol, 0.0)
    assert_rel_close(result, expected, 8 * eps, atol,
                     {"x": x, "output": output, "grad_output": grad_output},
                     what="backward from output")


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_from_any_output(name, dtype, rng):
    # y (1 - y) and 1 - y^2 at any y, also outside the function's range: within 1.5 ulp of
    # the exact value (one rounding with FMA, as vecmath.h computes them there; three in the
    # portable build's (1 - y)(1 + y)); at +-inf the written-out formulas' -inf, NaN as NaN
    rounds = {"sigmoid": lambda y: y * (1 - y), "tanh": lambda y: (1 - y) * (1 + y)}[name]
    y = np.concatenate([rng.uniform(-0.1, 1.1, 3000), 1 - np.exp(rng.uniform(-50, 0, 1000)),
                        -1 + np.exp(rng.uniform(-50, 0, 1000)), rng.standard_normal(1000) * 1e3,
                        [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 5e-324]]).astype(dtype)
    result = getattr(af, name).backward(np.ones_like(y), output=y)
    exact = np.array([float(rounds(Fraction(float(v)))) for v in y])  # exact, rounded to double
    assert_ulp_close(result, exact, dtype, 1.5, inputs={"output": y})
    special = np.array([np.inf, -np.inf, np.nan], dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = rounds(special.astype(np.float64))
    assert_bitwise_equal(getattr(af, name).backward(np.ones_like(special), output=special),
                         expected.astype(dtype), {"output": special})


# softshrink in float32 with a lambd that no float32 holds: x - lambd within a few ulp of the
# kink is as small as the rounding error of lambd itself, so it must be the double lambd's
# difference (x - 0.1f, PyTorch's, gave 0 for x = 0.1f and lambd = 0.1 instead of 1.5e-9;
# lambd as two floats, 48 bits, 1408 ulp at lambd = 2.9042003154218086)

@pytest.mark.parametrize("lambd", [0.1, 0.3, 1 / 3, 1e-3, 0.7, 2.2, 1e-40, 2.9042003154218086,
                                   1 - 2.0 ** -53])
def test_softshrink_float32_near_a_lambd_no_float32_holds(lambd, rng):
    centre = np.float32(lambd)
    steps = np.arange(-300, 301)
    around = np.nextafter(centre, np.float32(np.inf)).view(np.int32) - 1 + steps
    x = np.concatenate([around.astype(np.int32).view(np.float32),
                        rng.uniform(lambd / 2, 2 * lambd, 2000).astype(np.float32)])
    x = np.concatenate([x, -x])
    x = x[np.isfinite(x) & (x.view(np.int32) & 0x7FFFFFFF > 0)]
    wide = x.astype(np.float64)
    expected = np.where(np.abs(wide) > lambd, wide - np.copysign(lambd, wide), 0.0)
    assert_ulp_close(af.softshrink(x, lambd=lambd), expected, np.float32, 1, {"x": x})


def test_softshrink_float32_lambd_beyond_float32_range():
    # only +-inf is outside [-lambd, lambd]: inf - lambd = inf (it was inf - inf = NaN)
    big = float(np.finfo(np.float32).max)
    x = np.array([np.inf, -np.inf, big, -big, 1.0, -0.0, np.nan], np.float32)
    for lambd in (1e300, 2 * big):
        result = af.softshrink(np.tile(x, 5), lambd=lambd)
        expected = np.tile(np.array([np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0, np.nan], np.float32), 5)
        assert_bitwise_equal(result, expected, what=f"lambd={lambd}")


@pytest.mark.parametrize("beta", [0.001, 0.01, 0.1, 0.5, 2.0])
@pytest.mark.parametrize("dtype", dtype_params())
def test_softplus_where_exp_of_beta_x_is_subnormal(beta, dtype, rng):
    # softplus = log1p(e) / beta with e = exp(beta x) subnormal: e's lost digits were scaled
    # up by 1/beta into the normal range (500 ulp in float32 at beta = 0.001)
    mpmath = pytest.importorskip("mpmath")
    low, high = (-110.0, -80.0) if dtype == np.float32 else (-750.0, -700.0)
    x = (rng.uniform(low, high, 300) / beta).astype(dtype)
    with mpmath.workdps(40):
        expected = np.array([float(mpmath.log1p(mpmath.exp(mpmath.mpf(beta) * mpmath.mpf(float(v))))
                                   / mpmath.mpf(beta)) for v in x])
    assert_ulp_close(af.softplus(x, beta=beta), expected, dtype, 2, {"x": x})


@pytest.mark.parametrize("dtype, x, beta", [(np.float32, 3e38, 2.0), (np.float32, 1e30, 1e10),
                                            (np.float64, 1e10, 1e300), (np.float64, 1e300, 1e10)])
def test_softplus_where_beta_x_overflows(dtype, x, beta):
    # with a threshold beyond beta x, softplus(x) = x + log1p(exp(-beta x)) / beta is x; from
    # (beta x + log1p(...)) / beta it was inf where beta x overflows
    values = np.array([x, -x], dtype)
    expected = np.array([x, 0.0], dtype)
    assert_bitwise_equal(af.softplus(values, beta=beta, threshold=np.inf), expected)


@pytest.mark.parametrize("dtype, big, beta", [(np.float32, 1e36, 1e-36), (np.float32, 1e38, -2e-38),
                                              (np.float64, 1e301, 1e-301)])
def test_softplus_of_huge_x_with_a_tiny_beta(dtype, big, beta):
    # beta x as an exact pair: in a build without FMA (ACTFAST_ARCH=portable) Dekker's split
    # of x overflowed beyond 8.3e34 (float32) / 1.3e300 (float64) and made the pair NaN
    x = np.array([-big, big, -big / 3, big / 3], dtype)
    z = [beta * float(v) for v in x]   # (exact enough: |z| <= 3)
    expected = [math.log1p(math.exp(t)) / beta for t in z]
    assert_ulp_close(af.softplus(x, beta=beta), expected, dtype, 4, {"x": x})
    slope = [1 / (1 + math.exp(-t)) for t in z]
    assert_ulp_close(af.softplus.backward(np.ones_like(x), x, beta=beta), slope, dtype, 8, {"x": x})


@pytest.mark.parametrize("alpha", [10.0, 100.0, 1e30])
def test_celu_float32_where_x_over_alpha_is_subnormal(alpha, rng):
    # celu(x) = alpha expm1(x / alpha) rounds to x where |x| << alpha; x / alpha in float32
    # fell into the subnormal range there and lost digits (50 ulp at alpha = 100, -0 for
    # alpha = 1e30)
    magnitude = 10.0 ** rng.uniform(-44, np.log10(alpha) - 5, 4000)
    x = np.concatenate([-magnitude, -rng.uniform(0, 3 * alpha, 1000)]).astype(np.float32)
    wide = x.astype(np.float64)
    expected = np.array([alpha * math.expm1(v / alpha) for v in wide])
    assert_ulp_close(af.celu(x, alpha=alpha), expected, np.float32, 4, {"x": x})


@pytest.mark.parametrize("alpha", [1e30, 1e300])
def test_celu_float64_where_x_over_alpha_is_subnormal(alpha, rng):
    x = -(10.0 ** rng.uniform(-320, -250, 2000))
    expected = x * (1 + x / (2 * alpha))   # the rest of the series below double's precision
    assert_ulp_close(af.celu(x, alpha=alpha), expected, np.float64, 1, {"x": x})


@pytest.mark.parametrize("min_val, max_val", [(0.1, 0.7), (-1 / 3, 0.3), (-2.0, 0.5), (0.7, 2.0)])
@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32, np.float64)))
def test_hardtanh_backward_from_output_stops_at_the_clamped_values(min_val, max_val, dtype, rng):
    # the forward clamps to the bounds rounded to the dtype (float16: via float32); from the
    # output, those values are the kinks (gradient 0), whether the rounding moved them inside
    # the bounds or not (for float32 and min_val = 0.1, float16 and 0.7, the clipped elements
    # passed the gradient)
    x = np.concatenate([rng.uniform(-2, 2, 3000), [-5.0, 5.0, min_val, max_val]]).astype(dtype)
    y = af.hardtanh(x, min_val=min_val, max_val=max_val)
    grad_output = rng.normal(0, 1, x.size).astype(dtype)
    narrow = np.float32 if np.dtype(dtype) == np.float16 else float   # (float16 via float32)
    low, high = (np.dtype(dtype).type(narrow(v)) for v in (min_val, max_val))
    clamped = (y == low) | (y == high)
    assert clamped.sum() > 100
    expected = np.where(clamped, np.zeros_like(grad_output), grad_output)
    assert_bitwise_equal(af.hardtanh.backward(grad_output, output=y, min_val=min_val,
                                              max_val=max_val), expected,
                         {"output": y, "grad_output": grad_output})


def test_softsign_backward_float64_where_the_square_overflows(rng):
    # (1 + |x|)^2 overflows double from |x| = 1.3e154: grad / d^2 was 0 there for any grad
    x = 10.0 ** rng.uniform(150, 308, 3000) * rng.choice([-1.0, 1.0], 3000)
    grad_output = 10.0 ** rng.uniform(0, 300, 3000) * rng.choice([-1.0, 1.0], 3000)
    expected = np.array([float(Fraction(g) / (1 + abs(Fraction(v))) ** 2)
                         for g, v in zip(grad_output, x)])
    assert expected.any()
    assert_ulp_close(af.softsign.backward(grad_output, x), expected, np.float64, 2,
                     {"x": x, "grad_output": grad_output})


# ---- gradients against finite differences --------------------------------------------------

@pytest.mark.parametrize("case", case_params(CASES))
def test_backward_finite_difference(case, rng):
    # central differences of actfast's own float64 forward, at random points of [-20, 20]
    # more than 1e-3 (relative) away from every kink; the truncation error is ~h^2 f'''/6
    # and the rounding error ~eps |f| / h, both far below the tolerance.
    x = rng.uniform(-20, 20, 4000)
    scale = np.maximum(1.0, np.abs(x))
    kinks = np.array(case.kinks())
    far = np.min(np.abs(x[:, None] - kinks[None, :]), axis=1) > 1e-3 * scale
    x, scale = x[far], scale[far]
    h = 1e-6 * scale
    grad_output = rng.normal(0, 1, x.size)
    finite_difference = (case.forward(x + h) - case.forward(x - h)) / ((x + h) - (x - h))
    result = case.backward(grad_output, x)
    assert_rel_close(result, grad_output * finite_difference, 1e-6, 1e-8 * np.abs(grad_output),
                     {"x": x, "grad_output": grad_output}, what="backward vs finite difference")


# ---- gradients passed or stopped -----------------------------------------------------------
# The piecewise-linear functions' backward passes grad_output where the derivative is 1 and
# stops it where it is 0 (PyTorch's `cond ? grad : 0`): a pass keeps grad_output's bits
# (-0.0, subnormals, infinities, NaN payloads), a stop gives +0.0 whatever grad_output is.
# Every pair of (x, grad_output) sits at many positions, so vector body and remainder both run.

PASS_STOP = [
    # name, parameters, x where the gradient passes, x where it is stopped
    ("relu", {}, [1.5, 1e-30], [-1.5, 0.0, -0.0, -np.inf]),
    ("relu6", {}, [3.0, 1e-30, 5.5], [-1.0, 0.0, 6.0, 7.0, np.inf]),
    ("hardtanh", {}, [0.5, -0.5, -0.0], [-1.0, 1.0, 2.0, -2.0, np.inf]),
    ("hardtanh", {"min_val": -0.25, "max_val": 2.0}, [1.5, -0.2], [-0.25, 2.0, 3.0]),
    ("hardshrink", {}, [1.0, -1.0, np.inf], [0.5, -0.5, 0.0, 0.25]),
    ("softshrink", {"lambd": 0.75}, [1.0, -1.0, -np.inf], [0.75, -0.75, 0.0]),
    ("threshold", {"threshold": 0.5, "value": 2.0}, [1.0, np.inf], [0.5, 0.0, -3.0]),
    ("hardswish", {}, [3.0, 4.0, np.inf], [-3.0, -4.0, -np.inf]),
]


def _grad_patterns(dtype):
    """grad_output values whose bits a pass must keep: signed zeros, the smallest subnormal,
    infinities, a NaN with a payload and a negative NaN, ordinary numbers"""
    dtype = np.dtype(dtype)
    uint = {4: np.uint32, 8: np.uint64}[dtype.itemsize]
    nans = (np.array([0x7FC00123, 0xFFC00001], np.uint32) if dtype.itemsize == 4 else
            np.array([0x7FF8000000000123, 0xFFF8000000000001], np.uint64)).astype(uint)
    plain = np.array([1.0, -2.5, 0.0, -0.0, np.inf, -np.inf], dtype)
    smallest = np.array([np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).smallest_subnormal],
                        dtype)
    return np.concatenate([plain, smallest, nans.view(dtype)])


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("name, params, passing, stopped", PASS_STOP,
                         ids=[f"{p[0]}-{i}" for i, p in enumerate(PASS_STOP)])
def test_gradient_passed_with_its_bits_or_stopped_as_plus_zero(name, params, passing, stopped,
                                                               dtype, rng):
    function = getattr(af, name)
    grads = _grad_patterns(dtype)
    xs = np.array(passing + stopped, dtype)
    x, g = (a.ravel() for a in np.meshgrid(xs, grads, indexing="ij"))
    order = rng.permutation(np.tile(np.arange(x.size), 40))   # vector body and tail
    x, g = x[order], g[order]
    expected = np.where(np.isin(x, np.array(passing, dtype)), g, np.zeros_like(g))
    assert_bitwise_equal(function.backward(g, x, **params), expected, {"x": x, "grad_output": g})
