"""rigl: RLx2's topology evolution (RigL, Evci et al. 2020, per network; Tan et al. 2023).

Every `update_interval` (Δ = 10 000) optimiser steps of a network, while its step count is within
`topology_end` of its run: per sparse layer (each ensemble member separately), drop the
k = floor(ζ_t * active) active weights of smallest |w| and grow the k inactive positions of largest
|dense gradient| of this step's loss (just-dropped positions eligible); grown weights start at 0.
ζ_t = ζ₀/2 * (1 + cos(π t / T_end)), ζ₀ = 0.5 (or constant). The active count never changes.

Options: skip the optimiser step of an update iteration (RLx2 does); reset the optimiser moments
of dropped and grown weights (default, as jaxpruner) or keep them (RLx2), in which case weights are
re-masked after every step so stale moments cannot move pruned weights.
"""

from __future__ import annotations

import math

import torch

from sparserl.errors import ConfigError
from sparserl.sparsity.masks import drop_and_grow
from sparserl.sparsity.methods.base import Method


class RigL(Method):
    name = "rigl"
    changes_masks = True

    def check(self, group) -> None:
        if group.total_steps is None or group.total_steps <= 0:
            raise ConfigError(f"{self.name} needs the number of optimiser steps {group.name!r} will take "
                              f"(total_steps) for its drop-fraction schedule")

    def t_end(self, group) -> int:
        return int(self.config.topology_end * group.total_steps)

    def due(self, group) -> bool:
        return super().due(group) and group.step + 1 <= self.t_end(group)

    def dense_gradient_needed(self, group) -> bool:
        """RigL grows by the dense gradient of the update step."""
        return self.due(group)

    def drop_fraction(self, group) -> float:
        zeta0 = float(self.config.default("drop_fraction"))
        if self.config.default("drop_schedule") == "constant":
            return zeta0
        return zeta0 / 2 * (1 + math.cos(math.pi * group.step / self.t_end(group)))

    def grow_scores(self, group, index: int) -> torch.Tensor:
        """RigL: |dense gradient| of this step, saved before the gradient is masked."""
        return group.extra["scores"][index]

    def save_scores(self, group) -> None:
        group.extra["scores"] = [layer.param.grad.abs() if layer.param.grad is not None
                                 else torch.zeros_like(layer.param) for layer in group.sparse_layers]

    def pre_step(self, group) -> None:
        if self.due(group):
            self.save_scores(group)
            if self.config.skip_step_on_update:  # the whole network's step is undone in post_step
                params = [p for g in group.optimizer.param_groups for p in g["params"]]
                group.extra["snapshot"] = [
                    (p, p.detach().clone(), {k: v.clone() for k, v in group.optimizer.state.get(p, {}).items()
                                             if torch.is_tensor(v)}) for p in params]
        group.mask_gradients()

    def post_step(self, group) -> None:
        if not self.due(group):
            if group.extra.get("remask"):  # moments kept at pruned positions (RLx2): re-zero the weights
                torch._foreach_mul_(group.params, group.masks)
            return
        snapshot = group.extra.pop("snapshot", None)
        if snapshot is not None:  # the update iteration's step is skipped: put everything back
            for p, saved, state in snapshot:
                p.copy_(saved)
                for key, value in state.items():
                    group.optimizer.state[p][key].copy_(value)
        fraction = self.drop_fraction(group)
        group.flips.zero_()
        for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
            view = layer.view
            new, dropped, grown = drop_and_grow(view(mask), view(layer.param), view(self.grow_scores(group, i)),
                                                fraction)
            view(mask).copy_(new)
            layer.param.mul_(mask)
            changed = torch.zeros_like(mask)
            view(changed).copy_(dropped + grown)
            if self.config.reset_moments:
                group.reset_moments(i, changed)
            group.flips[i] += changed.sum()
        group.extra.pop("scores", None)
        group.extra["updated"] = True
        group.extra["remask"] = not self.config.reset_moments
        group.targets_dirty = True

    def extra_state(self, group) -> dict:
        return {"remask": bool(group.extra.get("remask", False)), "updated": bool(group.extra.get("updated", False))}

    def load_extra_state(self, group, state: dict) -> None:
        group.extra["remask"] = bool(state["remask"])
        group.extra["updated"] = bool(state["updated"])
