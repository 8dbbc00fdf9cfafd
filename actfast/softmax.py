"""The softmax family along an axis: :data:`softmax`, :data:`log_softmax`, :data:`softmin`,
:data:`logsumexp`, each with ``.backward`` (pyx/_softmax.pyx does the work).

They follow the package's contract (see :mod:`actfast`): any array_like in; float32/float64
computed natively, float16 in float32 and returned as float16, bool and integers in float64;
every memory layout; ``out=`` (may be the input); the GIL released while the loops run. On top:

- ``axis`` (default -1, any axis; ``None``: all elements as one row). An axis out of range
  raises NumPy's ``AxisError``. A 0-d input is one row of one element.
- ``where=``: a boolean mask broadcastable to x, as in JAX: masked-out elements are left out of
  the max and the sum and come out 0 (softmax, softmin) or -inf (log_softmax); a fully masked
  row gives zeros (log_softmax: -inf), not NaN, and logsumexp -inf. The backward gives 0 there.
- Stable for any finite input (logits up to the largest float): everything is computed relative
  to the row's max, and sums are accumulated in double, also for float32, so a float32 row of
  10^7 elements sums to 1 within ~1e-7.
- Special rows as in PyTorch: a NaN makes the row NaN; a row of all -inf gives NaN (softmax,
  log_softmax) and -inf (logsumexp); a +inf gives a NaN row (softmax, log_softmax) and +inf
  (logsumexp).
- Results bitwise identical whatever the thread count and the memory layout: the order of
  every sum is fixed by the row alone (see pyx/_softmax.pyx).
"""
import math
import operator

import numpy as np

from . import _api, _softmax
from ._api import (_as_input, _c_contiguous, _check_out, _copy_into, _result_dtype,
                   _same_view, public_function)

_FWD = _softmax.FORWARD_OPS
_BWD = _softmax.BACKWARD_OPS

# Elements from which a call runs on all threads, by the item size of its dtype (float32 4,
# float64 8): a parallel region costs ~1-2 us to enter and leave, so the less work per
# element, the more elements a second thread needs. One thread against two (2 vCPUs, rows of
# 64 and of 1000 elements, the thresholds off): the forwards (an exp per element, two or three
# passes) break even at 2-8K float32 / 2-4K float64 elements, the backward (a dot product and
# a product per element) at 8-32K / 8-16K.
PARALLEL_FROM_FORWARD = {4: 8192, 8: 4096}
PARALLEL_FROM_BACKWARD = {4: 32768, 8: 16384}


# ---- argument handling ---------------------------------------------------------------------


