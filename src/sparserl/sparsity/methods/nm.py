"""nm:N:M: row-wise N:M sparsity kept throughout training (RNM-TD3, Vrce et al. 2026; SR-STE,
Zhou et al. 2021).

Each weight row (one output unit's fan-in) is cut into consecutive groups of M; the N largest |w|
of each group are kept (a last partial group of r keeps ceil(r N / M)), so every unit has the same
fan-in. The projection is recomputed every `update_interval` (ΔT) optimiser steps (1 = every step,
0 = never). Gradient modes:

- masked: only kept weights learn. Pruned weights are 0, so the projection cannot change: the mask
  is static after init.
- ste: a dense latent weight W (sparserl.sparsity.methods.shadow) is trained with the dense
  gradient of the projected weight E ⊙ W, which the network's parameter holds between steps.
- srste: ste plus λ_W (1 - E) ⊙ W added to the gradient (λ_W = 2e-4): weight decay on pruned
  weights only, which steadies the mask.
- shadow: masked gradients on a dense shadow W: only kept weights learn, pruned ones keep the
  values they had when pruned (set aside, not zeroed), and every ΔT steps the mask is re-chosen
  from |W|, so a kept weight that shrinks below a pruned one gives up its place. The reading of
  RNM-TD3's "gradients only for active weights" with its finding that less frequent mask updates
  help; the optimiser moments of entries whose mask changed are zeroed (reset_moments).

The number of mask entries that flip at each re-projection (SAD) is logged per layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from sparserl.errors import ConfigError
from sparserl.sparsity.masks import NMProjector, nm_kept, nm_mask
from sparserl.sparsity.methods.base import Method, State, transient
from sparserl.sparsity.methods.shadow import DenseShadow

_NM = re.compile(r"^nm:(-?\d+):(-?\d+)$")


@dataclass
class NMState(State):
    previous: list = field(default_factory=list, metadata={"bool": True})
    """The masks before the latest re-projection (the projector's own tensors), for SAD."""
    latent: list = field(default_factory=list)
    """The dense latent weights W (STE, SR-STE and the shadow; empty with masked gradients)."""
    projector: NMProjector | None = transient(default=None)
    shadow: DenseShadow | None = transient(default=None)
    same_layout: bool = transient(default=True)


class NM(Method):
    """Row-wise N:M in every sparse layer; re-projected every step by default (SR-STE)."""

    name = "nm"
    usage = "nm:N:M"
    example = "nm:2:4"
    defaults = {"update_interval": 1}
    changes_masks = True
    State = NMState

    @classmethod
    def parse(cls, method: str) -> tuple[int, int]:
        match = _NM.match(method)
        if not match:
            raise ConfigError(f"N:M sparsity is written nm:N:M with integers 1 <= N < M (e.g. nm:2:4), got {method!r}")
        n, m = int(match.group(1)), int(match.group(2))
        if m < 2:
            raise ConfigError(f"{method}: M must be at least 2, got M = {m}")
        if n < 1:
            raise ConfigError(f"{method}: N must be at least 1, got N = {n}")
        if n >= m:
            raise ConfigError(f"{method}: N must be smaller than M (N = M would be dense), got N = {n}, M = {m}")
        return n, m

    @classmethod
    def fixed_level(cls, arguments: tuple) -> float:
        n, m = arguments
        return 1.0 - n / m

    @property
    def nm(self) -> tuple[int, int]:
        return self.parse(self.config.method)

    def pattern(self) -> tuple[int, int]:
        return self.nm

    def densities(self, name, module, layers, sparsity):
        n, m = self.nm
        dense = self.forced_dense(name, layers)
        out = []
        for i, layer in enumerate(layers):
            fan_in = layer.view(layer.param.detach()).shape[-1]
            if i in dense or (fan_in % m and self.config.nm_partial == "dense"):
                out.append(1.0)
            else:
                out.append(nm_kept(fan_in, n, m) / fan_in)
        return out

    def check(self, group) -> None:
        if not group.sparse and len(self.forced_dense(group.name, group.layers)) < len(group.layers):
            raise ConfigError(f"{group.name}: {self.config.method} leaves no layer sparse (all are kept dense)")

    def initial_mask(self, group, index: int) -> torch.Tensor:
        layer = group.sparse_layers[index]
        mask = nm_mask(layer.flat(layer.param.detach()), *self.nm, dim=layer.fan_in_dim)
        return mask.view_as(layer.param) if mask.shape != layer.param.shape else mask

    @property
    def latent(self) -> bool:
        """Dense latent weights are kept (STE, SR-STE and the shadow mode)."""
        return self.config.nm_gradient in ("ste", "srste", "shadow")

    @property
    def straight_through(self) -> bool:
        """The dense gradient trains the latent weights (STE and SR-STE; the shadow mode masks it)."""
        return self.config.nm_gradient in ("ste", "srste")

    def due(self, group) -> bool:
        """Re-projection steps; never with masked gradients, where pruned weights stay 0 and the
        projection could only return the same mask."""
        return self.latent and super().due(group)

    def plain(self, group) -> bool:
        return not self.latent  # masked gradients: the mask never changes

    def dense_gradient_needed(self, group) -> bool:
        """STE and SR-STE train dense latent weights with the dense gradient."""
        return self.straight_through

    def setup(self, group) -> None:
        layers, state = group.sparse_layers, group.state
        if self.latent:  # the dense weights before projection become the trained latent weights
            state.shadow = DenseShadow(group.params)
            state.latent = state.shadow.latents
        sources = state.latent if self.latent else [layer.param.detach() for layer in layers]
        state.projector = NMProjector([layer.flat(w) for layer, w in zip(layers, sources)],
                                      [layer.fan_in_dim for layer in layers], *self.nm)
        state.projector()  # the initial masks, so the first update's flips (SAD) compare against them
        state.previous = state.projector.previous
        state.same_layout = all(layer.flat(layer.param).shape == layer.param.shape for layer in layers)

    def pre_step(self, group) -> None:
        if not self.straight_through:
            group.mask_gradients()
        if not self.latent:
            return
        params, latents = group.params, group.state.latent
        if self.config.nm_gradient == "srste":  # + lambda (1 - E) * W, and (1 - E) * W = W - E * W exactly
            grads = [p.grad for p in params]
            projected, kept_latents = params, latents  # the parameters hold E * W until the copy below
            if any(g is None for g in grads):  # not `None in grads`: that compares tensors (≈ 35 µs)
                keep = [i for i, g in enumerate(grads) if g is not None]
                grads, kept_latents, projected = ([x[i] for i in keep] for x in (grads, latents, params))
            if grads:
                torch._foreach_add_(grads, kept_latents, alpha=self.config.srste_decay)
                torch._foreach_add_(grads, projected, alpha=-self.config.srste_decay)
        group.state.shadow.load(params)  # the optimiser steps the latent weights W

    def post_step(self, group) -> None:
        state = group.state
        if self.straight_through:
            state.shadow.store(group.params)
        elif self.latent:  # the shadow: only kept weights take the step (pruned ones keep their values)
            state.shadow.store_kept(group.params, group.masks)
        if self.due(group):
            new = state.projector()
            state.previous = state.projector.previous
            group.masks[:] = self._param_masks(group, new)
            state.updated = True
            group.targets_dirty = True
            if not self.straight_through and self.config.reset_moments:
                for i, (layer, old) in enumerate(zip(group.sparse_layers, state.previous)):
                    group.reset_moments(i, (group.masks[i] != old.view_as(layer.param)).to(layer.param.dtype))
        if self.latent:  # the parameters go back to holding the projection E * W of the updated latents
            DenseShadow.project(group.params, group.masks)

    @staticmethod
    def _param_masks(group, masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The projector's masks in the parameters' layout (views where the layouts differ)."""
        if group.state.same_layout:
            return list(masks)
        return [mask.view_as(layer.param) for layer, mask in zip(group.sparse_layers, masks)]

    def pop_flips(self, group) -> torch.Tensor:
        """SAD per layer and agent: mask entries changed by the latest re-projection, computed only
        when asked (the two latest masks are kept), so re-projecting every step costs nothing extra."""
        if not group.state.updated:
            return torch.zeros(len(group.sparse), group.agents)
        group.state.updated = False
        projector = group.state.projector
        return torch.stack([group.agent_sums(i, (new != old).float()) for i, (new, old) in
                            enumerate(zip(projector.masks[projector.current], projector.previous))])

    def after_load(self, group) -> None:
        """The projector's current masks become the restored ones, and the parameters E ⊙ W."""
        projector = group.state.projector
        for layer, current, mask in zip(group.sparse_layers, projector.masks[projector.current], group.masks):
            current.copy_(layer.flat(mask))  # the projector's layout: (out, fan_in) rows (a conv's kernel flattened)
        group.masks[:] = self._param_masks(group, projector.masks[projector.current])
        if self.latent:
            group.state.shadow.restore(group.params, group.masks)

    def training_flops(self, group, dense: float, sparse: float) -> float:
        """The weight gradient is dense under STE and SR-STE."""
        return 2.0 * sparse + (dense if self.straight_through else sparse)
