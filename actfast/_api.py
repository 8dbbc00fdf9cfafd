"""Argument handling, done once for every function: array conversion, dtype resolution,
``out=`` checks, overlap, parameters, thread count; then one call into the compiled loops."""
import os
import warnings

import numpy as np

from . import _elementwise
from .catalogue import ENTRIES, KERNELS, REQUIRED

FORWARD, BACKWARD, BACKWARD_FROM_OUTPUT = 0, 1, 2

_KERNEL_INDEX = {name: i for i, name in enumerate(_elementwise.KERNEL_NAMES)}
_KERNELS = {kernel.name: kernel for kernel in KERNELS}


# ---- threads -------------------------------------------------------------------------------

def _default_num_threads():
    for variable in ("ACTFAST_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").split(",")[0].strip()
        if value:
            try:
                if int(value) >= 1:
                    return int(value)
            except ValueError:
                pass
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_num_threads = _default_num_threads()
_forked = False


def _one_thread_after_fork():
    # GNU OpenMP's thread pool does not survive fork(): a child forked after its parent ran a
    # parallel region (multiprocessing's 'fork' start method, Linux's default before Python
    # 3.14) waits forever in its own first parallel region for threads that exist only in the
    # parent (PyTorch 2.13 hangs there too). A forked child runs every kernel on one thread,
    # without a parallel region.
    global _num_threads, _forked
    if openmp_enabled():
        _num_threads = 1
        _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_num_threads(n):
    """Set the number of threads the kernels use (n >= 1). Returns None.

    In a process forked from another (multiprocessing's 'fork' start method), OpenMP's
    threads cannot be used: actfast runs on one thread there, and n > 1 warns
    (RuntimeWarning). Start worker processes with 'spawn' or 'forkserver' for threads."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads(): n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads(): n must be >= 1, got {n}")
    if _forked and n > 1:
        warnings.warn("set_num_threads(): this process was forked, and OpenMP's threads do not "
                      "survive fork(); actfast stays on one thread here (start processes with "
                      "multiprocessing's 'spawn' or 'forkserver' method for threads)",
                      RuntimeWarning, stacklevel=2)
        n = 1
    _num_threads = int(n)


def get_num_threads():
    """The number of threads the kernels use: ACTFAST_NUM_THREADS, else OMP_NUM_THREADS, else
    the cores this process may run on, unless changed by set_num_threads(); 1 in a forked
    process (see set_num_threads)."""
    return _num_threads


def openmp_enabled():
    """True when actfast was built with OpenMP; without it every call runs on one thread."""
    return _elementwise.openmp_enabled()


# ---- arrays --------------------------------------------------------------------------------

def _as_input(value, name):
    """Convert an array_like argument; return (array, dtype it is computed in)."""
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "f":   # (the compute dtype in the machine's byte order: '>f4' is read as such)
        if array.dtype.itemsize in (2, 4):
            return array, np.dtype(np.float32)
        if array.dtype.itemsize == 8:
            return array, np.dtype(np.float64)
    elif kind in "biu":  # computed in float64, as np.exp does
        return array, np.dtype(np.float64)
    raise TypeError(f"argument '{name}' has unsupported dtype {array.dtype}; "
                    "actfast computes float16, float32, float64, bool and integer input")


def _result_dtype(arrays, compute_dtype):
    """float16 in (alone, in either byte order) gives float16 out; everything else comes out
    in the compute dtype."""
    if all(a.dtype.kind == "f" and a.dtype.itemsize == 2 for a in arrays):
        return np.dtype(np.float16)
    return compute_dtype


def _check_out(out, shape, dtype, name="out"):
    """An output buffer (``out``, or another array the call writes, named ``name``)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"argument '{name}' must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"argument '{name}' has shape {out.shape}, the result has shape {shape}")
    if out.dtype != dtype:
        raise TypeError(f"argument '{name}' has dtype {out.dtype}, the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"argument '{name}' is read-only")


_DRIVER_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _copy_into(out, values):
    """np.copyto(out, values, casting="unsafe"), by the elementwise driver where both are
    aligned float32 or float64 arrays of one dtype and shape that do not overlap: from one
    layout into another (transposed, say) it takes a sixth (float32) to a fifth (float64) of
    NumPy's time (3000 x 3000)."""
    if (type(values) is np.ndarray and out.dtype in _DRIVER_DTYPES and values.dtype == out.dtype
            and values.shape == out.shape and out.flags.aligned and values.flags.aligned
            and not np.may_share_memory(out, values)):
        _elementwise.copy(values, out, _num_threads)
    else:
        np.copyto(out, values, casting="unsafe")


def _c_contiguous(value, dtype):
    """np.asarray(value, dtype=dtype, order="C"), copied by _copy_into where that applies."""
    array = np.asarray(value)
    if array.dtype != dtype or array.flags.c_contiguous:
        return np.asarray(array, dtype=dtype, order="C")
    contiguous = np.empty(array.shape, dtype)
    _copy_into(contiguous, array)
    return contiguous


def _same_view(a, b):
    """a and b are the same view of memory in which no two elements coincide (in place is
    then safe elementwise: a view made with as_strided may repeat elements, and written in
    place an element would be read after another alias of it was written)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.dtype == b.dtype
            and _elementwise.no_repeated_elements(b))


def apply(direction, kernel, numeric, inputs, names, out, float32_problem=None):
    """Run `kernel` in `direction` on the array_like `inputs` (named `names` for errors): the
    general path, after _elementwise.run_fast declined the call. `float32_problem`: the
    ValueError's message when the parameters cannot be used for float32 (and float16) input."""
    arrays, compute_dtypes = zip(*(_as_input(value, name) for value, name in zip(inputs, names)))
    shape = arrays[0].shape
    for array, name in zip(arrays[1:], names[1:]):
        if array.shape != shape:
            raise ValueError(f"argument '{name}' has shape {array.shape}, "
                             f"argument '{names[0]}' has shape {shape}")
    compute_dtype = np.result_type(*compute_dtypes)
    if float32_problem is not None and compute_dtype == np.float32:
        raise ValueError(float32_problem)
    result_dtype = _result_dtype(arrays, compute_dtype)
    if (direction == BACKWARD_FROM_OUTPUT and kernel.output_bounds
            and arrays[1].dtype.itemsize == 2):
        # a float16 output was clamped to the bounds rounded to float16 (via float32): those
        # are its kinks (hardtanh(x, min_val=0.7) is 0.7002 where clipped)
        numeric = tuple(float(np.float16(np.float32(value))) if name in kernel.output_bounds
                        else value for name, value in zip(kernel.params, numeric))
    if out is not None:
        _check_out(out, shape, result_dtype)
    arrays = [a.astype(compute_dtype, copy=False) for a in arrays]
    if out is not None and result_dtype == compute_dtype:
        target = out
        # The result must be as if computed from a copy: an input that overlaps `out` other
        # than as the very same view (plain in-place) is copied first.
        arrays = [a.copy() if np.may_share_memory(a, out) and not _same_view(a, out) else a
                  for a in arrays]
    else:
        target = np.empty_like(arrays[0], dtype=compute_dtype)
    _elementwise.run(direction, _KERNEL_INDEX[kernel.name], (*arrays, target), numeric,
                     _num_threads)
    if out is not None:
        if target is not out:
            _copy_into(out, target)
        return out
    if result_dtype != compute_dtype:
        target = target.astype(result_dtype)
    return target[()] if target.ndim == 0 else target


# ---- the public functions ------------------------------------------------------------------

def public_function(name, forward, backward, doc):
    """The package's function `name`: `forward`, named so and documented by `doc`, with
    `backward` (named name.backward) as its attribute ``backward``. Both are closures over
    the object that implements them (an Activation, or one of special's and softmax's
    classes), made by its ``_functions()``.

    Functions rather than the objects: Python calls a function through vectorcall, but an
    instance of a Python class through its type's call slot, which first packs the arguments
    into a tuple and the keywords into a dict, then calls ``__call__`` with them: in Python
    3.11 0.2-0.5 us more per call with keywords, as much as the rest of a call on a small
    array (af.relu(x, out=out) at 16 elements took ~0.9 us as an object's call, ~0.45 us as
    a function's). A function also names itself in the interpreter's signature errors
    ("gelu() missing 1 required positional argument: 'x'", "gelu.backward() ..."), and pickle
    and copy take it by reference to ``actfast.<name>`` (``multiprocessing.Pool.map(af.gelu,
    chunks)`` sends the function itself to the workers), as NumPy's ufuncs."""
    for function in _named(name, forward, backward):
        function.__module__ = "actfast"
    forward.__doc__ = doc
    forward.backward = backward
    return forward


def _named(name, forward, backward):
    """forward and backward named `name` and name.backward (their signature errors read so)."""
    for function, qualname in ((forward, name), (backward, f"{name}.backward")):
        function.__name__ = qualname.rpartition(".")[2]
        function.__qualname__ = qualname
    return forward, backward


class Activation:
    """An elementwise activation made from an Entry of the catalogue: call it for the
    forward; ``.backward`` for the vector-Jacobian product. The package's functions are its
    two closures (``_functions``, public_function)."""

    def __init__(self, entry):
        self.entry = entry
        self.__name__ = self.__qualname__ = entry.name
        self.__doc__ = _docstring(entry)
        self._defaults = {p.name: p.default for p in entry.params}
        self._params = {p.name: p for p in entry.params}
        self._cache = {}
        # the parameters' default resolution, cached: most calls pass none
        if REQUIRED not in self._defaults.values():
            self._default_resolution = self._resolve({})
        else:
            self._default_resolution = None
        self._forward, self.backward = _named(entry.name, *self._functions())

    def __repr__(self):
        return f"<actfast.Activation {self.entry.name}>"

    def _resolve(self, params, name=None):
        """Validate keyword parameters: (kernel, numeric args, normalised params, the
        kernel's index in _elementwise, the error for float32 input or None). The errors name
        `name` (the caller: "gelu.backward", say), or the function."""
        name = name or self.entry.name
        values = dict(self._defaults)
        for key, value in params.items():
            if key not in self._params:
                raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
            values[key] = self._params[key].validate(name, value)
        missing = [key for key, value in values.items() if value is REQUIRED]
        if missing:
            raise TypeError(f"{name}() missing required keyword argument '{missing[0]}'")
        self.entry.validate(values, name)
        kernel = _KERNELS[self.entry.kernel_name(values)]
        numeric = tuple(values[p] for p in kernel.params)
        return (kernel, numeric, values, _KERNEL_INDEX[kernel.name],
                self.entry.float32_problem(values, name))

    def _resolution(self, params):
        if not params and self._default_resolution is not None:
            return self._default_resolution
        # Validated parameter sets are remembered (a few): validation costs more than a small
        # array's kernel. The key (parameter_key) holds the types of values other than float
        # and str and the signs of float zeros too, so that values that compare equal but mean
        # different things (True == 1 == 1.0, 0.0 == -0.0) are different keys; only plain str
        # and float values are stored, so a key with another type never hits.
        try:
            key = _elementwise.parameter_key(params)
            resolution = self._cache.get(key)
        except TypeError:   # an unhashable value (a list, an array): _resolve names the argument
            key = resolution = None
        if resolution is not None:
            return resolution
        resolution = self._resolve(params)
        if key is not None and len(self._cache) < 64 and all(type(v) is str or type(v) is float
                                                             for v in params.values()):
            self._cache[key] = resolution
        return resolution

    def __call__(self, *args, **kwargs):
        """The forward (of one's own Activation: the package's functions are its closures)."""
        return self._forward(*args, **kwargs)

    def __reduce__(self):
        # (its closures do not pickle: it is made again from its entry)
        return Activation, (self.entry,)

    # The common call (float32/float64 ndarrays, out None or simple) is checked and run in
    # compiled code (_elementwise.run_fast): it then costs about what a ufunc call does.

    # Parameters that float32 kernels cannot use (float32_problem) send every call to apply,
    # which refuses them for float32 and float16 input.

    def _functions(self):
        """The forward and the backward as functions, closures over this object: the
        package's functions (public_function), and the methods of one's own Activation."""

        def forward(x, /, *, out=None, **params):
            kernel, numeric, _, index, float32_problem = self._resolution(params)
            if float32_problem is None:
                result = _elementwise.run_fast(FORWARD, index, x, None, out, numeric,
                                               _num_threads)
                if result is not None:
                    return result
            return apply(FORWARD, kernel, numeric, (x,), ("x",), out, float32_problem)

        def backward(grad_output, x=None, *, output=None, out=None, **params):
            """grad_output * f'(x): the vector-Jacobian product, from `x` or from `output`."""
            name = self.entry.name
            try:   # (free in Python 3.11 while nothing is raised)
                kernel, numeric, values, index, float32_problem = self._resolution(params)
            except (TypeError, ValueError):
                self._resolve(params, f"{name}.backward")   # the same error, for backward
                raise
            if (x is None) == (output is None):
                raise TypeError(f"{name}.backward() takes exactly one of 'x' and 'output'")
            if x is not None:
                if float32_problem is None:
                    result = _elementwise.run_fast(BACKWARD, index, grad_output, x, out,
                                                   numeric, _num_threads)
                    if result is not None:
                        return result
                return apply(BACKWARD, kernel, numeric, (grad_output, x),
                             ("grad_output", "x"), out,
                             float32_problem and self._backward_problem(values))
            if not self.entry.backward_from_output:
                raise TypeError(f"{name}.backward(): the derivative of {name} is not a "
                                "function of its output; pass 'x'")
            if not self.entry.allows_output(values):
                raise ValueError(f"{name}.backward(): 'output' cannot determine the "
                                 f"derivative for these parameters ({values}); pass 'x'")
            if float32_problem is None:
                result = _elementwise.run_fast(BACKWARD_FROM_OUTPUT, index, grad_output,
                                               output, out, numeric, _num_threads)
                if result is not None:
                    return result
            return apply(BACKWARD_FROM_OUTPUT, kernel, numeric, (grad_output, output),
                         ("grad_output", "output"), out,
                         float32_problem and self._backward_problem(values))

        return forward, backward

    def _backward_problem(self, values):
        """float32_problem's message for the backward (the cached resolution's names the
        forward)."""
        return self.entry.float32_problem(values, f"{self.entry.name}.backward")


def _docstring(entry):
    lines = [entry.summary or entry.name, "",
             f"    {entry.name}(x) = {entry.formula}", "",
             "Parameters", "----------",
             "x : array_like", "    Input; float32/float64 are computed natively, float16 in "
             "float32, bool and integers in float64."]
    for p in entry.params:
        default = "required" if p.default is REQUIRED else f"default {p.default!r}"
        kind = f"{{{', '.join(repr(c) for c in p.choices)}}}" if p.choices else "float"
        lines += [f"{p.name} : {kind}, {default}", "    As in PyTorch."]
    lines += ["out : ndarray, optional",
              "    Written and returned; must have the result's shape and dtype; may be x.", "",
              "Returns", "-------", "ndarray (or NumPy scalar for scalar input) of x's shape.", "",
              "Backward", "--------",
              f"``{entry.name}.backward(grad_output, x, *, out=None, **params)`` returns "
              "grad_output * f'(x), with", f"f'(x) = {entry.derivative}."]
    if entry.backward_from_output:
        lines.append(f"``{entry.name}.backward(grad_output, output=y)`` computes it from "
                     "the forward's output.")
    lines += ["", "Examples", "--------", ">>> import actfast as af",
              f">>> y = af.{entry.name}([-1.0, 0.5, 2.0])",
              f">>> g = af.{entry.name}.backward([1.0, 1.0, 1.0], [-1.0, 0.5, 2.0])"]
    return "\n".join(lines)


def _public(activation):
    return public_function(activation.entry.name, activation._forward, activation.backward,
                           activation.__doc__)


FUNCTIONS = {entry.name: _public(Activation(entry)) for entry in ENTRIES}
