"""DrQ-v2 (Yarats, Fergus, Lazaric, Pinto 2021, "Mastering Visual Continuous Control: Improved
Data-Augmented Reinforcement Learning"), from pixels, as its code (facebookresearch/drqv2) runs it.

Per update, on a minibatch of frame stacks (sparserl.replay.FrameReplay) each randomly shifted
(pad 4): the encoder's features h = f(obs) and, without gradient, h' = f(next obs m) of the n-step
window's bootstrap transition m; critic regression of both Q-heads on
    y = sum_{k<=m} gamma^k r_k + gamma^(m+1) (1 - terminal_m) min_i Q'_i(h', a'),
    a' = clip(mu(h') + clip(std * N(0, 1), -0.3, 0.3), -1, 1)
(n = 3), stepping critic and encoder together; then an actor step on -min_i Q_i(h, a) with a drawn
the same way from mu(sg(h)) (the actor's loss never reaches the encoder), and Polyak averaging of
the critic (tau 0.01; no target encoder or actor). Exploration: mu(h) + std * N(0, 1), where std
falls linearly from 1.0 to 0.1 over 500 000 decisions. The actor and the critic each read h through
a trunk of their own (Linear -> LayerNorm -> tanh, 50 wide) before their 1024-wide MLPs. Learning
rate 1e-4 for all three, batch 256, an update every 2 decisions, 4 000 frames (2 000 decisions at
action repeat 2) of uniform random actions first.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sparserl.algos.base import ReplayAgent, architecture, to_host, twin_mse
from sparserl.algos.nstep import window_sums
from sparserl.nets import DeterministicActor, QEnsemble
from sparserl.nets.visual import (
    Encoder,
    Trunk,
    linear_schedule,
    orthogonal_init,
    random_shift,
    shift_offsets,
    truncated_normal_action,
)
from sparserl.replay import FrameBatch


class PixelActor(nn.Module):
    """The actor on the encoder's features: its trunk, then tanh(MLP)."""

    def __init__(self, features: int, trunk_dim: int, head: DeterministicActor):
        super().__init__()
        self.trunk, self.head = Trunk(features, trunk_dim), head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(h))


class PixelCritic(nn.Module):
    """The Q-heads on the encoder's features: one trunk, then the ensemble on (trunk(h), a)."""

    def __init__(self, features: int, trunk_dim: int, heads: QEnsemble):
        super().__init__()
        self.trunk, self.heads = Trunk(features, trunk_dim), heads

    def forward(self, h: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(h), action)


class PixelPolicy(nn.Module):
    """What acts: frames in, the deterministic action mu(f(obs)) out (shares the agent's modules)."""

    def __init__(self, encoder: Encoder, actor: PixelActor):
        super().__init__()
        self.encoder, self.actor = encoder, actor

    @property
    def kind(self) -> str:
        return self.actor.head.kind

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.encoder(obs))


