"""rigl: RLx2's topology evolution (RigL, Evci et al. 2020, per network; Tan et al. 2023): SET's
loop with growth by the |dense gradient| of the network's own loss on the update step's batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparserl.sparsity.methods.base import transient
from sparserl.sparsity.methods.drop_grow import DropAndGrow, DropGrowState


@dataclass
class RigLState(DropGrowState):
    scores: list | None = transient(default=None)
    """|dense gradient| of each sparse layer at the update step, saved before masking."""


class RigL(DropAndGrow):
    """RLx2: every 10 000 own optimiser steps, zeta0 = 0.5 cosine-annealed to the end, 90 %."""

    name = "rigl"
    defaults = {"sparsity": 0.9, "update_interval": 10_000, "drop_fraction": 0.5, "drop_schedule": "cosine"}
    State = RigLState

    def dense_gradient_needed(self, group) -> bool:
        return self.due(group)

    def before_update(self, group) -> None:
        group.state.scores = [layer.param.grad.abs() if layer.param.grad is not None
                              else torch.zeros_like(layer.param) for layer in group.sparse_layers]

    def grow_scores(self, group, index: int) -> torch.Tensor:
        return group.state.scores[index]

    def after_update(self, group) -> None:
        group.state.scores = None

    def training_flops(self, group, dense: float, sparse: float) -> float:
        """Plus a dense weight gradient at each topology update."""
        interval = self.interval()
        return 3.0 * sparse + ((dense - sparse) / interval if interval else 0.0)
