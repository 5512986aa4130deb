"""One network under the sparsity engine (sparserl.sparsity.engine): its optimiser, targets, layers,
budgets, masks and counters, with the per-member and per-agent counts the methods use."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sparserl.sparsity.budget import kept_per_member
from sparserl.sparsity.layers import SparseLayer
from sparserl.sparsity.methods.base import State


@dataclass
class Group:
    """One network under the engine: its optimiser, targets, sparse layers, masks and counters."""

    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    targets: list[nn.Module]
    layers: list[SparseLayer]
    """Every sparsifiable layer of the network, in order (dense ones included, for accounting)."""
    budgets: list[list[float]]
    """Target density of each of `layers` (1.0 = dense), one list per level (see `levels`)."""
    total_steps: int | None
    uses: list[int] = field(default_factory=list)
    """Times each of `layers`' weights is applied per sample (a convolution's output positions; 1 for
    a linear layer): the FLOPs weights of the accounting. Empty: 1 for every layer."""
    levels: tuple[float, ...] = (0.0,)
    """The network's sparsity (the budget's global level): one level, or one per agent when the
    network holds a population whose agents have levels of their own."""
    agents: int = 1
    """Agents the network holds (a population's K; 1 otherwise): member m of every layer is agent m % agents's."""
    sparse: list[int] = field(default_factory=list)
    """Indices into `layers` of the layers that carry a mask."""
    masks: list[torch.Tensor] = field(default_factory=list)
    """One float mask per sparse layer, laid out like its weight."""
    target_weights: list[list[torch.Tensor]] = field(default_factory=list)
    """target_weights[j][i]: the weight of sparse layer i in target network j."""
    step: int = 0
    """Optimiser steps this network has taken."""
    mask_version: int = 0
    """Bumped whenever the masks change (sparse execution rebuilds its structures then)."""
    targets_dirty: bool = False
    """Masks changed during this step: the targets must be masked again."""
    flips: torch.Tensor | None = None
    """Mask entries changed by the latest mask update, (sparse layers, agents) (SAD; see Method.pop_flips)."""
    state: State = field(default_factory=State)
    """The method's typed state for this network (its class's `State`; checkpointed fields)."""
    params: list[nn.Parameter] = field(default_factory=list)
    """The weights of the sparse layers (the set never changes)."""
    hooks: list = field(default_factory=list)

    @property
    def sparse_layers(self) -> list[SparseLayer]:
        return [self.layers[i] for i in self.sparse]

    def grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(gradients, masks) of the sparse layers that have a gradient."""
        grads, masks = [], []
        for layer, mask in zip(self.sparse_layers, self.masks):
            if layer.param.grad is not None:
                grads.append(layer.param.grad)
                masks.append(mask)
        return grads, masks

    def mask_gradients(self) -> None:
        grads, masks = self.grads()
        if grads:
            torch._foreach_mul_(grads, masks)

    def reset_moments(self, index: int, changed: torch.Tensor) -> None:
        """Zero every optimiser state tensor of sparse layer `index` at `changed` positions."""
        param = self.sparse_layers[index].param
        keep = 1.0 - changed
        for value in self.optimizer.state.get(param, {}).values():
            if torch.is_tensor(value) and value.shape == param.shape:
                value.mul_(keep)

    def kept(self, index: int) -> int | list[int]:
        """Kept weights per member of sparse layer `index` (from its target densities): one count,
        or, where agents have levels of their own, each member's."""
        layer = self.layers[self.sparse[index]]
        counts = [kept_per_member(layer.shape, budget[self.sparse[index]]) for budget in self.budgets]
        if len(counts) == 1:
            return counts[0]
        return [counts[m % len(counts)] for m in range(layer.shape.members)]

    def agent_sums(self, index: int, tensor: torch.Tensor) -> torch.Tensor:
        """Sum of `tensor` (laid out like sparse layer `index`'s weight) over each agent's members: (agents,)."""
        per_member = self.sparse_layers[index].view(tensor).flatten(1).sum(1)
        return per_member.view(-1, self.agents).sum(0)
