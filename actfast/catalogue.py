"""The registry of actfast's elementwise activations: one entry per function.

This module is plain data plus small validators and imports only the standard library:
``setup.py`` reads it (without importing numpy or the package) to generate the loops in
``pyx/_elementwise.pyx.tp``, and the package builds its public function objects, their
docstrings, the README table, the tests' parametrization and the benchmarks from it.

Adding an elementwise function means: one scalar kernel pair ``<kernel>_fwd`` /
``<kernel>_bwd`` (and ``<kernel>_bwd_from_output`` where the derivative is a function of the
output) in ``pyx/activations.pxd``, one :class:`Kernel` in :data:`KERNELS` and one
:class:`Entry` in :data:`ENTRIES`.
"""
from dataclasses import dataclass
import math
import numbers

REQUIRED = object()  # marks a parameter that has no default


@dataclass(frozen=True)
class Kernel:
    """A scalar kernel pair in ``pyx/activations.pxd``.

    ``params`` are the numeric parameters in the order the kernels take them (after ``x``, or
    after ``grad_output, x``); ``from_output`` says the kernel file also defines
    ``<name>_bwd_from_output(grad_output, output, ...)``; ``cheap`` kernels (no
    transcendental function) need more elements before a second thread pays.
    """

    name: str
    params: tuple = ()
    from_output: bool = False
    cheap: bool = False


@dataclass(frozen=True)
class Param:
    """A keyword parameter of a public function (PyTorch's name and default).

    ``choices`` makes it a string option; otherwise it is a real number, checked by ``check``
    (a function returning an error message, or None when the value is valid).
    """

    name: str
    default: object = REQUIRED
    choices: tuple = ()
    check: object = None

    def validate(self, function_name, value):
        """Return the value normalised (float or str); raise TypeError/ValueError if invalid."""
        where = f"{function_name}(): argument '{self.name}'"
        if self.choices:
            if not isinstance(value, str):
                raise TypeError(f"{where} must be one of {self.choices}, got {value!r}")
            if value not in self.choices:
                raise ValueError(f"{where} must be one of {self.choices}, got {value!r}")
            return value
        # numbers.Real covers Python and NumPy integers and floats, not bool or complex
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{where} must be a real number, got {type(value).__name__}")
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"{where} must not be NaN")
        if self.check is not None:
            message = self.check(value)
            if message:
                raise ValueError(f"{where} {message}, got {value!r}")
        return value


def _finite(value):
    return None if math.isfinite(value) else "must be finite"


@dataclass(frozen=True)
class Entry:
    """One public elementwise function.

    ``kernel`` names the kernel pair, or is a function of the parameters returning the name
    (gelu's ``approximate`` chooses between two kernels). ``backward_from_output`` is False,
    True, or a function of the parameters telling whether the derivative can be computed from
    the forward's output for those parameters. ``examples`` are the parameter sets that the
    tests and benchmarks run (the first is the default).
    """

    name: str
    formula: str
    derivative: str
    kernel: object
    params: tuple = ()
    backward_from_output: object = False
    examples: tuple = ({},)
    summary: str = ""

    def kernel_name(self, params):
        return self.kernel(**params) if callable(self.kernel) else self.kernel

    def allows_output(self, params):
        rule = self.backward_from_output
        return rule(**params) if callable(rule) else bool(rule)


KERNELS = (
    Kernel("relu", from_output=True, cheap=True),
    Kernel("leaky_relu", ("negative_slope",), from_output=True, cheap=True),
    Kernel("sigmoid", from_output=True),
    Kernel("tanh", from_output=True),
    Kernel("gelu"),
    Kernel("gelu_tanh"),
    Kernel("silu"),
)

ENTRIES = (
    Entry(
        "relu",
        formula="max(x, 0)",
        derivative="1 for x > 0, else 0 (relu'(0) = 0, as in PyTorch)",
        summary="Rectified linear unit.",
        kernel="relu",
        backward_from_output=True,
    ),
    Entry(
        "leaky_relu",
        formula="x if x > 0 else negative_slope * x",
        derivative="1 for x > 0, else negative_slope (at 0: negative_slope, as in PyTorch)",
        summary="Leaky rectified linear unit.",
        kernel="leaky_relu",
        params=(Param("negative_slope", 0.01, check=_finite),),
        # y > 0 exactly when x > 0 only if the slope is not negative
        backward_from_output=lambda negative_slope: negative_slope >= 0,
        examples=({}, {"negative_slope": 0.2}, {"negative_slope": -0.5}),
    ),
    Entry(
        "sigmoid",
        formula="1 / (1 + exp(-x))",
        derivative="sigmoid(x) * (1 - sigmoid(x))",
        summary="Logistic sigmoid.",
        kernel="sigmoid",
        backward_from_output=True,
    ),
    Entry(
        "tanh",
        formula="tanh(x)",
        derivative="1 - tanh(x)**2",
        summary="Hyperbolic tangent.",
        kernel="tanh",
        backward_from_output=True,
    ),
    Entry(
        "gelu",
        formula="x * Phi(x) = 0.5 x erfc(-x/sqrt(2)); approximate='tanh': "
        "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))",
        derivative="Phi(x) + x phi(x) (and the tanh form's exact derivative); "
        "limits 0 and 1 at -inf and +inf",
        summary="Gaussian error linear unit.",
        kernel=lambda approximate: {"none": "gelu", "tanh": "gelu_tanh"}[approximate],
        params=(Param("approximate", "none", choices=("none", "tanh")),),
        examples=({}, {"approximate": "tanh"}),
    ),
    Entry(
        "silu",
        formula="x * sigmoid(x)",
        derivative="sigmoid(x) (1 + x (1 - sigmoid(x))); silu(-inf) = 0",
        summary="Sigmoid linear unit (swish with beta = 1).",
        kernel="silu",
    ),
)
