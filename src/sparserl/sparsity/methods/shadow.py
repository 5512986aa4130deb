"""Dense shadow weights: a dense latent copy W of masked parameters, for methods whose optimiser
trains dense weights while the network computes with their projection E ⊙ W (STE, SR-STE), or
trains only the kept ones while the pruned ones wait aside (N:M's shadow mode).

Between steps the parameters hold E ⊙ W, so forward passes, targets and exports see exactly masked
weights. Around the optimiser step: `load` puts W into the parameters (which the optimiser then
steps with the dense gradient), `store` keeps the stepped W, and `project` writes E ⊙ W back. Each
phase is one multi-tensor copy or multiply, which costs less than swapping each parameter's storage
from Python.
"""

from __future__ import annotations

import torch


class DenseShadow:
    """Latent dense weights for a list of parameters (copied from their values at construction)."""

    def __init__(self, params: list[torch.Tensor]):
        self.latents = [p.detach().clone() for p in params]

    def load(self, params: list[torch.Tensor]) -> None:
        """Parameters <- W (before the optimiser step)."""
        torch._foreach_copy_(params, self.latents)

    def store(self, params: list[torch.Tensor]) -> None:
        """W <- parameters (after the optimiser step)."""
        torch._foreach_copy_(self.latents, params)

    def store_kept(self, params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        """W <- parameters where the mask keeps them; pruned entries keep their values (the shadow
        of N:M's shadow mode, whose stale moments or weight decay must not move them)."""
        steps = torch._foreach_sub(params, self.latents)
        torch._foreach_mul_(steps, masks)
        torch._foreach_add_(self.latents, steps)

    @staticmethod
    def project(params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        """Parameters <- E ⊙ W, given that they hold W."""
        torch._foreach_mul_(params, masks)

    @torch.no_grad()
    def restore(self, params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        """Parameters <- E ⊙ W from the latents (after loading a checkpoint)."""
        for param, mask, latent in zip(params, masks, self.latents):
            param.copy_(latent * mask)
