"""The built extension modules: every `cdef inline` function of pyx/ is inlined where it is
called (setup.py's INLINE_BUDGET).

An inline kernel that GCC leaves out of line is a call inside a loop that it cannot
vectorise: the loop runs scalar, several times slower, with the same results, so no other
test notices. It happens when a module grows past GCC's inlining budget for the unit; adding
_softmax's compiled fast paths did that (its float64 forward took four times as long).
"""
import importlib
import pathlib
import platform
import re
import shutil
import subprocess

import pytest

PYX = pathlib.Path(__file__).resolve().parent.parent / "pyx"
MODULES = ["_elementwise", "_softmax", "_special", "_vecmath"]

pytestmark = [
    pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm (binutils)"),
    pytest.mark.skipif(not PYX.is_dir(), reason="needs the checkout's pyx/"),
]


def inline_functions():
    """The names of the functions declared `cdef inline` in pyx/ (sources and templates)."""
    names = set()
    for path in PYX.iterdir():
        if path.name.endswith((".pyx", ".pxd", ".pyx.tp")):
            names.update(re.findall(r"^cdef inline [^(\n]*?\b(\w+)\(", path.read_text(), re.M))
    return names


def cython_function(symbol):
    """The Cython function a symbol is the code of, or None: Cython names a cdef function
    __pyx_f_<len><part>_<len><part>_..._<name> (after __pyx_fuse_<k> for a fused one), and
    GCC may add a suffix (.isra.0, .constprop.0, ...)."""
    match = re.match(r"(?:__pyx_fuse_\d+)?__pyx_f_(.*)", symbol.split(".")[0])
    if not match:
        return None
    rest = match.group(1)
    while True:
        length = re.match(r"(\d+)", rest)
        if not length:
            return rest
        rest = rest[len(length.group(1)) + int(length.group(1)):]
        if not rest.startswith("_"):
            return None
        rest = rest[1:]


def code_symbols(path):
    """The names of the functions with code in the shared library at `path`."""
    listing = subprocess.run(["nm", "--defined-only", str(path)], capture_output=True,
                             text=True, check=True).stdout
    return [fields[2] for fields in map(str.split, listing.splitlines())
            if len(fields) == 3 and fields[1] in "tT"]


def test_symbol_names_parse():
    assert cython_function("__pyx_f_7actfast_8_softmax_row_dot") == "row_dot"
    assert cython_function("__pyx_fuse_1__pyx_f_7actfast_8_softmax_vexp_capped") == "vexp_capped"
    assert cython_function("__pyx_f_15softmax_kernels_exp_f64_nonpositive.isra.0") == \
        "exp_f64_nonpositive"
    assert cython_function("__pyx_pw_7actfast_8_softmax_13logsumexp_fast") is None
    assert "exp_f64_nonpositive" in inline_functions()


@pytest.mark.parametrize("module", MODULES)
def test_inline_functions_are_inlined(module):
    symbols = code_symbols(importlib.import_module(f"actfast.{module}").__file__)
    if not any(name.startswith("__pyx_") for name in symbols):
        pytest.skip("the library's local symbols were stripped")
    out_of_line = {name for name in map(cython_function, symbols) if name}
    assert sorted(out_of_line & inline_functions()) == []


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="x86-64's prefetch instructions")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_elementwise_loops_prefetch():
    # prefetch_row and stream_row prefetch their inputs beyond the cache (stream.h's
    # af_prefetch): a prefetch instruction each. A refactoring of them into one inline helper
    # compiled to none at all, with the same results and gelu's forward at 10^7 elements
    # twice as slow, so no other test would notice.
    assert len(re.findall(r"\bprefetcht0\b", disassembly("_elementwise"))) >= 2


def disassembly(module):
    path = importlib.import_module(f"actfast.{module}").__file__
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True, check=True).stdout


def unvectorised_kernels(listing):
    """The elementwise kernels (<name>_fwd_f32 ... <name>_bwd_f64) in an objdump listing whose
    code uses no AVX register (ymm, zmm): loops that GCC left scalar."""
    functions = re.findall(r"^[0-9a-f]+ <__pyx_f_\w+?_elementwise_(\w+_(?:fwd|bwd)_f(?:32|64))>:"
                           r"\n(.*?)(?=\n\n|\Z)", listing, re.S | re.M)
    assert len(functions) > 40
    return [name for name, code in functions if not re.search(r"%[yz]mm", code)]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="x86-64's AVX registers")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_elementwise_kernels_are_vectorised():
    # A loop GCC cannot vectorise runs scalar with the same results: af_horner's loop of 21
    # trips, not unrolled, left tanhshrink's float64 forward scalar (5x slower).
    listing = disassembly("_elementwise")
    if not re.search(r"%[yz]mm", listing):
        pytest.skip("a build without AVX (ACTFAST_ARCH=portable)")
    assert unvectorised_kernels(listing) == []
