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
    return evaluate_agents(lambda obs: policy(obs[0])[None], [env], episodes, [seed])[0]


def evaluate_agents(policy: Callable[[np.ndarray], np.ndarray], envs: list[gym.Env], episodes: int,
                    seeds: list[int]) -> list[EvalResult]:
    """`evaluate` for K agents at once: `policy` maps the K observations (K, obs) to K actions, and
    agent k runs its episodes on envs[k] (seeded seeds[k]); an agent done with its episodes idles
    while the others finish."""
    agents = len(envs)
    returns: list[list[float]] = [[] for _ in range(agents)]
    lengths: list[list[int]] = [[] for _ in range(agents)]
    obs = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)]
    totals, steps = [0.0] * agents, [0] * agents
    running = [episodes > 0] * agents
    while any(running):
        actions = policy(np.stack(obs))
        for k, env in enumerate(envs):
            if not running[k]:
                continue
            obs[k], reward, terminated, truncated, _ = env.step(actions[k])
            totals[k] += float(reward)
            steps[k] += 1
            if terminated or truncated:
                returns[k].append(totals[k])
                lengths[k].append(steps[k])
                totals[k], steps[k] = 0.0, 0
                if len(returns[k]) < episodes:
                    obs[k] = env.reset()[0]
                else:
                    running[k] = False
    return [EvalResult(tuple(r), tuple(n)) for r, n in zip(returns, lengths)]
