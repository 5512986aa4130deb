"""Native CPU kernels for the sparse products of training: CSR x dense and the sampled dense-dense
product (SDDMM), with the gathers and scatters that move kept weights between a parameter and its
CSR copies, in C (spmm.c), compiled on first use with the machine's C compiler.

Why: PyTorch's CPU CSR product runs at ≈ 30 GFLOP/s on the 2-core machine against ≈ 150 for dense
GEMM, so at 90 % sparsity an 11x cut in multiply-adds became only ≈ 2x per product. The kernel here
keeps a tile of 8 vectors of the result in registers while a row's kept weights stream past, on
the widest vectors the CPU has (AVX-512's 16 floats, AVX2's 8; `lanes()`); for a 2048 x 2048 layer
at 9.3 % density and batch 256 it took ≈ 2.6 ms on AVX2 against 5.8 ms for PyTorch's CSR and 11 ms
for the dense product (BENCHMARKS.md).

The library is built once per source, compiler flags and CPU (``-O3 -march=native
-ffp-contract=fast``, or without ``-march=native`` where the compiler refuses it;
``$SPARSERL_NATIVE_FLAGS`` adds flags, e.g. ``-mno-avx512f`` for the AVX2 build on an AVX-512 CPU;
OpenMP when PyTorch runs on GNU OpenMP, whose
thread pool and thread count it then shares) into ``$SPARSERL_CACHE_DIR`` (default
``~/.cache/sparserl``), written atomically so parallel runs may race to build it. Where no
compiler works, or with ``SPARSERL_NATIVE=0``, `available()` is False and callers use PyTorch's
kernels; results agree to float rounding either way.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("spmm.c")
_state: dict = {}


def _cpu_fingerprint() -> str:
    """What -march=native depends on: a library built on one CPU may not run on another."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _uses_gnu_openmp() -> bool:
    """Whether PyTorch's threads come from GNU OpenMP already loaded in this process (then a
    library linked with -fopenmp binds to that same runtime instead of starting a second pool)."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def _build() -> tuple[ctypes.CDLL | None, str]:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler found (set CC)"
    openmp = _uses_gnu_openmp()
    common = ["-O3", "-std=c99", "-ffp-contract=fast", "-shared", "-fPIC"] + (["-fopenmp"] if openmp else []) \
        + os.environ.get("SPARSERL_NATIVE_FLAGS", "").split()
    source = SOURCE.read_bytes()
    cache = Path(os.environ.get("SPARSERL_CACHE_DIR", Path.home() / ".cache" / "sparserl"))
    failure = ""
    for flags in (["-march=native", *common], common):  # a compiler without -march=native: portable code
        key = hashlib.sha256(source + " ".join([compiler, *flags, _cpu_fingerprint()]).encode()).hexdigest()[:16]
        target = cache / f"spmm-{key}.so"
        if target.exists():
            break
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                built = Path(tmp) / target.name
                result = subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built)],
                                        capture_output=True, text=True, timeout=120)
                if result.returncode == 0:
                    os.replace(built, target)  # atomic: a concurrent build of the same key is identical
                    break
                failure = f"compiling {SOURCE.name} failed: {result.stderr.strip()[:300]}"
        except (OSError, subprocess.SubprocessError) as exc:
            failure = f"building {SOURCE.name} failed: {exc}"
    else:
        return None, failure
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        return None, f"loading {target} failed: {exc}"
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    lib.sparserl_csr_mm.argtypes = [pointer] * 6 + [size, size]
    lib.sparserl_sddmm.argtypes = [pointer] * 5 + [size, size]
    lib.sparserl_gather.argtypes = [pointer] * 3 + [size]
    lib.sparserl_scatter.argtypes = [pointer] * 4 + [size]
    for kernel in (lib.sparserl_csr_mm, lib.sparserl_sddmm, lib.sparserl_gather, lib.sparserl_scatter):
        kernel.restype = None
    lib.sparserl_lanes.restype = ctypes.c_int
    lanes = lib.sparserl_lanes()
    return lib, f"native kernels ({lanes}-float vectors, {target}{', OpenMP' if openmp else ', one thread'})"


def _library() -> ctypes.CDLL | None:
    if "lib" not in _state:
        if os.environ.get("SPARSERL_NATIVE", "1") == "0":
            _state["lib"], _state["status"] = None, "PyTorch kernels (SPARSERL_NATIVE=0)"
        else:
            lib, status = _build()
            _state["lib"], _state["status"] = lib, status if lib is not None else f"PyTorch kernels: {status}"
    return _state["lib"] if _state.get("enabled", True) else None


def available() -> bool:
    """Whether the native kernels are built, loaded and enabled."""
    return _library() is not None


def lanes() -> int:
    """Floats per vector in the loaded kernels (16: AVX-512, 8: AVX2, 4: portable); 0 if not loaded."""
    lib = _library()
    return lib.sparserl_lanes() if lib is not None else 0


def status() -> str:
    """One line saying which kernels sparse training uses, and why not the native ones if not."""
    _library()
    return _state["status"] if _state.get("enabled", True) else "PyTorch kernels (disabled)"


@contextlib.contextmanager
def disabled():
    """Use PyTorch's kernels inside this block (for comparisons and tests)."""
    before = _state.get("enabled", True)
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = before


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def csr_mm(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, dense: torch.Tensor,
           bias: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """out (rows, width) = A @ dense (+ bias per row), A the CSR (crow, col, values); dense (cols,
    width). All contiguous float32 (int32 indices); `out` may be a contiguous slice of a bigger
    tensor. Only call when `available()`."""
    assert dense.is_contiguous() and out.is_contiguous() and values.is_contiguous()
    _state["lib"].sparserl_csr_mm(_ptr(crow), _ptr(col), _ptr(values), _ptr(dense), _ptr(bias), _ptr(out),
                                  out.shape[0], out.shape[1])
    return out


def sddmm(crow: torch.Tensor, col: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
          out: torch.Tensor) -> torch.Tensor:
    """out[k] = <left[r], right[col[k]]> for every kept entry k (row r) of the CSR pattern (crow,
    col): the product left @ rightᵀ sampled at the pattern, in CSR order. left (rows, width) and
    right (cols, width) contiguous float32. Only call when `available()`."""
    assert left.is_contiguous() and right.is_contiguous() and left.shape[1] == right.shape[1]
    _state["lib"].sparserl_sddmm(_ptr(crow), _ptr(col), _ptr(left), _ptr(right), _ptr(out),
                                 left.shape[0], left.shape[1])
    return out


def gather(src: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """out[i] = src[index[i]] (src flat contiguous float32, index int64); as index_select, ≈ 2-3x
    faster on the 2-core machine. Only call when `available()`."""
    assert src.is_contiguous() and index.is_contiguous() and index.dtype == torch.int64
    out = src.new_empty(index.shape[0]) if out is None else out
    _state["lib"].sparserl_gather(_ptr(src), _ptr(index), _ptr(out), index.shape[0])
    return out


def scatter(dst: torch.Tensor, index: torch.Tensor, src: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """dst[index[i]] = src[order[i]] (dst flat contiguous float32; int64 index and order, distinct
    targets). Only call when `available()`."""
    assert dst.is_contiguous() and src.is_contiguous() and index.dtype == order.dtype == torch.int64
    assert index.shape == order.shape
    _state["lib"].sparserl_scatter(_ptr(dst), _ptr(index), _ptr(src), _ptr(order), index.shape[0])
    return dst
