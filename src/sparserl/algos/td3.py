"""TD3 (Fujimoto, van Hoof, Meger 2018), as in sfujim/TD3 and RLx2.

Per update: critic regression on the clipped double-Q target with target-policy smoothing
    y = r + gamma * (1 - terminal) * min_i Q'_i(s', clip(pi'(s') + clip(N(0, 0.2), -0.5, 0.5), -1, 1))
(or its n-step form, see sparserl.algos.nstep, with the smoothing noise at the bootstrap state);
every `policy_delay` (2) updates, an actor step on -Q_1(s, pi(s)) and Polyak averaging (tau 0.005)
of actor and critics. Exploration: pi(s) + N(0, 0.1), clipped to the action bounds.
"""

from __future__ import annotations

import numpy as np
import torch

from sparserl.algos.base import ReplayAgent, to_host, twin_mse
from sparserl.algos.nstep import TDWindow, td_window
from sparserl.nets import DeterministicActor
from sparserl.replay import Batch


class TD3(ReplayAgent):
    """Twin critics with clipped double-Q targets, target-policy smoothing and a delayed actor."""

    name = "td3"
    stat_names = ("critic_loss", "q", "actor_loss")
    settings = ("exploration_noise", "policy_noise", "noise_clip", "policy_delay")

    def __init__(self, info, config):
        super().__init__(info, config)
        c = config
        self.actor = self.add_network("actor", self.make_actor(), target=True)
        self.critic = self.add_network("critic", self.make_critic(), target=True)
        self.actor_target = self.networks["actor_target"]
        self.critic_target = self.networks["critic_target"]
        self.actor_opt = self.add_optimizer("actor", self.actor.parameters(), c.actor_lr)
        self.critic_opt = self.add_optimizer("critic", self.critic.parameters(), c.critic_lr)
        self._targets = self.target_pairs("actor", "critic")
        self.gamma, self.tau, self.policy_delay = c.gamma, c.tau, c.policy_delay
        self.policy_noise, self.noise_clip, self.exploration_noise = c.policy_noise, c.noise_clip, \
            c.exploration_noise

    def optimizer_steps(self, name: str, updates: int) -> int:
        return updates // self.policy_delay if name == "actor" else updates

    @property
    def policy(self) -> DeterministicActor:
        return self.actor

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = self.actor(self.as_input(obs).unsqueeze(-2)).squeeze(-2)
        action = (mean + self.exploration_noise * self.draws.normal(mean.shape)).clamp_(-1.0, 1.0)
        return to_host(action), to_host(mean)

    @torch.no_grad()
    def td_target(self, window: TDWindow) -> torch.Tensor:
        """The clipped double-Q target of each sample, bootstrapped with a smoothed target action."""
        noise = (self.draws.normal(window.action.shape) * self.policy_noise).clamp_(-self.noise_clip, self.noise_clip)
        next_action = (self.actor_target(window.bootstrap_obs) + noise).clamp_(-1.0, 1.0)
        next_q = self.critic_target(window.bootstrap_obs, next_action).amin(dim=-2)
        return window.reward_sum + window.bootstrap_discount * next_q

    def actor_objective(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-sample actor loss -Q_1(s, pi(s)), (B,); the critic's weights get no gradient."""
        return -self.critic.first(obs, self.actor(obs), detach=True)

    def _critic_loss(self, window: TDWindow) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.td_target(window)
        q = self.critic(window.obs, window.action)  # (2, B), or (K, 2, B): every critic in one pass
        return twin_mse(q, target), q

    def critic_objective(self, batch: Batch) -> torch.Tensor:
        return self._critic_loss(td_window(batch, self.gamma, self.population is not None))[0]

    def update(self, batch: Batch) -> None:
        self.updates += 1
        window = td_window(batch, self.gamma, self.population is not None)
        critic_loss, q = self._critic_loss(window)
        self.optimize(self.critic_opt, critic_loss)
        self.record(0, torch.stack((critic_loss, q.mean((-2, -1))), dim=-1))

        if self.updates % self.policy_delay == 0:
            actor_loss = self.actor_objective(window.obs).mean(-1)
            self.optimize(self.actor_opt, actor_loss)
            self.record(2, actor_loss.unsqueeze(-1))
            self.soft_update(self._targets, self.tau)
