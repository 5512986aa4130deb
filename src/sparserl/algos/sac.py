"""SAC with a learned temperature (Haarnoja et al. 2018, "SAC Algorithms and Applications").

Per update, in order: critic regression on
    y = r + gamma * (1 - terminal) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')),  a' ~ pi(.|s')
(or its n-step form, see sparserl.algos.nstep: -alpha log pi at every next state of the window);
an actor step on E[alpha * log pi(a|s) - min_i Q_i(s, a)]; a temperature step on
-log(alpha) * (log pi(a|s) + target_entropy) with target_entropy = -|A|; and Polyak averaging
(tau 0.005) of the critics. The actor is updated every step and has no target copy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sparserl.algos.base import ReplayAgent, to_host, twin_mse
from sparserl.algos.nstep import TDWindow, td_window
from sparserl.nets import GaussianActor
from sparserl.replay import Batch


class Temperature(nn.Module):
    """alpha = exp(log_alpha), learned (one per agent of a population: (K,))."""

    def __init__(self, init_alpha: float, population: int | None = None):
        super().__init__()
        shape = () if population is None else (population,)
        self.log_alpha = nn.Parameter(torch.full(shape, math.log(init_alpha)))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class SAC(ReplayAgent):
    """Soft actor-critic with a learned temperature and twin critics."""

    name = "sac"
    stat_names = ("critic_loss", "q", "actor_loss", "alpha_loss", "alpha", "entropy")
    settings = ("alpha_lr", "init_alpha", "target_entropy", "target_entropy_scale", "log_std_min", "log_std_max",
                "log_std_bound")
    actor_class = GaussianActor

    def __init__(self, info, config):
        super().__init__(info, config)
        c = config
        self.actor = self.add_network("actor", self.make_actor(log_std_min=c.log_std_min, log_std_max=c.log_std_max,
                                                               log_std_bound=c.log_std_bound))
        self.critic = self.add_network("critic", self.make_critic(), target=True)
        self.critic_target = self.networks["critic_target"]
        self.temperature = self.add_network("temperature", Temperature(c.init_alpha, self.population))
        self.actor_opt = self.add_optimizer("actor", self.actor.parameters(), c.actor_lr)
        self.critic_opt = self.add_optimizer("critic", self.critic.parameters(), c.critic_lr)
        self.alpha_opt = self.add_optimizer("temperature", self.temperature.parameters(), c.alpha_lr, 0.0)
        self._targets = self.target_pairs("critic")
        self.gamma, self.tau = c.gamma, c.tau
        self.target_entropy = float(-c.target_entropy_scale * info.act_dim if c.target_entropy is None
                                    else c.target_entropy)

    @property
    def policy(self) -> GaussianActor:
        return self.actor

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action at each observation (..., B, obs) and its log-probability, the
        noise drawn from the agent's own stream."""
        return self.actor.sample(obs, self.draws.normal((*obs.shape[:-1], self.info.act_dim)))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.as_input(obs).unsqueeze(-2)
        action, _ = self.sample(x)
        return to_host(action.squeeze(-2)), to_host(self.actor(x).squeeze(-2))

    @torch.no_grad()
    def td_target(self, window: TDWindow, alpha: torch.Tensor) -> torch.Tensor:
        """The soft clipped double-Q target: actions sampled from the current policy at every next
        state of the window; the one at the bootstrap state goes into the target critics."""
        *agents, batch_size, n, obs_dim = window.next_obs.shape
        actions, log_probs = self.sample(window.next_obs.reshape(*agents, batch_size * n, obs_dim))
        next_action = window.at_last(actions.view(*agents, batch_size, n, -1))
        next_q = self.critic_target(window.bootstrap_obs, next_action).amin(dim=-2)
        entropy_bonus = (window.next_discount * log_probs.view(*agents, batch_size, n)).sum(dim=-1)
        return window.reward_sum + window.bootstrap_discount * next_q - alpha[..., None] * entropy_bonus

    def _actor_loss(self, obs: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample actor loss alpha log pi(a|s) - min_i Q_i(s, a), a ~ pi(.|s), and log pi."""
        action, log_prob = self.sample(obs)
        q_pi = self.critic(obs, action, detach=True).amin(dim=-2)
        return alpha[..., None] * log_prob - q_pi, log_prob

    def actor_objective(self, obs: torch.Tensor) -> torch.Tensor:
        return self._actor_loss(obs, self.temperature().detach())[0]

    def _critic_loss(self, window: TDWindow, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.td_target(window, alpha)
        q = self.critic(window.obs, window.action)  # (2, B), or (K, 2, B): every critic in one pass
        return twin_mse(q, target), q

    def critic_objective(self, batch: Batch) -> torch.Tensor:
        return self._critic_loss(td_window(batch, self.gamma, self.population is not None),
                                 self.temperature().detach())[0]

    def update(self, batch: Batch) -> None:
        self.updates += 1
        alpha = self.temperature().detach()
        window = td_window(batch, self.gamma, self.population is not None)
        critic_loss, q = self._critic_loss(window, alpha)
        self.optimize(self.critic_opt, critic_loss)

        actor_losses, log_prob = self._actor_loss(window.obs, alpha)
        actor_loss = actor_losses.mean(-1)
        self.optimize(self.actor_opt, actor_loss)

        log_prob = log_prob.detach()
        alpha_loss = -(self.temperature.log_alpha[..., None] * (log_prob + self.target_entropy)).mean(-1)
        self.optimize(self.alpha_opt, alpha_loss)
        self.soft_update(self._targets, self.tau)
        self.record(0, torch.stack((critic_loss, q.mean((-2, -1)), actor_loss, alpha_loss, alpha, -log_prob.mean(-1)),
                                   dim=-1))
