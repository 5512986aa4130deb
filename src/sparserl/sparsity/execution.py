"""Sparse execution of masked layers in training: CSR products for forward and backward.

A masked layer computes y = x (M ⊙ W)ᵀ + b. With most of M zero, compressed-sparse-row copies of
the kept weights do the three products of a training step with a fraction of the multiply-adds:

    forward       y  = A x          A = CSR of M ⊙ W (rows: outputs)
    input grad    gx = Aᵀ g         a CSR of the transpose (rows: inputs), same kept set
    weight grad   gW = (gᵀ x) at M  sampled dense-dense product (SDDMM): kept entries only

The structure (row pointers, column indices and where each kept weight sits in the parameter) is
built once per mask and reused until the mask changes; each call gathers the current values, so it
serves trained networks and Polyak targets alike. The products run on sparserl.native's kernels
(C, compiled on first use; ≈ 2x PyTorch's CPU CSR product) or, where those cannot be built, on
PyTorch's CSR kernels. Activations leave a sparse layer stored features-major (E, out, B), the
layout the CSR product writes; dense layers fed such an input keep that orientation (see
sparserl.nets.layers), and input gradients come back in their input's layout, so no elementwise op
runs on mismatched layouts.

The weight gradient is scattered into a dense gradient that is zero at pruned positions, which is
what masked dense training produces, so the optimiser, the engine's hooks and checkpoints see no
difference. That gradient's memory is reused from step to step while nothing else holds it
(`GradientBuffer`): only the kept positions are written, the pruned ones stay zero, and a fresh
parameter-sized allocation (page faults and a zero fill: ≈ 6 ms for a 2 x 2048 x 2048 ensemble
layer) is avoided. Measured on 2 cores (see BENCHMARKS.md), this pays at ≥ 75 % sparsity and
widths ≥ 1024; `auto` measures each layer.

Steps that need the dense gradient (RigL's growth step, N:M with STE or SR-STE) run the masked
dense product instead: the method says so through `Method.dense_gradient_needed`.
"""

from __future__ import annotations

import torch

from sparserl import kernels, native
from sparserl.sparsity.structure import Structure

EXECUTIONS = ("dense", "csr", "auto", "semi_structured")
"""How masked layers run in training; semi_structured is in sparserl.sparsity.semi_structured."""
SPARSE_MARGIN = 0.8
"""auto takes the CSR path for a layer only if its forward + backward measures below 0.8x dense."""


