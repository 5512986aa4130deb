"""The streaming learner: the training loop's interface (sparserl.runs.learner.Learner) for a
StreamingAgent. Each step the agent acts on the observation and, once the environment answers,
learns from that one transition; nothing is stored for later.

Observation statistics take every observation as it arrives (the next one before the update that
uses it, and each episode's first), rewards are scaled (sparserl.streaming.scaling) unless
`reward_scaling` is off, and the training loop has already made a time limit terminal where the
time feature is on. There is no warm-up. With a compiled step (sparserl.streaming.capture), a step
that does not end the episode learns and chooses the next action in one call; `act` then returns
that action.

A population (sparserl.population.trainer) passes (K,) arrays: each agent observes its episode's
first observation, scales its rewards and resets its traces on its own; its checkpoints fall
mid-episode, so they keep the traces and which agents start an episode next.
"""

from __future__ import annotations

import numpy as np
import torch

from sparserl.replay import Batch
from sparserl.streaming.agent import StreamingAgent
from sparserl.streaming.capture import CompiledStep
from sparserl.streaming.scaling import RewardScaler


class StreamingLearner:
    """A StreamingAgent, its reward scaler and the observation statistics' schedule."""

    def __init__(self, agent: StreamingAgent, reward_scaling: bool = True, compiled: bool = False):
        self.agent = agent
        self.population = agent.population
        if compiled and self.population is not None:
            raise ValueError("a population's streaming step runs eagerly (step_compile off)")
        self.compiled = CompiledStep(agent) if compiled else None
        self._next: np.ndarray | None = None  # the action a compiled step chose for the next observation
        self.scaler = RewardScaler(agent.config.gamma, self.population) if reward_scaling else None
        self.stat_names = agent.stat_names
        self.act_deterministic = agent.act_deterministic
        self.pop_stats, self.pop_agent_stats = agent.pop_stats, agent.pop_agent_stats
        self._observe = agent.observe if agent.obs_norm is not None else None
        self._first = True if self.population is None else np.ones(self.population, dtype=bool)
        """The next observation starts an episode (its statistics are not yet taken); per agent."""

    def act(self, obs: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        if self._observe is not None:
            if self.population is None:
                if self._first:
                    self._observe(obs)
            elif self._first.any():
                self._observe(obs, None if self._first.all() else self._first)
        self._first = False if self.population is None else np.zeros(self.population, dtype=bool)
        if self._next is not None:
            action, self._next = self._next, None
            return action, None
        return self.agent.act(obs)

    def observe(self, obs, action, reward, next_obs, terminated, truncated, policy_action, step: int) -> None:
        if self.population is not None:
            end = terminated | truncated
            if self.scaler is not None:
                reward = self.scaler(reward, end)
            if self._observe is not None:
                self._observe(next_obs)
            self.agent.learn(reward, next_obs, terminated, end)
            self._first = end
            return
        end = terminated or truncated
        if self.scaler is not None:
            reward = self.scaler(float(reward), end)
        if not end and self.compiled is not None:
            self._next = self.compiled(float(reward), next_obs)  # observes next_obs itself
            if self._next is not None:
                return
        if self._observe is not None:
            self._observe(next_obs)
        self.agent.learn(float(reward), next_obs, bool(terminated), bool(end))
        self._first = end

    def state_dict(self) -> dict:
        state = {"agent": self.agent.state_dict(),
                 "reward_scaler": None if self.scaler is None else self.scaler.state_dict()}
        if self.population is not None:
            state["first"] = self._first.tolist()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["reward_scaler"])
        self._next = None
        if self.population is not None:  # mid-episode: the environments are replayed to this point
            self._first = np.array(state["first"], dtype=bool)
            return
        self.agent.reset_traces()  # runs resume at an episode's start (traces are zero there already,
        self._first = True         # unless an extended run's last checkpoint fell inside an episode)

    def sample_for_diagnostics(self, size: int, generator: torch.Generator, agent: int | None = None) -> Batch | None:
        return None  # nothing is stored

    @torch.no_grad()
    def finite(self) -> bool:
        return self.agent.all_finite() and self.agent.stats_finite()
