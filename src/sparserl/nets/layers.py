"""Layers of sparserl's networks: ensembles of linear maps in one batched product, per-member
LayerNorm, running observation normalisation, and the interface through which sparse execution
reaches a layer.

`EnsembleLinear` holds E members' weights as one (E, in, out) tensor and runs them in one batched
matmul, so twin critics cost one op per layer; each member is initialised like an ``nn.Linear`` of
the same shape. `Linear` is ``nn.Linear`` with that same interface.

Sparse execution: a layer declares `executor` (None by default); the sparsity engine may set it
to an object with the `SparseExecutor` interface (sparserl.sparsity.execution.LayerExecutor), and
the layer then asks it whether to run its product through sparse kernels.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparserl import kernels


class SparseExecutor(Protocol):
    """What a layer asks of the sparse kernels set on it."""

    use_sparse: bool
    """Whether the layer's products run sparse while its mask holds (the layer's neighbours then
    exchange features-major activations with it)."""

    def active(self, weight: torch.Tensor) -> bool:
        """Whether this call takes the sparse path."""

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 member: int | None = None) -> torch.Tensor:
        """The layer's output (E, B, out) through sparse kernels."""


def runs_sparse(layer: nn.Module | None) -> bool:
    """Whether `layer` is set to run through sparse kernels (then it wants features-major input)."""
    executor = getattr(layer, "executor", None)
    return executor is not None and executor.use_sparse


def relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU in place on a fresh contiguous layer output; out of place on the transposed outputs of
    sparse-executed layers, where in-place ReLU is several times slower on CPU."""
    return torch.relu_(x) if x.is_contiguous() else torch.relu(x)


class _FeaturesMajor(torch.autograd.Function):
    """yᵀ = Wᵀ xᵀ + b for an ensemble layer stored input-major: xᵀ (E, in, B) in, yᵀ (E, out, B)
    out, each gradient computed straight into its own layout. (Autograd through a transposed view
    of the weight would produce a transposed weight gradient and copy it into the parameter's
    layout: 15 % slower for a 2 x 2048 x 2048 layer.)"""

    @staticmethod
    def forward(ctx, x_t, weight, bias):
        ctx.save_for_backward(x_t, weight)
        return torch.baddbmm(bias.transpose(1, 2), weight.transpose(1, 2), x_t)

    @staticmethod
    def backward(ctx, grad):
        x_t, weight = ctx.saved_tensors
        grad_x = torch.bmm(weight, grad) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(x_t, grad.transpose(1, 2)) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(2).unsqueeze(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """nn.Linear that sparse execution can reach (`executor`); computes features-major on request."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features)
        self.executor: SparseExecutor | None = None

    def run(self, x: torch.Tensor, features_major: bool = False) -> torch.Tensor:
        """The layer's output, called directly by bodies (no module dispatch: it matters at batch 1)."""
        executor = self.executor
        if executor is not None and executor.active(self.weight):
            return executor(x, self.weight, self.bias.unsqueeze(0))[0]
        if x.shape[0] > 1 and (features_major or kernels.features_major(x)):
            return torch.addmm(self.bias.unsqueeze(1), self.weight, x.t()).t()  # see kernels.features_major
        return F.linear(x, self.weight, self.bias)

    forward = run


