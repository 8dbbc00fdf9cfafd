"""The activations whose shape needs its own loop (pyx/_special.pyx).

- With a learnable parameter, whose ``backward`` returns ``(grad_input, grad_parameter)``:
  :data:`prelu` (per-channel weight), :data:`swish` (beta), :data:`pact` (alpha).
- Random, deterministic per integer seed: :data:`rrelu`, :data:`noisy_relu`.
- Grouped over an axis: :data:`maxout`, :data:`glu`.

They follow the package's contract (see :mod:`actfast`): any array_like in; float32/float64
computed natively, float16 in float32 and returned as float16, bool and integers in float64;
every layout; ``out=`` (for ``backward``, the buffer of grad_input); the GIL released while
the loops run; results bitwise identical whatever the layout and the thread count, the
parameters' gradients included (they are sums in double over blocks whose size depends on the
shape only, added in a fixed order). Where a value does not depend on the element's position
(the forwards of swish, pact, prelu and maxout, maxout's backward, swish's with
``beta_grad=False``, rrelu's from ``noise`` and noisy_relu's from ``output``) the loops follow
the memory of x (of grad_output in a backward, of ``out`` when given) and the result is laid
out like x, as NumPy's ufuncs lay theirs out; the others (glu, the parameters' sums, the
draws) go in C order and return C-ordered results.

Random draws come from Philox4x32-10 (Salmon et al. 2011), a counter-based generator: the
value drawn for an element is a pure function of (seed, the element's index in x in C order),
so the same seed gives the same bits for C, Fortran, strided or reversed layouts of the same
logical array, for any thread count, and for element i whatever the array's size. One
Philox call serves elements 2k and 2k + 1 (counter (k, stream), key = the 64-bit seed; rrelu
and noisy_relu use different streams). The draws and the arithmetic on them are in double
whatever the dtype: a float32 result is the float64 one rounded. (The last bit of a double
result can differ between builds: noisy_relu's log, cos and sin (pyx/vecmath.h) use fused
multiply-adds in the AVX2 and AVX-512 builds, a product and a sum in the portable one.)
``seed=None`` draws a fresh seed from the operating system.
"""
import math
import numbers
import os
import types

import numpy as np

from . import _api, _special
from ._api import (_as_input, _c_contiguous, _check_out, _copy_into, _result_dtype,
                   _same_view, public_function)
from .catalogue import Param, float32_number

# The ops of _special as plain ints: reading a member of the enum class (_special.Op) took
# 0.12-0.19 us in Python 3.11, a tenth of a call on a small array; an attribute of a
# namespace 0.03 us.
Op = types.SimpleNamespace(**{op.name: int(op) for op in _special.Op})

# Elements below which one thread does the work, for either dtype (the loops split the work
# in blocks of 4096 elements: below 8192 there is one block anyway). One thread against two
# (benchmarks/threads.py's method, 2 vCPUs): swish, rrelu and noisy_relu (an exponential or a
# Philox draw per element) 1.2-1.6x faster on two at 8192 elements, but swish's forward with
# beta = 1 (silu's kernel) 0.88x in float32, and glu 0.94x (float32) and 1.10x (float64)
# there; compares and products only from ~64K (prelu's forward 1.01x, pact's 0.89x and
# maxout's 1.25x at 65536 float32 elements).
_COSTLY = 8192
_CHEAP = 65536

_UINT64_RANGE = 2 ** 64


# ---- argument handling shared by the functions below ---------------------------------------

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def _inputs(values, names):
    """Convert the array_likes; return (arrays, compute dtype, result dtype)."""
    first = values[0]
    if (type(first) is np.ndarray and first.dtype in _NATIVE
            and all(type(v) is np.ndarray and v.dtype == first.dtype for v in values[1:])):
        return values, first.dtype, first.dtype     # the common case: nothing to convert
    arrays, dtypes = zip(*(_as_input(value, name) for value, name in zip(values, names)))
    compute = np.result_type(*dtypes)
    return arrays, compute, _result_dtype(arrays, compute)


def _check_shape(function, array, name, shape, expected_name):
    if array.shape != shape:
        raise ValueError(f"{function}: argument '{name}' has shape {array.shape}, "
                         f"{expected_name} has shape {shape}")


def _c_order_stride(a):
    """The stride (bytes) from each element of `a` to the next in C order where one stride
    takes them all (a C-contiguous array, reversed, or with a step along its last axis), so
    that a 1-D view holds them; else None."""
    stride = expected = None
    for size, step in zip(reversed(a.shape), reversed(a.strides)):
        if size == 1:
            continue
        if stride is None:
            stride = step
        elif step != expected:
            return None
        expected = step * size
    return a.itemsize if stride is None else stride


def _one_stride(a, compute, output=False):
    """Can the elementwise loops take `a` as it is, as a 1-D view of its elements in C order
    (which a.reshape(-1) then is)? Of the compute dtype, aligned, with one stride
    (_c_order_stride) of whole elements, and for an output not 0 (which would write them all
    to one place)."""
    if a.dtype != compute or not a.flags.aligned:
        return False
    stride = _c_order_stride(a)
    return stride is not None and stride % a.itemsize == 0 and not (output and stride == 0)


def _prepare(out, shape, compute, result, arrays, aligned, strided=False):
    """The array of the compute dtype that the loop writes, and the inputs as arrays of the
    compute dtype: C-contiguous, or with `strided` (the elementwise loops, which copy strided
    operands block by block) also any that _one_stride accepts.

    The loops index every array by the logical C-order index, so a layout other than these
    costs one copy here and can never change a result. ``out`` is written directly when it is
    such an array; an input that overlaps it is then copied first unless ``aligned`` says the
    loop reads each of its elements before writing the same element of ``out`` and it is the
    very same view (plain in place).
    """
    arrays = [a if strided and _one_stride(a, compute) else _c_contiguous(a, compute)
              for a in arrays]
    target = _target(out, shape, compute, result, strided=strided)
    if target is out:
        return out, [
            a if not np.may_share_memory(a, out)
            or (ok and a.shape == out.shape and _same_view(a, out)) else a.copy()
            for a, ok in zip(arrays, aligned)]
    return target, arrays


