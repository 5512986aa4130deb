"""The base of streaming algorithms: an agent that learns from each transition once, right after
acting on its observation (Elsayed, Vasan, Mahmood 2024), driven by sparserl.streaming.learner.

The protocol, per environment step: `act(obs)` chooses the action (keeping what the update needs),
then `learn(reward, next_obs, terminal, episode_end)` updates from the transition that followed.
There is no replay, no batch and no target network; the optimisers are ObGD's (their traces are
optimiser state, so checkpoints and the sparsity engine's moment resets cover them).

An algorithm writes three things, on tensors: `noise()`, the exploration draw of one action;
`sample(x, noise)`, the action at a normalised observation; and `loss(x, action, reward, discount,
x_next)`, the one transition's loss whose gradient every trace takes, with the TD error delta that
scales the steps. The base does the rest: each observation is normalised once, as it arrives (as
the paper's observation wrapper does), and `learn` back-propagates the loss and steps each ObGD
with delta. A compiled step (sparserl.streaming.capture) runs the same three functions in one graph.

A population of K agents (config.population > 1) holds the K agents as ensemble members of each
network, as the replay agents do (sparserl.algos.base.Agent): observations, actions, rewards and
flags lead with K, each agent's loss is its entry of a (K,) vector, its observation statistics,
draws, traces and step sizes are its own, and its traces reset when its own episode ends. An
algorithm written with reductions over trailing axes runs both ways.
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

    def __init__(self, info, config):
        super().__init__(info, config)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        """(normalised observation, action) of the last `act`, for the `learn` that follows."""

    def make_obs_norm(self) -> nn.Module:
        """Per-sample Welford statistics (each agent's own); the time feature, when on, is left as it is."""
        return WelfordNorm(self.info.obs_dim, keep=1 if self.config.time_feature else 0, population=self.population)

    def make_value(self) -> Body:
        """A state-value network V(x) of the critic's architecture on normalised observations,
        (B, obs) -> (B, 1); a population's (K, B, obs) -> (K, B, 1)."""
        arch, _ = self.architectures(self.info, self.config)["critic"]
        return initialise(Body(arch, population=self.population), self.config.init)

    @classmethod
    def architectures(cls, info, config) -> dict:
        """The actor, and a value network of the observation alone (one member each)."""
        return {"actor": (cls.actor_architecture(info, config), 1),
                "critic": (architecture(config, "critic", info.obs_dim, 1), 1)}

    def add_obgd(self, name: str, params, kappa: float) -> torch.optim.Optimizer:
        """ObGD (or its adaptive variant, per config.obgd) for network `name`."""
        c = self.config
        kind, extra = (AdaptiveObGD, {"beta2": c.obgd_beta2}) if c.obgd == "adaptive" else (ObGD, {})
        optimizer = kind(params, lr=c.obgd_lr, gamma=c.gamma, lamda=c.trace_lambda, kappa=kappa,
                         agents=self.population, **extra)
        self.optimizers[name] = optimizer
        return optimizer

    def reset_traces(self) -> None:
        """Zero every optimiser's eligibility traces (a new episode starts)."""
        for optimizer in self.optimizers.values():
            optimizer.reset_traces()

    def observe(self, obs: np.ndarray, which: np.ndarray | None = None) -> None:
        """Add an observation to the statistics (a population's (K, obs); `which`: only these agents')."""
        if self.obs_norm is not None:
            self.obs_norm.update(obs, which)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        """An observation, (obs,) or a population's (K, obs), in the statistics of the moment
        (unchanged without obs_norm)."""
        return obs if self.obs_norm is None else self.obs_norm(obs)

    # --- what an algorithm writes -------------------------------------------------------------
    @abstractmethod
    def noise(self) -> torch.Tensor:
        """The exploration draw for one action (a population's: one per agent, from `draws`), taken
        before the forward (so that a compiled step takes it as an input, from the same random stream)."""

    @abstractmethod
    def sample(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The action the policy takes at normalised observation `x` with draw `noise` (a tensor, as
        it is stored for the update; `env_action` makes the environment's)."""

    @abstractmethod
    def loss(self, x: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
             x_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, delta, stats) of one transition: the loss whose gradient each network's trace
        takes, the TD error (detached) that scales the steps, and the statistics stat_names[:k]."""

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        """The environment's action for a sampled one."""
        return action.numpy()

    # --- the step -----------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, None]:
        """Sample the action at `obs` (no noise-free action: nothing stores it)."""
        x = self.normalise(self.as_input(obs))
        with torch.no_grad():
            action = self.sample(x, self.noise())
        self._pending = (x, action)
        return self.env_action(action), None

    def learn(self, reward, next_obs: np.ndarray, terminal, episode_end) -> None:
        """One update from the transition that followed the last `act`: the (scaled) reward, the next
        observation, whether it is terminal (no bootstrap) and whether the episode ended there
        (traces are reset); a population's are (K,) arrays. Each optimiser steps with delta; the
        step sizes follow the loss's statistics in the recorded row."""
        x, action = self._pending
        self._pending = None
        if self.population is None:
            reward, discount = torch.tensor(reward), torch.tensor(0.0 if terminal else self.config.gamma)
        else:
            dtype = torch.get_default_dtype()
            reward = torch.as_tensor(reward, dtype=dtype, device=self.device)
            discount = torch.as_tensor(np.where(terminal, 0.0, self.config.gamma), dtype=dtype, device=self.device)
            ends = np.asarray(episode_end, dtype=bool)  # (on the host: no pass over the traces when none ends)
            episode_end = torch.as_tensor(ends, device=self.device) if ends.any() else False
        loss, delta, stats = self.loss(x, action, reward, discount, self.normalise(self.as_input(next_obs)))
        optimizers = list(self.optimizers.values())
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (loss if loss.dim() == 0 else loss.sum()).backward()  # a population's agents' parameters are disjoint
        alphas = [optimizer.step(delta, reset=episode_end) for optimizer in optimizers]
        self.updates += 1
        self.record(0, torch.cat((stats, torch.stack(alphas, dim=-1)), dim=-1))
