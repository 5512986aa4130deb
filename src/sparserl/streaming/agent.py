"""The base of streaming algorithms: an agent that learns from each transition once, right after
acting on its observation (Elsayed, Vasan, Mahmood 2024), driven by sparserl.streaming.learner.

The protocol, per environment step: `act(obs)` chooses the action (keeping what the update needs),
then `learn(reward, next_obs, terminal, episode_end)` updates from the transition that followed.
There is no replay, no batch and no target network; the optimisers are ObGD's (their traces are
optimiser state, so checkpoints and the sparsity engine's moment resets cover them).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sparserl.algos.base import Agent, architecture
from sparserl.nets import Body, WelfordNorm
from sparserl.streaming.init import initialise
from sparserl.streaming.obgd import AdaptiveObGD, ObGD


class StreamingAgent(Agent):
    """An Agent learning online; see the module docstring."""

    streaming: ClassVar[bool] = True

    def make_obs_norm(self) -> nn.Module:
        """Per-sample Welford statistics; the time feature, when on, is left as it is."""
        return WelfordNorm(self.info.obs_dim, keep=1 if self.config.time_feature else 0)

    def make_value(self) -> Body:
        """A state-value network V(s) of the critic's architecture, (B, obs) -> (B, 1)."""
        arch, _ = self.architectures(self.info, self.config)["critic"]
        return initialise(Body(arch, obs_norm=self.obs_norm or False), self.config.init)

    @classmethod
    def architectures(cls, info, config) -> dict:
        """The actor, and a value network of the observation alone (one member each)."""
        return {"actor": (cls.actor_architecture(info, config), 1),
                "critic": (architecture(config, "critic", info.obs_dim, 1), 1)}

    def add_obgd(self, name: str, params, kappa: float) -> torch.optim.Optimizer:
        """ObGD (or its adaptive variant, per config.obgd) for network `name`."""
        c = self.config
        if c.obgd == "adaptive":
            optimizer = AdaptiveObGD(params, lr=c.obgd_lr, gamma=c.gamma, lamda=c.trace_lambda, kappa=kappa,
                                     beta2=c.obgd_beta2)
        else:
            optimizer = ObGD(params, lr=c.obgd_lr, gamma=c.gamma, lamda=c.trace_lambda, kappa=kappa)
        self.optimizers[name] = optimizer
        return optimizer

    def reset_traces(self) -> None:
        """Zero every optimiser's eligibility traces (a new episode starts)."""
        for optimizer in self.optimizers.values():
            optimizer.reset_traces()

    def observe(self, obs: np.ndarray) -> None:
        if self.obs_norm is not None:
            self.obs_norm.update(obs)

    @abstractmethod
    def learn(self, reward: float, next_obs: np.ndarray, terminal: bool, episode_end: bool) -> None:
        """One update from the transition that followed the last `act`: the (scaled) reward, the next
        observation, whether it is terminal (no bootstrap) and whether the episode ended there
        (traces are reset)."""
