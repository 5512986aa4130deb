"""Multi-step TD targets: RLx2's "delayed multi-step" target (Tan et al. 2023, §4.2.1).

For a window of n consecutive transitions starting at t, uncorrected (no importance weights):

    T = sum_{k<=m} gamma^k r_{t+k}  +  gamma^(m+1) (1 - terminal_m) V'(s_{t+m+1})

where m is the last transition of the window still in the first transition's episode: the sum
stops at the first terminal (no bootstrap) or time-limit end (bootstrap from that transition's
next state), else m = n - 1. SAC's soft value adds -alpha log pi at every next state the window
reaches, with that state's discount. With n = 1 this is the usual one-step target. RLx2 uses
n = 3 after the first `delay_nstep` = 300 000 gradient updates (one-step before).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from sparserl.replay import Batch
from sparserl.replay.windows import alive_mask


class TDWindow(NamedTuple):
    """What a TD target needs from a sampled window, for B samples of up to n transitions (a
    population's fields lead with its K agents: (K, B, ...))."""

    obs: torch.Tensor
    """(B, obs_dim): the state whose value is regressed."""
    action: torch.Tensor
    """(B, act_dim): the action taken there."""
    reward_sum: torch.Tensor
    """(B,): discounted sum of the window's rewards up to and including transition m."""
    bootstrap_obs: torch.Tensor
    """(B, obs_dim): the next state of transition m."""
    bootstrap_discount: torch.Tensor
    """(B,): gamma^(m+1), or 0 when transition m is terminal."""
    next_obs: torch.Tensor
    """(B, n, obs_dim): every next state of the window."""
    next_discount: torch.Tensor
    """(B, n): gamma^(k+1) for the next states the window reaches and that are not terminal, else 0."""
    last: torch.Tensor | None
    """(B,) index m, or None for one-step windows (m = 0)."""

    def at_last(self, values: torch.Tensor) -> torch.Tensor:
        """values[b, m_b] from per-next-state values shaped (B, n, X)."""
        if self.last is None:
            return values[..., 0, :]
        return values.take_along_dim(self.last[..., None, None], dim=-2).squeeze(-2)


def td_window(batch: Batch, gamma: float, population: bool = False) -> TDWindow:
    """The TD window of a batch sampled with windows of n >= 1 transitions (fields (B, n, ...)), or
    of a plain one-step batch (fields (B, ...)); a `population`'s fields lead with K."""
    if batch.reward.dim() == (2 if population else 1):  # one-step batch: the common case, no windows to walk
        discount = gamma * (1.0 - batch.terminated)
        return TDWindow(batch.obs, batch.action, batch.reward, batch.next_obs, discount,
                        batch.next_obs.unsqueeze(-2), discount.unsqueeze(-1), None)
    reward_sum, next_discount, last = window_sums(batch.reward, batch.terminated, batch.truncated, gamma)
    return TDWindow(batch.obs[..., 0, :], batch.action[..., 0, :], reward_sum,
                    batch.next_obs.take_along_dim(last[..., None, None], dim=-2).squeeze(-2),
                    next_discount.take_along_dim(last[..., None], dim=-1).squeeze(-1), batch.next_obs,
                    next_discount, last)


def window_sums(reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For windows of n transitions (last axis): the discounted reward sum up to transition m, the
    discount gamma^(k+1) (0 where terminal) of every next state the window reaches (0 past m), and m."""
    n = reward.shape[-1]
    alive = alive_mask(terminated, truncated)
    powers = gamma ** torch.arange(n + 1, dtype=reward.dtype, device=reward.device)
    reward_sum = (alive * powers[:n] * reward).sum(dim=-1)
    next_discount = alive * powers[1:] * (1.0 - terminated)
    return reward_sum, next_discount, alive.sum(dim=-1).long() - 1
