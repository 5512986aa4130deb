"""Critics: E independent Q(s, a) networks evaluated together (twin critics are E = 2)."""

from __future__ import annotations

import torch
from torch import nn

from sparserl.architecture import Architecture
from sparserl.nets.bodies import make_body


class QEnsemble(nn.Module):
    """E Q-networks over the body of `arch` (input obs + action, one output); forward returns (E, B).
    `obs_norm`, a RunningNorm shared with the actor, normalises observations first.

    For a population of K agents (`population`), the K agents' E critics are one ensemble of E x K
    members, critic-major (member c K + k is agent k's critic c, so critic c of every agent is one
    contiguous slice); inputs are (K, B, .) and forward returns (K, E, B)."""

    def __init__(self, arch: Architecture, members: int = 2, obs_norm: nn.Module | None = None,
                 population: int | None = None):
        super().__init__()
        self.architecture, self.obs_norm = arch, obs_norm
        self.critics, self.population = members, population
        self.body = make_body(arch, members * (population or 1))

    @classmethod
    def mlp(cls, obs_dim: int, act_dim: int, hidden: tuple[int, ...], members: int = 2,
            obs_norm: nn.Module | None = None, population: int | None = None) -> QEnsemble:
        """E critics with ReLU MLP bodies of `hidden` widths."""
        return cls(Architecture("mlp", obs_dim + act_dim, 1, tuple(hidden)), members, obs_norm, population)

    def _input(self, obs: torch.Tensor, action: torch.Tensor, critics: int) -> torch.Tensor:
        """The body's input: (B, in), shared by the members, or for a population (critics K, B, in),
        each agent's batch repeated for `critics` of its critics."""
        x = torch.cat((obs if self.obs_norm is None else self.obs_norm(obs), action), dim=-1)
        if self.population is None:
            return x
        return x.expand(critics, *x.shape).reshape(critics * x.shape[0], *x.shape[1:])

    def forward(self, obs: torch.Tensor, action: torch.Tensor, detach: bool = False) -> torch.Tensor:
        q = self.body(self._input(obs, action, self.critics), detach=detach).squeeze(-1)
        return q if self.population is None else q.view(self.critics, self.population, -1).transpose(0, 1)

    def first(self, obs: torch.Tensor, action: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """The first critic alone (TD3's actor loss): (B,), or (K, B) for a population."""
        agents = self.population or 1
        q = self.body(self._input(obs, action, 1), detach=detach, members=slice(0, agents)).squeeze(-1)
        return q if self.population is not None else q[0]

    def hidden(self, obs: torch.Tensor, action: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """Hidden layers' outputs, (E, B, width) each, after ReLU ("post") or before it ("pre")."""
        return self.body.hidden(self._input(obs, action, self.critics), point)
