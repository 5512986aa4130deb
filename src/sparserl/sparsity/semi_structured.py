"""`--execution semi_structured`: N:M 2:4 layers' forward products on a GPU's 2:4 sparse tensor cores
(PyTorch's semi-structured sparse tensors, on cuSPARSELt or CUTLASS; NVIDIA compute capability 8.0
or newer), the hardware RNM-TD3 (Vrce et al. 2026) is motivated by.

Under every N:M gradient rule the layer's parameter holds the 2:4 projection between steps, so each
forward compresses the current weights and multiplies through the sparse kernel. The input gradient
(g W) and the weight gradient (gᵀ x) are dense products: the weight gradient is the dense one every
N:M rule starts from (the engine's hooks mask it for masked gradients), so a step computes what
masked dense training computes, up to the kernels' rounding. A layer whose shape or dtype the
backend rejects stays dense; how many run sparse is printed at the start of a run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CAPABILITY = (8, 0)
"""The oldest CUDA compute capability with 2:4 sparse tensor cores (Ampere)."""


def capable_gpu() -> bool:
    """Whether torch sees a CUDA GPU with 2:4 sparse tensor cores."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= CAPABILITY


def problems(method: str, device: str, gpu: bool | None = None) -> list[str]:
    """Why `--execution semi_structured` cannot run with sparsity `method` on `device` (empty: it can).
    `gpu`: whether a capable GPU is there (None: ask torch)."""
    out = []
    if method != "nm:2:4":
        out.append(f"execution semi_structured runs 2:4 patterns on a GPU's sparse tensor cores: it needs "
                   f"sparsity nm:2:4, got {method}")
    if device == "cpu" or not (capable_gpu() if gpu is None else gpu):
        where = "device cpu was asked for" if device == "cpu" else "torch sees no such GPU here"
        out.append(f"execution semi_structured needs a CUDA GPU with 2:4 sparse tensor cores (compute capability "
                   f"{CAPABILITY[0]}.{CAPABILITY[1]} or newer) and --device cuda or auto; {where}: use execution "
                   f"dense, csr or auto")
    return out


def compress_2_4(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (out, in), 2:4 along its rows, as PyTorch's semi-structured sparse tensor."""
    from torch.sparse import to_sparse_semi_structured

    return to_sparse_semi_structured(weight.contiguous())


class _SemiStructuredLinear(torch.autograd.Function):
    """y = x Wᵀ + b with W's compressed copy in the forward; dense products in the backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, compressed):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.linear(x, compressed, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight.to(grad.dtype) if ctx.needs_input_grad[0] else None
        rows, inputs = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        grad_w = (rows.t() @ inputs.to(rows.dtype)).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_b = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class SemiStructuredExecutor:
    """The `SparseExecutor` of one masked layer (sparserl.nets.layers) on 2:4 kernels: each member's
    (out, in) weights compressed per call, outputs in the layer's own layout. `compress` makes the
    sparse copy (PyTorch's semi-structured tensor by default); a member it refuses, and then the
    whole layer, runs dense from then on."""

    use_sparse = False  # (the outputs keep their usual layout: neighbours need nothing else)

    def __init__(self, layer, compress: Callable[[torch.Tensor], torch.Tensor] = compress_2_4):
        self.layer, self.compress = layer, compress
        self.dense = False
        """The backend refused this layer: it runs masked dense products."""

    def active(self, weight: torch.Tensor) -> bool:
        return not self.dense

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 members: slice | None = None) -> torch.Tensor:
        weights = self.layer.view(weight)  # (E, out, in), 2:4 along each row
        if members is not None:
            weights = weights[members]
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        outputs = []
        with torch.autocast(x.device.type, enabled=False):
            for e in range(weights.shape[0]):
                w = weights[e].to(dtype)
                try:
                    compressed = self.compress(w.detach())
                except (RuntimeError, ValueError):  # a shape or dtype the backend does not take
                    self.dense = True
                    compressed = w.detach()
                inputs = (x if x.dim() == 2 else x[e]).to(dtype)
                row = None if bias is None else bias[e].to(dtype)
                outputs.append(_SemiStructuredLinear.apply(inputs, w, row, compressed))
        return torch.stack(outputs)
