"""The API contract every elementwise function follows (the foundation issue), checked for
every registry entry: array_like inputs and scalars, dtype rules, out= (errors, identity,
overlap), inputs never modified, parameter validation, backward's arguments, threads
(settings, environment, concurrency, the GIL) and docstrings."""
import copy
import os
import pickle
import re
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import actfast as af
from actfast.catalogue import ENTRIES, REQUIRED

from conftest import (CASES, REPRESENTATIONS, Case, assert_bitwise_equal, assert_ulp_close,
                      assert_other_threads_run, bits, case_params, draw, draw_grad_output, dtype_params, single_thread)

# One case per entry (its first example: the defaults, or the required parameters).
DEFAULT_CASES = [Case(entry, entry.examples[0]) for entry in ENTRIES]
DEFAULT_OUTPUT_CASES = [case for case in DEFAULT_CASES if case.allows_output]

DIRECTIONS = ("forward", "backward", "backward-from-output")


def _direction_params(cases):
    return [pytest.param(case, direction, id=f"{case.id}-{direction}")
            for case in cases for direction in DIRECTIONS
            if direction != "backward-from-output" or case.allows_output]


def _call(case, direction, grad_output, x, **kwargs):
    """Forward of x, backward of (grad_output, x), or backward of (grad_output, output=x)."""
    if direction == "forward":
        return case.forward(x, **kwargs)
    if direction == "backward":
        return case.backward(grad_output, x, **kwargs)
    return case.backward(grad_output, output=x, **kwargs)


def _operand(case, direction, x):
    """The second operand for `direction`: x itself, or the forward's output (for float16, a
    large random x may give an output beyond float16's range: inf, as NumPy's cast gives,
    without its warning)."""
    if direction != "backward-from-output":
        return x
    with np.errstate(over="ignore"):
        return np.asarray(case.forward(x))


# ---- array_like inputs and scalar results --------------------------------------------------

@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_nested_list_input(case, direction, rng):
    x = draw(rng, (3, 5), case, np.float64)
    operand = _operand(case, direction, x)
    grad_output = draw_grad_output(rng, x.shape, np.float64)
    result = _call(case, direction, grad_output.tolist(), operand.tolist())
    assert isinstance(result, np.ndarray) and result.shape == (3, 5)
    assert_bitwise_equal(result, _call(case, direction, grad_output, operand))


@pytest.mark.parametrize("value", [0.75, -2, True], ids=lambda v: repr(v))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_python_scalar_gives_float64_scalar(case, direction, value):
    operand = _operand(case, direction, np.array([value], dtype=np.float64))[0]
    operand = float(operand) if direction == "backward-from-output" else value
    result = _call(case, direction, 1.5, operand)
    assert type(result) is np.float64, type(result)
    expected = _call(case, direction, np.array([1.5]), np.array([operand], dtype=np.float64))
    assert_bitwise_equal(np.asarray(result), expected[0])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float16
@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32, np.float64)))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_numpy_scalar_and_0d_array_give_scalar_of_dtype(case, direction, dtype, rng):
    x = draw(rng, (1,), case, dtype)
    operand = _operand(case, direction, x)
    grad_output = draw_grad_output(rng, (1,), dtype)
    expected = _call(case, direction, grad_output, operand)
    for kind, g, v in (("numpy scalar", grad_output[0], operand[0]),
                       ("0-d array", grad_output.reshape(()), operand.reshape(()))):
        result = _call(case, direction, g, v)
        assert isinstance(result, np.generic), f"{kind}: {type(result)}"
        assert result.dtype == dtype, f"{kind}: {result.dtype}"
        assert_bitwise_equal(np.asarray(result), expected[0], what=kind)


# ---- dtype rules ---------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("case, direction", _direction_params(CASES))
def test_float16_computed_in_float32(case, direction, rng):
    x = draw(rng, (4099,), case, np.float16)
    grad_output = draw_grad_output(rng, x.shape, np.float16)
    operand = _operand(case, direction, x)
    result = _call(case, direction, grad_output, operand)
    assert result.dtype == np.float16
    with np.errstate(over="ignore"):
        expected = np.asarray(_call(case, direction, grad_output.astype(np.float32),
                                    operand.astype(np.float32))).astype(np.float16)
    assert_bitwise_equal(result, expected, {"x": operand})
    out = np.empty_like(x)
    assert _call(case, direction, grad_output, operand, out=out) is out
    assert_bitwise_equal(out, expected, {"x": operand}, what="out=")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("layout", list(REPRESENTATIONS))