def _target(buffer, shape, compute, result, name="out", strided=False):
    """What the loop writes for an output buffer (None, or checked as argument ``name``): the
    buffer itself when it is C-contiguous in the compute dtype (or, with `strided`, one that
    _one_stride accepts as an output), else a new array of the compute dtype (_finish copies
    it into the buffer)."""
    if buffer is not None:
        _check_out(buffer, shape, result, name)
        if result == compute and (buffer.flags.c_contiguous
                                  or strided and _one_stride(buffer, compute, output=True)):
            return buffer
    return np.empty(shape, dtype=compute)


def _finish(target, out, result):
    """Deliver the loop's result: into ``out``, or as a new array of the result dtype (a NumPy
    scalar for 0-d)."""
    if out is not None:
        if target is not out:
            _copy_into(out, target)
        return out
    if target.dtype != result:
        target = target.astype(result)
    return target[()] if target.ndim == 0 else target


def _one_of(function, x, output):
    if (x is None) == (output is None):
        raise TypeError(f"{function}.backward() takes exactly one of 'x' and 'output'")


def _not_from_output(function, output, why):
    if output is not None:
        raise TypeError(f"{function}.backward(): the derivative of {function} is not a "
                        f"function of its output ({why}); pass 'x'")


def _required(function, name, value):
    if value is None:
        raise TypeError(f"{function}() missing required argument '{name}'")


def _real(function, name, value, check=None):
    """A real parameter (a Python or NumPy real number, or a 0-d array of one) as a float;
    NaN and what ``check`` rejects raise ValueError."""
    if type(value) is float and value == value and (check is None or check(value) is None):
        return value                                # the common case, valid as it is
    return Param(name, check=check).validate(function, value)


def _finite(value):
    return None if math.isfinite(value) else "must be finite"


def _finite_non_negative(value):
    if not math.isfinite(value):
        return "must be finite"
    return "must be >= 0" if value < 0 else None


def _non_negative(value):
    return "must be >= 0" if value < 0 else None


def _integer(function, name, value):
    if type(value) is int:      # the common case (bool is a subclass, not this type)
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()    # a 0-d array counts as its element (NumPy's axis, PyTorch's)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{function}(): argument '{name}' must be an int, "
                        f"got {type(value).__name__}")
    return int(value)


def _seed(function, seed):
    """The 64-bit Philox key: the given seed, or a fresh one for None."""
    if type(seed) is int and 0 <= seed < _UINT64_RANGE:
        return seed                                 # the common case, valid as it is
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    seed = _integer(function, "seed", seed)
    if not 0 <= seed < _UINT64_RANGE:
        raise ValueError(f"{function}(): argument 'seed' must be in [0, 2**64), got {seed}")
    return seed


def _bool(function, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{function}(): argument '{name}' must be a bool, "
                        f"got {type(value).__name__}")
    return bool(value)


