"""set: sparse evolutionary training with random regrowth (Mocanu et al. 2018; DS-TD3, Sokar et al.
2022): drop the smallest |w|, regrow uniformly at random among the inactive positions."""

from __future__ import annotations

import torch

from sparserl.sparsity.masks import uniform_scores
from sparserl.sparsity.methods.drop_grow import DropAndGrow


class SET(DropAndGrow):
    """Random regrowth; DS-TD3's settings: every 1 000 steps, constant drop fraction 0.05, 90 %."""

    name = "set"
    defaults = {"sparsity": 0.9, "update_interval": 1_000, "drop_fraction": 0.05, "drop_schedule": "constant"}

    def grow_scores(self, group, index: int) -> torch.Tensor:
        param = group.sparse_layers[index].param
        return uniform_scores(param.shape, self.generator, param.device)