def _axis(function, axis, ndim):
    """The axis as a non-negative int (None stays None); a 0-d array counts as 1-d."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)):   # (operator.index takes True for 1)
        raise TypeError(f"{function}(): argument 'axis' must be an int or None, got bool")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{function}(): argument 'axis' must be an int or None, "
                        f"got {type(axis).__name__}") from None
    ndim = max(ndim, 1)
    if not -ndim <= axis < ndim:   # (compared as Python ints: any size of int)
        raise np.exceptions.AxisError(axis, ndim)
    return axis % ndim


def _mask(function, where, shape):
    """The `where` mask broadcast to `shape` (a read-only view), or None."""
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"{function}(): argument 'where' must be a boolean array, "
                        f"got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"{function}(): argument 'where' of shape {mask.shape} does not "
                         f"broadcast to the shape of x, {shape}") from None


def _rows(array, axis):
    """A view of `array` with the reduction along axis 0 of a 1-d array when axis is None
    (a copy when the array is not contiguous), and 0-d arrays as 1-d: (array, axis)."""
    if axis is None:
        return array.reshape(-1), 0
    if array.ndim == 0:
        return array.reshape(1), 0
    return array, axis


def _c_order(array):
    """A permutation p of the axes with array.transpose(p) C-contiguous, or None (then the
    identity, after a copy)."""
    p = tuple(sorted(range(array.ndim), key=lambda d: -abs(array.strides[d])))
    return p if array.transpose(p).flags.c_contiguous else None


class _Layout:
    """How a logical array with a reduction axis is handed to the loops.

    The loops take C-contiguous (outer, n, inner) arrays, and, when inner is 1, rows of
    contiguous elements at one stride. An input whose memory is some transposition of a
    C-contiguous array (C, Fortran, any transposed view) is used in place with its axes
    permuted accordingly, and so is one reduced along its last axis whose rows are
    contiguous and at one stride (loop_view); other layouts (strided, reversed) are copied
    once. The order of the sums is fixed by the row alone, so the layout never changes a
    bit.
    """

    def __init__(self, array, axis):
        shape = array.shape
        perm = None if array.flags.c_contiguous else _c_order(array)
        self.identity = perm is None or perm == tuple(range(array.ndim))
        self.perm = perm
        self.shape = shape
        if self.identity:
            self.loop_shape, self.axis = shape, axis
        else:
            self.loop_shape, self.axis = tuple(shape[d] for d in perm), perm.index(axis)
        self.dims = (math.prod(self.loop_shape[:self.axis]), self.loop_shape[self.axis],
                     math.prod(self.loop_shape[self.axis + 1:]))

    def to_loop(self, array):
        """`array` (of the logical shape) as the loops' (outer, n, inner) array: loop_view's,
        else a C-contiguous copy."""
        loop = self.loop_view(array)
        if loop is None:
            loop = self.to_contiguous_loop(array)
        return loop

    def to_contiguous_loop(self, array):
        """`array` (of the logical shape) as a C-contiguous (outer, n, inner) array."""
        if not self.identity:
            array = array.transpose(self.perm)
        return _c_contiguous(array, array.dtype).reshape(self.dims)

    def loop_view(self, array):
        """`array` as (outer, n, inner) without a copy, or None when its layout differs: its
        memory C-contiguous in the loops' order, or, reduced along its last axis of length
        > 1 (inner 1), rows of contiguous elements at one stride from each other, e.g. a
        slice x[:, :n] of a wider array (pyx/_softmax.pyx rows_fit)."""
        if not self.identity:
            array = array.transpose(self.perm)
        if array.flags.c_contiguous:
            return array.reshape(self.dims)
        stride = _row_stride(array, self.axis) if self.dims[2] == 1 else None
        if stride is None:
            return None
        return np.lib.stride_tricks.as_strided(array, self.dims,
                                               (stride, array.itemsize, array.itemsize))

    def new(self, dtype):
        """An empty array for the loops and its view of the logical shape."""
        loop = np.empty(self.dims, dtype=dtype)
        view = loop.reshape(self.loop_shape)
        if self.identity:
            return loop, view
        inverse = [0] * len(self.perm)
        for i, d in enumerate(self.perm):
            inverse[d] = i
        return loop, view.transpose(inverse)

    def mask(self, mask):
        if mask is None:
            return None
        return self.to_contiguous_loop(mask).view(np.uint8)


def _row_stride(array, axis):
    """The bytes from one row of `array` along `axis` (its axes after it of length 1) to the
    next, when the elements along axis are contiguous, the axes before it walk the rows at
    one stride, and the rows do not overlap; else None."""
    size, n = array.itemsize, array.shape[axis]
    if n < 2 or array.strides[axis] != size:
        return None
    stride = span = None      # (a single row is C-contiguous: loop_view does not ask)
    for d in range(axis - 1, -1, -1):
        if array.shape[d] == 1:
            continue
        if stride is None:
            stride = span = array.strides[d]
        elif array.strides[d] != span:
            return None
        span *= array.shape[d]
    if stride is None or stride % size or stride < n * size:
        return None
    return stride


def _overlaps(a, b):
    """Could a and b share memory? (bounds only: cheap, and enough to decide on a copy)"""
    return a is b or np.may_share_memory(a, b)


def _target(layout, out, compute, shape, inputs, in_place_ok):
    """Where the loops write: (loop array, its view of the logical `shape`, inputs, direct).

    `out` itself (direct = True) when it has the compute dtype and a layout the loops can
    write, else a new array. The loop arrays in `inputs` that overlap `out` are copied, unless
    `in_place_ok` (the loop reads each element before it writes the same element) and they
    are the very same view.
    """
    if out is not None and out.dtype == compute:
        view = out if out.shape == shape else (
            out.reshape(shape) if out.flags.c_contiguous else None)
        loop = layout.loop_view(view) if view is not None else None
        if loop is not None:
            inputs = [a.copy() if a is not None and _overlaps(a, loop)
                      and not (in_place_ok and _same_view(a, loop)) else a for a in inputs]
            return loop, view, inputs, True
    loop, view = layout.new(compute)
    return loop, view, list(inputs), False


def _deliver(view, shape, out, result_dtype, direct):
    """The call's return value from the loops' result (`view`, of a shape that reshapes to
    `shape`): `out` (filled unless the loops wrote it directly), else a new array of the
    result dtype, a NumPy scalar for 0-d."""
    if out is not None:
        if not direct:
            _copy_into(out, view.reshape(shape))
        return out
    result = view.reshape(shape)
    if result.dtype != result_dtype:
        result = result.astype(result_dtype)
    return result[()] if result.ndim == 0 else result


# ---- softmax, log_softmax, softmin ---------------------------------------------------------

class SoftmaxFunction:
    """The implementation of softmax, softmin or log_softmax along an axis: its _functions()
    are the package's function and its backward (_api.public_function)."""

    def __init__(self, name, op, sign, doc):
        self.name = name
        self.__doc__ = doc
        self._op = _FWD[op]
        self._backward_op = _BWD[op]
        self._log = op == "log_softmax"
        self._sign = sign
        # the backward from x: y = softmax(x) (softmin's: of -x) into the target first, then
        # the backward in place on it; for log_softmax y = softmax(x) (exp of the rounded log
        # would lose digits)
        self._softmax_sign = 1.0 if self._log else sign
        self._backward_from_x_op = _BWD["log_softmax_prob"] if self._log else self._backward_op

    def _functions(self):
        def forward(x, /, axis=-1, *, where=None, out=None):
            if where is None:        # the common call, checked and run in compiled code
                result = _softmax.forward_fast(self._op, x, axis, out, self._sign,
                                               _api._num_threads, PARALLEL_FROM_FORWARD)
                if result is not None:
                    return result
            name = self.name
            array, compute = _as_input(x, "x")
            result_dtype = _result_dtype((array,), compute)
            axis = _axis(name, axis, array.ndim)
            mask = _mask(name, where, array.shape)
            if out is not None:
                _check_out(out, array.shape, result_dtype)
            rows, axis = _rows(array.astype(compute, copy=False), axis)
            layout = _Layout(rows, axis)
            mask3 = layout.mask(None if mask is None else mask.reshape(rows.shape))
            target, view, (x3,), direct = _target(layout, out, compute, rows.shape,
                                                  (layout.to_loop(rows),), True)
            _softmax.forward(self._op, x3, target, mask3, None, self._sign, _api._num_threads,
                             PARALLEL_FROM_FORWARD[x3.itemsize])
            return _deliver(view, array.shape, out, result_dtype, direct)

        def backward(grad_output, x=None, *, output=None, axis=-1, where=None, out=None):
            """The vector-Jacobian product, from x or from the forward's output (see the
            function's docstring)."""
            if where is None and (x is None) != (output is None):   # the common call, compiled
                if x is None:
                    result = _softmax.backward_fast(self._backward_op, grad_output, output, axis,
                                                    out, self._sign, _api._num_threads,
                                                    PARALLEL_FROM_BACKWARD)
                else:
                    result = _softmax.backward_fast(self._backward_from_x_op, grad_output, x, axis,
                                                    out, self._sign, _api._num_threads,
                                                    PARALLEL_FROM_BACKWARD, _FWD["softmax"],
                                                    self._softmax_sign, PARALLEL_FROM_FORWARD)
                if result is not None:
                    return result
            name = self.name
            if (x is None) == (output is None):
                raise TypeError(f"{name}.backward() takes exactly one of 'x' and 'output'")
            v_name = "x" if x is not None else "output"
            g, g_dtype = _as_input(grad_output, "grad_output")
            v, v_dtype = _as_input(x if x is not None else output, v_name)
            if g.shape != v.shape:
                raise ValueError(f"{name}.backward(): argument 'grad_output' has shape {g.shape}, "
                                 f"argument '{v_name}' has shape {v.shape}")
            compute = np.result_type(g_dtype, v_dtype)
            result_dtype = _result_dtype((g, v), compute)
            axis = _axis(f"{name}.backward", axis, v.ndim)
            mask = _mask(f"{name}.backward", where, v.shape)
            if out is not None:
                _check_out(out, v.shape, result_dtype)
            shape = v.shape
            v, axis = _rows(v.astype(compute, copy=False), axis)
            g = g.astype(compute, copy=False).reshape(v.shape)
            layout = _Layout(v, axis)
            mask3 = layout.mask(None if mask is None else mask.reshape(v.shape))
            inputs = (layout.to_loop(g), layout.to_loop(v))
            if x is not None:   # y = the forward's output into the target (see __init__)
                target, view, (g3, x3), direct = _target(layout, out, compute, v.shape, inputs,
                                                         False)
                _softmax.forward(_FWD["softmax"], x3, target, mask3, None, self._softmax_sign,
                                 _api._num_threads, PARALLEL_FROM_FORWARD[x3.itemsize])
                op = self._backward_from_x_op
                y3 = target
            else:
                target, view, (g3, y3), direct = _target(layout, out, compute, v.shape, inputs,
                                                         True)
                op = self._backward_op
            _softmax.backward(op, g3, y3, target, mask3, self._sign, _api._num_threads,
                              PARALLEL_FROM_BACKWARD[y3.itemsize])
            return _deliver(view, shape, out, result_dtype, direct)

        return forward, backward


