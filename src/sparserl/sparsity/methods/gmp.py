"""gmp: gradual magnitude pruning (Zhu & Gupta 2017; Graesser et al. 2022; Obando-Ceron et al. 2024).

Dense start; every `update_interval` (1 000) optimiser steps between `gmp_start` (20 %) and
`gmp_end` (80 %) of a network's steps the sparsity follows s_t = s_F * (1 - (1 - p)^3), p the
progress between start and end, spread over layers by the configured budget; each layer keeps its
largest-|w| active weights. Pruned weights and their optimiser moments are zeroed and never regrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparserl.sparsity.budget import layer_densities
from sparserl.sparsity.masks import topk_mask
from sparserl.sparsity.methods.base import Method, State, to_param_layout, transient


@dataclass
class GMPState(State):
    pruned: bool = False
    """A pruning step has happened: gradients are masked from then on."""
    final_budgets: list = transient(default_factory=list)
    """The layer densities at the final level(s) (the group's `levels`), per level."""


class GMP(Method):
    """Cubic pruning schedule to the final level (default 90 %), a pruning step every 1 000 steps."""

    name = "gmp"
    defaults = {"sparsity": 0.9, "update_interval": 1_000}
    changes_masks = True
    State = GMPState

    def check(self, group) -> None:
        self.require_schedule(group)

    def initial_mask(self, group, index: int) -> torch.Tensor:
        return torch.ones_like(group.sparse_layers[index].param, dtype=torch.float32)

    def setup(self, group) -> None:
        group.state.final_budgets = [list(budget) for budget in group.budgets]
        group.budgets = [[1.0] * len(budget) for budget in group.budgets]  # dense until pruning starts

    def progress(self, group, step: int) -> float:
        """Progress p of the schedule at `step`, from 0 at gmp_start to 1 at gmp_end."""
        start = self.config.gmp_start * group.total_steps
        end = self.config.gmp_end * group.total_steps
        return min(1.0, max(0.0, (step - start) / (end - start)))

    def due(self, group) -> bool:
        if not self.interval() or group.budgets == group.state.final_budgets:
            return False
        step = group.step + 1
        if step < self.config.gmp_start * group.total_steps:
            return False
        return step % self.interval() == 0 or self.progress(group, step) >= 1.0

    def plain(self, group) -> bool:
        return not self.due(group)  # (before the first pruning the masks are all ones)

    def pre_step(self, group) -> None:
        if group.state.pruned:
            group.mask_gradients()

    def post_step(self, group) -> None:
        if not self.due(group):
            return
        state = group.state
        progress = self.progress(group, group.step + 1)
        if progress >= 1.0:
            group.budgets = [list(budget) for budget in state.final_budgets]
        else:
            shapes = [layer.shape for layer in group.layers]
            group.budgets = [
                layer_densities(shapes, final * (1.0 - (1.0 - progress) ** 3), self.config.distribution,
                                frozenset(i for i, d in enumerate(budget) if d >= 1.0), 0,
                                self.config.layer_lambdas, owner=group.name)
                for final, budget in zip(group.levels, state.final_budgets)]
        group.flips.zero_()
        for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
            view = layer.view
            scores = torch.where(view(mask) > 0, view(layer.param).abs(), -1.0)
            new = to_param_layout(layer, topk_mask(scores, group.kept(i)))
            pruned = mask - new
            mask.copy_(new)
            layer.param.mul_(mask)
            group.reset_moments(i, pruned)
            group.flips[i] += group.agent_sums(i, pruned)
        state.pruned = state.updated = True
        group.targets_dirty = True

    def training_flops(self, group, dense: float, sparse: float) -> float:
        """At the schedule's time-averaged sparsity: dense until gmp_start, 3/4 of the final level on
        average during the cubic ramp, the final level afterwards (the mean of the agents' levels
        for a population's network)."""
        final, c = sum(group.levels) / len(group.levels), self.config
        mean_sparsity = final * (0.75 * (c.gmp_end - c.gmp_start) + (1.0 - c.gmp_end))
        return 3.0 * (dense * (1.0 - mean_sparsity) if final > 0 else dense)
