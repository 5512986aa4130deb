"""Drop-and-grow topology evolution (SET, RigL): the common loop, with score hooks.

Every `update_interval` optimiser steps of a network, while its step count is within `topology_end`
of its run: per sparse layer (each ensemble member separately), drop the k = floor(zeta_t * active)
active weights of lowest `drop_scores` (|w|) and grow the k inactive positions of highest
`grow_scores` (just-dropped positions eligible); grown weights start at 0. zeta_t = zeta0/2 *
(1 + cos(pi t / T_end)) or constant. The active count never changes.

Options: skip the optimiser step of an update iteration (RLx2 does); reset the optimiser moments
of dropped and grown weights (default, as jaxpruner) or keep them (RLx2), in which case weights are
re-masked after every step so stale moments cannot move pruned weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparserl.sparsity.masks import drop_and_grow
from sparserl.sparsity.methods.base import Method, State, transient


@dataclass
class DropGrowState(State):
    remask: bool = False
    """Moments were kept at changed positions (RLx2): re-zero pruned weights after every step."""
    snapshot: list | None = transient(default=None)
    """The network's parameters and optimiser state before a step that is to be skipped."""


class DropAndGrow(Method):
    """Base of topology-evolving methods: subclasses give `grow_scores` (and may change `drop_scores`)."""

    changes_masks = True
    State = DropGrowState

    def check(self, group) -> None:
        self.require_schedule(group)

    def t_end(self, group) -> int:
        return int(self.config.topology_end * group.total_steps)

    def due(self, group) -> bool:
        return super().due(group) and group.step + 1 <= self.t_end(group)

    def plain(self, group) -> bool:
        return not self.due(group) and not group.state.remask

    def drop_fraction(self, group) -> float:
        zeta0 = float(self.setting("drop_fraction"))
        if self.setting("drop_schedule") == "constant":
            return zeta0
        return zeta0 / 2 * (1 + math.cos(math.pi * group.step / self.t_end(group)))

    # --- the hooks subclasses fill ----------------------------------------------------------------
    def drop_scores(self, group, index: int) -> torch.Tensor:
        """Scores of the active weights of sparse layer `index`; the lowest are dropped (|w|)."""
        return group.sparse_layers[index].param.abs()

    def grow_scores(self, group, index: int) -> torch.Tensor:
        """Scores of the inactive positions of sparse layer `index`; the highest are grown."""
        raise NotImplementedError

    def before_update(self, group) -> None:
        """Called before the optimiser step of an update iteration, while gradients are dense."""

    def after_update(self, group) -> None:
        """Called once an update iteration's topology change is done."""

    # --- the loop -------------------------------------------------------------------------------
    def pre_step(self, group) -> None:
        if self.due(group):
            self.before_update(group)
            if self.config.skip_step_on_update:  # the whole network's step is undone in post_step
                params = [p for g in group.optimizer.param_groups for p in g["params"]]
                group.state.snapshot = [
                    (p, p.detach().clone(), {k: v.clone() for k, v in group.optimizer.state.get(p, {}).items()
                                             if torch.is_tensor(v)}) for p in params]
        group.mask_gradients()

    def post_step(self, group) -> None:
        state = group.state
        if not self.due(group):
            if state.remask:
                torch._foreach_mul_(group.params, group.masks)
            return
        if state.snapshot is not None:  # the update iteration's step is skipped: put everything back
            for p, saved, moments in state.snapshot:
                p.copy_(saved)
                for key, value in moments.items():
                    group.optimizer.state[p][key].copy_(value)
            state.snapshot = None
        fraction = self.drop_fraction(group)
        group.flips.zero_()
        for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
            view = layer.view
            new, dropped, grown = drop_and_grow(view(mask), view(self.drop_scores(group, i)),
                                                view(self.grow_scores(group, i)), fraction)
            view(mask).copy_(new)
            layer.param.mul_(mask)
            changed = torch.zeros_like(mask)
            view(changed).copy_(dropped + grown)
            if self.config.reset_moments:
                group.reset_moments(i, changed)
            group.flips[i] += group.agent_sums(i, changed)
        state.updated = True
        state.remask = not self.config.reset_moments
        group.targets_dirty = True
        self.after_update(group)