class EnsembleLinear(nn.Module):
    """E independent linear maps in one batched matmul.

    ``weight`` is stored input-major, (E, in, out), so the forward is ``x @ weight`` with no
    transpose and autograd's weight gradient comes out in the parameter's own layout (a transposed
    (E, out, in) parameter would cost an extra copy per layer and step). ``weight_oi`` gives the
    nn.Linear-style (E, out, in) view, whose rows are the output units' fan-ins. ``bias`` is (E, 1, out).

    Input (B, in) is shared by all members; input (E, B, in) gives each member its own.
    Output is (E, B, out).
    """

    sparse_fan_in_dim = 1
    """The fan-in axis of `weight`, along which N:M groups run (for the sparsity engine)."""

    def __init__(self, in_features: int, out_features: int, ensemble_size: int):
        super().__init__()
        self.in_features, self.out_features, self.ensemble_size = in_features, out_features, ensemble_size
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_features))
        self.executor: SparseExecutor | None = None
        self.reset_parameters()

    @property
    def weight_oi(self) -> torch.Tensor:
        """The weights as (E, out, in), a view of `weight`."""
        return self.weight.transpose(1, 2)

    @staticmethod
    def sparse_weight_view(tensor: torch.Tensor) -> torch.Tensor:
        """A tensor laid out like `weight` seen as (E, out, in), for the sparsity engine."""
        return tensor.transpose(1, 2)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for member in range(self.ensemble_size):  # nn.Linear's default init, per member
                nn.init.kaiming_uniform_(self.weight_oi[member], a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, detach: bool = False, member: int | None = None,
                features_major: bool = False) -> torch.Tensor:
        """`detach` uses the weights without recording their gradient (e.g. a critic inside the
        actor's loss); `member` runs only that member (output (1, B, out)); `features_major` stores
        the output (E, out, B), for a sparse-executed layer next (see kernels.features_major)."""
        weight, bias = self.weight, self.bias
        executor = self.executor
        if executor is not None and executor.active(weight.detach() if detach else weight):
            if detach:
                weight, bias = weight.detach(), bias.detach()
            rows = bias.view(bias.shape[0], -1)
            return executor(x, weight, rows if member is None else rows[member:member + 1], member)
        if member is not None:
            weight, bias = weight[member:member + 1], bias[member:member + 1]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        if x.dim() == 2:
            x = x.expand(weight.shape[0], *x.shape)
        if features_major or kernels.features_major(x):
            return _FeaturesMajor.apply(x.transpose(1, 2), weight, bias).transpose(1, 2)
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"ensemble_size={self.ensemble_size}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a separate scale and shift per ensemble member."""

    def __init__(self, width: int, members: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))

    def forward(self, x: torch.Tensor, detach: bool = False, member: int | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if member is not None:
            weight, bias = weight[member:member + 1], bias[member:member + 1]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        return F.layer_norm(x, x.shape[-1:]) * weight + bias


class RunningNorm(nn.Module):
    """Per-dimension running mean and variance (parallel Welford, initial count 1e-4), applied as
    (x - mean) / sqrt(var + 1e-8). Statistics are buffers: checkpointed, never learned."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).double()
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean.double()
        mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean.copy_(mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)


def welford_update(mean, m2, count, x):
    """One sample x of Welford's running statistics, for floats or arrays: the new mean and sum of
    squared deviations, `count` already counting x."""
    delta = x - mean
    mean = mean + delta / count
    return mean, m2 + delta * (x - mean)


def welford_variance(m2, count):
    """The unbiased variance of Welford's statistics, 1 until there are two samples (Elsayed et al.);
    for a tensor count without a host branch (so a compiled graph can take it)."""
    if isinstance(count, torch.Tensor):
        return torch.where(count >= 2, m2 / (count - 1).clamp(min=1.0), 1.0)
    return m2 / (count - 1) if count >= 2 else 1.0


class WelfordNorm(nn.Module):
    """Per-sample running mean and unbiased variance (Welford; variance 1 until two samples), applied
    as (x - mean) / sqrt(var + 1e-8) to the first `dim - keep` inputs; the last `keep` (a time
    feature) pass unchanged (mean 0, var 1). The observation normalisation of Elsayed et al. 2024.
    Float64 sums are kept beside the float32 `mean` and `var` (what exported policies hold); the
    forward is one fused x * scale + shift with scale = 1 / sqrt(var + 1e-8), shift = -mean * scale."""

    def __init__(self, dim: int, keep: int = 0):
        super().__init__()
        self.normalised = dim - keep
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("sum_mean", torch.zeros(self.normalised, dtype=torch.float64))
        self.register_buffer("sum_m2", torch.zeros(self.normalised, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones(dim), persistent=False)
        self.register_buffer("shift", torch.zeros(dim), persistent=False)
        self._refresh()

    def _views(self) -> tuple[np.ndarray, ...]:
        """NumPy views of the buffers (CPU), made once: the update is a few NumPy operations."""
        views = self.__dict__.get("_numpy")
        if views is None or views[0].ctypes.data != self.sum_mean.data_ptr():
            k = self.normalised
            views = (self.sum_mean.numpy(), self.sum_m2.numpy(), self.count.numpy(), self.mean.numpy()[:k],
                     self.var.numpy()[:k], self.scale.numpy()[:k], self.shift.numpy()[:k])
            self.__dict__["_numpy"] = views
        return views

    @torch.no_grad()
    def update(self, x) -> None:
        """Add one observation (an array or tensor of `dim` values) to the statistics."""
        self._add(np.asarray(x, dtype=np.float64)[: self.normalised], *self._views())

    def add(self, x: torch.Tensor) -> None:
        """`update` in tensor operations, for a compiled graph (sparserl.streaming.capture)."""
        k = self.normalised
        self._add(x[:k].double(), self.sum_mean, self.sum_m2, self.count, self.mean[:k], self.var[:k],
                  self.scale[:k], self.shift[:k])

    @staticmethod
    def _add(x, mean, m2, count, mean32, var32, scale, shift) -> None:
        """One observation into the statistics, in place, on NumPy views or tensors alike."""
        count += 1.0
        new_mean, new_m2 = welford_update(mean, m2, count, x)
        mean[...], m2[...] = new_mean, new_m2
        mean32[...] = mean
        var32[...] = welford_variance(m2, count)
        scale[...] = (var32 + 1e-8) ** -0.5
        shift[...] = -mean32 * scale

    def _refresh(self) -> None:
        _, _, _, mean32, var32, scale, shift = self._views()
        scale[:] = 1.0 / np.sqrt(var32.astype(np.float64) + 1e-8)
        shift[:] = -mean32 * scale

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x, self.scale)
