"""Stream AC(lambda) (Elsayed, Vasan, Mahmood 2024, "Streaming Deep RL Finally Works").

Per environment step, from the one transition (s, a, r, s') as it arrives, with r the scaled reward
(sparserl.streaming.scaling), s and s' each normalised when it arrived, and no replay, batch or
target network:

    delta = r + gamma * (1 - terminal) * V(s') - V(s)
    critic:  z_V  <- gamma lambda z_V  + grad V(s)                                theta_V  += a_V  delta z_V
    actor:   z_pi <- gamma lambda z_pi + grad [log pi(a|s) + c sign(delta) H(pi(.|s))]  theta_pi += a_pi delta z_pi

where each step size is ObGD's bound a = lr / max(1, max(|delta|, 1) ||z||_1 lr kappa)
(sparserl.streaming.ObGD; kappa_value 2, kappa_policy 3, lr 1), gamma 0.99, lambda 0.8, c 0.01 and
the traces reset at each episode end. Continuous actions: a ~ N(mu(s), softplus(sigma(s))),
unbounded, clipped to [-1, 1] for the environment; discrete: a ~ softmax(logits(s)), drawn by the
inverse CDF of one uniform.

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
    stat_names = ("td_error", "value", "entropy", "step_size_policy", "step_size_value")
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
        self.entropy_coef, self.discrete = config.entropy_coef, info.discrete

    @property
    def policy(self) -> Actor:
        return self.actor

    def noise(self) -> torch.Tensor:
        """A standard normal per action dimension; discrete: one uniform for the inverse CDF."""
        lead = () if self.population is None else (self.population,)
        return self.draws.uniform(lead) if self.discrete else self.draws.normal((*lead, self.info.act_dim))

    def _policy(self, x: torch.Tensor):
        """Log-probabilities (|A|,) of a discrete policy, or the Gaussian's (mean, std), each (|A|,)
        (a population's: (K, |A|))."""
        out = self.actor.net.normalised(x.unsqueeze(-2)).squeeze(-2)
        return F.log_softmax(out, dim=-1) if self.discrete else ClippedGaussianActor.head(out)

    def sample(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        policy = self._policy(x)
        if self.discrete:  # the first action whose cumulative probability exceeds the uniform draw
            below = (policy.exp().cumsum(-1) < noise.unsqueeze(-1)).sum(-1)
            return below.clamp(max=policy.shape[-1] - 1)
        mean, std = policy
        return mean + std * noise

    def env_action(self, action: torch.Tensor) -> np.ndarray:
        return action.numpy() if self.discrete else action.clamp(-1.0, 1.0).numpy()

    def loss(self, x, action, reward, discount, x_next):
        values = self.critic(torch.stack((x, x_next), dim=-2))[..., 0]
        value = values[..., 0]
        delta = (reward + discount * values[..., 1] - value).detach()
        policy = self._policy(x)
        if self.discrete:
            log_prob = policy.gather(-1, action.unsqueeze(-1)).squeeze(-1)
            entropy = -(policy.exp() * policy).sum(-1)
        else:
            mean, std = policy
            log_std = std.log()
            z = (action - mean) / std
            log_prob = (-0.5 * z.square() - log_std).sum(-1) - LOG_SQRT_2PI * mean.shape[-1]
            entropy = (log_std + (0.5 + LOG_SQRT_2PI)).sum(-1)
        # ObGD steps along -delta * z, so z takes the gradients of -V(s) and of -(log pi + c sign(delta) H)
        loss = -value - log_prob - (self.entropy_coef * delta.sign()) * entropy
        return loss, delta, torch.stack((delta, value.detach(), entropy.detach()), dim=-1)