# ---- logsumexp -----------------------------------------------------------------------------

def _keepdims(function, keepdims):
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"{function}(): argument 'keepdims' must be a bool, "
                        f"got {type(keepdims).__name__}")
    return bool(keepdims)


def _reduced_shape(shape, axis, keepdims, flat):
    if flat:
        return (1,) * len(shape) if keepdims else ()
    if keepdims:
        return shape[:axis] + (1,) + shape[axis + 1:]
    return shape[:axis] + shape[axis + 1:]


class LogSumExp:
    """The implementation of logsumexp along an axis: its _functions() are the package's
    function and its backward (_api.public_function)."""

    def __init__(self, doc):
        self.__doc__ = doc

    def _functions(self):
        def forward(x, /, axis=-1, keepdims=False, *, where=None, out=None):
            if where is None:        # the common call, checked and run in compiled code
                result = _softmax.logsumexp_fast(x, axis, keepdims, out, _api._num_threads,
                                                 PARALLEL_FROM_FORWARD)
                if result is not None:
                    return result
            keepdims = _keepdims("logsumexp", keepdims)
            array, compute = _as_input(x, "x")
            result_dtype = _result_dtype((array,), compute)
            flat = axis is None or array.ndim == 0
            axis = _axis("logsumexp", axis, array.ndim)
            mask = _mask("logsumexp", where, array.shape)
            shape = _reduced_shape(array.shape, axis, keepdims, flat)
            if out is not None:
                _check_out(out, shape, result_dtype)
            rows, axis = _rows(array.astype(compute, copy=False), axis)
            layout = _Layout(rows, axis)
            mask3 = layout.mask(None if mask is None else mask.reshape(rows.shape))
            rowvals = np.empty((layout.dims[0], layout.dims[2]), dtype=compute)
            _softmax.forward(_FWD["logsumexp"], layout.to_loop(rows), None, mask3, rowvals, 1.0,
                             _api._num_threads, PARALLEL_FROM_FORWARD[rowvals.itemsize])
            # rowvals is C-ordered over the loops' axes without the reduced one: back to logical
            kept = [d for d in (layout.perm or range(rows.ndim)) if d != axis]
            result = rowvals.reshape([rows.shape[d] for d in kept])
            result = result.transpose(np.argsort([d if d < axis else d - 1 for d in kept]))
            return _deliver(result, shape, out, result_dtype, False)

        def backward(grad_output, x, /, axis=-1, keepdims=False, *, where=None, output=None,
                     out=None):
            """grad_output (the shape of logsumexp's result) times softmax(x) along axis; with
            `output`, logsumexp's result for x, as grad_output * exp(x - output)."""
            if where is None:        # the common call, checked and run in compiled code
                # (the forward's 0-d result is a NumPy scalar: as an array for the compiled path)
                result = _softmax.logsumexp_backward_fast(
                    grad_output, x, axis, keepdims, out, _api._num_threads, PARALLEL_FROM_FORWARD,
                    np.asarray(output) if isinstance(output, np.generic) else output)
                if result is not None:
                    return result
            keepdims = _keepdims("logsumexp.backward", keepdims)
            g, g_dtype = _as_input(grad_output, "grad_output")
            v, v_dtype = _as_input(x, "x")
            given, dtypes = [g, v], [g_dtype, v_dtype]
            if output is not None:
                output, output_dtype = _as_input(output, "output")
                given.append(output)
                dtypes.append(output_dtype)
            compute = np.result_type(*dtypes)
            result_dtype = _result_dtype(given, compute)
            flat = axis is None or v.ndim == 0
            axis = _axis("logsumexp.backward", axis, v.ndim)
            expected = _reduced_shape(v.shape, axis, keepdims, flat)
            for name, array in (("grad_output", g), ("output", output)):
                if array is not None and array.shape != expected:
                    raise ValueError(f"logsumexp.backward(): argument '{name}' has shape "
                                     f"{array.shape}, logsumexp's result has shape {expected}")
            mask = _mask("logsumexp.backward", where, v.shape)
            if out is not None:
                _check_out(out, v.shape, result_dtype)
            shape = v.shape
            v, axis = _rows(v.astype(compute, copy=False), axis)
            layout = _Layout(v, axis)
            mask3 = layout.mask(None if mask is None else mask.reshape(v.shape))

            def per_row(a):
                # a value per row (of the result's shape) as the loops' (outer, inner) array
                a = a.astype(compute, copy=False).reshape(
                    _reduced_shape(v.shape, axis, True, False))
                if not layout.identity:
                    a = a.transpose(layout.perm)
                return _c_contiguous(a, a.dtype).reshape(layout.dims[0], layout.dims[2])

            rowvals = per_row(g)
            if output is None:
                target, view, (x3, rowvals), direct = _target(
                    layout, out, compute, v.shape, (layout.to_loop(v), rowvals), False)
                _softmax.forward(_FWD["softmax_scaled"], x3, target, mask3, rowvals, 1.0,
                                 _api._num_threads, PARALLEL_FROM_FORWARD[x3.itemsize])
            else:   # one pass, each element read before it is written: out may be x
                target, view, (x3, rowvals, values), direct = _target(
                    layout, out, compute, v.shape, (layout.to_loop(v), rowvals, per_row(output)),
                    True)
                _softmax.logsumexp_backward_from_output(rowvals, x3, values, target, mask3,
                                                        _api._num_threads,
                                                        PARALLEL_FROM_FORWARD[x3.itemsize])
            return _deliver(view, shape, out, result_dtype, direct)

        return forward, backward


