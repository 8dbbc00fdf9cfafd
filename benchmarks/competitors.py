"""The libraries actfast is measured against, each optional.

Every library maps function names to builders; a builder takes the case's arrays (``a.x``,
``a.g`` the grad_output, ``a.y`` the forward's output, ``a.out`` the preallocated result)
and the function's parameters (all of them, defaults filled in, in the registry's order)
and returns a callable of no arguments to time. A library that is not installed, or has no
implementation of a function, is simply not measured: the registry grows, these tables
don't have to.
"""
from functools import partial
from types import SimpleNamespace

import numpy as np

import actfast

try:
    from actfast import reference
except ImportError:
    reference = None
try:
    import scipy
    from scipy import special
except ImportError:
    scipy = None
try:
    import numexpr
except ImportError:
    numexpr = None
try:
    import torch
except ImportError:
    torch = None

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def versions():
    """{library: version} of every library in the comparison that is installed."""
    found = {"numpy": np.__version__, "actfast": actfast.__version__}
    for module in (scipy, numexpr, torch):
        if module is not None:
            found[module.__name__] = module.__version__
    return found


def set_num_threads(n):
    """Give every threaded library the same number of threads."""
    actfast.set_num_threads(n)
    if numexpr is not None:
        numexpr.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


# ---- actfast ---------------------------------------------------------------------------------

def actfast_call(direction, name, a, params, from_output):
    """actfast into the preallocated a.out; the backward from the output when `from_output`
    (as PyTorch's autograd does for sigmoid and tanh), else from x."""
    f = actfast.FUNCTIONS[name]
    if direction == "forward":
        return partial(f, a.x, out=a.out, **params)
    if from_output:
        return partial(f.backward, a.g, output=a.y, out=a.out, **params)
    return partial(f.backward, a.g, a.x, out=a.out, **params)


# ---- the NumPy reference: the baseline a user without actfast would write -------------------

def _reference(direction, name, a, p):
    if reference is None or not hasattr(reference, name):
        return None
    if direction == "forward":
        return partial(getattr(reference, name), a.x, **p)
    grad = getattr(reference, name + "_grad")
    return lambda: a.g * grad(a.x, **p)


# ---- SciPy: its special functions, chained with ufuncs into the preallocated output -----------

def _scipy_gelu(x, out, approximate):
    special.ndtr(x, out=out)  # Phi(x)
    return np.multiply(out, x, out=out)


def _scipy_silu(x, out):
    special.expit(x, out=out)
    return np.multiply(out, x, out=out)


def _scipy_gelu_backward(g, x, out, approximate):  # g * (Phi(x) + x phi(x))
    phi = np.exp(-0.5 * x * x) * (1 / np.sqrt(2 * np.pi))
    np.multiply(phi, x, out=phi)
    np.add(special.ndtr(x), phi, out=out)
    return np.multiply(out, g, out=out)


def _scipy_log_sigmoid_backward(g, x, out):  # g * sigmoid(-x)
    np.negative(x, out=out)
    special.expit(out, out=out)
    return np.multiply(out, g, out=out)


SCIPY_FORWARD = {
    "sigmoid": lambda a, p: partial(special.expit, a.x, out=a.out),
    "log_sigmoid": lambda a, p: partial(special.log_expit, a.x, out=a.out),
    "silu": lambda a, p: partial(_scipy_silu, a.x, a.out),
    # SciPy has no tanh form: only the exact GELU
    "gelu": lambda a, p: partial(_scipy_gelu, a.x, a.out, **p) if p["approximate"] == "none"
    else None,
}
SCIPY_BACKWARD = {
    "log_sigmoid": lambda a, p: partial(_scipy_log_sigmoid_backward, a.g, a.x, a.out),
    "gelu": lambda a, p: partial(_scipy_gelu_backward, a.g, a.x, a.out, **p)
    if p["approximate"] == "none" else None,
}


# ---- numexpr: one expression per function, over x, g (grad_output), y (output), parameters ---
# Integer literals only: a float literal would make numexpr compute float32 input in float64.