@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32, np.float64)))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_byte_swapped_and_unaligned_inputs(case, direction, dtype, layout, rng):
    # the same values in another memory representation give the same bits, in the native
    # dtype (the kernels must never read a '>f4' array's bytes as float32; a '>f2' input
    # comes out as float16, as NumPy's ufuncs give)
    x = draw(rng, (1031,), case, dtype)
    grad_output = draw_grad_output(rng, x.shape, dtype)
    operand = _operand(case, direction, x)
    expected = _call(case, direction, grad_output, operand)
    other = [REPRESENTATIONS[layout](a) for a in (grad_output, operand)]
    result = _call(case, direction, *other)
    assert result.dtype == dtype
    assert_bitwise_equal(result, expected, {"x": operand})


INTEGER_DTYPES = (np.bool_, np.int8, np.int64, np.uint8, np.uint64)


@pytest.mark.parametrize("dtype", dtype_params(INTEGER_DTYPES))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_bool_and_integers_computed_in_float64(case, direction, dtype, rng):
    if dtype == np.bool_:
        x = rng.integers(0, 2, 101).astype(bool)
    else:
        low = 0 if np.dtype(dtype).kind == "u" else -8
        x = rng.integers(low, 9, 101).astype(dtype)
    grad_output = rng.integers(1, 5, x.shape).astype(dtype)
    operand = x  # as x, or as output (e.g. what relu gives an integer x)
    result = _call(case, direction, grad_output, operand)
    assert result.dtype == np.float64
    expected = _call(case, direction, grad_output.astype(np.float64), operand.astype(np.float64))
    assert_bitwise_equal(result, expected, {"x": operand})


REJECTED = {
    "complex64": lambda: np.array([1 + 1j, 2], dtype=np.complex64),
    "complex128": lambda: np.array([1 + 1j, 2], dtype=np.complex128),
    "complex-scalar": lambda: 1 + 2j,
    "object": lambda: np.array([1.0, 2.0], dtype=object),
    "str": lambda: np.array(["1.0", "2.0"]),
    "bytes": lambda: np.array([b"1", b"2"]),
}


def _good_like(bad):
    return np.ones(np.shape(bad))


@pytest.mark.parametrize("kind", list(REJECTED))
@pytest.mark.parametrize("case", case_params(DEFAULT_CASES))
def test_rejected_dtype_forward_names_x(case, kind):
    with pytest.raises(TypeError, match=r"\bx\b"):
        case.forward(REJECTED[kind]())


@pytest.mark.parametrize("kind", list(REJECTED))
@pytest.mark.parametrize("case", case_params(DEFAULT_CASES))
def test_rejected_dtype_backward_names_grad_output(case, kind):
    bad = REJECTED[kind]()
    with pytest.raises(TypeError, match=r"\bgrad_output\b"):
        case.backward(bad, _good_like(bad))


@pytest.mark.parametrize("kind", list(REJECTED))
@pytest.mark.parametrize("case", case_params(DEFAULT_CASES))
def test_rejected_dtype_backward_names_x(case, kind):
    bad = REJECTED[kind]()
    with pytest.raises(TypeError, match=r"\bx\b") as info:
        case.backward(_good_like(bad), bad)
    assert "grad_output" not in str(info.value)


@pytest.mark.parametrize("kind", list(REJECTED))
@pytest.mark.parametrize("case", case_params(DEFAULT_OUTPUT_CASES))
def test_rejected_dtype_backward_names_output(case, kind):
    bad = REJECTED[kind]()
    with pytest.raises(TypeError, match=r"\boutput\b") as info:
        case.backward(_good_like(bad), output=bad)
    assert "grad_output" not in str(info.value)


# ---- out= ----------------------------------------------------------------------------------

def _bad_out(kind, shape, dtype):
    if kind == "wrong-shape":
        return np.empty(shape[:-1] + (shape[-1] + 1,), dtype=dtype), ValueError
    if kind == "transposed-shape":
        return np.empty(shape[::-1], dtype=dtype), ValueError
    if kind == "broadcastable-shape":
        return np.empty((1,) + shape, dtype=dtype), ValueError
    if kind == "wrong-dtype":
        other = np.float32 if np.dtype(dtype) == np.float64 else np.float64
        return np.empty(shape, dtype=other), TypeError
    if kind == "integer-dtype":
        return np.empty(shape, dtype=np.int64), TypeError
    if kind == "list":
        return np.empty(shape, dtype=dtype).tolist(), TypeError
    if kind == "read-only":
        out = np.empty(shape, dtype=dtype)
        out.flags.writeable = False
        return out, ValueError
    raise AssertionError(kind)


