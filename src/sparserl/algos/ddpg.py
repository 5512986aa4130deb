"""DDPG (Lillicrap et al. 2016) as sfujim/TD3's "OurDDPG" runs it: TD3 without its three changes.

One critic regressed on y = r + gamma (1 - terminal) Q'(s', pi'(s')) (no target smoothing, no
minimum over twins), then an actor step on -Q(s, pi(s)) and Polyak averaging (tau 0.005) after
every update (no delay). Exploration pi(s) + N(0, 0.1); networks, learning rates and batch as TD3.
"""

from __future__ import annotations

import torch

from sparserl.algos.nstep import TDWindow
from sparserl.algos.td3 import TD3


class DDPG(TD3):
    """Deep deterministic policy gradient: one critic, no target smoothing, actor updated every step."""

    name = "ddpg"
    settings = ("exploration_noise",)

    @classmethod
    def critic_members(cls, config) -> int:
        return 1

    def __init__(self, info, config):
        super().__init__(info, config)
        self.policy_delay = 1

    @torch.no_grad()
    def td_target(self, window: TDWindow) -> torch.Tensor:
        next_q = self.critic_target(window.bootstrap_obs, self.actor_target(window.bootstrap_obs)).squeeze(-2)
        return window.reward_sum + window.bootstrap_discount * next_q
