"""The native sparse kernels: equal to dense references for any pattern and width, built once per
machine into the cache, and replaced by PyTorch's kernels (with the reason) where they cannot be built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl import native
from sparserl.kernels import csr_from_dense


def test_the_native_kernels_are_built_on_this_machine():
    assert native.available(), native.status()
    assert native.status().startswith("native kernels")


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), width=st.integers(1, 200),
       density=st.floats(0.0, 1.0), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_csr_product_and_sampled_product_equal_dense_references(rows, cols, width, density, bias, seed):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g) * (torch.rand(rows, cols, generator=g) < density)
    a = csr_from_dense(weight)
    crow, col, values = a.crow_indices(), a.col_indices(), a.values()
    dense = torch.randn(cols, width, generator=g)
    b = torch.randn(rows, generator=g) if bias else None
    out = torch.full((rows, width), float("nan"))  # every entry must be written
    native.csr_mm(crow, col, values, dense, b, out)
    expected = weight @ dense + (b.unsqueeze(1) if bias else 0)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)

    left, right = torch.randn(rows, width, generator=g), torch.randn(cols, width, generator=g)
    sampled = native.sddmm(crow, col, left, right, torch.full((len(col),), float("nan")))
    rows_of = torch.repeat_interleave(torch.arange(rows), crow.diff().long())
    torch.testing.assert_close(sampled, (left @ right.t())[rows_of, col.long()], atol=1e-4, rtol=1e-4)


def _probe(tmp_path, **env) -> dict:
    """available() and status() in a fresh process with the given environment."""
    code = "import json; from sparserl import native; print(json.dumps([native.available(), native.status()]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "SPARSERL_CACHE_DIR": str(tmp_path), **env})
    available, status = json.loads(result.stdout)
    return {"available": available, "status": status}


def test_built_once_into_the_cache_then_reused(tmp_path):
    first = _probe(tmp_path)
    assert first["available"], first["status"]
    libraries = list(tmp_path.glob("spmm-*.so"))
    assert len(libraries) == 1 and str(libraries[0]) in first["status"]
    built = libraries[0].stat().st_mtime_ns
    second = _probe(tmp_path)  # a rebuild would replace the file
    assert second["available"] and libraries[0].stat().st_mtime_ns == built
    assert list(tmp_path.glob("spmm-*.so")) == libraries


def test_without_a_compiler_pytorch_kernels_are_used_and_the_reason_given(tmp_path):
    probe = _probe(tmp_path, CC="/nonexistent/cc")
    assert not probe["available"]
    assert probe["status"].startswith("PyTorch kernels: building spmm.c failed") and "nonexistent" in probe["status"]
    assert not list(tmp_path.glob("*.so"))


def test_a_compiler_refusing_march_native_gets_the_portable_build(tmp_path):
    compiler = tmp_path / "cc-without-march-native"
    compiler.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = "-march=native" ] && '
                        '{ echo "unknown option -march=native" >&2; exit 1; }; done\nexec cc "$@"\n')
    compiler.chmod(0o755)
    cache = tmp_path / "cache"
    probe = _probe(cache, CC=str(compiler))
    assert probe["available"], probe["status"]
    assert len(list(cache.glob("spmm-*.so"))) == 1


def test_switched_off_by_environment(tmp_path):
    probe = _probe(tmp_path, SPARSERL_NATIVE="0")
    assert not probe["available"] and probe["status"] == "PyTorch kernels (SPARSERL_NATIVE=0)"


def test_disabled_block_switches_to_pytorch_and_back():
    assert native.available()
    with native.disabled():
        assert not native.available() and "disabled" in native.status()
    assert native.available()


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 500), kept=st.integers(0, 500), seed=st.integers(0, 2**31 - 1))
def test_gather_and_scatter_equal_index_select_and_index_put(size, kept, seed):
    g = torch.Generator().manual_seed(seed)
    kept = min(kept, size)
    src = torch.randn(size, generator=g)
    index = torch.randperm(size, generator=g)[:kept]
    assert torch.equal(native.gather(src, index), src.index_select(0, index))
    values, order = torch.randn(kept, generator=g), torch.randperm(kept, generator=g)
    expected = torch.zeros(size).index_put_((index,), values[order])
    assert torch.equal(native.scatter(torch.zeros(size), index, values, order), expected)


def _cpu_flags() -> set[str]:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


BUILD_PRODUCTS = """
import sys, torch
from sparserl import native
from sparserl.kernels import csr_from_dense
assert native.available(), native.status()
g = torch.Generator().manual_seed(0)
weight = torch.randn(48, 300, generator=g) * (torch.rand(48, 300, generator=g) < 0.1)
a = csr_from_dense(weight)
crow, col, values = a.crow_indices(), a.col_indices(), a.values()
dense, bias = torch.randn(300, 200, generator=g), torch.randn(48, generator=g)
product = native.csr_mm(crow, col, values, dense, bias, torch.empty(48, 200))
sampled = native.sddmm(crow, col, torch.randn(48, 333, generator=g), torch.randn(300, 333, generator=g),
                       torch.empty(values.shape[0]))
torch.save({"lanes": native.lanes(), "product": product, "sampled": sampled}, sys.argv[1])
"""


def test_each_vector_width_builds_and_gives_the_same_products(tmp_path):
    """The kernels compile to the widest vectors the CPU has, and narrower builds of the same source
    (forced by SPARSERL_NATIVE_FLAGS) agree with it: the CSR product to the bit wherever fused
    multiply-adds exist, the sampled product to float rounding."""
    flags = _cpu_flags()
    builds = {"native": ""}
    if "avx512f" in flags:
        builds["avx2"] = "-mno-avx512f"
    if "avx2" in flags:
        builds["portable"] = "-mno-avx"
    results = {}
    for name, extra in builds.items():
        out = tmp_path / f"{name}.pt"
        subprocess.run([sys.executable, "-c", BUILD_PRODUCTS, str(out)], check=True, capture_output=True,
                       env={**os.environ, "SPARSERL_CACHE_DIR": str(tmp_path / name), "SPARSERL_NATIVE_FLAGS": extra})
        results[name] = torch.load(out)
    widest = 16 if "avx512f" in flags else 8 if "avx2" in flags else None
    if widest is not None:
        assert results["native"]["lanes"] == widest
    if "avx2" in builds:
        assert results["avx2"]["lanes"] == 8
        assert torch.equal(results["avx2"]["product"], results["native"]["product"])
    if "portable" in builds:
        assert results["portable"]["lanes"] == 4
    for result in results.values():
        torch.testing.assert_close(result["product"], results["native"]["product"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(result["sampled"], results["native"]["sampled"], rtol=1e-5, atol=1e-4)