def _axis(function, x, axis):
    axis = _integer(function, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise np.exceptions.AxisError(axis, x.ndim, f"{function}()")
    return axis % x.ndim


def _split_axis(shape, axis):
    """(outer, size along axis, inner) of a C-contiguous array of this shape."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


# The elementwise ops whose value at an element depends on that element's operands alone, not
# on its index (no draw by index, no sum in index order): their loop may visit the elements in
# any order: the memory's (_loop_axes).
_POSITION_FREE = frozenset({Op.SWISH_FWD, Op.SWISH_BWD_INPUT, Op.PACT_FWD, Op.RRELU_NOISE_BWD,
                            Op.NOISY_RELU_BWD_FROM_OUTPUT})


def _loop_axes(out, shape, result, first):
    """For a loop whose values do not depend on the elements' positions, the order in which it
    visits the axes when not the C order (else None): largest stride first in out's memory
    (out checked here against the result's shape and dtype) or, without out, in first's (x,
    or grad_output: NumPy's ufuncs and the registry's functions lay their result out like
    it). A Fortran-ordered or transposed operand is then read, and the result written, in
    place, as a C-ordered one."""
    if first.ndim < 2:
        return None
    if out is not None:
        _check_out(out, shape, result)
        first = out
    axes = tuple(sorted(range(first.ndim), key=lambda d: -abs(first.strides[d])))
    return None if axes == tuple(range(first.ndim)) else axes


def _transposed(axes, *arrays):
    """The operands (and out=, None when not given) transposed by `axes`, for the loop."""
    return [None if a is None else a.transpose(axes) for a in arrays]


def _in_axes(values, axes, out):
    """A result computed on operands transposed by `axes`, for the caller: `out` itself, or
    the new array transposed back (laid out like the operand whose memory gave `axes`)."""
    grad_input, total = values if isinstance(values, tuple) else (values, None)
    grad_input = out if out is not None else grad_input.transpose(np.argsort(axes))
    return grad_input if total is None else (grad_input, total)


def _elementwise(op, x, grad_output, target, a=0.0, b=0.0, seed=0, threshold=_COSTLY,
                 noise=None):
    """Run an elementwise op of _special over arrays that _prepare gave (flattened: views;
    noise C-contiguous)."""
    return _special.elementwise(op, x.reshape(-1), grad_output.reshape(-1),
                                target.reshape(-1), a, b, seed, _api._num_threads, threshold,
                                None if noise is None else noise.reshape(-1))


def _forward(op, x, out, a=0.0, b=0.0, seed=0, threshold=_COSTLY, noise=None):
    """An elementwise forward of _special: op on x, into out or a new array (rrelu's training
    forward also writes its derivatives into ``noise`` when given)."""
    fast = _special.elementwise_fast(op, x, x, out, a, b, seed, _api._num_threads, threshold,
                                     noise)
    if fast is not None:    # the common call, checked and run in compiled code
        return fast[0]
    if noise is not None:
        for name, other in (("x", x), ("out", out)):
            if isinstance(other, np.ndarray) and np.may_share_memory(noise, other):
                raise ValueError(f"argument 'noise' overlaps '{name}'")
    (x,), compute, result = _inputs((x,), ("x",))
    axes = _loop_axes(out, x.shape, result, x) if op in _POSITION_FREE else None
    if axes is not None:
        x_t, out_t = _transposed(axes, x, out)
        return _in_axes(_forward(op, x_t, out_t, a, b, seed, threshold), axes, out)
    noise_target = None if noise is None else _target(noise, x.shape, compute, result, "noise")
    target, (x,) = _prepare(out, x.shape, compute, result, (x,), (True,), strided=True)
    _elementwise(op, x, x, target, a, b, seed, threshold, noise_target)  # (grad_output: x)
    if noise is not None:
        _finish(noise_target, noise, result)
    return _finish(target, out, result)


def _backward(function, op, grad_output, x, x_name, out, a=0.0, b=0.0, seed=0,
              threshold=_COSTLY):
    """An elementwise backward of _special from x (or from the forward's output, x_name
    "output"), into out or a new array: (grad_input, the op's sum as a scalar of the result
    dtype: the parameter's gradient for SWISH_BWD and PACT_BWD, else 0)."""
    fast = _special.elementwise_fast(op, x, grad_output, out, a, b, seed, _api._num_threads,
                                     threshold)
    if fast is not None:
        return fast
    (grad_output, x), compute, result = _inputs((grad_output, x), ("grad_output", x_name))
    _check_shape(f"{function}.backward()", grad_output, "grad_output", x.shape, f"'{x_name}'")
    axes = (_loop_axes(out, x.shape, result, grad_output) if op in _POSITION_FREE
            else None)
    if axes is not None:
        g_t, x_t, out_t = _transposed(axes, grad_output, x, out)
        return _in_axes(_backward(function, op, g_t, x_t, x_name, out_t, a, b, seed, threshold),
                        axes, out)
    target, (grad_output, x) = _prepare(out, x.shape, compute, result,
                                        (grad_output, x), (True, True), strided=True)
    total = _elementwise(op, x, grad_output, target, a, b, seed, threshold)
    return _finish(target, out, result), result.type(total)


class _Function:
    """The implementation of a function of this module: its _functions() are the package's
    function and its backward (_api.public_function); the class's docstring documents it."""

    name = ""


# ---- prelu ---------------------------------------------------------------------------------

class PReLU(_Function):
    """Parametric rectified linear unit, with a learnable slope per channel.

    ::

        prelu(x, weight) = x           if x > 0
                           weight * x  otherwise

    as :func:`torch.nn.functional.prelu` (He et al. 2015).

    Parameters
    ----------
    x : array_like
        Input; float32/float64 are computed natively, float16 in float32, bool and integers
        in float64.
    weight : array_like
        The slopes: one element, applied everywhere, or one per channel: ``x.shape[1]``
        elements, or ``x.shape[0]`` for 1-D x (PyTorch 2.13 accepts only one element for 1-D
        x). Any shape with that many elements; converted to the compute dtype.
    out : ndarray, optional
        Written and returned; must have x's shape and the result's dtype; may be x.

    Returns
    -------
    ndarray (or NumPy scalar for 0-d x) of x's shape.

    Raises
    ------
    ValueError
        When ``weight`` has neither one element nor one per channel.

    Backward
    --------
    ``prelu.backward(grad_output, x, weight, *, out=None)`` returns
    ``(grad_input, grad_weight)``:

    - ``grad_input = grad_output`` where x > 0, else ``grad_output * weight`` (so at x = 0
      and at NaN the weight, as in PyTorch);
    - ``grad_weight`` has weight's shape (a NumPy scalar for 0-d weight): per channel, the
      sum of ``grad_output * x`` over the elements where x <= 0 (NaN x gives NaN, as in
      PyTorch), summed in double, bitwise the same for every thread count and layout.

    ``out`` is the buffer of grad_input. The derivative needs x: ``output=`` raises TypeError.

    Examples
    --------
    >>> import actfast as af
    >>> af.prelu([[-2.0, 1.0], [3.0, -4.0]], [0.1, 0.5])
    array([[-0.2,  1. ],
           [ 3. , -2. ]])
    >>> grad_input, grad_weight = af.prelu.backward([[1.0, 1.0], [1.0, 1.0]],
    ...                                            [[-2.0, 1.0], [3.0, -4.0]], [0.1, 0.5])
    >>> grad_weight
    array([-2., -4.])
    """

    name = "prelu"

    def _layout(self, shape, weight, function):
        """(outer, channels, inner) of x, and the weight as an array (checked: one element or
        one per channel; an error names `function`, the caller)."""
        weight, _ = _as_input(weight, "weight")
        size = weight.size
        if size == 1:
            layout = (1, 1, math.prod(shape))
        elif len(shape) == 1:
            layout = (1, shape[0], 1)
        elif len(shape) >= 2:
            layout = (shape[0], shape[1], math.prod(shape[2:]))
        else:
            layout = None
        if layout is None or layout[1] != size:
            channels = "none (x is 0-d)" if layout is None else layout[1]
            raise ValueError(f"{function}(): argument 'weight' has {size} elements; it needs 1 or "
                             f"one per channel of x (x has shape {shape}: {channels})")
        return layout, weight

    def _functions(self):
        def forward(x, /, weight, *, out=None):
            fast = _special.prelu_fast(False, x, None, weight, out, _api._num_threads, _CHEAP)
            if fast is not None:    # the common call, checked and run in compiled code
                return fast
            (x,), compute, result = _inputs((x,), ("x",))
            layout, weight = self._layout(x.shape, weight, "prelu")
            laid_out, axes = out, _loop_axes(out, x.shape, result, x)
            if axes is not None:    # (the channels are then along axis axes.index(1))
                x, laid_out = _transposed(axes, x, out)
                if layout[1] > 1:
                    layout = _split_axis(x.shape, axes.index(1))
            target, (x, weight) = _prepare(laid_out, x.shape, compute, result, (x, weight),
                                           (True, False))
            x3 = x.reshape(layout)
            _special.prelu(x3, x3, weight.reshape(-1), target.reshape(layout), False,
                           _api._num_threads, _CHEAP)
            y = _finish(target, laid_out, result)
            return y if axes is None else _in_axes(y, axes, out)

        def backward(grad_output, x=None, weight=None, *, output=None, out=None):
            """``(grad_input, grad_weight)``; see prelu's docstring."""
            if output is None:
                fast = _special.prelu_fast(True, x, grad_output, weight, out, _api._num_threads,
                                           _CHEAP)
                if fast is not None:    # the common call, checked and run in compiled code
                    return fast
            _not_from_output("prelu", output, "the weight's gradient needs x")
            _required("prelu.backward", "x", x)
            _required("prelu.backward", "weight", weight)
            (grad_output, x), compute, result = _inputs((grad_output, x), ("grad_output", "x"))
            _check_shape("prelu.backward()", grad_output, "grad_output", x.shape, "'x'")
            weight_shape = np.shape(weight)
            layout, weight = self._layout(x.shape, weight, "prelu.backward")
            target, (grad_output, x, weight) = _prepare(
                out, x.shape, compute, result, (grad_output, x, weight), (True, True, False))
            grad_weight = _special.prelu(x.reshape(layout), grad_output.reshape(layout),
                                         weight.reshape(-1), target.reshape(layout), True,
                                         _api._num_threads, _CHEAP)
            with np.errstate(over="ignore"):   # a sum beyond float32 is inf, silently, as in the
                grad_weight = grad_weight.astype(result)   # compiled path (prelu_fast)
            grad_weight = grad_weight.reshape(weight_shape)
            return (_finish(target, out, result),
                    grad_weight[()] if grad_weight.ndim == 0 else grad_weight)

        return forward, backward


# ---- swish ---------------------------------------------------------------------------------

class Swish(_Function):
    """Swish with a learnable beta (Ramachandran et al. 2017).

    ::

        swish(x, beta) = x * sigmoid(beta * x)

    ``swish(x, beta=1)`` is :data:`actfast.silu` (the same bits); silu's ``backward`` returns
    grad_input alone, swish's also the gradient of beta.

    Parameters
    ----------
    x : array_like
        Input; float32/float64 are computed natively, float16 in float32, bool and integers
        in float64.
    beta : float, default 1.0
        Finite real number (or 0-d array), of any sign. For float64 x swish is computed in
        double. For float32 x, beta = 1 is silu's float32 kernel; another beta (not 0) takes
        float32 arithmetic where |beta x| <= 20 and x (and grad_output) are 0 or between
        2**-60 and 2**60 in magnitude, beta x carried to 2**-48 so that the exponential does
        not amplify its rounding (within silu's float32 accuracy: 4 ulp forward, 8 backward),
        and double elsewhere. An element's result depends on that element alone.
    out : ndarray, optional
        Written and returned; must have x's shape and the result's dtype; may be x.

    Returns
    -------
    ndarray (or NumPy scalar for 0-d x) of x's shape. Where beta * x < -800 the gate
    (below 1e-347) is taken as 0: the value is a zero of x's sign. At infinite x the limits:
    x where beta * x is +inf, that signed zero where it is -inf (PyTorch gives NaN,
    inf * 0); beta = 0 gives x / 2, also at infinite x.

    Backward
    --------
    ``swish.backward(grad_output, x, *, beta=1.0, out=None)`` returns
    ``(grad_input, grad_beta)`` with, for t = beta * x and s = sigmoid(t):

    - d/dx = s + t s (1 - s), which is silu'(t) (limits 1 and 0 at t = +inf and -inf);
    - d/dbeta = x**2 s (1 - s) (x**2 / 4 for beta = 0; 0 where |beta x| > 800, the limit at
      infinite x when beta != 0); ``grad_beta`` is the
      sum of ``grad_output * d/dbeta`` over all elements, summed in double (bitwise the same
      for every thread count and layout), a NumPy scalar of the result dtype. The terms are
      computed in double; for float32 x from the float32 exponential where the float32
      arithmetic above applies (beta = 1: silu's, and 0 below x = -120, where silu's float32
      gradient is 0 too), which is within an ulp: the sum stays within ~1e-7 of the sum of the
      terms' magnitudes, the size of its rounding to float32.

    ``out`` is the buffer of grad_input. The derivative needs x: ``output=`` raises TypeError.
    ``beta_grad=False`` (beta not learned: a fixed beta, e.g. 1.702 in CLIP's QuickGELU,
    x * sigmoid(1.702 x)) computes grad_input alone, the same bits, and returns
    ``(grad_input, None)``.

    Examples
    --------
    >>> import actfast as af
    >>> y = af.swish([-1.0, 0.5, 2.0], beta=1.5)
    >>> grad_input, grad_beta = af.swish.backward([1.0, 1.0, 1.0], [-1.0, 0.5, 2.0], beta=1.5)
    """

    name = "swish"

    def _functions(self):
        def forward(x, /, *, beta=1.0, out=None):
            beta = _real("swish", "beta", beta, _finite)
            return _forward(Op.SWISH_FWD, x, out, beta)

        def backward(grad_output, x=None, *, output=None, out=None, beta=1.0,
                     beta_grad=True):
            """``(grad_input, grad_beta)``; see swish's docstring."""
            _not_from_output("swish", output, "x is not a function of swish(x)")
            _required("swish.backward", "x", x)
            beta = _real("swish.backward", "beta", beta, _finite)
            if beta_grad is not True and not _bool("swish.backward", "beta_grad", beta_grad):
                grad_input, _ = _backward("swish", Op.SWISH_BWD_INPUT, grad_output, x, "x", out,
                                          beta)
                return grad_input, None
            return _backward("swish", Op.SWISH_BWD, grad_output, x, "x", out, beta)

        return forward, backward


# ---- pact ----------------------------------------------------------------------------------

class PACT(_Function):
    """PACT, the parameterized clipping activation, with a learnable ceiling (Choi et al. 2018).

    ::

        pact(x, alpha) = clip(x, 0, alpha) = 0      if x < 0
                                             alpha  if x > alpha
                                             x      otherwise

    NaN passes through and -0.0 stays -0.0, as with ``torch.clamp(x, 0, alpha)``.

    Parameters
    ----------
    x : array_like
        Input; float32/float64 are computed natively, float16 in float32, bool and integers
        in float64.
    alpha : float
        The ceiling, >= 0 (+inf allowed: pact is then relu); a real number or 0-d array,
        compared with x in double precision.
    out : ndarray, optional
        Written and returned; must have x's shape and the result's dtype; may be x.

    Returns
    -------
    ndarray (or NumPy scalar for 0-d x) of x's shape.

    Backward
    --------
    ``pact.backward(grad_output, x, alpha, *, out=None)`` returns ``(grad_input, grad_alpha)``:

    - ``grad_input = grad_output`` where 0 <= x < alpha, else 0 (also at NaN);
    - ``grad_alpha`` = the sum of ``grad_output`` where x >= alpha (PACT's straight-through
      estimate), summed in double (bitwise the same for every thread count and layout), a
      NumPy scalar of the result dtype.

    At x == alpha the gradient goes to alpha, not to x: ``torch.clamp`` with a tensor
    ``max=alpha`` does the opposite there (grad_input = grad, grad_alpha gets nothing), since
    its mask for x is 0 <= x <= alpha; everywhere else the two agree (at x = 0 both give the
    gradient to x; at NaN both give 0).

    ``out`` is the buffer of grad_input. The derivative needs x (pact(0) = pact(-1) = 0 have
    different derivatives): ``output=`` raises TypeError.

    Examples
    --------
    >>> import actfast as af
    >>> af.pact([-1.0, 0.5, 2.0, 6.0], 2.0)
    array([0. , 0.5, 2. , 2. ])
    >>> af.pact.backward([1.0, 1.0, 1.0, 1.0], [-1.0, 0.5, 2.0, 6.0], 2.0)
    (array([0., 1., 0., 0.]), np.float64(2.0))
    """

    name = "pact"

    def _functions(self):
        def forward(x, /, alpha, *, out=None):
            alpha = _real("pact", "alpha", alpha, _non_negative)
            return _forward(Op.PACT_FWD, x, out, alpha, threshold=_CHEAP)

        def backward(grad_output, x=None, alpha=None, *, output=None, out=None):
            """``(grad_input, grad_alpha)``; see pact's docstring."""
            _not_from_output("pact", output, "pact(0) = pact(-1) = 0")
            _required("pact.backward", "x", x)
            _required("pact.backward", "alpha", alpha)
            alpha = _real("pact.backward", "alpha", alpha, _non_negative)
            return _backward("pact", Op.PACT_BWD, grad_output, x, "x", out, alpha,
                             threshold=_CHEAP)

        return forward, backward


# ---- rrelu ---------------------------------------------------------------------------------

def _mean(lower, upper):
    """(lower + upper) / 2, also where the sum overflows (lower, upper near +-1.8e308)."""
    mean = (lower + upper) / 2
    return mean if math.isfinite(mean) else lower / 2 + upper / 2


class RReLU(_Function):
    """Randomized leaky rectified linear unit (Xu et al. 2015), as torch.nn.functional.rrelu.

    ::

        training=False:  x if x > 0 else x * (lower + upper) / 2      (leaky_relu)
        training=True:   x if x > 0 else x * a_i,   a_i ~ U[lower, upper] per element

    In training mode the slope a_i of element i is a pure function of (seed, i), i the
    element's index in x in C order (Philox4x32-10; see :mod:`actfast.special`): the same seed
    gives the same bits for any layout and thread count, and ``backward`` with the same seed
    reproduces the slopes. Every element has its draw, also where x > 0: a_i = lower +
    (upper - lower) u_i with u_i a multiple of 2^-52 in [0, 1), computed in double. Eval mode
    is :data:`actfast.leaky_relu` (for float32, the slope rounded to float32, as PyTorch).

    Instead of drawing the slopes again, ``backward`` can read them from ``noise``, an array
    the forward fills, as PyTorch's rrelu_with_noise: each element's derivative, a_i where
    x <= 0, else 1 (also at NaN), rounded to the result's dtype. That costs x's memory once
    more and saves the draws (a product per element instead of a Philox call per pair).

    Parameters
    ----------
    x : array_like
        Input; float32/float64 are computed natively, float16 in float32, bool and integers
        in float64.
    lower, upper : float, default 1/8 and 1/3
        Finite, lower <= upper (else ValueError), as in PyTorch.
    training : bool, default False
    seed : int or None, default None
        In [0, 2**64); None draws a fresh seed (then ``backward`` cannot reproduce the
        slopes: pass a seed or ``noise`` when you need the gradient). Ignored when training
        is False.
    out : ndarray, optional
        Written and returned; must have x's shape and the result's dtype; may be x.
    noise : ndarray, optional
        Training mode only (else ValueError): written with each element's derivative (see
        above); must have x's shape and the result's dtype, and overlap neither x nor out.

    Returns
    -------
    ndarray (or NumPy scalar for 0-d x) of x's shape.

    Backward
    --------
    ``rrelu.backward(grad_output, x, *, lower, upper, training, seed, out=None)`` returns
    grad_input: ``grad_output`` where x > 0, else ``grad_output * slope``. At x = 0 the slope
    (as PyTorch); at NaN x the slope in eval mode (leaky_relu's rule) and 1 in training mode
    (PyTorch's rrelu_with_noise). Training mode needs the forward's seed (TypeError without)
    or its noise: ``backward(grad_output, noise=noise, training=True)`` is grad_output *
    noise, the product in the two's compute dtype, as PyTorch's (x and seed are not needed;
    below float64 it can differ in the last bit from the seed's backward, which rounds the
    product with the slope in double). ``backward(grad_output, output=y, ...)`` works from the
    forward's output when every slope is >= 0 (lower >= 0 in training mode, lower + upper >=
    0 in eval mode), else ValueError.

    Examples
    --------
    >>> import actfast as af
    >>> y = af.rrelu([-1.0, 0.5, 2.0], training=True, seed=7)
    >>> g = af.rrelu.backward([1.0, 1.0, 1.0], [-1.0, 0.5, 2.0], training=True, seed=7)
    >>> import numpy as np
    >>> noise = np.empty(3)          # keep the slopes instead of the seed
    >>> y = af.rrelu([-1.0, 0.5, 2.0], training=True, noise=noise)
    >>> g = af.rrelu.backward([1.0, 1.0, 1.0], noise=noise, training=True)
    >>> af.rrelu([-1.0, 2.0])       # eval mode: slope (1/8 + 1/3) / 2
    array([-0.22916667,  2.        ])
    """

    name = "rrelu"

    def _params(self, lower, upper, training, seed, draws, function):
        """The validated parameters (an error names `function`, the caller); ``draws`` says
        what the call does with the seed in training mode: "fresh" (None draws one), "again"
        (None is an error), "none"."""
        if (type(lower) is float and type(upper) is float and type(training) is bool
                and (type(seed) is int and 0 <= seed < _UINT64_RANGE
                     or seed is None and draws == "none")
                and lower <= upper and math.isfinite(upper - lower)):
            return lower, upper, training, seed     # the common call, valid as it is
        lower = _real(function, "lower", lower, _finite)
        upper = _real(function, "upper", upper, _finite)
        if lower > upper:
            raise ValueError(f"{function}(): argument 'lower' ({lower!r}) must be <= 'upper' "
                             f"({upper!r})")
        training = _bool(function, "training", training)
        if training and not math.isfinite(upper - lower):   # (the draws' range)
            raise ValueError(f"{function}(): upper - lower overflows ({lower!r}, {upper!r})")
        if training and draws == "again" and seed is None:
            raise TypeError("rrelu.backward(training=True) needs the 'seed' of the forward, "
                            "to draw the same slopes, or its 'noise'")
        # (eval mode draws nothing: no fresh seed)
        if seed is not None or (training and draws == "fresh"):
            seed = _seed(function, seed)
        return lower, upper, training, seed

    def _functions(self):
        def forward(x, /, *, lower=1.0 / 8.0, upper=1.0 / 3.0, training=False, seed=None,
                    out=None, noise=None):
            lower, upper, training, seed = self._params(lower, upper, training, seed, "fresh",
                                                         "rrelu")
            if noise is not None and not training:
                raise ValueError("rrelu(): argument 'noise' is written in training mode only "
                                 "(training=True)")
            if not training:
                self._check_eval_slope(lower, upper, (x,), "rrelu")
                return _api.FUNCTIONS["leaky_relu"](x, out=out, negative_slope=_mean(lower, upper))
            return _forward(Op.RRELU_TRAIN_FWD, x, out, lower, upper - lower, seed, noise=noise)

        def backward(grad_output, x=None, *, output=None, out=None, lower=1.0 / 8.0,
                     upper=1.0 / 3.0, training=False, seed=None, noise=None):
            """grad_input; see rrelu's docstring."""
            if noise is not None:
                return self._backward_from_noise(grad_output, x, output, out, lower, upper,
                                                 training, seed, noise)
            _one_of("rrelu", x, output)
            lower, upper, training, seed = self._params(lower, upper, training, seed, "again",
                                                         "rrelu.backward")
            smallest_slope = lower if training else _mean(lower, upper)
            if output is not None and smallest_slope < 0:
                raise ValueError("rrelu.backward(): with a negative slope the output's sign does "
                                 "not tell x's; pass 'x'")
            if not training:
                self._check_eval_slope(lower, upper, (grad_output, x if x is not None else output),
                                       "rrelu.backward")
                return _api.FUNCTIONS["leaky_relu"].backward(
                    grad_output, x, output=output, out=out, negative_slope=_mean(lower, upper))
            x_name, x = ("x", x) if x is not None else ("output", output)
            # From the output: with slopes >= 0, output <= 0 exactly where x <= 0 (the kernel's
            # test), so the same loop serves both.
            grad_input, _ = _backward("rrelu", Op.RRELU_TRAIN_BWD, grad_output, x, x_name, out,
                                      lower, upper - lower, seed)
            return grad_input

        return forward, backward

    @staticmethod
    def _check_eval_slope(lower, upper, operands, function):
        # eval mode is leaky_relu, whose float32 kernel takes the slope as a float32 number:
        # refused there when the call computes in float32 and no float32 holds it, named here
        message = float32_number("the eval-mode slope (lower + upper) / 2", _mean(lower, upper))
        if message and np.result_type(*(_as_input(v, "x")[1] for v in operands)) == np.float32:
            raise ValueError(f"{function}(): {message}")

    def _backward_from_noise(self, grad_output, x, output, out, lower, upper, training, seed,
                             noise):
        _, _, training, _ = self._params(lower, upper, training, seed, "none",  # (not needed)
                                         "rrelu.backward")
        if not training:
            raise ValueError("rrelu.backward(): argument 'noise' is the training mode's "
                             "(training=True)")
        if x is not None or output is not None:   # (not read: checked if given)
            for name, given in (("x", x), ("output", output)):
                if given is not None and np.shape(given) != np.shape(noise):
                    raise ValueError(f"rrelu.backward(): argument '{name}' has shape "
                                     f"{np.shape(given)}, 'noise' has shape {np.shape(noise)}")
        fast = _special.elementwise_fast(Op.RRELU_NOISE_BWD, noise, grad_output, out, 0.0, 0.0,
                                         0, _api._num_threads, _CHEAP)
        if fast is not None:   # the common call (as _backward's), one Python call fewer
            return fast[0]
        grad_input, _ = _backward("rrelu", Op.RRELU_NOISE_BWD, grad_output, noise, "noise",
                                  out, threshold=_CHEAP)
        return grad_input


# ---- noisy_relu ----------------------------------------------------------------------------

class NoisyReLU(_Function):
    """Noisy rectified linear unit (Nair & Hinton 2010).

    ::

        noisy_relu(x, sigma) = max(0, x + sigma * z_i),   z_i ~ N(0, 1) per element

    z_i is a pure function of (seed, i), i the element's index in x in C order
    (Philox4x32-10 and Box-Muller; see :mod:`actfast.special`): the same seed gives the same
    bits for any layout and thread count. The noise is added in double precision.

    Parameters
    ----------
    x : array_like
        Input; float32/float64 are computed natively, float16 in float32, bool and integers
        in float64.
    sigma : float, default 1.0
        The noise's standard deviation: finite, >= 0 (0 gives relu).
    seed : int or None, default None
        In [0, 2**64); None draws a fresh seed.
    out : ndarray, optional
        Written and returned; must have x's shape and the result's dtype; may be x.

    Returns
    -------
    ndarray (or NumPy scalar for 0-d x) of x's shape.

    Backward
    --------
    ``noisy_relu.backward(grad_output, output=y, *, out=None)`` returns grad_output where the
    forward's output y > 0, else 0 (relu's rule: 0 at y = 0, grad_output at NaN).
    ``noisy_relu.backward(grad_output, x, *, sigma, seed)`` gives the same from x by drawing
    the forward's noise again: it needs the forward's seed (TypeError without).

    Examples
    --------
    >>> import actfast as af
    >>> y = af.noisy_relu([-1.0, 0.5, 2.0], sigma=0.1, seed=3)
    >>> g = af.noisy_relu.backward([1.0, 1.0, 1.0], output=y)
    """

    name = "noisy_relu"

    @staticmethod
    def _sigma(sigma, function):
        if type(sigma) is float and 0.0 <= sigma < math.inf:
            return sigma                            # the common case, valid as it is
        return _real(function, "sigma", sigma, _finite_non_negative)

    def _functions(self):
        def forward(x, /, *, sigma=1.0, seed=None, out=None):
            sigma = self._sigma(sigma, "noisy_relu")
            seed = _seed("noisy_relu", seed)
            return _forward(Op.NOISY_RELU_FWD, x, out, sigma, seed=seed)

        def backward(grad_output, x=None, *, output=None, out=None, sigma=1.0, seed=None):
            """grad_input; see noisy_relu's docstring."""
            _one_of("noisy_relu", x, output)
            sigma = self._sigma(sigma, "noisy_relu.backward")
            if x is None:   # from the output: nothing drawn (a seed given is checked, not used)
                if seed is not None:
                    _seed("noisy_relu.backward", seed)
                grad_input, _ = _backward("noisy_relu", Op.NOISY_RELU_BWD_FROM_OUTPUT, grad_output,
                                          output, "output", out, threshold=_CHEAP)
                return grad_input
            if seed is None:
                raise TypeError("noisy_relu.backward() from 'x' needs the 'seed' of the forward "
                                "(or pass output=)")
            grad_input, _ = _backward("noisy_relu", Op.NOISY_RELU_BWD, grad_output, x, "x", out,
                                      sigma, seed=_seed("noisy_relu.backward", seed))
            return grad_input

        return forward, backward


# ---- maxout --------------------------------------------------------------------------------

class Maxout(_Function):
    """Maxout (Goodfellow et al. 2013): the maximum of each group of ``pieces`` consecutive
    elements along an axis.

    ::

        maxout(x, pieces, axis)[..., k, ...] = max(x[..., k*pieces : (k+1)*pieces, ...])

    The output has x's shape with the axis's size divided by ``pieces``. A group holding NaN
    gives NaN (its first NaN).

    Parameters
    ----------
    x : array_like
        Input of at least one dimension; float32/float64 are computed natively, float16 in
        float32, bool and integers in float64.
    pieces : int
        Group size, >= 1, dividing the axis's size (else ValueError).
    axis : int, default -1
    out : ndarray, optional
        Written and returned; must have the result's shape and dtype.

    Returns
    -------
    ndarray of x's shape with ``shape[axis] // pieces`` along the axis.

    Backward
    --------
    ``maxout.backward(grad_output, x, pieces, axis=-1, *, out=None)`` returns grad_input of
    x's shape: each element of grad_output goes to the first maximum of its group (the first
    NaN if there is one, as np.argmax), every other element gets 0. grad_output must have the
    forward's output shape. The derivative needs x: ``output=`` raises TypeError.

    Examples
    --------
    >>> import actfast as af
    >>> af.maxout([[1.0, 5.0, 3.0, 2.0]], 2)
    array([[5., 3.]])
    >>> af.maxout.backward([[10.0, 20.0]], [[1.0, 5.0, 3.0, 2.0]], 2)
    array([[ 0., 10., 20.,  0.]])
    """

    name = "maxout"

    def _layout(self, x, pieces, axis, function):
        pieces = _integer(function, "pieces", pieces)
        if pieces < 1:
            raise ValueError(f"{function}(): argument 'pieces' must be >= 1, got {pieces}")
        axis = _axis(function, x, axis)
        outer, size, inner = _split_axis(x.shape, axis)
        if size % pieces:
            raise ValueError(f"{function}(): x has {size} elements along axis {axis}, not a "
                             f"multiple of pieces={pieces}")
        shape = x.shape[:axis] + (size // pieces,) + x.shape[axis + 1:]
        return shape, (outer * (size // pieces), pieces, inner), axis

    def _functions(self):
        def forward(x, /, pieces, axis=-1, *, out=None):
            fast = _special.grouped_fast(False, x, None, out, pieces, axis, _api._num_threads,
                                         _CHEAP)
            if fast is not None:    # the common call, checked and run in compiled code
                return fast
            (x,), compute, result = _inputs((x,), ("x",))
            shape, groups, axis = self._layout(x, pieces, axis, "maxout")
            axes = _loop_axes(out, shape, result, x)
            if axes is not None:    # (each group along axis axes.index(axis), in its order)
                x_t, out_t = _transposed(axes, x, out)
                return _in_axes(forward(x_t, pieces, axes.index(axis), out=out_t), axes, out)
            target, (x,) = _prepare(out, shape, compute, result, (x,), (False,))
            # grad_output is not read by the forward: x stands in, as a C-contiguous 2-d view
            _special.maxout(x.reshape(groups), x.reshape(groups[0], groups[1] * groups[2]),
                            target.reshape(-1), False, _api._num_threads, _CHEAP)
            return _finish(target, out, result)

        def backward(grad_output, x=None, pieces=None, axis=-1, *, output=None, out=None):
            """grad_input; see maxout's docstring."""
            _not_from_output("maxout", output, "the output does not say where the maximum was")
            _required("maxout.backward", "x", x)
            _required("maxout.backward", "pieces", pieces)
            if grad_output is not None:
                fast = _special.grouped_fast(False, x, grad_output, out, pieces, axis,
                                             _api._num_threads, _CHEAP)
                if fast is not None:
                    return fast
            (grad_output, x), compute, result = _inputs((grad_output, x), ("grad_output", "x"))
            shape, groups, axis = self._layout(x, pieces, axis, "maxout.backward")
            _check_shape("maxout.backward()", grad_output, "grad_output", shape,
                         "maxout's output")
            axes = _loop_axes(out, x.shape, result, grad_output)
            if axes is not None:
                g_t, x_t, out_t = _transposed(axes, grad_output, x, out)
                return _in_axes(backward(g_t, x_t, pieces, axes.index(axis), out=out_t),
                                axes, out)
            target, (grad_output, x) = _prepare(out, x.shape, compute, result,
                                                (grad_output, x), (False, True))
            _special.maxout(x.reshape(groups), grad_output.reshape(groups[0], groups[2]),
                            target.reshape(-1), True, _api._num_threads, _CHEAP)
            return _finish(target, out, result)

        return forward, backward


# ---- glu -----------------------------------------------------------------------------------

class GLU(_Function):
    """Gated linear unit (Dauphin et al. 2017), as torch.nn.functional.glu.

    ::

        glu(x, axis) = a * sigmoid(b),   a, b = the first and second half of x along axis

    Parameters
    ----------
    x : array_like
        Input of at least one dimension, of even size along the axis (else ValueError);
        float32/float64 are computed natively, float16 in float32, bool and integers in
        float64.
    axis : int, default -1
    out : ndarray, optional
        Written and returned; must have the result's shape and dtype.

    Returns
    -------
    ndarray of x's shape with half the size along the axis.

    Backward
    --------
    ``glu.backward(grad_output, x, axis=-1, *, out=None)`` returns grad_input of x's shape:
    ``grad_output * sigmoid(b)`` for the first half and ``grad_output * a * sigmoid(b) *
    (1 - sigmoid(b))`` for the second (sigmoid' written as exp(-|b|) / (1 + exp(-|b|))**2,
    exactly 0 at +-inf). grad_output must have the forward's output shape. The derivative
    needs x: ``output=`` raises TypeError.

    Examples
    --------
    >>> import actfast as af
    >>> y = af.glu([[1.0, 2.0, 0.0, 100.0]])
    >>> y
    array([[0.5, 2. ]])
    >>> g = af.glu.backward([[1.0, 1.0]], [[1.0, 2.0, 0.0, 100.0]])
    """

    name = "glu"

    def _layout(self, x, axis, function):
        axis = _axis(function, x, axis)
        outer, size, inner = _split_axis(x.shape, axis)
        if size % 2:
            raise ValueError(f"{function}(): x has {size} elements along axis {axis}; it must be "
                             "even (halved into a and b)")
        shape = x.shape[:axis] + (size // 2,) + x.shape[axis + 1:]
        return shape, (outer, size * inner)

    def _functions(self):
        def forward(x, /, axis=-1, *, out=None):
            fast = _special.grouped_fast(True, x, None, out, 2, axis, _api._num_threads, _COSTLY)
            if fast is not None:    # the common call, checked and run in compiled code
                return fast
            (x,), compute, result = _inputs((x,), ("x",))
            shape, rows = self._layout(x, axis, "glu")
            target, (x,) = _prepare(out, shape, compute, result, (x,), (False,))
            x2 = x.reshape(rows)
            _special.glu(x2, x2, target.reshape(-1), False, _api._num_threads, _COSTLY)
            return _finish(target, out, result)

        def backward(grad_output, x=None, axis=-1, *, output=None, out=None):
            """grad_input; see glu's docstring."""
            _not_from_output("glu", output, "a and b are not functions of a * sigmoid(b)")
            _required("glu.backward", "x", x)
            if grad_output is not None:
                fast = _special.grouped_fast(True, x, grad_output, out, 2, axis, _api._num_threads,
                                             _COSTLY)
                if fast is not None:
                    return fast
            (grad_output, x), compute, result = _inputs((grad_output, x), ("grad_output", "x"))
            shape, rows = self._layout(x, axis, "glu.backward")
            _check_shape("glu.backward()", grad_output, "grad_output", shape, "glu's output")
            target, (grad_output, x) = _prepare(out, x.shape, compute, result,
                                                (grad_output, x), (False, True))
            _special.glu(x.reshape(rows), grad_output.reshape(rows[0], rows[1] // 2),
                         target.reshape(-1), True, _api._num_threads, _COSTLY)
            return _finish(target, out, result)

        return forward, backward


FUNCTIONS = {cls.name: public_function(cls.name, *cls()._functions(), cls.__doc__)
             for cls in (PReLU, Swish, PACT, RReLU, NoisyReLU, Maxout, GLU)}
"""The functions of this module by name (merged into the package namespace by __init__)."""