OUT_ERRORS = [pytest.param(kind, np.dtype(dtype), id=f"{np.dtype(dtype).name}-{kind}")
              for kind in ("wrong-shape", "transposed-shape", "broadcastable-shape",
                           "wrong-dtype", "integer-dtype", "list", "read-only")
              for dtype in (np.float32, np.float64)]
# float16 is computed in float32, but out= must still be float16
OUT_ERRORS += [pytest.param(kind, np.dtype(np.float16), id=f"float16-{kind}")
               for kind in ("wrong-dtype", "read-only")]


@pytest.mark.parametrize("kind, dtype", OUT_ERRORS)
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_out_errors(case, direction, dtype, kind, rng):
    x = draw(rng, (3, 4), case, dtype)
    operand = _operand(case, direction, x)
    grad_output = draw_grad_output(rng, x.shape, dtype)
    out, error = _bad_out(kind, x.shape, dtype)
    with pytest.raises(error):
        _call(case, direction, grad_output, operand, out=out)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32, np.float64)))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_out_is_returned(case, direction, dtype, rng):
    for shape in ((), (7,), (70001,)):
        x = draw(rng, shape, case, dtype)
        operand = _operand(case, direction, x)
        grad_output = draw_grad_output(rng, shape, dtype)
        expected = np.asarray(_call(case, direction, grad_output, operand))
        out = np.empty(shape, dtype=dtype)
        result = _call(case, direction, grad_output, operand, out=out)
        assert result is out, f"shape {shape}"
        assert_bitwise_equal(out, expected, {"x": operand}, what=f"shape {shape}")


# Overlap between out and an input (other than the very same view): the result must be as
# if computed from a copy. Long arrays, so that two threads share the work.
OVERLAPS = {
    # name: (input view, out view) of one buffer of N + 1 elements
    "out-shifted-right": (lambda a: a[:-1], lambda a: a[1:]),
    "out-shifted-left": (lambda a: a[1:], lambda a: a[:-1]),
    "out-reversed": (lambda a: a[:-1], lambda a: a[-2::-1]),
    "out-every-other": (lambda a: a[:-1:2], lambda a: a[1::2]),
}


def _overlap_params():
    params = []
    for case, direction in [p.values for p in _direction_params(DEFAULT_CASES)]:
        for overlap in OVERLAPS:
            for operand in (["x"] if direction == "forward" else ["x", "grad_output"]):
                params.append(pytest.param(case, direction, overlap, operand,
                                           id=f"{case.id}-{direction}-{overlap}-{operand}"))
    return params


@pytest.mark.parametrize("case, direction, overlap, operand", _overlap_params())
def test_out_overlapping_an_input(case, direction, overlap, operand, rng):
    n = 100_001
    x = draw(rng, (n + 1,), case, np.float64)
    x[:-1] = _operand(case, direction, x[:-1])
    grad_output = draw_grad_output(rng, (n + 1,), np.float64)
    view_in, view_out = OVERLAPS[overlap]
    # the overlapping operand and out live in one buffer; the other operand is separate
    buffer = (x if operand == "x" else grad_output).copy()
    inputs = {"x": view_in(x).copy(), "grad_output": view_in(grad_output).copy()}
    expected = _call(case, direction, inputs["grad_output"], inputs["x"])
    inputs[operand] = view_in(buffer)
    out = view_out(buffer)
    result = _call(case, direction, inputs["grad_output"], inputs["x"], out=out)
    assert result is out
    assert_bitwise_equal(out, expected, what=f"out overlapping {operand}")


# An out whose elements repeat (a view made with as_strided), in place: every alias of an
# element holds the same input, and gets f of it (as NumPy's ufuncs give), not f of an
# alias already written. The same bits as from a copy, in the compiled path and (float16,
# computed in float32) in the Python layer's.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("dtype", dtype_params((np.float32, np.float64, np.float16)))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_in_place_on_an_out_whose_elements_repeat(case, direction, dtype, rng):
    from numpy.lib.stride_tricks import as_strided
    values = draw(rng, (3000,), case, dtype)
    values = _operand(case, direction, values)
    size = values.itemsize
    # rows of 8 elements, each starting 5 elements after the previous one: 3 shared
    operand = "x" if direction == "forward" else "grad_output"
    buffer = values.copy() if operand == "x" else draw_grad_output(rng, (3000,), dtype)
    other = values.copy()
    repeated = as_strided(buffer, shape=(500, 8), strides=(5 * size, size))
    x = repeated if operand == "x" else as_strided(other, shape=(500, 8),
                                                   strides=(5 * size, size))
    expected = _call(case, direction, repeated.copy(), x.copy())
    result = _call(case, direction, repeated, x, out=repeated)
    assert result is repeated
    assert_bitwise_equal(repeated, expected, what=f"in place on {operand}")


