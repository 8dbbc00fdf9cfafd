"""Build actfast's extension modules from pyx/ into the actfast package.

Environment variables:
  ACTFAST_ARCH=auto       (the default) the widest of these the build machine's CPU (and OS)
                          runs, checked by compiling and running a probe: AVX-512 (F, DQ, VL,
                          BW) with AVX2/FMA, else AVX2/FMA, else the baseline.
  ACTFAST_ARCH=avx2       AVX2/FMA at most, even where the CPU has AVX-512.
  ACTFAST_ARCH=portable   build for the baseline of the architecture (x86-64: SSE2 only), so
                          that the wheel runs on any CPU of that architecture.
  ACTFAST_ARCH=native     -march=native.
  ACTFAST_OPENMP=0        build without OpenMP (the default uses it when a compile-and-run
                          probe succeeds).
"""
import os
import runpy
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from Cython.Tempita import Template
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PYX = os.path.join(HERE, "pyx")

# Flags that keep every IEEE result (NaN, inf, signed zero, subnormals) but let GCC vectorise
# loops with selects and math calls: no errno from libm, no trap semantics. Never -ffast-math
# (see shared/PERFORMANCE-NOTES.md).
# -ffp-contract=off: GCC would otherwise fuse a*b+c into an FMA in a loop's vector body but
# not always in its scalar remainder, so an element's bits would depend on its position; the
# FMAs that pay are written explicitly (AF_FMA in pyx/vecmath.h).
BASE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]

# GCC stops inlining into a translation unit of more than `large-unit-insns` (10000) insns
# once inlining has grown it by 40 %. The modules are past that, and which inline functions
# then stay calls depends on everything else in the file: adding _softmax's compiled fast
# paths left its exp kernels out of line, so its float64 loops ran scalar (4-6x slower).
# Raised, the per-function limits alone decide. Where the compiler does not take the flag
# (clang), it is left out. tests/test_build.py checks the result.
INLINE_BUDGET = ["--param=large-unit-insns=1000000"]

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n > 0 ? 0 : 1;
}
"""

# The instruction sets `auto` adds, as GCC's names (a flag -m<name> each). AVX-512 on top of
# AVX2: GCC then vectorises the kernels 16 floats (8 doubles) wide with mask registers for the
# selects; on the Zen 4 and Zen 5 machines here 1.2-2.3x faster than AVX2 in the
# transcendental kernels (README's Benchmarks).
AVX2 = ["avx2", "fma"]
AVX512 = AVX2 + ["avx512f", "avx512dq", "avx512vl", "avx512bw"]


def render_templates():
    """Render pyx/*.pyx.tp with the kernel list and parallel thresholds of actfast/catalogue.py."""
    catalogue = runpy.run_path(os.path.join(HERE, "actfast", "catalogue.py"))
    for name in os.listdir(PYX):
        if not name.endswith(".pyx.tp"):
            continue
        source = os.path.join(PYX, name)
        target = source[: -len(".tp")]
        with open(source) as f:
            text = Template(f.read(), name=source).substitute(
                kernels=catalogue["KERNELS"], parallel_from=catalogue["PARALLEL_FROM"])
        old = open(target).read() if os.path.exists(target) else None
        if text != old:  # keep the timestamp when nothing changed (no needless rebuild)
            with open(target, "w") as f:
                f.write(text)


def isa_flags(features):
    return ["-m" + name for name in features]


def cpu_has(compiler, features):
    """True when the build machine's CPU has every one of `features` and the OS saves their
    registers (libgcc's __builtin_cpu_supports checks both), by a probe built with their
    flags."""
    test = " && ".join(f'__builtin_cpu_supports("{name}")' for name in features)
    source = f"int main(void) {{ __builtin_cpu_init(); return {test} ? 0 : 1; }}\n"
    return compiles_and_runs(compiler, source, isa_flags(features))


def compiles_and_runs(compiler, source, flags):
    """True when `source` compiles, links and exits 0 with `flags` (the probe approach of
    astropy's extension-helpers)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objects, exe, extra_postargs=flags)
            subprocess.run([exe], check=True, capture_output=True, timeout=60)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        compiler = self.compiler
        flags = list(BASE_FLAGS)
        arch = os.environ.get("ACTFAST_ARCH", "auto")
        if arch == "native":
            flags.append("-march=native")
        elif arch == "auto" and cpu_has(compiler, AVX512):
            flags += isa_flags(AVX512)
        elif arch in ("auto", "avx2") and cpu_has(compiler, AVX2):
            flags += isa_flags(AVX2)
        elif arch not in ("auto", "avx2", "portable"):
            raise SystemExit(
                f"ACTFAST_ARCH must be auto, avx2, native or portable, not {arch!r}")
        if compiles_and_runs(compiler, "int main(void) { return 0; }\n", INLINE_BUDGET):
            flags += INLINE_BUDGET
        openmp = (os.environ.get("ACTFAST_OPENMP", "1") != "0"
                  and compiles_and_runs(compiler, OPENMP_PROBE, ["-fopenmp"]))
        print(f"actfast: compile flags {' '.join(flags)}; OpenMP {'on' if openmp else 'OFF'}",
              file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = flags + (["-fopenmp"] if openmp else [])
            ext.extra_link_args = ["-fopenmp"] if openmp else []
        super().build_extensions()


render_templates()

# Every pyx/_<name>.pyx (templates rendered first) becomes the module actfast._<name>.
extensions = [
    Extension(
        "actfast." + name[: -len(".pyx")],
        [os.path.join("pyx", name)],
        include_dirs=[numpy.get_include(), "pyx"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        libraries=["m"],
    )
    for name in sorted(os.listdir(PYX))
    if name.startswith("_") and name.endswith(".pyx")
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
