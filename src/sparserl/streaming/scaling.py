"""Reward scaling of the streaming learners (Elsayed, Vasan, Mahmood 2024): each reward is divided
by the running standard deviation of a discounted-return trace u <- gamma * (1 - end) * u + r, whose
statistics (Welford, unbiased; variance 1 until two samples) take every step's u; `end` marks the
last step of an episode, so the trace restarts there (as in the paper's code, at that step's reward)."""

from __future__ import annotations

import math

from sparserl.nets.norms import welford_update, welford_variance


class RewardScaler:
    """r -> r / sqrt(var(u) + 1e-8), on host floats (no tensor work on the hot path)."""

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.trace = self.mean = self.m2 = 0.0
        self.count = 0

    def __call__(self, reward: float, episode_end: bool) -> float:
        trace = self.trace * self.gamma * (0.0 if episode_end else 1.0) + reward
        self.trace = trace
        self.count += 1
        self.mean, self.m2 = welford_update(self.mean, self.m2, self.count, trace)
        return reward / math.sqrt(welford_variance(self.m2, self.count) + 1e-8)

    def state_dict(self) -> dict:
        return {"trace": self.trace, "mean": self.mean, "m2": self.m2, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.trace, self.mean, self.m2 = float(state["trace"]), float(state["mean"]), float(state["m2"])
        self.count = int(state["count"])