def test_no_repeated_elements():
    from numpy.lib.stride_tricks import as_strided
    from actfast._elementwise import no_repeated_elements
    a = np.zeros((6, 10, 4))
    for view in (a, a.T, a[::2, 1:, ::-1], a[:, 3], np.asfortranarray(a)[1:], a[:0]):
        assert no_repeated_elements(view)
    for shape, strides in (((3, 4), (8, 8)), ((5, 3), (0, 8)), ((4, 4), (24, 16))):
        assert not no_repeated_elements(as_strided(a, shape, strides))
    assert no_repeated_elements(as_strided(a, (4, 3), (24, 8)))  # rows one span apart


# ---- inputs never modified -----------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32, np.int32)))
@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_inputs_not_modified(case, direction, dtype, rng):
    if np.dtype(dtype).kind == "i":
        x = rng.integers(-20, 21, 70001).astype(dtype)
    else:
        x = draw(rng, (70001,), case, dtype)
    operand = _operand(case, direction, x)
    if np.dtype(dtype).kind == "i" and direction == "backward-from-output":
        operand = x
    grad_output = draw_grad_output(rng, x.shape, np.float64).astype(dtype)
    saved = {"grad_output": bits(grad_output).copy(), "x": bits(operand).copy()}
    for variant in ("plain", "strided"):
        g, v = (grad_output, operand) if variant == "plain" else (grad_output[::-3],
                                                                   operand[::-3])
        _call(case, direction, g, v)
        assert_bitwise_equal(bits(grad_output), saved["grad_output"], what="grad_output")
        assert_bitwise_equal(bits(operand), saved["x"], what="x")


# ---- parameters ----------------------------------------------------------------------------

def _caller(case, direction):
    """How an error of this call names it: "gelu()" or "gelu.backward()"."""
    return f"{case.entry.name}()" if direction == "forward" else f"{case.entry.name}.backward()"


@pytest.mark.parametrize("case, direction", _direction_params(DEFAULT_CASES))
def test_unknown_parameter(case, direction):
    x = np.array([0.5, -1.0])
    with pytest.raises(TypeError) as error:
        _call(case, direction, x, x, bogus_parameter=1.0)
    assert str(error.value).startswith(_caller(case, direction)), str(error.value)
    assert "bogus_parameter" in str(error.value)


@pytest.mark.parametrize("case", case_params(DEFAULT_CASES))
def test_parameter_passed_positionally(case):
    x = np.array([0.5, -1.0])
    values = list(case.params.values()) or [0.5]
    with pytest.raises(TypeError):
        case.function(x, *values)


def _missing_required_params():
    return [pytest.param(entry, p.name, id=f"{entry.name}-{p.name}")
            for entry in ENTRIES for p in entry.params if p.default is REQUIRED]


@pytest.mark.parametrize("entry, name", _missing_required_params())
def test_missing_required_parameter(entry, name):
    params = {p.name: (1.0 if p.default is REQUIRED else p.default) for p in entry.params}
    del params[name]
    function = getattr(af, entry.name)
    with pytest.raises(TypeError):
        function(np.array([0.5]), **params)
    with pytest.raises(TypeError):
        function.backward(np.array([1.0]), np.array([0.5]), **params)


# Invalid values for every parameter: NaN (ValueError), a string, None, a list and a complex
# number for a real parameter (TypeError); a string outside the choices (ValueError) or a
# non-string for a string option (TypeError). Plus the values that the contract or PyTorch
# rule out for particular parameters.
KNOWN_INVALID = {
    ("leaky_relu", "negative_slope"): [np.inf, -np.inf],
    ("hardtanh", "min_val"): [5.0],           # min_val > max_val (default 1)
    ("hardtanh", "max_val"): [-5.0],          # max_val < min_val (default -1)
    ("celu", "alpha"): [0.0],                 # x / alpha
    ("softplus", "beta"): [0.0, 5e-324],      # / beta (1/beta overflows below 5.6e-309)
    ("softshrink", "lambd"): [-0.5],          # PyTorch requires lambd >= 0
    ("hardsigmoid", "slope"): [0.0, 5e-324],  # 1/slope overflows
    ("hardsigmoid", "offset"): [1.7e308],     # offset / slope (slope 1/6) overflows
    ("gelu", "approximate"): ["cubic", "Tanh", ""],
}