# ---- docstrings and the registry -----------------------------------------------------------

# the head of every Parameters section here, with x
_PARAMETERS_X = """
Parameters
----------
x : array_like
    Input; float32/float64 are computed natively, float16 in float32 (and returned as
    float16), bool and integers in float64."""

_COMMON_PARAMETERS = _PARAMETERS_X + """
axis : int or None, default -1
    The axis along which to normalise (PyTorch's ``dim``); None: all elements as one row.
    Out of range: ``numpy.exceptions.AxisError``.
where : array_like of bool, optional
    Broadcastable to x; only the True elements take part (JAX's ``where``). {masked}
out : ndarray, optional
    Written and returned; must have the result's shape and dtype; may be x."""

_BACKWARD = """
Backward
--------
``{name}.backward(grad_output, x, *, axis=-1, where=None, out=None)``, or with
``output={output}`` in place of x, returns the vector-Jacobian product
{vjp}
The backward from x recomputes the forward first. Masked-out elements get 0. grad_output and
x (or output) must have the same shape."""

_STABILITY = """
Everything is computed relative to the row's maximum M, exp(x - M) <= 1, with the sum
accumulated in double (also for float32): no overflow or underflow for any finite logits,
and the outputs of a row of 10^7 float32 elements sum to 1 within 1e-6. Each output is
within about 3 + |x_i - M| / 2 ulp: x_i - M is rounded in the input's precision before the
exp, as in PyTorch. Special rows follow PyTorch: any NaN gives a NaN row, a row of all -inf
gives NaN, a row holding +inf gives NaN. Results are bitwise identical for every thread
count and memory layout."""

