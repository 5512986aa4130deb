"""Evaluation by the TD3 protocol: the deterministic policy (SAC: the mean action) for a number of
episodes on a separate environment. Every evaluation starts by resetting that environment with
the same evaluation seed, so all evaluations of a run (and of a re-evaluation) see the same
sequence of initial states, independent of training history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class EvalResult:
    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f} over {len(self.returns)} episodes"


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int) -> EvalResult:
    """Run `episodes` episodes of `policy` (observation -> action in [-1, 1]) on `env`."""
    returns, lengths = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    return EvalResult(tuple(returns), tuple(lengths))
