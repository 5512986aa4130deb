"""RLx2's policy-aware dynamic replay capacity (Tan et al. 2023, §4.2.2; behaviour of its code).

Every `every` environment steps the current policy is compared with the noise-free actions stored
with the `samples` oldest transitions (8 x batch = 2 048):

    D = mean over those transitions and action dimensions of (pi(s) - a_stored)^2 / 2

(actions in units of the max action). If D > `threshold` (0.2) and the buffer holds more than
`min_size` transitions (TD3 1e5, SAC 2e5), the oldest `drop_fraction` (10 %) of the contents is
dropped, never going below `min_size`. RLx2's code shrinks once per check; its paper pops until D
falls below the threshold (`until_below=True`). New transitions keep arriving, so the capacity
grows back by one per step up to the buffer's maximum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sparserl.replay.buffer import ReplayBuffer


class DynamicCapacity:
    """Shrinks a ReplayBuffer when the policy has drifted from its oldest transitions; a
    population's agents each by their own policy's drift from their own oldest transitions."""

    def __init__(self, buffer: ReplayBuffer, *, every: int = 10_000, threshold: float = 0.2,
                 min_size: int = 100_000, drop_fraction: float = 0.1, samples: int = 2048,
                 until_below: bool = False):
        if not (every > 0 and threshold > 0 and 0 < drop_fraction < 1 and samples > 0 and min_size > 0):
            raise ValueError("DynamicCapacity needs every, threshold, samples, min_size > 0 and "
                             f"0 < drop_fraction < 1; got {every}, {threshold}, {samples}, {min_size}, "
                             f"{drop_fraction}")
        self.buffer, self.every, self.threshold = buffer, every, threshold
        self.min_size, self.drop_fraction, self.samples = min_size, drop_fraction, samples
        self.until_below = until_below
        agents = buffer.agents or 1
        self.last_distances = np.full(agents, math.nan)
        """Per agent: D measured at the latest check, before it shrank anything (NaN before the first)."""
        self.dropped_by_agent = np.zeros(agents, dtype=np.int64)
        """Per agent: transitions dropped by all checks so far."""

    @property
    def last_distance(self) -> float:
        return float(self.last_distances[0])

    @property
    def dropped(self) -> int:
        return int(self.dropped_by_agent[0])

    @torch.no_grad()
    def distances(self, policy: nn.Module) -> np.ndarray:
        """D of `policy` over each agent's oldest `samples` transitions, one per agent."""
        oldest = self.buffer.oldest(self.samples)
        gap = (policy(oldest.obs) - oldest.policy_action).square()
        return 0.5 * gap.flatten(-2).mean(-1).reshape(-1).double().cpu().numpy()

    def distance(self, policy: nn.Module) -> float:
        """D of `policy` over the oldest `samples` transitions (a single agent's)."""
        return float(self.distances(policy)[0])

    def maybe_check(self, step: int, policy: nn.Module) -> bool:
        """Check at every `every`-th environment step; True if a check ran."""
        if step % self.every:
            return False
        self.check(policy)
        return True

    def check(self, policy: nn.Module) -> int:
        """Measure D and shrink as the rule says; returns how many transitions were dropped (all
        agents together)."""
        distances = self.distances(policy)
        self.last_distances[:] = distances
        dropped = np.zeros_like(self.dropped_by_agent)
        pending = list(range(len(distances)))
        while pending:
            again = []
            for k in pending:
                live = self.buffer.live(k)
                if distances[k] > self.threshold and live > self.min_size:
                    count = min(max(1, int(self.drop_fraction * live)), live - self.min_size)
                    self.buffer.drop_oldest(count, agent=k if self.buffer.agents is not None else None)
                    dropped[k] += count
                    again.append(k)
            if not (self.until_below and again):
                break
            pending, distances = again, self.distances(policy)
        self.dropped_by_agent += dropped
        return int(dropped.sum())

    def state_dict(self) -> dict:
        if self.buffer.agents is None:
            return {"last_distance": self.last_distance, "dropped": self.dropped}
        return {"last_distance": self.last_distances.tolist(), "dropped": self.dropped_by_agent.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.last_distances[:] = np.asarray(state["last_distance"], dtype=np.float64)
        self.dropped_by_agent[:] = np.asarray(state["dropped"], dtype=np.int64)