_SOFTMAX_DOC = ("""Softmax along an axis.

    softmax(x)_i = exp(x_i - M) / sum_j exp(x_j - M),   M = max_j x_j
""" + _COMMON_PARAMETERS.format(masked="Masked-out elements come out 0; a fully masked row "
                                "gives zeros (JAX, torch's _safe_softmax).") + """

Returns
-------
ndarray (a NumPy scalar for 0-d input) of x's shape.
""" + _STABILITY + "\n" + _BACKWARD.format(
    name="softmax", output="y",
    vjp="``y * (grad_output - sum(grad_output * y, axis))``, y = softmax(x).") + """

Examples
--------
>>> import actfast as af
>>> af.softmax([[1.0, 2.0, 3.0]])
array([[0.09003057, 0.24472847, 0.66524096]])
>>> y = af.softmax([1.0, 2.0, 3.0], where=[True, True, False])
>>> g = af.softmax.backward([1.0, 0.0, 0.0], output=af.softmax([1.0, 2.0, 3.0]))
""")

_SOFTMIN_DOC = ("""Softmin along an axis: softmax(-x).

    softmin(x)_i = exp(m - x_i) / sum_j exp(m - x_j),   m = min_j x_j
""" + _COMMON_PARAMETERS.format(masked="Masked-out elements come out 0; a fully masked row "
                                "gives zeros.") + """

Returns
-------
ndarray (a NumPy scalar for 0-d input) of x's shape.
""" + _STABILITY.replace("all -inf", "all +inf").replace("holding +inf", "holding -inf") + "\n"
    + _BACKWARD.format(name="softmin", output="y", vjp="``-y * (grad_output - "
                       "sum(grad_output * y, axis))``, y = softmin(x).") + """

Examples
--------
>>> import actfast as af
>>> y = af.softmin([1.0, 2.0, 3.0])
>>> g = af.softmin.backward([1.0, 0.0, 0.0], [1.0, 2.0, 3.0])
""")