def _invalid_params():
    params = []
    for entry in ENTRIES:
        for p in entry.params:
            if p.choices:
                cases = [("not-a-choice", "cubic", ValueError), ("int", 1, TypeError),
                         ("none", None, TypeError)]
            else:
                cases = [("nan", float("nan"), ValueError), ("numpy-nan", np.float32("nan"),
                                                             ValueError),
                         ("int-beyond-double", 10 ** 400, ValueError),   # (was OverflowError)
                         ("str", "0.5", TypeError), ("none", None, TypeError),
                         ("list", [0.5], TypeError), ("complex", 1j, TypeError)]
            for value in KNOWN_INVALID.get((entry.name, p.name), []):
                cases.append((f"value={value!r}", value,
                              TypeError if p.choices and not isinstance(value, str)
                              else ValueError))
            for label, value, error in cases:
                params.append(pytest.param(entry, p.name, value, error,
                                           id=f"{entry.name}-{p.name}-{label}"))
    return params


@pytest.mark.parametrize("entry, name, value, error", _invalid_params())
def test_invalid_parameter_value(entry, name, value, error):
    case = Case(entry, entry.examples[0])
    params = {**case.params, name: value}
    function = getattr(af, entry.name)
    x = np.array([0.5, -1.0])
    # the message names the call and the parameter
    with pytest.raises(error, match=rf"^{re.escape(entry.name)}\(\): .*\b{name}\b"):
        function(x, **params)
    backward = rf"^{re.escape(entry.name)}\.backward\(\): .*\b{name}\b"
    with pytest.raises(error, match=backward):
        function.backward(x, x, **params)
    if case.allows_output:
        with pytest.raises(error, match=backward):
            function.backward(x, output=x, **params)


# Parameters the float32 kernels use as float32 numbers (slopes, scales): for float32 and
# float16 input a value beyond float32's normal range (whose inf gave -inf and inf * 0 = NaN,
# or whose subnormal rounding cost hundreds of ulp) is refused naming it, as PyTorch refuses
# the values beyond FLT_MAX; float64 input computes with it.
BIG = float(np.finfo(np.float32).max)
FLOAT32_REFUSED = [
    ("leaky_relu", {"negative_slope": 1e39}, "negative_slope"),
    ("leaky_relu", {"negative_slope": -1e-40}, "negative_slope"),
    ("elu", {"alpha": 2 * BIG}, "alpha"),
    ("elu", {"alpha": 1e-39}, "alpha"),
    ("celu", {"alpha": 1e39}, "alpha"),
    ("softplus", {"beta": 1e-40}, "beta"),
    ("softplus", {"beta": -1e39}, "beta"),
    ("hardsigmoid", {"slope": 1e-46}, "slope"),
    ("hardsigmoid", {"offset": 1e39}, "offset / slope"),
    ("rrelu", {"lower": 1e39, "upper": 2e39}, "(lower + upper) / 2"),
]
FLOAT32_ACCEPTED = [   # the range's ends, 0, and celu's alpha < 0 (computed in double)
    ("leaky_relu", {"negative_slope": BIG}), ("leaky_relu", {"negative_slope": -0.0}),
    ("leaky_relu", {"negative_slope": float(np.finfo(np.float32).tiny)}),
    ("elu", {"alpha": 0.0}), ("celu", {"alpha": -1e39}), ("softplus", {"beta": -BIG}),
    ("hardsigmoid", {"slope": 1.0, "offset": BIG}),
]


def _float32_calls(name, params, x):
    function = getattr(af, name)
    yield "forward", lambda: function(x, **params)
    yield "backward", lambda: function.backward(x, x, **params)
    entry = {e.name: e for e in ENTRIES}.get(name)   # (rrelu: not in the registry)
    if entry is not None and entry.allows_output({**{p.name: p.default for p in entry.params},
                                                  **params}):
        yield "backward-from-output", lambda: function.backward(x, output=x, **params)


@pytest.mark.parametrize("dtype", dtype_params((np.float16, np.float32)))
@pytest.mark.parametrize("name, params, named", FLOAT32_REFUSED,
                         ids=[f"{n}-{'-'.join(f'{k}={v:g}' for k, v in p.items())}"
                              for n, p, _ in FLOAT32_REFUSED])