def _storage_users(tensor: torch.Tensor) -> int | None:
    """How many tensors share `tensor`'s memory (None where PyTorch cannot tell)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return None if count is None else count(tensor.untyped_storage()._cdata)


class GradientBuffer:
    """Parameter-shaped weight-gradient memory for one sparse-executed layer, reused across steps.

    `take()` returns a tensor on that memory whenever no gradient handed out earlier is still alive
    (the optimiser's `zero_grad(set_to_none=True)` released it): the previous step wrote only kept
    positions, so the pruned ones are still zero and the caller overwrites every kept one. While an
    earlier gradient is alive (kept by `torch.autograd.grad` callers, or not yet released), `take()`
    returns fresh zeros instead, so no gradient a caller holds is ever overwritten."""

    def __init__(self):
        self.memory: torch.Tensor | None = None
        self.alone: int | None = None
        """Users of the memory's storage counted when only `memory` held it (None: cannot count)."""

    def take(self, like: torch.Tensor) -> torch.Tensor:
        """A flat gradient for a parameter like `like`: zero wherever the caller does not write."""
        memory = self.memory
        if memory is not None and memory.numel() == like.numel() and memory.dtype == like.dtype \
                and self.alone is not None and _storage_users(memory) == self.alone:
            return memory.view(-1)  # a new tensor object on the same memory, which autograd adopts as .grad
        self.memory = torch.zeros(like.numel(), dtype=like.dtype)
        self.alone = _storage_users(self.memory)
        return self.memory.view(-1)

    def reset(self) -> None:
        """Forget the memory (the kept set changed: earlier kept positions may now be pruned)."""
        self.memory = None


class _SparseLinear(torch.autograd.Function):
    """y[e] = x[e] A[e]ᵀ + b[e] for the listed members e of a (possibly ensemble) layer.

    x: (B, in) shared by all members or (E, B, in); weight: the whole parameter; bias: (E, out)
    rows for the listed members (or None). Output yᵀ, (E, out, B): the CSR products write that
    layout, and `sparse_linear` returns its transposed view."""

    @staticmethod
    def forward(ctx, x, weight, bias, structures, buffer):
        flat = weight.detach().reshape(-1)
        shared = x.dim() == 2
        members = len(structures)
        out_t = x.new_empty(members, structures[0].shape[0], x.shape[-2])
        compacts = [s.compact(flat) for s in structures]
        # xᵀ (in, B) contiguous, once per distinct input: the CSR product and the backward's SDDMM
        # both run ≈ 10 % faster on it than on a transposed view (and a copy costs ≈ 5 % of either)
        inputs_t = [_contiguous_t(x)] if shared else [_contiguous_t(x[e]) for e in range(members)]
        fast = native.available()
        for e, (s, compact) in enumerate(zip(structures, compacts)):
            xe_t = inputs_t[0 if shared else e]
            if fast:
                native.csr_mm(s.crow, s.col, s.values(compact), xe_t, None if bias is None else bias[e], out_t[e])
                continue
            a = s.matrix(flat, compact)
            if xe_t.shape[1] == 1 and bias is not None:  # acting: a matrix-vector product
                torch.addmv(bias[e], a, xe_t[:, 0], out=out_t[e, :, 0])
            elif bias is None:
                torch.mm(a, xe_t, out=out_t[e])
            else:
                torch.addmm(bias[e].unsqueeze(1), a, xe_t, out=out_t[e])
        ctx.structures, ctx.shared, ctx.compacts = structures, shared, compacts
        ctx.features_major = kernels.features_major(x)
        ctx.buffer = buffer if len(structures) == _members(weight) else None  # every kept position rewritten
        ctx.save_for_backward(*inputs_t, weight)
        ctx.has_bias = bias is not None
        return out_t

    @staticmethod
    def backward(ctx, grad):  # grad: (E, out, B), like the output
        *inputs_t, weight = ctx.saved_tensors
        structures, shared = ctx.structures, ctx.shared
        grad_x = grad_w = grad_b = None
        fast = native.available()
        if fast:
            grad = grad.contiguous()
        if ctx.needs_input_grad[0]:
            grad_x_t = grad.new_empty(len(structures), structures[0].shape[1], grad.shape[2])
            for e, (s, compact) in enumerate(zip(structures, ctx.compacts)):
                if fast:
                    native.csr_mm(s.crow_t, s.col_t, s.values_t(compact), grad[e], None, grad_x_t[e])
                else:
                    torch.mm(s.matrix_t(compact), grad[e], out=grad_x_t[e])
            grad_x = grad_x_t.sum(0).t() if shared else grad_x_t.transpose(1, 2)
            if not ctx.features_major:  # in x's own layout: the ReLU backward before this layer
                grad_x = grad_x.contiguous()  # then runs on matching layouts (≈ 10x faster)
        if ctx.needs_input_grad[1]:
            buffer = ctx.buffer
            grad_flat = torch.zeros(weight.numel(), dtype=weight.dtype) if buffer is None else buffer.take(weight)
            for e, s in enumerate(structures):
                xe_t = inputs_t[0 if shared else e]
                if fast:
                    values = native.sddmm(s.crow, s.col, grad[e], xe_t, grad.new_empty(len(s.col)))
                else:
                    values = torch.sparse.sampled_addmm(s.pattern, grad[e], xe_t.t(), beta=0.0).values()
                s.scatter(grad_flat, values)
            grad_w = grad_flat.view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(2)
        return grad_x, grad_w, grad_b, None, None


def _members(weight: torch.Tensor) -> int:
    return weight.shape[0] if weight.dim() == 3 else 1


def _contiguous_t(x: torch.Tensor) -> torch.Tensor:
    """xᵀ of a (B, in) input as a contiguous (in, B) tensor (free when x is a transposed view)."""
    return x.t() if x.t().is_contiguous() else x.t().contiguous()


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  structures: list[Structure], buffer: GradientBuffer | None = None) -> torch.Tensor:
    """Apply the masked layer through CSR products (see the module docstring); output (E, B, out).
    With `buffer`, the weight gradient reuses its memory (see GradientBuffer)."""
    return _SparseLinear.apply(x, weight, bias, structures, buffer).transpose(1, 2)


