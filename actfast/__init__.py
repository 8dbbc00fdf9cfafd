"""actfast: fast, correct neural-network activation functions for NumPy on the CPU.

Every function is a Python function built from the registry in :mod:`actfast.catalogue`::

    import actfast as af
    y = af.gelu(x)                               # forward, any array_like
    af.gelu(x, out=buf)                          # into a preallocated array (may be x)
    gx = af.gelu.backward(grad_output, x)        # grad_output * gelu'(x)
    gx = af.sigmoid.backward(grad_output, output=y)
"""
from ._api import FUNCTIONS, Activation, get_num_threads, openmp_enabled, set_num_threads

globals().update(FUNCTIONS)

__all__ = ["Activation", "get_num_threads", "openmp_enabled", "set_num_threads", *FUNCTIONS]
from .special import FUNCTIONS as _SPECIAL  # prelu swish pact rrelu noisy_relu maxout glu
globals().update(_SPECIAL)
__all__ += list(_SPECIAL)
from .softmax import FUNCTIONS as _SOFTMAX  # softmax log_softmax softmin logsumexp
globals().update(_SOFTMAX)
__all__ += list(_SOFTMAX)
__version__ = "0.1.0"