_LOG_SOFTMAX_DOC = ("""Log-softmax along an axis.

    log_softmax(x)_i = (x_i - M) - log(sum_j exp(x_j - M)),   M = max_j x_j

Computed as ((x_i - M) - L_hi) - L_lo, with L = log(sum) = L_hi + L_lo from a sum
accumulated in double: both terms are <= 0, so nothing cancels, and the result is within
2 ulp, plus an absolute error in L of about (2 + max_j |x_j - M|) eps L (the rounding of
x_j - M inside the sum) that shows only where the result is near 0. (PyTorch's float32 sum
loses L entirely there.)
""" + _COMMON_PARAMETERS.format(masked="Masked-out elements come out -inf; a fully masked row "
                                "gives -inf throughout (JAX).") + """

Returns
-------
ndarray (a NumPy scalar for 0-d input) of x's shape.
""" + _STABILITY + "\n" + _BACKWARD.format(
    name="log_softmax", output="z",
    vjp="``grad_output - exp(z) * sum(grad_output, axis)``, z = log_softmax(x) (from x, "
        "exp(z) is computed as softmax(x)).") + """

Examples
--------
>>> import actfast as af
>>> z = af.log_softmax([[1.0, 2.0, 3.0]], axis=1)
>>> g = af.log_softmax.backward([[1.0, 0.0, 0.0]], output=z, axis=1)
""")

