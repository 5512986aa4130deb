"""Linear-layer kernels for sparse weights on the CPU, and a per-layer pick of the fastest.

A weight W (out, in) with bias b can run as:

- ``dense``: F.linear on the (masked) dense weight — one GEMM, reads every weight;
- ``csr``: a compressed-sparse-row copy (int32 indices), torch.addmv at batch 1, addmm otherwise —
  reads only the kept weights, so it wins when the layer is wide and very sparse (measured on a
  2-core x86 machine: ≈ 2.4x at batch 1 and ≈ 1.8x at batch 256 for 1024- and 2048-wide layers at
  90 % sparsity; never at width 256);
- ``nm``: a packed row-wise N:M layer, values (out, K) and absolute column indices (out, K), run as
  one gather of x and a multiply-reduce (constant fan-in, no row pointers).

`choose` times the candidates on an input of the size that will be used and keeps the fastest; the
choice is cached per (shape, kept count, format, batch, threads), so a process measures each kind of
layer once. Every kernel computes the same sums as the dense product, so results differ only by
float rounding (the order of additions).

Only torch is imported here: deployable policies (sparserl.deploy) run on these kernels alone.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

KERNELS = ("dense", "csr", "nm")


def features_major(x: torch.Tensor) -> bool:
    """Whether x (..., B, features) is stored features-major, as sparse-executed training layers take
    and produce it (sparserl.sparsity.execution: the CSR product writes (out, B)). A dense layer next
    to a sparse one computes yᵀ = W xᵀ + b in that orientation, when fed such an input or feeding a
    sparse layer (sparserl.nets.layers), so no transposing copy is needed between them and the ReLU
    backward between the two runs on matching layouts (mismatched ones were ≈ 10x slower: 3 ms
    against 0.3 for a 2 x 256 x 2048 activation). Either orientation computes the same products."""
    return x.dim() >= 2 and not x.is_contiguous() and x.transpose(-1, -2).is_contiguous()


def csr_from_dense(weight: torch.Tensor) -> torch.Tensor:
    """A CSR copy of `weight` (out, in) holding its nonzeros, with int32 indices (faster on CPU)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore")
        csr = weight.detach().to_sparse_csr()
        return torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32),
                                       csr.values(), csr.shape)


def csr_from_parts(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow.to(torch.int32), col.to(torch.int32), values, shape)


class DenseKernel:
    name = "dense"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.weight, self.bias = weight.contiguous(), bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class CSRKernel:
    name = "csr"

    def __init__(self, csr: torch.Tensor, bias: torch.Tensor | None):
        self.csr = csr
        self.bias = bias if bias is not None else torch.zeros(csr.shape[0])
        self.bias_column = self.bias.unsqueeze(1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return torch.addmv(self.bias, self.csr, x[0]).unsqueeze(0)
        return torch.addmm(self.bias_column, self.csr, x.t()).t()


class NMKernel:
    """Row-wise N:M as a gather: y[b, o] = sum_k values[o, k] x[b, index[o, k]] + bias[o]."""

    name = "nm"

    def __init__(self, values: torch.Tensor, index: torch.Tensor, bias: torch.Tensor | None):
        self.values = values.contiguous()
        self.out, self.kept = values.shape
        self.flat_index = index.reshape(-1).to(torch.int64)
        self.bias = bias if bias is not None else torch.zeros(self.out)

    CHUNK = 1 << 22
    """Most gathered values held at once (16 MB): large batches run in slices of rows."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = max(1, self.CHUNK // max(1, self.out * self.kept))
        if x.shape[0] > rows:
            return torch.cat([self(part) for part in x.split(rows)])
        gathered = x.index_select(-1, self.flat_index).view(x.shape[0], self.out, self.kept)
        return (gathered * self.values).sum(-1) + self.bias


Kernel = DenseKernel | CSRKernel | NMKernel

_CHOICES: dict[tuple, str] = {}


def time_interleaved(calls: dict[str, Callable[[], object]], rounds: int = 5, min_seconds: float = 2e-3,
                     max_calls: int = 64) -> dict[str, float]:
    """Median seconds per call of each zero-argument callable, timed in interleaved rounds (A B A B
    ...) so a burst of other load hits every candidate; each timing repeats the call until the first
    candidate takes `min_seconds` (at most `max_calls`), to rise above timer and scheduler noise."""
    for call in calls.values():
        call()  # warm-up (first-call allocations)
    first = next(iter(calls.values()))
    repeat = 1
    while repeat < max_calls:
        start = time.perf_counter()
        for _ in range(repeat):
            first()
        if time.perf_counter() - start >= min_seconds:
            break
        repeat *= 2
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(repeat):
                call()
            samples[name].append((time.perf_counter() - start) / repeat)
    return {name: statistics.median(times) for name, times in samples.items()}


@torch.no_grad()
def choose(candidates: dict[str, Kernel], in_features: int, batch: int = 1, key: tuple = ()) -> Kernel:
    """The fastest of `candidates` on a (batch, in_features) input, cached under `key` (plus the batch
    and thread count); a single candidate needs no measurement."""
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    cache_key = (*key, tuple(sorted(candidates)), batch, torch.get_num_threads())
    name = _CHOICES.get(cache_key)
    if name is None or name not in candidates:
        x = torch.randn(batch, in_features, generator=torch.Generator().manual_seed(0))
        times = time_interleaved({n: (lambda k=kernel: k(x)) for n, kernel in candidates.items()})
        name = min(times, key=times.get)
        _CHOICES[cache_key] = name
    return candidates[name]


def clear_choices() -> None:
    """Forget the cached measurements (e.g. after changing the thread count)."""
    _CHOICES.clear()


class SemiStructuredKernel:
    """2:4 weights on a CUDA GPU through PyTorch's semi-structured sparse tensors (cuSPARSELt or
    CUTLASS; Ampere or newer, half precision or float32 1:2 depending on the release). Optional and
    untested by the project, which has no GPU: layers the backend rejects stay dense on the GPU."""

    name = "semi_structured"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        from torch.sparse import to_sparse_semi_structured

        self.bias = None if bias is None else bias.cuda()
        try:
            self.weight = to_sparse_semi_structured(weight.cuda().contiguous())
        except (RuntimeError, ValueError):  # shape, dtype or pattern the backend does not take
            self.weight, self.name = weight.cuda(), "dense"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def semi_structured_kernel(weight: torch.Tensor, bias: torch.Tensor | None) -> SemiStructuredKernel:
    """A 2:4 GPU kernel for `weight`; a clear error where there is no CUDA device."""
    if not torch.cuda.is_available():
        from sparserl.errors import PolicyError

        raise PolicyError("the semi_structured backend needs a CUDA GPU (2:4 sparse kernels); "
                          "none is available here: use auto, dense, csr or nm")
    return SemiStructuredKernel(weight, bias)
