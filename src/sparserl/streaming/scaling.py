"""Reward scaling of the streaming learners (Elsayed, Vasan, Mahmood 2024): each reward is divided
by the running standard deviation of a discounted-return trace u <- gamma * (1 - end) * u + r, whose
statistics (Welford, unbiased; variance 1 until two samples) take every step's u; `end` marks the
last step of an episode, so the trace restarts there (as in the paper's code, at that step's reward).
A population's scaler keeps one trace and one set of statistics per agent (rewards and ends are
(K,) arrays; every agent counts one sample per step)."""

from __future__ import annotations

import math

import numpy as np

from sparserl.nets.norms import welford_update, welford_variance


class RewardScaler:
    """r -> r / sqrt(var(u) + 1e-8), on host floats (a population's: NumPy arrays of its K agents);
    no tensor work on the hot path."""

    def __init__(self, gamma: float, agents: int | None = None):
        self.gamma, self.agents = gamma, agents
        self.trace = self.mean = self.m2 = 0.0 if agents is None else np.zeros(agents)
        self.count = 0

    def __call__(self, reward, episode_end):
        """The scaled reward of this step (float, or a population's (K,) array), `episode_end` marking
        the last step of its episode (a bool, or (K,) booleans)."""
        restart = (0.0 if episode_end else 1.0) if self.agents is None else np.where(episode_end, 0.0, 1.0)
        trace = self.trace * self.gamma * restart + reward
        self.trace = trace
        self.count += 1
        self.mean, self.m2 = welford_update(self.mean, self.m2, self.count, trace)
        scale = welford_variance(self.m2, self.count) + 1e-8
        return reward / (math.sqrt(scale) if self.agents is None else np.sqrt(scale))

    def state_dict(self) -> dict:
        host = (lambda v: v) if self.agents is None else (lambda v: v.tolist())  # (checkpoints hold no arrays)
        return {"trace": host(self.trace), "mean": host(self.mean), "m2": host(self.m2), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        value = float if self.agents is None else (lambda v: np.array(v, dtype=np.float64))
        self.trace, self.mean, self.m2 = value(state["trace"]), value(state["mean"]), value(state["m2"])
        self.count = int(state["count"])
