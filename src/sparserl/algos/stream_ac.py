"""Stream AC(lambda) (Elsayed, Vasan, Mahmood 2024, "Streaming Deep RL Finally Works").

Per environment step, from the one transition (s, a, r, s') as it arrives, with r the scaled reward
(sparserl.streaming.scaling) and no replay, batch or target network:

    delta = r + gamma * (1 - terminal) * V(s') - V(s)
    critic:  z_V  <- gamma lambda z_V  + grad V(s)                                theta_V  += a_V  delta z_V
    actor:   z_pi <- gamma lambda z_pi + grad [log pi(a|s) + c sign(delta) H(pi(.|s))]  theta_pi += a_pi delta z_pi

where each step size is ObGD's bound a = lr / max(1, max(|delta|, 1) ||z||_1 lr kappa)
(sparserl.streaming.ObGD; kappa_value 2, kappa_policy 3, lr 1), gamma 0.99, lambda 0.8, c 0.01 and
the traces reset at each episode end. Continuous actions: a ~ N(mu(s), softplus(sigma(s))),
unbounded, clipped to [-1, 1] for the environment; discrete: a ~ softmax(logits(s)).

The algorithm's defaults are the paper's setting: separate actor and critic of two hidden layers of
128 units, each Linear followed by a LayerNorm without affine parameters and a leaky ReLU
(`layernorm-mlp`), SparseInit, per-sample observation normalisation, the time feature and reward
scaling; 2M steps; training episode returns as the measure (no evaluation episodes); one torch
thread (steps of one transition gain nothing from more).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sparserl.nets import Actor, CategoricalActor, ClippedGaussianActor
from sparserl.nets.actors import LOG_SQRT_2PI
from sparserl.streaming.agent import StreamingAgent


class StreamAC(StreamingAgent):
    """Stream AC(lambda): actor-critic on eligibility traces with ObGD's bounded steps."""

    name = "stream-ac"
    stat_names = ("td_error", "value", "entropy", "step_size_value", "step_size_policy")
    settings = ("trace_lambda", "kappa_policy", "kappa_value", "obgd_lr", "obgd", "obgd_beta2", "entropy_coef",
                "reward_scaling")
    discrete_actions = True
    actor_class = ClippedGaussianActor
    defaults = {"network": "layernorm-mlp", "hidden": (128, 128), "init": "sparse", "obs_norm": True,
                "time_feature": True, "start_steps": 0, "total_steps": 2_000_000, "eval_episodes": 0,
                "eval_every": 10_000, "diagnostics_every": 0, "checkpoint_every": 100_000, "threads": 1}

    @classmethod
    def actor_for(cls, info) -> type[Actor]:
        return CategoricalActor if info.discrete else ClippedGaussianActor

    def __init__(self, info, config):
        super().__init__(info, config)
        self.actor = self.add_network("actor", self.make_actor())
        self.critic = self.add_network("critic", self.make_value())
        self.add_obgd("actor", self.actor.parameters(), config.kappa_policy)
        self.add_obgd("critic", self.critic.parameters(), config.kappa_value)
        self.gamma, self.entropy_coef, self.discrete = config.gamma, config.entropy_coef, info.discrete
        self._pending = None  # what the next `learn` needs of the last `act`

    @property
    def policy(self) -> Actor:
        return self.actor

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, None]:
        """Sample the action, keeping the policy's graph for the update that follows (no noise-free
        action: nothing stores it)."""
        x = torch.from_numpy(obs).unsqueeze(0)
        if self.discrete:
            log_probs = F.log_softmax(self.actor.net(x)[0], dim=-1)
            action = torch.multinomial(log_probs.detach().exp(), 1)[0]
            self._pending = (obs, log_probs, action)
            return action.numpy(), None
        mean, std = self.actor.distribution(x)  # (1, |A|) each
        action = (mean + std * torch.randn_like(mean)).detach()
        self._pending = (obs, (mean, std), action)
        return action[0].clamp(-1.0, 1.0).numpy(), None

    def _log_prob_and_entropy(self, policy, action) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            return policy[action], -(policy.exp() * policy).sum()
        mean, std = policy
        log_std = std.log()
        z = (action - mean) / std
        return (-0.5 * z.square() - log_std).sum() - LOG_SQRT_2PI * mean.numel(), \
            (log_std + (0.5 + LOG_SQRT_2PI)).sum()

    def learn(self, reward: float, next_obs: np.ndarray, terminal: bool, episode_end: bool) -> None:
        obs, policy, action = self._pending
        self._pending = None
        values = self.critic(torch.from_numpy(np.stack((obs, next_obs))))[:, 0]
        value = values[0]
        delta = (reward + (0.0 if terminal else self.gamma) * values[1] - value).detach()
        log_prob, entropy = self._log_prob_and_entropy(policy, action)
        # ObGD steps along -delta * z, so z takes the gradients of -V(s) and of -(log pi + c sign(delta) H)
        loss = -value - log_prob - (self.entropy_coef * delta.sign()) * entropy
        actor_opt, critic_opt = self.optimizers["actor"], self.optimizers["critic"]
        actor_opt.zero_grad(set_to_none=True)
        critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        policy_step = actor_opt.step(delta, reset=episode_end)
        value_step = critic_opt.step(delta, reset=episode_end)
        self.updates += 1
        self.record(0, torch.stack((delta, value.detach(), entropy.detach(), value_step, policy_step)))
