"""Actors: a body (sparserl.nets.bodies) behind optional running observation normalisation, with
TD3's deterministic head or SAC's squashed Gaussian. Each actor carries its `architecture` (the
description the exporter writes into policy files)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sparserl.architecture import Architecture
from sparserl.hardware import rng_untouched
from sparserl.nets.bodies import make_body
from sparserl.nets.norms import RunningNorm

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class Body(nn.Module):
    """An actor's body: optional running observation normalisation, then the network of `arch`,
    mapping (B, obs) to (B, out); for a population of K agents (`population`), K networks in one
    ensemble mapping (K, B, obs) to (K, B, out). `obs_norm` is a RunningNorm to share, True for a
    new one, or off."""

    def __init__(self, arch: Architecture, obs_norm: bool | nn.Module = False, population: int | None = None):
        super().__init__()
        self.obs_norm = obs_norm if isinstance(obs_norm, nn.Module) else \
            RunningNorm(arch.in_dim, population) if obs_norm else None
        self.net = make_body(arch, population)

    def _input(self, obs: torch.Tensor) -> torch.Tensor:
        return obs if self.obs_norm is None else self.obs_norm(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self._input(obs))

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """The network on inputs already normalised (a streaming agent normalises each observation
        once, as it arrives)."""
        return self.net(x)

    def hidden(self, obs: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        return self.net.hidden(self._input(obs), point)


class Actor(nn.Module):
    """Base of the actors: `net` is the Body; `architecture` describes it, `kind` names the head.
    With `population` K, the actors of K agents in one module: every input and output gains a
    leading axis of K."""

    kind = ""
    outputs_per_action = 1

    def __init__(self, arch: Architecture, obs_norm: bool | nn.Module = False, population: int | None = None):
        super().__init__()
        self.architecture, self.population = arch, population
        self.net = Body(arch, obs_norm, population)

    @classmethod
    def mlp(cls, obs_dim: int, act_dim: int, hidden: tuple[int, ...], **kwargs) -> Actor:
        """An actor with a ReLU MLP body of `hidden` widths."""
        return cls(Architecture("mlp", obs_dim, act_dim * cls.outputs_per_action, tuple(hidden)), **kwargs)

    @property
    def obs_norm(self) -> nn.Module | None:
        return self.net.obs_norm

    def head_settings(self) -> dict:
        """The constructor's settings beyond the architecture (SAC's log-std bounds)."""
        return {}

    def agent(self, k: int) -> Actor:
        """Agent k of a population's actors as a one-agent actor (a copy: what its policy file holds)."""
        from sparserl.population.members import copy_member

        norm = self.obs_norm
        with rng_untouched(torch.get_default_device()):  # weights overwritten below: no draw from the run's RNG
            single = type(self)(self.architecture, obs_norm=False if norm is None else norm.single(),
                                **self.head_settings())
        copy_member(self, single, k, self.population)
        return single

    @property
    def act_dim(self) -> int:
        return self.architecture.out_dim // self.outputs_per_action

    def hidden(self, obs: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        return self.net.hidden(obs, point)


class DeterministicActor(Actor):
    """TD3/DDPG actor: tanh(body(s)), actions in [-1, 1]."""

    kind = "deterministic"

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class GaussianActor(Actor):
    """SAC actor: tanh-squashed Gaussian with state-dependent mean and clamped log-std: 2|A| outputs,
    means first (an MLP's one layer; a residual body's two heads, sparserl.architecture)."""

    kind = "gaussian"
    outputs_per_action = 2

    def __init__(self, arch: Architecture, obs_norm: bool | nn.Module = False, population: int | None = None,
                 log_std_min: float = -20.0, log_std_max: float = 2.0, log_std_bound: str = "clamp"):
        super().__init__(arch, obs_norm, population)
        if log_std_bound not in ("clamp", "tanh"):
            raise ValueError(f"log_std_bound must be clamp or tanh, got {log_std_bound!r}")
        self.log_std_min, self.log_std_max, self.log_std_bound = log_std_min, log_std_max, log_std_bound

    def head_settings(self) -> dict:
        return {"log_std_min": self.log_std_min, "log_std_max": self.log_std_max, "log_std_bound": self.log_std_bound}

    def bounded(self, log_std: torch.Tensor) -> torch.Tensor:
        """The log-std head's output in [log_std_min, log_std_max]: clamped, or squashed by tanh (SimBa)."""
        if self.log_std_bound == "tanh":
            return self.log_std_min + (self.log_std_max - self.log_std_min) * 0.5 * (1.0 + torch.tanh(log_std))
        return log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic (mean) action tanh(mu), used for evaluation."""
        mean, _ = self.net(obs).chunk(2, dim=-1)
        return torch.tanh(mean)

    def sample(self, obs: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action a = tanh(mu + sigma * eps) and its log-probability (B,); `eps`,
        the standard normal draw shaped like the action, is drawn here unless given."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = self.bounded(log_std)
        eps = torch.randn_like(mean) if eps is None else eps
        u = mean + log_std.exp() * eps
        # log N(u; mean, std) minus the tanh Jacobian log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        log_prob = (-0.5 * eps.square() - log_std - LOG_SQRT_2PI
                    - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), log_prob


class ClippedGaussianActor(Actor):
    """Stream AC's continuous actor (Elsayed et al. 2024): a Gaussian of mean mu(s) and std
    softplus(sigma(s)) from one head of 2|A| outputs (means first), sampled unbounded; the
    environment gets the sample clipped to [-1, 1], evaluation the clipped mean."""

    kind = "clipped-gaussian"
    outputs_per_action = 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self.net(obs).chunk(2, dim=-1)
        return mean.clamp(-1.0, 1.0)

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each (B, |A|)."""
        return self.head(self.net(obs))

    @staticmethod
    def head(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) from the body's (B, 2|A|) output."""
        mean, pre_std = out.chunk(2, dim=-1)
        return mean, F.softplus(pre_std)


class CategoricalActor(Actor):
    """A softmax policy over a discrete action space (one logit per action); evaluation takes the
    most probable action. `act_dim` is the number of actions."""

    kind = "categorical"

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).argmax(dim=-1)
