"""The interface between the training loop and what learns: `act` on an observation, `observe` the
transition that followed (learning when due), `state_dict` for checkpoints.

`OffPolicyLearner` is the replay-based learner of TD3, SAC and DDPG: uniform-random actions for
`start_steps`, then the agent's exploration; every transition goes to the replay buffer, and from
`start_steps` on each step runs `updates_per_step` gradient updates on sampled batches (n-step
windows once the agent asks for them); RLx2's dynamic capacity is checked after each step.
The streaming learner (sparserl.streaming.learner) implements the same interface without replay.
For a population of K agents (sparserl.population.trainer) every argument and result gains a leading
axis of K, and `pop_agent_stats` gives each agent's statistics.
"""

from __future__ import annotations

import contextlib
import math
from typing import Protocol

import numpy as np
import torch

from sparserl.algos import Agent
from sparserl.replay import Batch, DynamicCapacity, ReplayBuffer
from sparserl.runs.capture import CompiledUpdate


class Learner(Protocol):
    """What the training loop (sparserl.runs.trainer) needs of a learner."""

    stat_names: tuple[str, ...]
    """Training statistics `pop_stats` returns (metrics columns)."""

    def act(self, obs: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The action to take at environment step `step`, and the policy's noise-free action (which
        the replay learner stores for RLx2's buffer; None where nothing needs it)."""

    def observe(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool,
                policy_action, step: int) -> None:
        """The transition of step `step`; learns from it as the learner's schedule says."""

    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        """The evaluation action."""

    def pop_stats(self) -> dict[str, float]:
        """Means of the training statistics since the last call."""

    def pop_agent_stats(self) -> list[dict[str, float]]:
        """`pop_stats` of each agent of a population."""

    def finite(self) -> bool:
        """No parameter and no statistic since the last row is NaN or infinite (checked before checkpoints)."""

    def sample_for_diagnostics(self, size: int, generator: torch.Generator, agent: int | None = None) -> Batch | None:
        """`size` transitions the learner (or a population's agent `agent`) has seen, drawn with
        `generator` (plasticity diagnostics), or None while it holds fewer."""

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (checkpoint sections)."""

    def load_state_dict(self, state: dict) -> None:
        ...


class OffPolicyLearner:
    """An agent with its replay buffer (and dynamic capacity), warm-up and update schedule."""

    def __init__(self, agent: Agent, buffer: ReplayBuffer, capacity: DynamicCapacity | None, *, seed: int,
                 start_steps: int, batch_size: int, updates_per_step: int, update_every: int = 1,
                 autocast: torch.dtype | None = None, compiled: bool = False):
        self.agent, self.buffer, self.capacity = agent, buffer, capacity
        self.compiled = CompiledUpdate(agent) if compiled else None
        """The update as compiled graphs (sparserl.runs.capture), or None: eager."""
        self._update = self.compiled if compiled else agent.update
        self.autocast_dtype = autocast
        self._precision = torch.autocast(agent.device.type, dtype=autocast, cache_enabled=False) \
            if autocast is not None else contextlib.nullcontext()
        """Around the updates: bf16 autocast (sparserl.hardware.update_dtype), or nothing. Without its
        cast cache: autocast keeps one bf16 copy of each weight for the whole region, which an
        optimiser step inside the region would leave stale (a second update would run on the
        weights from before the first)."""
        self.start_steps, self.batch_size, self.updates_per_step = start_steps, batch_size, updates_per_step
        self.update_every = update_every
        self.rng = np.random.default_rng(seed)  # warm-up actions
        self.action_shape = (*(() if agent.population is None else (agent.population,)), agent.info.act_dim)
        self.stat_names = agent.stat_names + (("buffer_size", "policy_distance") if capacity is not None else ())
        self._observe_obs = agent.observe if agent.obs_norm is not None else None
        self.act_deterministic = agent.act_deterministic

    def act(self, obs: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        if self._observe_obs is not None:
            self._observe_obs(obs)  # running observation statistics see every acted observation
        if step < self.start_steps:
            action = self.rng.uniform(-1.0, 1.0, self.action_shape).astype(np.float32)
            return action, action
        return self.agent.act(obs)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, policy_action, step: int) -> None:
        buffer, agent = self.buffer, self.agent
        buffer.add(obs, action, reward, next_obs, terminated, truncated, policy_action)
        if step >= self.start_steps and (step - self.start_steps) % self.update_every == 0:
            with self._precision:
                for _ in range(self.updates_per_step):
                    self._update(buffer.sample(self.batch_size, min(agent.horizon, len(buffer))))
        if self.capacity is not None:
            self.capacity.maybe_check(step + 1, agent.policy)

    def pop_agent_stats(self) -> list[dict[str, float]]:
        return [self._capacity_stats(stats, k) for k, stats in enumerate(self.agent.pop_agent_stats())]

    def pop_stats(self) -> dict[str, float]:
        return self._capacity_stats(self.agent.pop_stats(), 0)

    def _capacity_stats(self, stats: dict[str, float], k: int) -> dict[str, float]:
        """`stats` with agent k's replay size and policy distance when the capacity is dynamic."""
        if self.capacity is not None:
            stats["buffer_size"] = float(self.buffer.live(k))
            distance = self.capacity.last_distances[k]
            if not math.isnan(distance):  # no distance before the first check
                stats["policy_distance"] = float(distance)
        return stats

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "replay": self.buffer.state_dict(),
                "replay_capacity": None if self.capacity is None else self.capacity.state_dict(),
                "warmup_rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.buffer.load_state_dict(state["replay"])
        if self.capacity is not None and state.get("replay_capacity") is not None:
            self.capacity.load_state_dict(state["replay_capacity"])
        self.rng.bit_generator.state = state["warmup_rng"]

    def sample_for_diagnostics(self, size: int, generator: torch.Generator, agent: int | None = None) -> Batch | None:
        return self.buffer.sample(size, generator=generator, agent=agent) if len(self.buffer) >= size else None

    @torch.no_grad()
    def finite(self) -> bool:
        """No network parameter and no statistic since the last row is NaN or infinite."""
        return self.agent.all_finite() and self.agent.stats_finite()
