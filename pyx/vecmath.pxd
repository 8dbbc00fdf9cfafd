# Vectorisable double-precision elementary functions (pyx/vecmath.h), named as libm's so the
# kernels read as formulas. See vecmath.h for the method and accuracy of each.
cdef extern from "vecmath.h" nogil:
    double exp "af_exp"(double x) noexcept
    double expm1 "af_expm1"(double x) noexcept
    double tanh "af_tanh"(double x) noexcept
    double log1p_unit "af_log1p_unit"(double z) noexcept   # z in [0, 1]
    double erfc_single "af_erfc_single"(double z) noexcept # float32 accuracy only