NUMEXPR_FORWARD = {
    "relu": "where(x > 0, x, 0)",
    "leaky_relu": "where(x > 0, x, negative_slope * x)",
    "sigmoid": "1 / (1 + exp(-x))",
    "tanh": "tanh(x)",
    "silu": "x / (1 + exp(-x))",
    "relu6": "where(x < 0, 0, where(x > 6, 6, x))",
    "hardtanh": "where(x < min_val, min_val, where(x > max_val, max_val, x))",
    "elu": "where(x > 0, x, alpha * expm1(x))",
    "softplus": "where(beta * x > threshold, x, log1p(exp(beta * x)) / beta)",
    "log_sigmoid": "where(x < 0, x - log1p(exp(x)), -log1p(exp(-x)))",
    "softsign": "x / (1 + abs(x))",
    "mish": "x * tanh(log1p(exp(x)))",
    "tanhshrink": "x - tanh(x)",
    "threshold": "where(x > threshold, x, value)",
}
NUMEXPR_BACKWARD = {
    "relu": "where(y > 0, g, 0)",
    "leaky_relu": "where(x > 0, g, negative_slope * g)",
    "sigmoid": "g * y * (1 - y)",
    "tanh": "g * (1 - y * y)",
    "silu": "g / (1 + exp(-x)) * (1 + x - x / (1 + exp(-x)))",
    "elu": "where(x > 0, g, g * alpha * exp(x))",
    "softplus": "where(beta * x > threshold, g, g / (1 + exp(-beta * x)))",
    "softsign": "g / ((1 + abs(x)) * (1 + abs(x)))",
    "tanhshrink": "g * tanh(x) * tanh(x)",
    "threshold": "where(x > threshold, g, 0)",
}


def _numexpr(direction, name, a, p):
    table = NUMEXPR_FORWARD if direction == "forward" else NUMEXPR_BACKWARD
    if numexpr is None or name not in table:
        return None
    scalar = a.x.dtype.type  # parameters in the input's dtype, so float32 stays float32
    names = {"x": a.x, "g": a.g, "y": a.y, **{k: scalar(v) for k, v in p.items()}}
    return partial(numexpr.evaluate, table[name], local_dict=names, out=a.out)


# ---- PyTorch: the ATen out= kernels, writing into the same preallocated memory ---------------