class DrQV2(ReplayAgent):
    """DrQ-v2 from pixels: shifted frames, a shared encoder trained by the critic, n-step twin-Q
    targets, a deterministic actor with scheduled truncated-normal noise."""

    name = "drqv2"
    stat_names = ("critic_loss", "q", "actor_loss", "std")
    settings = ("feature_dim", "std_start", "std_end", "std_duration", "std_clip", "augment_pad")
    pixels = True
    sparse_networks = ("encoder", "actor", "critic")
    policy_networks = ("encoder", "actor")
    defaults = {"pixels": True, "hidden": (1024, 1024), "actor_lr": 1e-4, "critic_lr": 1e-4, "batch_size": 256,
                "nstep": 3, "tau": 0.01, "update_every": 2, "action_repeat": 2, "start_steps": 2_000,
                "diagnostics_every": 0}

    @classmethod
    def architectures(cls, info, config):
        """The MLP heads after the trunks (the encoder and trunks are convolutions and one linear
        layer each, outside these descriptions)."""
        return {"actor": (architecture(config, "actor", config.feature_dim, info.act_dim), 1),
                "critic": (architecture(config, "critic", config.feature_dim + info.act_dim, 1),
                           cls.critic_members(config))}

    def __init__(self, info, config):
        super().__init__(info, config)
        c = config
        channels, size = info.obs_shape[0], info.obs_shape[-1]
        arch = self.architectures(info, c)
        self.encoder = self.add_network("encoder", Encoder(channels, size))
        features = self.encoder.features
        head = DeterministicActor(arch["actor"][0])
        self.actor = self.add_network("actor", PixelActor(features, c.feature_dim, head))
        self.critic = self.add_network("critic", PixelCritic(features, c.feature_dim, QEnsemble(*arch["critic"])),
                                       target=True)
        orthogonal_init(self.actor.head)
        orthogonal_init(self.critic.heads)
        self.networks["critic_target"].load_state_dict(self.critic.state_dict())
        self.critic_target = self.networks["critic_target"]
        self.encoder_opt = self.add_optimizer("encoder", self.encoder.parameters(), c.critic_lr)
        self.actor_opt = self.add_optimizer("actor", self.actor.parameters(), c.actor_lr)
        self.critic_opt = self.add_optimizer("critic", self.critic.parameters(), c.critic_lr)
        self._targets = self.target_pairs("critic")
        self._policy = PixelPolicy(self.encoder, self.actor)
        self.gamma, self.tau, self.pad, self.clip = c.gamma, c.tau, c.augment_pad, c.std_clip

    def weight_uses(self, name: str) -> dict[str, int] | None:
        return self.encoder.weight_uses() if name == "encoder" else None

    @property
    def policy(self) -> PixelPolicy:
        return self._policy

    def std(self) -> float:
        """The exploration std at the current decision (counted from the updates done: a learning
        step every update_every decisions after start_steps)."""
        c = self.config
        decisions = c.start_steps + self.updates // c.updates_per_step * c.update_every
        return linear_schedule(c.std_start, c.std_end, c.std_duration, decisions)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = self.policy(self.as_input(obs).unsqueeze(0))
        action = truncated_normal_action(mean, self.std(), self.draws.normal(mean.shape), clip=None)
        return to_host(action[0]), to_host(mean[0])

    @torch.no_grad()
    def act_deterministic(self, obs: np.ndarray) -> np.ndarray:
        return to_host(self.policy(self.as_input(obs).unsqueeze(0))[0])

    def augment(self, frames: torch.Tensor) -> torch.Tensor:
        """Random shift of each stack (one offset per stack, shared by its frames)."""
        return random_shift(frames, shift_offsets(self.draws.uniform((frames.shape[0], 2)), self.pad), self.pad)

    def noisy_action(self, h: torch.Tensor, actor_input: torch.Tensor | None = None) -> torch.Tensor:
        mean = self.actor(h if actor_input is None else actor_input)
        return truncated_normal_action(mean, self.std(), self.draws.normal(mean.shape), self.clip)

    def window(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(first action, discounted reward sum, bootstrap discount) of each sampled window."""
        if batch.reward.dim() == 1:
            return batch.action, batch.reward, self.gamma * (1.0 - batch.terminated)
        reward_sum, next_discount, last = window_sums(batch.reward, batch.terminated, batch.truncated, self.gamma)
        return batch.action[:, 0], reward_sum, next_discount.take_along_dim(last[:, None], dim=1).squeeze(1)

    @torch.no_grad()
    def td_target(self, next_h: torch.Tensor, reward_sum: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
        next_q = self.critic_target(next_h, self.noisy_action(next_h)).amin(dim=-2)
        return reward_sum + discount * next_q

    def _critic_loss(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder(self.augment(batch.obs))
        with torch.no_grad():
            next_h = self.encoder(self.augment(batch.next_obs))
        action, reward_sum, discount = self.window(batch)
        target = self.td_target(next_h, reward_sum, discount)
        q = self.critic(h, action)
        return twin_mse(q, target), q, h

    def critic_objective(self, batch: FrameBatch) -> torch.Tensor:
        return self._critic_loss(batch)[0]

    def actor_objective(self, h: torch.Tensor) -> torch.Tensor:
        """Per-sample actor loss -min_i Q_i(h, a), a from the actor at sg(h)."""
        h = h.detach()
        return -self.critic(h, self.noisy_action(h)).amin(dim=-2)

    def update(self, batch: FrameBatch) -> None:
        self.updates += 1
        critic_loss, q, h = self._critic_loss(batch)
        self.encoder_opt.zero_grad(set_to_none=True)
        self.optimize(self.critic_opt, critic_loss)  # backward reaches the encoder too
        self.encoder_opt.step()
        actor_loss = self.actor_objective(h).mean(-1)
        self.optimize(self.actor_opt, actor_loss)
        self.soft_update(self._targets, self.tau)
        self.record(0, torch.stack((critic_loss, q.mean(), actor_loss, critic_loss.new_tensor(self.std()))))
