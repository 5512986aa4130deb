"""The base method: a fixed mask (static sparsity, Ma et al. 2025; RLx2's "SS" baseline).

A method decides each network's layer densities and initial masks, and what happens around each
optimiser step. The base keeps pruned weights at exactly 0 by masking gradients before the step:
with zero gradients and zero moments there, Adam (with or without weight decay) never moves a
pruned weight, so no pass over the weights is needed after the step; Polyak averaging then keeps
the targets' zeros as well.
"""

from __future__ import annotations

import torch
from torch import nn

from sparserl.errors import ConfigError
from sparserl.sparsity.budget import layer_densities
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.layers import SparseLayer
from sparserl.sparsity.masks import magnitude_mask, random_mask


def to_param_layout(layer: SparseLayer, view_tensor: torch.Tensor) -> torch.Tensor:
    """A (members, out, fan_in) tensor written into a new tensor laid out like the layer's weight."""
    out = torch.zeros_like(layer.param, dtype=torch.float32, memory_format=torch.contiguous_format)
    layer.view(out).copy_(view_tensor)
    return out


class Method:
    """Static sparsity; subclasses override the hooks they need."""

    name = "static"
    changes_masks = False
    """Whether masks change during training (then SAD is logged)."""

    def __init__(self, config: SparsityConfig, generator: torch.Generator):
        self.config, self.generator = config, generator

    # --- budgets and initial masks ------------------------------------------------------------
    def forced_dense(self, layers: list[SparseLayer]) -> set[int]:
        dense = set()
        if self.config.keep_first_dense:
            dense.add(0)
        if self.config.keep_last_dense:
            dense.add(len(layers) - 1)
        return dense

    def level(self, name: str, sparsity: float | None) -> float:
        if sparsity is not None:
            return sparsity
        key = f"{name}_sparsity"
        return self.config.default(key if hasattr(self.config, key) else "actor_sparsity")

    def densities(self, name: str, module: nn.Module, layers: list[SparseLayer],
                  sparsity: float | None) -> list[float]:
        """Target density of every layer, from the configured budget."""
        sparsity = self.level(name, sparsity)
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"{name}: sparsity must be in [0, 1), got {sparsity!r}")
        extra = 0
        if self.config.budget_scope == "all":
            weights = {id(layer.param) for layer in layers}
            extra = sum(p.numel() for p in module.parameters() if id(p) not in weights)
        return layer_densities([layer.shape for layer in layers], sparsity, self.config.distribution,
                               frozenset(self.forced_dense(layers)), extra, self.config.layer_lambdas, owner=name)

    def check(self, group) -> None:
        """Refuse settings this method cannot run with (before any work)."""

    def initial_mask(self, group, index: int) -> torch.Tensor:
        layer = group.sparse_layers[index]
        keep = group.kept(index)
        if self.config.mask_init == "magnitude":
            view = magnitude_mask(layer.view(layer.param.detach()), keep)
        else:
            view = random_mask(layer.view(layer.param.detach()).shape, keep, self.generator)
        return to_param_layout(layer, view)

    def setup(self, group) -> None:
        """Called once masks exist and before weights are masked (STE keeps the dense weights)."""

    # --- around each optimiser step -----------------------------------------------------------
    def pre_step(self, group) -> None:
        group.mask_gradients()

    def post_step(self, group) -> None:
        pass

    def dense_gradient_needed(self, group) -> bool:
        """Whether the coming optimiser step needs the gradient at pruned positions too (then sparse
        execution runs this step's products densely). Masked-gradient methods never do."""
        return False

    def interval(self) -> int:
        return int(self.config.default("update_interval") or 0)

    def due(self, group) -> bool:
        """Whether the step being taken is a scheduled mask update."""
        interval = self.interval()
        return interval > 0 and (group.step + 1) % interval == 0

    # --- targets ------------------------------------------------------------------------------
    def mask_targets(self, group) -> None:
        """After a mask change: targets share the online masks (RLx2, RNM-TD3), or, for DS-TD3's
        magnitude target masks, are pruned to the online count."""
        if self.config.target_mask == "magnitude":
            self.target_update(group)
        else:
            for weights in group.target_weights:
                torch._foreach_mul_(weights, group.masks)
        group.targets_dirty = False

    def target_update(self, group) -> None:
        """After a Polyak update. Shared masks need nothing: averaging keeps the zeros. DS-TD3 prunes
        each target weight to the online active count by its own magnitudes."""
        if self.config.target_mask != "magnitude":
            return
        for weights in group.target_weights:
            for layer, weight, mask in zip(group.sparse_layers, weights, group.masks):
                keep = int(layer.view(mask)[0].sum())
                weight.mul_(to_param_layout(layer, magnitude_mask(layer.view(weight), keep)))

    def pop_flips(self, group) -> torch.Tensor:
        """SAD per sparse layer: mask entries changed by the latest mask update, if one happened since
        the last call (else 0)."""
        if not group.extra.pop("updated", False):
            return torch.zeros(len(group.sparse))
        return group.flips.clone()

    # --- checkpointing of method state --------------------------------------------------------
    def extra_state(self, group) -> dict:
        return {}

    def load_extra_state(self, group, state: dict) -> None:
        pass