def test_parameter_no_float32_holds_is_refused_for_float32_input(name, params, named, dtype,
                                                                 rng):
    x = (rng.standard_normal(100) * 3).astype(dtype)
    for operand in (x, x[0]):   # an array and a NumPy scalar
        for direction, call in _float32_calls(name, params, operand):
            caller = f"{name}()" if direction == "forward" else f"{name}.backward()"
            with pytest.raises(ValueError, match=re.escape(named)) as error:
                call()
            assert str(error.value).startswith(caller), str(error.value)
    for direction, call in _float32_calls(name, params, x.astype(np.float64)):
        assert np.asarray(call()).dtype == np.float64, direction


@pytest.mark.parametrize("name, params", FLOAT32_ACCEPTED,
                         ids=[f"{n}-{'-'.join(f'{k}={v:g}' for k, v in p.items())}"
                              for n, p in FLOAT32_ACCEPTED])
def test_parameter_at_float32_range_ends_is_taken(name, params, rng):
    x = np.concatenate([rng.standard_normal(100) * 3, [0.0, -0.0, 1e-30, -1e-30]])
    narrow = dict(_float32_calls(name, params, x.astype(np.float32)))
    for direction, call in _float32_calls(name, params, x):
        with np.errstate(over="ignore"):
            assert_ulp_close(narrow[direction](), call(), np.float32, 4, {"x": x}, what=direction)


# ---- backward's arguments ------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params(DEFAULT_CASES))
def test_backward_needs_exactly_one_of_x_and_output(case):
    x = np.array([0.5, -1.0, 2.0])
    with pytest.raises(TypeError):
        case.backward(x)
    with pytest.raises(TypeError):
        case.backward(x, x, output=x)


NO_OUTPUT_ENTRIES = [entry for entry in ENTRIES if not entry.backward_from_output]


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in NO_OUTPUT_ENTRIES])
def test_backward_from_output_refused_where_not_a_function_of_output(entry):
    # gelu, silu, ...: the derivative is not a function of the output
    for params in entry.examples:
        with pytest.raises(TypeError):
            getattr(af, entry.name).backward(np.ones(3), output=np.ones(3), **params)


def _output_refused_params():
    params = [pytest.param(case, id=case.id) for case in CASES
              if case.entry.backward_from_output and not case.allows_output]
    return params


@pytest.mark.parametrize("case", _output_refused_params())
def test_backward_from_output_refused_for_these_parameters(case):
    # e.g. leaky_relu with negative_slope < 0: y > 0 no longer tells x > 0
    with pytest.raises(ValueError):
        case.backward(np.ones(3), output=np.ones(3))


@pytest.mark.parametrize("slope", [-0.5, -1e-3, -2.0])
def test_leaky_relu_output_with_negative_slope(slope):
    with pytest.raises(ValueError):
        af.leaky_relu.backward(np.ones(3), output=np.ones(3), negative_slope=slope)


SHAPE_MISMATCHES = {
    "transposed": ((3, 4), (4, 3)),
    "broadcastable": ((1, 4), (3, 4)),
    "scalar-grad": ((), (3,)),
    "scalar-x": ((3,), ()),
    "empty": ((0,), (1,)),
}


@pytest.mark.parametrize("mismatch", list(SHAPE_MISMATCHES))
@pytest.mark.parametrize("case, direction", [p for p in _direction_params(DEFAULT_CASES)
                                             if p.values[1] != "forward"])
def test_grad_output_and_x_shapes_must_match(case, direction, mismatch, rng):
    g_shape, x_shape = SHAPE_MISMATCHES[mismatch]
    grad_output = draw_grad_output(rng, g_shape, np.float64)
    x = np.full(x_shape, 0.5)
    for dtype in (np.float32, np.float64):
        with pytest.raises(ValueError):
            _call(case, direction, grad_output.astype(dtype), x.astype(dtype))


# ---- threads -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1, -8])
def test_set_num_threads_rejects_less_than_one(n):
    saved = af.get_num_threads()
    with pytest.raises(ValueError):
        af.set_num_threads(n)
    assert af.get_num_threads() == saved


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_num_threads_round_trip(n):
    saved = af.get_num_threads()
    try:
        assert af.set_num_threads(n) is None
        assert af.get_num_threads() == n
        x = np.linspace(-5, 5, 100_003)
        with single_thread():
            expected = af.gelu(x)
        assert_bitwise_equal(af.gelu(x), expected)  # and any count runs
    finally:
        af.set_num_threads(saved)
    assert af.get_num_threads() == saved


def _run_python(code, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(af.__file__)))
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("ACTFAST_NUM_THREADS", "OMP_NUM_THREADS")}
    environment["PYTHONPATH"] = root + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


