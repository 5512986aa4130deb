"""Critics: E independent Q(s, a) networks evaluated together (twin critics are E = 2)."""

from __future__ import annotations

import torch
from torch import nn

from sparserl.architecture import Architecture
from sparserl.nets.bodies import make_body


class QEnsemble(nn.Module):
    """E Q-networks over the body of `arch` (input obs + action, one output); forward returns (E, B).
    `obs_norm`, a RunningNorm shared with the actor, normalises observations first."""

    def __init__(self, arch: Architecture, members: int = 2, obs_norm: nn.Module | None = None):
        super().__init__()
        self.architecture, self.obs_norm = arch, obs_norm
        self.body = make_body(arch, members)

    @classmethod
    def mlp(cls, obs_dim: int, act_dim: int, hidden: tuple[int, ...], members: int = 2,
            obs_norm: nn.Module | None = None) -> QEnsemble:
        """E critics with ReLU MLP bodies of `hidden` widths."""
        return cls(Architecture("mlp", obs_dim + act_dim, 1, tuple(hidden)), members, obs_norm)

    def _input(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat((obs if self.obs_norm is None else self.obs_norm(obs), action), dim=-1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, detach: bool = False,
                member: int | None = None) -> torch.Tensor:
        return self.body(self._input(obs, action), detach=detach, member=member).squeeze(-1)

    def hidden(self, obs: torch.Tensor, action: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """Hidden layers' outputs, (E, B, width) each, after ReLU ("post") or before it ("pre")."""
        return self.body.hidden(self._input(obs, action), point)
