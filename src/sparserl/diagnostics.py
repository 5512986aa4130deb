"""Plasticity diagnostics for any agent (Ma et al. 2025 §5), computed on a replay batch.

- srank_delta (Kumar et al. 2021): the fewest singular values of the feature matrix (batch x
  features, the last hidden layer) whose sum reaches (1 - delta) of the total; delta = 0.01.
- Dormant ratio (Sokar et al. 2023): a unit's score is its batch-mean |activation| over the layer's
  mean of those; it is dormant if the score is <= tau (0.1 and 0.2). The fraction of dormant units
  over all hidden layers, post-activation by default (Ma et al.'s code hooks the Dense outputs:
  ``point="pre"``).
- Feature norm: batch mean of the features' L2 norm. Parameter norm: L2 norm of all parameters.
- Gradient norm: L2 norm of the loss gradient on the batch, masked by the sparsity masks.
- Gradient interference (Lyle et al. 2023): mean off-diagonal cosine similarity of the actor loss's
  per-sample gradients (masked), over a few samples.

Critic features are those of the first ensemble member. Diagnostics never touch training: they use
their own replay generator and restore the global random state after drawing.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sparserl.hardware import rng_untouched

TAUS = (0.1, 0.2)


def srank(features: torch.Tensor, delta: float = 0.01) -> int:
    """srank_delta of a (batch, features) matrix (0 for an all-zero matrix)."""
    values = torch.linalg.svdvals(features.double())
    total = values.sum()
    if total <= 0:
        return 0
    return int((values.cumsum(0) < (1.0 - delta) * total).sum()) + 1


def dormant_ratio(activations: list[torch.Tensor], tau: float) -> float:
    """Fraction of units, over the given (batch, units) layer outputs, whose score is <= tau."""
    dormant = units = 0
    for h in activations:
        mean_abs = h.abs().mean(dim=0)
        score = mean_abs / (mean_abs.mean() + 1e-9)
        dormant += int((score <= tau).sum())
        units += score.numel()
    return dormant / units if units else 0.0


def feature_norm(features: torch.Tensor) -> float:
    return float(features.norm(dim=1).mean())


def parameter_norm(module: nn.Module) -> float:
    return float(torch.cat([p.detach().reshape(-1) for p in module.parameters()]).norm())


def masked_norm(grads: list[torch.Tensor], masks: list[torch.Tensor | None]) -> float:
    total = sum(float((g if m is None else g * m).square().sum()) for g, m in zip(grads, masks))
    return total ** 0.5


def interference(per_sample: torch.Tensor) -> float:
    """Mean off-diagonal cosine similarity of the rows of an (N, P) matrix of per-sample gradients."""
    unit = per_sample / per_sample.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosine = unit @ unit.T
    n = cosine.shape[0]
    return float((cosine.sum() - cosine.diagonal().sum()) / (n * (n - 1))) if n > 1 else 0.0


class Diagnostics:
    """Computes the diagnostics of an agent's actor and critic; see the module docstring."""

    def __init__(self, agent, sparsifier=None, point: Literal["post", "pre"] = "post",
                 interference_samples: int = 32):
        self.agent, self.sparsifier, self.point = agent, sparsifier, point
        self.interference_samples = interference_samples

    @property
    def names(self) -> tuple[str, ...]:
        out = []
        for net in ("actor", "critic"):
            out += [f"diag_{net}_srank", *(f"diag_{net}_dormant_{tau:g}" for tau in TAUS),
                    f"diag_{net}_feature_norm", f"diag_{net}_param_norm", f"diag_{net}_grad_norm"]
        return (*out, "diag_actor_interference")

    def _masks(self, name: str, params: list[nn.Parameter]) -> list[torch.Tensor | None]:
        masks = self.sparsifier.masks_by_param(name) if self.sparsifier is not None else {}
        return [masks.get(p) for p in params]

    def compute(self, batch) -> dict[str, float]:
        agent = self.agent
        out: dict[str, float] = {}
        with rng_untouched(agent.device):
            obs = batch.obs
            with torch.no_grad():
                hidden = {"actor": agent.policy.hidden(obs, self.point),
                          "critic": [h[0] for h in agent.critic.hidden(obs, batch.action, self.point)]}
            for net, layers in hidden.items():
                out[f"diag_{net}_srank"] = float(srank(layers[-1]))
                for tau in TAUS:
                    out[f"diag_{net}_dormant_{tau:g}"] = dormant_ratio(layers, tau)
                out[f"diag_{net}_feature_norm"] = feature_norm(layers[-1])
                out[f"diag_{net}_param_norm"] = parameter_norm(agent.networks[net])
            losses = {"actor": agent.actor_objective(obs).mean(), "critic": agent.critic_objective(batch)}
            for net, loss in losses.items():
                params = [p for p in agent.networks[net].parameters() if p.requires_grad]
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                used = [(g, p) for g, p in zip(grads, params) if g is not None]
                out[f"diag_{net}_grad_norm"] = masked_norm([g for g, _ in used],
                                                           self._masks(net, [p for _, p in used]))
            out["diag_actor_interference"] = self._interference(obs[: self.interference_samples])
        return out

    def _interference(self, obs: torch.Tensor) -> float:
        actor = self.agent.networks["actor"]
        params = [p for p in actor.parameters() if p.requires_grad]
        masks = self._masks("actor", params)
        rows = []
        for i in range(obs.shape[0]):
            loss = self.agent.actor_objective(obs[i:i + 1]).sum()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g if m is None else g * m).reshape(-1)
                                   for g, p, m in zip(grads, params, masks)]))
        return interference(torch.stack(rows))