ENVIRONMENTS = {
    "ACTFAST_NUM_THREADS=3": ({"ACTFAST_NUM_THREADS": "3"}, "3"),
    "ACTFAST_NUM_THREADS=1": ({"ACTFAST_NUM_THREADS": "1"}, "1"),
    "ACTFAST_NUM_THREADS=3-over-OMP_NUM_THREADS=1": (
        {"ACTFAST_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, "3"),
}


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_actfast_num_threads_environment(name):
    env, expected = ENVIRONMENTS[name]
    code = ("import numpy as np, actfast as af; "
            "af.gelu(np.linspace(-3, 3, 100_003)); print(af.get_num_threads())")
    assert _run_python(code, **env) == expected


def test_openmp_enabled_is_bool():
    assert type(af.openmp_enabled()) is bool


CONCURRENT_CASES = [pytest.param(entry, id=entry.name) for entry in ENTRIES]


@pytest.mark.parametrize("entry", CONCURRENT_CASES)
def test_concurrent_calls_match_serial(entry, rng):
    # 4 Python threads call forward and backward at once, each with its own arrays (and,
    # for entries with several examples, its own parameters): the results must be the serial
    # ones, bit for bit.
    cases = [Case(entry, entry.examples[k % len(entry.examples)]) for k in range(4)]
    n = 200_003
    jobs = []
    for case in cases:
        x = draw(rng, (n,), case, np.float32)
        g = draw_grad_output(rng, (n,), np.float32)
        jobs.append((case, x, g, case.forward(x), case.backward(g, x)))
    results = [None] * 4
    errors = []
    barrier = threading.Barrier(4)

    def work(k):
        try:
            case, x, g, _, _ = jobs[k]
            barrier.wait()
            out = []
            for _ in range(3):
                out.append(case.forward(x))
                out.append(case.backward(g, x))
            results[k] = out
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    saved = af.get_num_threads()
    af.set_num_threads(2)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        af.set_num_threads(saved)
    assert not errors, errors
    for k, (case, x, g, forward, backward) in enumerate(jobs):
        for i, result in enumerate(results[k]):
            assert_bitwise_equal(result, forward if i % 2 == 0 else backward,
                                 {"x": x, "grad_output": g},
                                 what=f"thread {k} ({case.id}) call {i}")


@pytest.mark.skipif(not af.openmp_enabled() or not hasattr(os, "fork"),
                    reason="needs OpenMP and fork()")
def test_forked_workers_run_on_one_thread(rng):
    # a process that ran parallel regions forks workers (multiprocessing's 'fork'): each runs
    # every function, forward and backward, on one thread with the parent's bits, where
    # GNU OpenMP's pool would make it wait forever; set_num_threads(2) there warns and keeps 1
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forked_workers.py")
    root = os.path.dirname(os.path.dirname(os.path.abspath(af.__file__)))
    environment = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, script, str(rng.integers(1 << 31))], env=environment,
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(done.stdout.split()[-1]) >= 2 * 32, done.stdout   # results compared


def _gil_case():
    names = [case.name for case in DEFAULT_CASES]
    return DEFAULT_CASES[names.index("gelu") if "gelu" in names else 0]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_gil_released_while_kernels_run(direction, rng):
    case = _gil_case()

    def call_of_size(n):
        x = rng.uniform(-5, 5, n)
        out = np.empty_like(x)
        return lambda: _call(case, direction, x, x, out=out)

    with single_thread():
        assert_other_threads_run(call_of_size, 1 << 21, 1 << 25)


# ---- the public objects and their docstrings -----------------------------------------------

@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in ENTRIES])
def test_every_entry_is_public(entry):
    function = getattr(af, entry.name)
    assert entry.name in af.__all__
    assert function.__name__ == entry.name
    assert callable(function) and callable(function.backward)


def _normalise(text):
    return re.sub(r"\s+", " ", text)


PUBLIC_FUNCTIONS = [pytest.param(name, id=name) for name in af.__all__
                    if hasattr(getattr(af, name), "backward")]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_pickled_and_copied_as_itself(name, protocol):
    # as NumPy's ufuncs: a reference to actfast.<name> (multiprocessing sends it to workers)
    function = getattr(af, name)
    assert pickle.loads(pickle.dumps(function, protocol)) is function
    assert copy.copy(function) is function and copy.deepcopy(function) is function


