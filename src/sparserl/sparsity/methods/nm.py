"""nm:N:M: row-wise N:M sparsity kept throughout training (RNM-TD3, Kassler et al. 2026; SR-STE,
Zhou et al. 2021).

Each weight row (one output unit's fan-in) is cut into consecutive groups of M; the N largest |w|
of each group are kept (a last partial group of r keeps ceil(r N / M)), so every unit has the same
fan-in. The projection is recomputed every `update_interval` (ΔT) optimiser steps (1 = every step,
0 = never). Gradient modes:

- masked: only kept weights learn. Pruned weights are 0, so the projection cannot change: the mask
  is static after init.
- ste: a dense latent weight W is trained with the dense gradient of the projected weight E ⊙ W,
  which is what the network's parameter holds between steps (so forward passes, targets and
  exports see an exactly N:M weight).
- srste: ste plus λ_W (1 - E) ⊙ W added to the gradient (λ_W = 2e-4): weight decay on pruned
  weights only, which steadies the mask.

The number of mask entries that flip at each re-projection (SAD) is logged per layer.
"""

from __future__ import annotations

import torch

from sparserl.errors import ConfigError
from sparserl.sparsity.masks import NMProjector, nm_kept, nm_mask
from sparserl.sparsity.methods.base import Method


class NM(Method):
    name = "nm"
    changes_masks = True

    def densities(self, name, module, layers, sparsity):
        n, m = self.config.nm
        dense = self.forced_dense(layers)
        out = []
        for i, layer in enumerate(layers):
            fan_in = layer.view(layer.param.detach()).shape[-1]
            if i in dense or (fan_in % m and self.config.nm_partial == "dense"):
                out.append(1.0)
            else:
                out.append(nm_kept(fan_in, n, m) / fan_in)
        return out

    def check(self, group) -> None:
        if not group.sparse:
            raise ConfigError(f"{group.name}: {self.config.method} leaves no layer sparse (all are kept dense)")

    def initial_mask(self, group, index: int) -> torch.Tensor:
        layer = group.sparse_layers[index]
        mask = nm_mask(layer.flat(layer.param.detach()), *self.config.nm, dim=layer.fan_in_dim)
        return mask.view_as(layer.param) if mask.shape != layer.param.shape else mask

    @property
    def latent(self) -> bool:
        return self.config.nm_gradient in ("ste", "srste")

    def due(self, group) -> bool:
        """Re-projection steps; never with masked gradients, where pruned weights stay 0 and the
        projection could only return the same mask."""
        return self.latent and super().due(group)

    def dense_gradient_needed(self, group) -> bool:
        """STE and SR-STE train dense latent weights with the dense gradient."""
        return self.latent

    def setup(self, group) -> None:
        layers = group.sparse_layers
        if self.latent:  # the dense weights before projection become the trained latent weights
            group.extra["latent"] = [layer.param.detach().clone() for layer in layers]
        sources = group.extra["latent"] if self.latent else [layer.param.detach() for layer in layers]
        projector = NMProjector([layer.flat(w) for layer, w in zip(layers, sources)],
                                [layer.fan_in_dim for layer in layers], *self.config.nm)
        projector()  # the initial masks, so the first update's flips (SAD) compare against them
        group.extra["projector"] = projector
        group.extra["same_layout"] = all(layer.flat(layer.param).shape == layer.param.shape for layer in layers)

    def pre_step(self, group) -> None:
        if not self.latent:
            group.mask_gradients()
            return
        params, latents = group.params, group.extra["latent"]
        if self.config.nm_gradient == "srste":  # + lambda (1 - E) * W, and (1 - E) * W = W - E * W exactly
            grads = [p.grad for p in params]
            projected, kept_latents = params, latents  # the parameters hold E * W until the copy below
            if any(g is None for g in grads):  # not `None in grads`: that compares tensors (≈ 35 µs)
                keep = [i for i, g in enumerate(grads) if g is not None]
                grads, kept_latents, projected = ([x[i] for i in keep] for x in (grads, latents, params))
            if grads:
                torch._foreach_add_(grads, kept_latents, alpha=self.config.srste_decay)
                torch._foreach_add_(grads, projected, alpha=-self.config.srste_decay)
        # the optimiser steps the latent weights W: copied in and out (one multi-tensor op each),
        # which costs less than swapping each parameter's storage from Python
        torch._foreach_copy_(params, latents)

    def post_step(self, group) -> None:
        if self.latent:
            torch._foreach_copy_(group.extra["latent"], group.params)  # the updated W
        if self.due(group):
            new = group.extra["projector"]()
            group.masks[:] = new if group.extra["same_layout"] else \
                [mask.view_as(layer.param) for layer, mask in zip(group.sparse_layers, new)]
            group.extra["updated"] = True
            group.targets_dirty = True
        if self.latent:  # the parameters go back to holding the projection E * W of the updated latents
            torch._foreach_mul_(group.params, group.masks)

    def pop_flips(self, group) -> torch.Tensor:
        """SAD per layer: mask entries changed by the latest re-projection, computed only when asked
        (the two latest masks are kept), so re-projecting every step costs nothing extra."""
        if not group.extra.pop("updated", False):
            return torch.zeros(len(group.sparse))
        projector = group.extra["projector"]
        return torch.stack([(new != old).sum() for new, old in zip(projector.masks[projector.current],
                                                                  projector.previous)]).float()

    def extra_state(self, group) -> dict:
        state = {"previous": [m.bool() for m in group.extra["projector"].previous],
                 "updated": bool(group.extra.get("updated", False))}
        if self.latent:
            state["latent"] = [t.clone() for t in group.extra["latent"]]
        return state

    def load_extra_state(self, group, state: dict) -> None:
        projector = group.extra["projector"]
        for current, mask, previous, saved in zip(projector.masks[projector.current], group.masks,
                                                  projector.previous, state["previous"]):
            current.copy_(mask)  # the projector's masks become the restored ones, exactly as saved
            previous.copy_(saved)
        group.masks[:] = projector.masks[projector.current]
        group.extra["updated"] = bool(state["updated"])
        if self.latent:
            for latent, saved in zip(group.extra["latent"], state["latent"]):
                latent.copy_(saved)
            for layer, mask, latent in zip(group.sparse_layers, group.masks, group.extra["latent"]):
                layer.param.copy_(latent * mask)