_LOGSUMEXP_DOC = ("""log(sum(exp(x))) along an axis.

    logsumexp(x) = M + log(sum_j exp(x_j - M)),   M = max_j x_j (0 when M is infinite)
""" + _PARAMETERS_X + """
axis : int or None, default -1
    The axis to reduce; None: all elements. Out of range: ``numpy.exceptions.AxisError``.
keepdims : bool, default False
    Keep the reduced axis with length 1 (NumPy's and PyTorch's keepdim).
where : array_like of bool, optional
    Broadcastable to x; only the True elements are summed. A fully masked row gives -inf.
out : ndarray, optional
    Written and returned; must have the result's shape and dtype.

Returns
-------
ndarray of x's shape without the axis (with it as 1 if keepdims); a NumPy scalar when that
is 0-d.

The sum is accumulated in double (also for float32) relative to the max: no overflow for any
finite input. Special rows as PyTorch: any NaN gives NaN; all -inf (or an empty axis) gives
-inf; +inf gives +inf. Bitwise identical for every thread count and layout.

Backward
--------
``logsumexp.backward(grad_output, x, axis=-1, keepdims=False, *, where=None, output=None,
out=None)`` returns grad_output (of the forward's result shape) times softmax(x) along axis,
broadcast back to x's shape; 0 where masked out. A row holding +inf (and no NaN) gives
PyTorch's ``grad_output * exp(x - inf)``: 0 for the finite elements, NaN for the infinite
ones. ``output``, the forward's result for x (with the same axis, keepdims and where), makes
it one pass, ``grad_output * exp(x - output)`` as PyTorch's autograd computes it, from the
value given: the forward's rounding of it (half an ulp of |output|, relative) carries into
every element, as the rounding of y into softmax's backward from its output. out may then
be x.

Examples
--------
>>> import actfast as af
>>> af.logsumexp([[0.0, 0.0], [1e30, 1e30]], axis=1)
array([6.93147181e-01, 1.00000000e+30])
>>> g = af.logsumexp.backward([1.0, 1.0], [[0.0, 0.0], [1.0, 2.0]], axis=1)
>>> x = [[0.0, 0.0], [1.0, 2.0]]
>>> g = af.logsumexp.backward([1.0, 1.0], x, axis=1, output=af.logsumexp(x, axis=1))
""")

_IMPLEMENTATIONS = {
    "softmax": SoftmaxFunction("softmax", "softmax", 1.0, _SOFTMAX_DOC),
    "log_softmax": SoftmaxFunction("log_softmax", "log_softmax", 1.0, _LOG_SOFTMAX_DOC),
    "softmin": SoftmaxFunction("softmin", "softmax", -1.0, _SOFTMIN_DOC),
    "logsumexp": LogSumExp(_LOGSUMEXP_DOC)}

FUNCTIONS = {name: public_function(name, *implementation._functions(), implementation.__doc__)
             for name, implementation in _IMPLEMENTATIONS.items()}