def _torch_tables():
    aten = torch.ops.aten
    forward = {
        "relu": lambda t, p: partial(aten.relu.out, t.x, out=t.out),
        "leaky_relu": lambda t, p: partial(aten.leaky_relu.out, t.x, p["negative_slope"],
                                           out=t.out),
        "sigmoid": lambda t, p: partial(aten.sigmoid.out, t.x, out=t.out),
        "tanh": lambda t, p: partial(aten.tanh.out, t.x, out=t.out),
        "gelu": lambda t, p: partial(aten.gelu.out, t.x, approximate=p["approximate"],
                                     out=t.out),
        "silu": lambda t, p: partial(aten.silu.out, t.x, out=t.out),
        "relu6": lambda t, p: partial(aten.hardtanh.out, t.x, 0.0, 6.0, out=t.out),
        "hardtanh": lambda t, p: partial(aten.hardtanh.out, t.x, p["min_val"], p["max_val"],
                                         out=t.out),
        "elu": lambda t, p: partial(aten.elu.out, t.x, p["alpha"], out=t.out),
        "celu": lambda t, p: partial(aten.celu.out, t.x, p["alpha"], out=t.out),
        "selu": lambda t, p: partial(aten.elu.out, t.x, SELU_ALPHA, SELU_SCALE, out=t.out),
        "softplus": lambda t, p: partial(aten.softplus.out, t.x, p["beta"], p["threshold"],
                                         out=t.out),
        "log_sigmoid": lambda t, p: partial(aten.log_sigmoid.out, t.x, out=t.out),
        "mish": lambda t, p: partial(aten.mish.out, t.x, out=t.out),
        # torch's hardsigmoid has no parameters: only actfast's defaults are the same function
        "hardsigmoid": lambda t, p: partial(aten.hardsigmoid.out, t.x, out=t.out)
        if (p["slope"], p["offset"]) == (1 / 6, 0.5) else None,
        "hardswish": lambda t, p: partial(aten.hardswish.out, t.x, out=t.out),
        "hardshrink": lambda t, p: partial(aten.hardshrink.out, t.x, p["lambd"], out=t.out),
        "softshrink": lambda t, p: partial(aten.softshrink.out, t.x, p["lambd"], out=t.out),
        "threshold": lambda t, p: partial(aten.threshold.out, t.x, p["threshold"], p["value"],
                                          out=t.out),
    }
    backward = {
        "relu": lambda t, p: partial(aten.threshold_backward.grad_input, t.g, t.y, 0,
                                     grad_input=t.out),
        "leaky_relu": lambda t, p: partial(aten.leaky_relu_backward.grad_input, t.g, t.x,
                                           p["negative_slope"], False, grad_input=t.out),
        "sigmoid": lambda t, p: partial(aten.sigmoid_backward.grad_input, t.g, t.y,
                                        grad_input=t.out),
        "tanh": lambda t, p: partial(aten.tanh_backward.grad_input, t.g, t.y, grad_input=t.out),
        "gelu": lambda t, p: partial(aten.gelu_backward.grad_input, t.g, t.x,
                                     approximate=p["approximate"], grad_input=t.out),
        "silu": lambda t, p: partial(aten.silu_backward.grad_input, t.g, t.x, grad_input=t.out),
        "relu6": lambda t, p: partial(aten.hardtanh_backward.grad_input, t.g, t.x, 0.0, 6.0,
                                      grad_input=t.out),
        "hardtanh": lambda t, p: partial(aten.hardtanh_backward.grad_input, t.g, t.x,
                                         p["min_val"], p["max_val"], grad_input=t.out),
        "elu": lambda t, p: partial(aten.elu_backward.grad_input, t.g, p["alpha"], 1, 1, False,
                                    t.x, grad_input=t.out),
        "celu": lambda t, p: partial(aten.elu_backward.grad_input, t.g, p["alpha"], 1,
                                     1 / p["alpha"], False, t.x, grad_input=t.out),
        "selu": lambda t, p: partial(aten.elu_backward.grad_input, t.g, SELU_ALPHA, SELU_SCALE,
                                     1, False, t.x, grad_input=t.out),
        "softplus": lambda t, p: partial(aten.softplus_backward.grad_input, t.g, t.x,
                                         p["beta"], p["threshold"], grad_input=t.out),
        "log_sigmoid": lambda t, p: partial(aten.log_sigmoid_backward.grad_input, t.g, t.x,
                                            aten.log_sigmoid_forward(t.x)[1], grad_input=t.out),
        "hardsigmoid": lambda t, p: partial(aten.hardsigmoid_backward.grad_input, t.g, t.x,
                                            grad_input=t.out)
        if (p["slope"], p["offset"]) == (1 / 6, 0.5) else None,
        "hardswish": lambda t, p: partial(aten.hardswish_backward.out, t.g, t.x, out=t.out),
        "hardshrink": lambda t, p: partial(aten.hardshrink_backward.grad_input, t.g, t.x,
                                           p["lambd"], grad_input=t.out),
        "softshrink": lambda t, p: partial(aten.softshrink_backward.grad_input, t.g, t.x,
                                           p["lambd"], grad_input=t.out),
        "threshold": lambda t, p: partial(aten.threshold_backward.grad_input, t.g, t.x,
                                          p["threshold"], grad_input=t.out),
    }
    return forward, backward


TORCH_FORWARD, TORCH_BACKWARD = _torch_tables() if torch is not None else ({}, {})


def _tensors(a):
    """The case's arrays as tensors sharing their memory."""
    return SimpleNamespace(**{k: torch.from_numpy(v) for k, v in vars(a).items()})


def _torch(direction, name, a, p):
    table = TORCH_FORWARD if direction == "forward" else TORCH_BACKWARD
    if torch is None or name not in table:
        return None
    return table[name](_tensors(a), p)


def _scipy(direction, name, a, p):
    table = SCIPY_FORWARD if direction == "forward" else SCIPY_BACKWARD
    if scipy is None or name not in table:
        return None
    return table[name](a, p)


LIBRARIES = {"reference": _reference, "scipy": _scipy, "numexpr": _numexpr, "torch": _torch}


def competitor_calls(direction, name, a, params, libraries=tuple(LIBRARIES)):
    """{library: callable} for each of `libraries` that is installed and implements `name`."""
    calls = {library: LIBRARIES[library](direction, name, a, params) for library in libraries}
    return {library: call for library, call in calls.items() if call is not None}


# ---- the bounds: a plain copy of the same bytes, and NumPy's cheapest ufunc call -------------

def copy_calls(src, dst):
    """The copies a kernel moving as many bytes competes with: glibc memcpy (np.copyto, one
    thread, streaming stores on huge arrays) and torch's copy_ (all threads)."""
    calls = {"np.copyto": partial(np.copyto, dst, src)}
    if torch is not None:
        calls["torch.copy_"] = partial(torch.from_numpy(dst).copy_, torch.from_numpy(src))
    return calls


def small_call_baseline(x, out):
    """The cheapest NumPy call writing a preallocated array: the small-array yardstick."""
    return partial(np.maximum, x, 0, out=out)