def test_an_activation_of_ones_own_is_not_taken_for_the_packages():
    # pickled by name only when it is actfast's own object: a copy of an Activation built
    # from another Entry keeps its behaviour (it became af.leaky_relu by name)
    import dataclasses
    from actfast.catalogue import Param
    entry = {e.name: e for e in ENTRIES}["leaky_relu"]
    custom = af.Activation(dataclasses.replace(entry, params=(Param("negative_slope", 0.2),)))
    for copied in (copy.copy(custom), copy.deepcopy(custom)):
        assert copied is not af.leaky_relu
        assert copied(np.array([-1.0]))[0] == -0.2
        assert copied.backward(np.array([1.0]), np.array([-1.0]))[0] == 0.2


def test_every_public_function_is_pickled_by_name():
    names = {param.values[0] for param in PUBLIC_FUNCTIONS}
    assert names == set(af.__all__) - {"Activation", "get_num_threads", "openmp_enabled",
                                       "set_num_threads"}


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_signature_errors_name_the_function(name):
    # the interpreter's own errors for a missing or an extra positional argument name the
    # function, as a NumPy ufunc's do ("gelu() missing ...", not "Activation.__call__() ...")
    function = getattr(af, name)
    x = np.linspace(-2.0, 2.0, 8)
    for call, prefix in ((lambda: function(), f"{name}()"),
                         (lambda: function(x, 1, 2, 3, 4, 5), f"{name}()"),
                         (lambda: function.backward(), f"{name}.backward()")):
        with pytest.raises(TypeError) as error:
            call()
        assert str(error.value).startswith(prefix), str(error.value)


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_public_functions_are_python_functions(name):
    # Python functions, called through vectorcall (an instance of a Python class is called
    # through its type's slot, with its arguments packed into a tuple and a dict first:
    # 0.2-0.5 us more per call with keywords), named as the package's: actfast.<name> and
    # actfast.<name>.backward
    function = getattr(af, name)
    for f, qualname in ((function, name), (function.backward, f"{name}.backward")):
        assert type(f) is types.FunctionType
        assert (f.__module__, f.__qualname__) == ("actfast", qualname)
        assert (f.__doc__ or "").strip()


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in ENTRIES])
def test_docstring_states_formula_and_derivative(entry):
    function = getattr(af, entry.name)
    doc = _normalise(function.__doc__ or "")
    assert doc.strip(), "no docstring"
    assert _normalise(entry.formula) in doc, "the formula is missing"
    assert _normalise(entry.derivative) in doc, "the derivative is missing"
    for p in entry.params:
        assert p.name in doc, f"parameter {p.name} is not documented"
    assert (function.backward.__doc__ or "").strip(), "backward has no docstring"


def test_parameter_cache_keeps_the_sign_of_zero():
    # validated parameter sets are remembered; 0.0 == -0.0, but value=-0.0 writes -0.0
    x = np.array([-1.0, 2.0])
    plus = af.threshold(x, threshold=0.0, value=0.0)
    minus = af.threshold(x, threshold=0.0, value=-0.0)
    plus_again = af.threshold(x, threshold=0.0, value=0.0)
    assert not np.signbit(plus[0]) and np.signbit(minus[0]) and not np.signbit(plus_again[0])


@pytest.mark.parametrize("value, lookalike", [(1.0, True), (0.0, False), (1.0, 1 + 0j)],
                         ids=["1.0-True", "0.0-False", "1.0-complex"])
def test_parameter_cache_does_not_accept_an_equal_invalid_value(value, lookalike):
    # True == 1.0 and 1 + 0j == 1.0: a remembered 1.0 must not let them through
    x = np.array([-1.0, 2.0])
    af.leaky_relu(x, negative_slope=value)
    with pytest.raises(TypeError, match="negative_slope"):
        af.leaky_relu(x, negative_slope=lookalike)


@pytest.mark.parametrize("value", [[0.1], np.array([0.1]), {0.1}, np.array(True),
                                   np.array(1 + 0j)],
                         ids=["list", "array", "set", "0d-bool", "0d-complex"])
def test_unhashable_parameter_error_names_the_argument(value):
    with pytest.raises(TypeError, match="negative_slope"):
        af.leaky_relu(np.ones(3), negative_slope=value)


@pytest.mark.parametrize("value", [np.array(0.1), np.array(0.1, np.float32), np.array(2)],
                         ids=["float64", "float32", "int"])
def test_zero_d_array_parameter_is_its_element(value, rng):
    # as in NumPy and PyTorch (a 0-d tensor is a Scalar), and as the special functions
    x = rng.normal(size=40)
    np.testing.assert_array_equal(af.leaky_relu(x, negative_slope=value),
                                  af.leaky_relu(x, negative_slope=value.item()))
    np.testing.assert_array_equal(af.threshold(x, threshold=value, value=value),
                                  af.threshold(x, threshold=value.item(), value=value.item()))
