"""The registry of actfast's elementwise activations: one entry per function.

This module is plain data plus small validators and imports only the standard library:
``setup.py`` reads it (without importing numpy or the package) to generate the loops in
``pyx/_elementwise.pyx.tp``, and the package builds its public functions, their
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
    ``<name>_bwd_from_output(grad_output, output, ...)``; ``single`` says it defines
    ``<name>_fwd_single`` / ``<name>_bwd_single``, used for float32 arrays (accurate to float32
    and faster); ``cheap`` kernels (no transcendental function) need the most elements before
    a second thread pays, and they stream their stores beyond the cache (_elementwise's
    STREAMED); ``heavy`` names the directions ("fwd", "bwd") that need the fewest (see
    :data:`PARALLEL_FROM`); ``moderate`` names the directions whose kernel takes a last
    argument ``moderate``, true for blocks of moderate inputs (see activations.pxd);
    ``output_bounds`` the parameters whose values, rounded to the output's dtype, the forward
    clamps to and the backward from the output compares with (for a float16 output, computed
    in float32, the API rounds them to float16 first).
    """

    name: str
    params: tuple = ()
    from_output: bool = False
    single: bool = False
    cheap: bool = False
    moderate: tuple = ()
    heavy: tuple = ()
    output_bounds: tuple = ()

    def cost(self, direction):
        """The :data:`PARALLEL_FROM` class of direction "fwd", "bwd" or "from_output" (a
        backward from the output is a product or two, as cheap as the cheap kernels)."""
        if self.cheap or direction == "from_output":
            return "cheap"
        return "heavy" if direction in self.heavy else "light"


