"""set: sparse evolutionary training with random regrowth (Mocanu et al. 2018; DS-TD3, Sokar et al.
2022): as rigl, but the k regrown positions are drawn uniformly at random among the inactive
ones. DS-TD3 settings: every 1 000 steps, constant drop fraction 0.05."""

from __future__ import annotations

import torch

from sparserl.sparsity.methods.rigl import RigL


class SET(RigL):
    name = "set"

    def dense_gradient_needed(self, group) -> bool:
        return False

    def save_scores(self, group) -> None:
        """Random growth needs no gradient."""

    def grow_scores(self, group, index: int) -> torch.Tensor:
        param = group.sparse_layers[index].param
        return torch.rand(param.shape, generator=self.generator)