class LayerExecutor:
    """Runs one layer of a network (or of a target copy) through CSR products while its mask holds.

    Installed by `Sparsifier.execute_sparse` as the layer module's `executor` (the interface
    sparserl.nets.layers.SparseExecutor declares); the layer's forward calls it. It keeps one
    `Structure` per ensemble member (one for a plain linear layer)."""

    def __init__(self, group, index: int, layer, mode: str, batch: int, needs_dense=lambda: False):
        self.group, self.index, self.layer, self.mode, self.batch = group, index, layer, mode, batch
        self.needs_dense = needs_dense
        self.version = -1
        self.density = 1.0
        self.structures: list[Structure] = []
        self.use_sparse = mode == "csr"
        self.gradient = GradientBuffer()

    def _refresh(self, weight: torch.Tensor) -> None:
        density = max(budget[self.group.sparse[self.index]] for budget in self.group.budgets)
        if self.mode == "auto" and not self.use_sparse and self.version >= 0 and density == self.density:
            self.version = self.group.mask_version  # measured slower sparse at this density: no structure needed
            return
        self.density = density
        mask = self.group.masks[self.index]
        positions = torch.arange(weight.numel()).view(weight.shape)
        mask_view, position_view = self.layer.view(mask), self.layer.view(positions)
        self.structures = [Structure.build(mask_view[e], position_view[e]) for e in range(mask_view.shape[0])]
        self.gradient.reset()
        self.version = self.group.mask_version
        if self.mode == "auto":
            self.use_sparse = _sparse_is_faster(self.structures[0], self.batch)

    def active(self, weight: torch.Tensor) -> bool:
        """Whether this call should take the sparse path (refreshing the structure if the mask changed)."""
        if torch.is_grad_enabled() and weight.requires_grad and self.needs_dense():
            return False
        if self.version != self.group.mask_version:
            self._refresh(weight)
        return self.use_sparse

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 members: slice | None = None) -> torch.Tensor:
        structures = self.structures if members is None else self.structures[members]
        return sparse_linear(x, weight, bias, structures, self.gradient)


_FASTER: dict[tuple, bool] = {}


def _sparse_is_faster(structure: Structure, batch: int) -> bool:
    """Time forward + backward of one member both ways on random data (cached per shape, kept
    count, batch, thread count and kernel library)."""
    out, fan_in = structure.shape
    key = (out, fan_in, len(structure.col), batch, torch.get_num_threads(), native.available())
    if key not in _FASTER:
        with torch.enable_grad():  # may be called first under no_grad (a target's forward)
            _FASTER[key] = _measure(structure, batch)
    return _FASTER[key]


def _measure(structure: Structure, batch: int) -> bool:
    out, fan_in = structure.shape
    generator = torch.Generator().manual_seed(0)  # the run's own random streams stay untouched
    mask = kernels.csr_from_parts(structure.crow, structure.col, torch.ones(len(structure.col)), (out, fan_in))
    mask = mask.to_dense()
    alone = Structure.build(mask, torch.arange(out * fan_in).view(out, fan_in))  # positions in a plain (out, in)
    weight = (torch.randn(out, fan_in, generator=generator) * mask).requires_grad_()
    x = torch.randn(batch, fan_in, generator=generator).requires_grad_()

    def dense():
        torch.nn.functional.linear(x, weight).sum().backward()

    def sparse():
        sparse_linear(x, weight, None, [alone]).sum().backward()

    times = kernels.time_interleaved({"dense": dense, "sparse": sparse})
    # sparse must win clearly: the layer's share of a whole update also pays the CSR path's gathers
    return times["sparse"] < SPARSE_MARGIN * times["dense"]
