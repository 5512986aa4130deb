"""gmp: gradual magnitude pruning (Zhu & Gupta 2017; Obando-Ceron et al. 2024, SPEC §3.3).

Dense start; every `update_interval` (1 000) optimiser steps between `gmp_start` (20 %) and
`gmp_end` (80 %) of a network's steps the sparsity follows s_t = s_F * (1 - (1 - p)^3), p the
progress between start and end, spread over layers by the configured budget; each layer keeps its
largest-|w| active weights. Pruned weights and their optimiser moments are zeroed and never regrow.
"""

from __future__ import annotations

import torch

from sparserl.sparsity.budget import kept_per_member, layer_densities
from sparserl.sparsity.masks import topk_mask
from sparserl.sparsity.methods.base import to_param_layout
from sparserl.sparsity.methods.rigl import RigL


class GMP(RigL):
    name = "gmp"

    def densities(self, name, module, layers, sparsity):
        self._final_sparsity = self.level(name, sparsity)
        return super().densities(name, module, layers, sparsity)

    def initial_mask(self, group, index: int) -> torch.Tensor:
        return torch.ones_like(group.sparse_layers[index].param, dtype=torch.float32)

    def setup(self, group) -> None:
        group.extra["final_sparsity"] = self._final_sparsity
        group.extra["final_densities"] = list(group.densities)
        group.extra["pruned"] = False
        group.densities = [1.0] * len(group.densities)  # dense until pruning starts

    def sparsity_at(self, group, step: int) -> float:
        start = self.config.gmp_start * group.total_steps
        end = self.config.gmp_end * group.total_steps
        progress = min(1.0, max(0.0, (step - start) / (end - start)))
        return group.extra["final_sparsity"] * (1.0 - (1.0 - progress) ** 3)

    def due(self, group) -> bool:
        if not self.interval() or group.densities == group.extra["final_densities"]:
            return False
        step = group.step + 1
        if step < self.config.gmp_start * group.total_steps:
            return False
        return step % self.interval() == 0 or self.sparsity_at(group, step) >= group.extra["final_sparsity"]

    def pre_step(self, group) -> None:
        if group.extra["pruned"]:
            group.mask_gradients()

    def post_step(self, group) -> None:
        if not self.due(group):
            return
        sparsity = self.sparsity_at(group, group.step + 1)
        if sparsity >= group.extra["final_sparsity"]:
            densities = list(group.extra["final_densities"])
        else:
            shapes = [layer.shape for layer in group.layers]
            dense = frozenset(i for i, d in enumerate(group.extra["final_densities"]) if d >= 1.0)
            densities = layer_densities(shapes, sparsity, self.config.distribution, dense, 0,
                                        self.config.layer_lambdas, owner=group.name)
        group.densities = densities
        group.flips.zero_()
        for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
            keep = kept_per_member(layer.shape, densities[group.sparse[i]])
            view = layer.view
            scores = torch.where(view(mask) > 0, view(layer.param).abs(), -1.0)
            new = to_param_layout(layer, topk_mask(scores, keep))
            pruned = mask - new
            mask.copy_(new)
            layer.param.mul_(mask)
            group.reset_moments(i, pruned)
            group.flips[i] += pruned.sum()
        group.extra["pruned"] = True
        group.extra["updated"] = True
        group.targets_dirty = True

    def extra_state(self, group) -> dict:
        return {"pruned": group.extra["pruned"], "updated": bool(group.extra.get("updated", False))}

    def load_extra_state(self, group, state: dict) -> None:
        group.extra["pruned"] = bool(state["pruned"])
        group.extra["updated"] = bool(state["updated"])