# The elements (float32, float64) from which an elementwise call runs on all its threads, by
# the cost class of the kernel's direction (Kernel.cost): a second thread pays once the half
# of the work it takes exceeds the ~1-2 us of entering a parallel region, so the cheaper the
# work per element, the more elements it needs. Measured with benchmarks/threads.py (one
# thread against two, thresholds off, every kernel, direction and dtype; 2 vCPUs, Zen 5), where
# the two threads break even: cheap 33-98K float32 / 16-49K float64 elements (the forwards at
# the top: they move the fewest bytes per element), light 8-16K / 4-6K, heavy 2-8K / 2-4K;
# 1.5-2x later while the VM makes a parallel region cost twice as much (its state varies).
PARALLEL_FROM = {
    "cheap": (65536, 32768),
    "light": (12288, 4096),    # about one exponential and one division per element
    "heavy": (4096, 2048),     # more: gelu, mish, softplus' and log_sigmoid's forward, ...
}


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
        # a 0-d array (NumPy's, or anything with ndim 0 and item()) counts as its element, as
        # in NumPy and PyTorch
        if type(value) is not float and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            value = value.item()
        # numbers.Real covers Python and NumPy integers and floats, not bool or complex
        # (a float is one: the common case skips the abstract-class checks)
        if type(value) is not float and (isinstance(value, bool)
                                         or not isinstance(value, numbers.Real)):
            raise TypeError(f"{where} must be a real number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:   # an int beyond double's range
            raise ValueError(f"{where} is an int beyond double's range") from None
        if math.isnan(value):
            raise ValueError(f"{where} must not be NaN")
        if self.check is not None:
            message = self.check(value)
            if message:
                raise ValueError(f"{where} {message}, got {value!r}")
        return value


def _finite(value):
    return None if math.isfinite(value) else "must be finite"


def _finite_nonzero(value):
    return _finite(value) or (None if value != 0 else "must not be 0")


def _finite_nonnegative(value):
    return _finite(value) or (None if value >= 0 else "must be >= 0")


FLOAT32_MIN, FLOAT32_MAX = 2.0 ** -126, (2.0 - 2.0 ** -23) * 2.0 ** 127


def float32_number(label, value):
    """For a value that the float32 kernels use as a float32 number (a slope, a scale): None
    when it is 0 or a normal float32's magnitude, else the message for float32 and float16
    input. Beyond FLT_MAX the kernels would meet inf (and inf * 0 = NaN; PyTorch refuses such
    values too); a subnormal one keeps too few digits for the 4-ulp bound."""
    if value == 0 or FLOAT32_MIN <= abs(value) <= FLOAT32_MAX:
        return None
    return (f"{label} = {value!r} is not a number float32 input can use (0, or a magnitude "
            f"from {FLOAT32_MIN:.6g} to {FLOAT32_MAX:.8g}); pass float64 input for it")


def float32_numbers(**values):
    """float32_number of each parameter given: the first message, or None."""
    for name, value in values.items():
        message = float32_number(f"argument '{name}'", value)
        if message:
            return message
    return None


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
    check: object = None  # a function of all parameters: an error message, or None
    # a function of all parameters: the message when float32 kernels cannot use them (see
    # float32_numbers), or None
    float32_check: object = None

    def validate(self, params, function_name=None):
        """Raise ValueError when the parameters are invalid together (e.g. min_val > max_val);
        the message names function_name (the caller: "gelu.backward", say), or the entry."""
        message = self.check(**params) if self.check else None
        if message:
            raise ValueError(f"{function_name or self.name}(): {message}")

    def float32_problem(self, params, function_name=None):
        """The ValueError message for float32 and float16 input with these parameters (naming
        function_name, or the entry), or None when they are fine."""
        message = self.float32_check(**params) if self.float32_check else None
        return f"{function_name or self.name}(): {message}" if message else None

    def kernel_name(self, params):
        return self.kernel(**params) if callable(self.kernel) else self.kernel

    def allows_output(self, params):
        rule = self.backward_from_output
        return rule(**params) if callable(rule) else bool(rule)


KERNELS = (
    Kernel("relu", from_output=True, cheap=True),
    Kernel("leaky_relu", ("negative_slope",), from_output=True, cheap=True),
    Kernel("sigmoid", from_output=True, moderate=("fwd", "bwd")),
    Kernel("tanh", from_output=True, moderate=("bwd",)),
    Kernel("gelu", heavy=("fwd", "bwd")),
    Kernel("gelu_tanh", heavy=("fwd", "bwd")),
    Kernel("silu", moderate=("fwd", "bwd")),
    Kernel("relu6", from_output=True, cheap=True),
    Kernel("hardtanh", ("min_val", "max_val"), from_output=True, cheap=True,
           output_bounds=("min_val", "max_val")),
    Kernel("elu", ("alpha",), from_output=True),
    # (alpha < 0 only: no backward from the output there)
    Kernel("celu", ("alpha",), heavy=("fwd", "bwd")),
    Kernel("celu_positive", ("alpha",), from_output=True, heavy=("bwd",)),
    Kernel("selu", from_output=True),
    Kernel("softplus", ("beta", "threshold"), heavy=("fwd", "bwd")),
    Kernel("softplus_beta1", ("threshold",), moderate=("bwd",), heavy=("fwd",)),
    Kernel("log_sigmoid", moderate=("bwd",), heavy=("fwd",)),
    Kernel("softsign", cheap=True),
    Kernel("mish", heavy=("fwd", "bwd")),
    Kernel("hardsigmoid", ("slope", "offset"), cheap=True),
    Kernel("hardswish", cheap=True),
    Kernel("hardshrink", ("lambd",), cheap=True),
    Kernel("softshrink", ("lambd",), cheap=True),
    Kernel("tanhshrink"),
    Kernel("threshold", ("threshold", "value"), cheap=True),
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
        float32_check=lambda negative_slope: float32_numbers(negative_slope=negative_slope),
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
    Entry(
        "relu6",
        formula="min(max(x, 0), 6)",
        derivative="1 for 0 < x < 6, else 0 (0 at both kinks, as in PyTorch)",
        summary="ReLU capped at 6.",
        kernel="relu6",
        backward_from_output=True,
    ),
    Entry(
        "hardtanh",
        formula="min(max(x, min_val), max_val)",
        derivative="1 for min_val < x < max_val, else 0 (0 at both kinks, as in PyTorch)",
        summary="Hard hyperbolic tangent.",
        kernel="hardtanh",
        params=(Param("min_val", -1.0, check=_finite), Param("max_val", 1.0, check=_finite)),
        check=lambda min_val, max_val: (
            f"min_val ({min_val}) must not be greater than max_val ({max_val})"
            if min_val > max_val else None),
        backward_from_output=True,
        examples=({}, {"min_val": -2.0, "max_val": 0.5}),
    ),
    Entry(
        "elu",
        formula="x if x > 0 else alpha * (exp(x) - 1)",
        derivative="1 for x > 0, else alpha * exp(x) (alpha at 0, as in PyTorch)",
        summary="Exponential linear unit.",
        kernel="elu",
        params=(Param("alpha", 1.0, check=_finite),),
        float32_check=lambda alpha: float32_numbers(alpha=alpha),
        # y > 0 exactly when x > 0 only for alpha >= 0 (PyTorch refuses the same)
        backward_from_output=lambda alpha: alpha >= 0,
        examples=({}, {"alpha": 0.5}),
    ),
    Entry(
        "celu",
        formula="x if x > 0 else alpha * (exp(x / alpha) - 1)",
        derivative="1 for x > 0, else exp(x / alpha) (1 at 0, as in PyTorch)",
        summary="Continuously differentiable exponential linear unit.",
        # alpha > 0 (the default) has its own kernel: the same results, with the exponential
        # of x / alpha <= 0 only
        kernel=lambda alpha: "celu_positive" if alpha > 0 else "celu",
        params=(Param("alpha", 1.0, check=_finite_nonzero),),
        # (alpha < 0: computed in double, any alpha)
        float32_check=lambda alpha: float32_numbers(alpha=alpha) if alpha > 0 else None,
        backward_from_output=lambda alpha: alpha >= 0,
        examples=({}, {"alpha": 2.0}, {"alpha": -1.5}, {"alpha": 100.0}),
    ),
    Entry(
        "selu",
        formula="scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha = 1.6732632423543772, "
        "scale = 1.0507009873554805",
        derivative="scale for x > 0, else scale * alpha * exp(x) (the left value at 0, as in "
        "PyTorch)",
        summary="Scaled exponential linear unit.",
        kernel="selu",
        backward_from_output=True,
    ),
    Entry(
        "softplus",
        formula="log(1 + exp(beta x)) / beta, or x where beta x > threshold",
        derivative="sigmoid(beta x), or 1 where beta x > threshold",
        summary="Smooth approximation of relu.",
        # beta = 1 (the default) has its own kernel: the same results, without the work that
        # keeps beta x exact
        kernel=lambda beta, threshold: "softplus_beta1" if beta == 1.0 else "softplus",
        params=(Param("beta", 1.0, check=_finite_nonzero), Param("threshold", 20.0)),
        # (the kernels multiply by 1/beta: inf for |beta| < 5.6e-309, NaN at x = -inf)
        check=lambda beta, threshold: (
            None if math.isfinite(1.0 / beta) else
            f"1 / beta must be finite (|beta| >= {1 / 1.7976931348623157e308:.3g}), got "
            f"beta = {beta!r}"),
        float32_check=lambda beta, threshold: float32_numbers(beta=beta),
        examples=({}, {"beta": 2.0, "threshold": 10.0}),
    ),
    Entry(
        "log_sigmoid",
        formula="log(sigmoid(x)) = -log(1 + exp(-x))",
        derivative="sigmoid(-x) = 1 - sigmoid(x)",
        summary="Logarithm of the logistic sigmoid.",
        kernel="log_sigmoid",
    ),
    Entry(
        "softsign",
        formula="x / (1 + |x|)",
        derivative="1 / (1 + |x|)**2; softsign(+-inf) = +-1",
        summary="Softsign.",
        kernel="softsign",
    ),
    Entry(
        "mish",
        formula="x * tanh(softplus(x))",
        derivative="tanh(softplus(x)) + x sigmoid(x) (1 - tanh(softplus(x))**2); mish(-inf) = 0",
        summary="Mish (Misra 2019).",
        kernel="mish",
    ),
    Entry(
        "hardsigmoid",
        formula="min(max(slope * x + offset, 0), 1); the defaults are PyTorch's relu6(x + 3) / 6, "
        "slope=0.2 the Keras/ONNX form",
        derivative="slope strictly inside the linear part, else 0 (0 at x = +-3 by default, as in "
        "PyTorch)",
        summary="Hard sigmoid.",
        kernel="hardsigmoid",
        params=(Param("slope", 1.0 / 6.0, check=_finite_nonzero),
                Param("offset", 0.5, check=_finite)),
        # (the kernels compute (x + offset * (1/slope)) / (1/slope), NaN where either is inf)
        check=lambda slope, offset: (
            None if math.isfinite(1.0 / slope) and math.isfinite(offset * (1.0 / slope)) else
            f"1 / slope and offset / slope must be finite, got slope = {slope!r}, "
            f"offset = {offset!r}"),
        # (float32 computes (x + offset / slope) * slope)
        float32_check=lambda slope, offset: float32_numbers(slope=slope) or (
            None if abs(offset / slope) <= FLOAT32_MAX else
            f"offset / slope = {offset / slope!r} is beyond float32's range (float32 input "
            "computes (x + offset / slope) * slope); pass float64 input for it"),
        examples=({}, {"slope": 0.2}),
    ),
    Entry(
        "hardswish",
        formula="x * min(max(x + 3, 0), 6) / 6",
        derivative="0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, 1 for x >= 3 (as in PyTorch); "
        "hardswish(-inf) = 0",
        summary="Hard swish (MobileNetV3).",
        kernel="hardswish",
    ),
    Entry(
        "hardshrink",
        formula="x where |x| > lambd, else 0",
        derivative="1 where |x| > lambd, else 0 (0 at +-lambd)",
        summary="Hard shrinkage.",
        kernel="hardshrink",
        params=(Param("lambd", 0.5, check=_finite),),
        examples=({}, {"lambd": 1.5}),
    ),
    Entry(
        "softshrink",
        formula="x - lambd for x > lambd, x + lambd for x < -lambd, else 0",
        derivative="1 where |x| > lambd, else 0 (0 at +-lambd)",
        summary="Soft shrinkage.",
        kernel="softshrink",
        params=(Param("lambd", 0.5, check=_finite_nonnegative),),
        examples=({}, {"lambd": 1.5}, {"lambd": 0.1}),   # 0.1: no float32 holds it
    ),
    Entry(
        "tanhshrink",
        formula="x - tanh(x)",
        derivative="tanh(x)**2",
        summary="Tanh shrinkage.",
        kernel="tanhshrink",
    ),
    Entry(
        "threshold",
        formula="x where x > threshold, else value",
        derivative="1 where x > threshold, else 0",
        summary="Threshold: replace values at or below a threshold.",
        kernel="threshold",
        params=(Param("threshold"), Param("value")),
        examples=({"threshold": 0.5, "value": -2.0}, {"threshold": -1.0, "value": 0.0}),
    ),
)


def markdown_table(entries=ENTRIES):
    """The README's function table, made from the registry (tests/test_docs.py checks that
    the README carries it as generated)."""
    rows = ["| function | formula | parameters (PyTorch's names) | derivative, at the kinks |",
            "|---|---|---|---|"]
    for entry in entries:
        params = ", ".join(
            p.name if p.default is REQUIRED else f"{p.name}={p.default!r}" for p in entry.params)
        output = " Backward also from `output=`." if entry.backward_from_output else ""
        cells = [f"`{entry.name}`", entry.formula, params or "—", entry.derivative + "." + output]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)
