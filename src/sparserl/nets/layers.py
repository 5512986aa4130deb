"""Layers of sparserl's networks: ensembles of linear maps in one batched product, per-member
LayerNorm, and the interface through which sparse execution reaches a layer (the input
normalisers are in norms.py).

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
                 members: slice | None = None) -> torch.Tensor:
        """The layer's output (E, B, out) through sparse kernels (only the `members` if given)."""


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

    def forward(self, x: torch.Tensor, detach: bool = False, members: slice | None = None,
                features_major: bool = False) -> torch.Tensor:
        """`detach` uses the weights without recording their gradient (e.g. a critic inside the
        actor's loss); `members` runs only those members (e.g. TD3's first critic of each agent);
        `features_major` stores the output (E, out, B), for a sparse-executed layer next (see
        kernels.features_major)."""
        weight, bias = self.weight, self.bias
        executor = self.executor
        if executor is not None and executor.active(weight.detach() if detach else weight):
            if detach:
                weight, bias = weight.detach(), bias.detach()
            rows = bias.view(bias.shape[0], -1)
            return executor(x, weight, rows if members is None else rows[members], members)
        if members is not None:
            weight, bias = weight[members], bias[members]
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

    def forward(self, x: torch.Tensor, detach: bool = False, members: slice | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        return F.layer_norm(x, x.shape[-1:]) * weight + bias
