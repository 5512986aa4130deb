"""TD3 and SAC updates equal a plain reference implementation of the papers' equations."""

from __future__ import annotations

import copy
import io

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparserl.algos import SAC, TD3
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.replay import Batch
from tests.test_nets import member_as_sequential

INFO = EnvInfo("test", obs_dim=3, act_dim=2, max_episode_steps=None)


def batch(seed: int, size: int = 16) -> Batch:
    g = torch.Generator().manual_seed(seed)
    flags = torch.randint(0, 2, (2, size), generator=g).float()
    return Batch(obs=torch.randn(size, 3, generator=g), action=torch.rand(size, 2, generator=g) * 2 - 1,
                 reward=torch.randn(size, generator=g), next_obs=torch.randn(size, 3, generator=g),
                 policy_action=torch.zeros(size, 2), terminated=flags[0], truncated=flags[1])


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr, foreach=False)


def assert_same(module_params, reference_params, atol=1e-6):
    for ours, ref in zip(module_params, reference_params):
        torch.testing.assert_close(ours, ref, atol=atol, rtol=1e-5)


def critic_members(critic):
    return [member_as_sequential(critic, k) for k in range(2)]


def flat_members(members, critic):
    """Reference member parameters rearranged as the ensemble's (weight, bias) tensors."""
    out = []
    for i in range(len(critic.body.layers)):
        linears = [[m for m in member if isinstance(m, nn.Linear)][i] for member in members]
        out += [torch.stack([lin.weight.t() for lin in linears]), torch.stack([lin.bias[None] for lin in linears])]
    return out


def test_td3_matches_reference_including_delay_and_truncation():
    torch.manual_seed(0)
    config = Config(hidden=(16, 16), actor_lr=1e-2, critic_lr=1e-2)
    agent = TD3(INFO, config)
    actor = copy.deepcopy(agent.actor.net)
    q = critic_members(agent.critic)
    actor_t, q_t = copy.deepcopy(actor), copy.deepcopy(q)
    actor_opt = adam(actor.parameters(), 1e-2)
    critic_opt = adam([p for m in q for p in m.parameters()], 1e-2)
    for it in range(1, 5):
        b = batch(it)
        torch.manual_seed(100 + it)
        agent.update(b)
        torch.manual_seed(100 + it)
        with torch.no_grad():  # Fujimoto et al.: clipped double-Q with target policy smoothing
            noise = (torch.randn_like(b.action) * 0.2).clamp(-0.5, 0.5)
            a2 = (torch.tanh(actor_t(b.next_obs)) + noise).clamp(-1, 1)
            x2 = torch.cat([b.next_obs, a2], 1)
            y = b.reward + 0.99 * (1 - b.terminated) * torch.min(q_t[0](x2), q_t[1](x2)).squeeze(-1)
        x = torch.cat([b.obs, b.action], 1)
        loss = F.mse_loss(q[0](x).squeeze(-1), y) + F.mse_loss(q[1](x).squeeze(-1), y)
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        if it % 2 == 0:  # policy delay 2: actor on Q1 only, then Polyak of all targets
            actor_loss = -q[0](torch.cat([b.obs, torch.tanh(actor(b.obs))], 1)).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            with torch.no_grad():
                for net, target in [(actor, actor_t), (q[0], q_t[0]), (q[1], q_t[1])]:
                    for p, tp in zip(net.parameters(), target.parameters()):
                        tp.mul_(0.995).add_(0.005 * p)
        assert_same(agent.actor.net.parameters(), actor.parameters())
        assert_same(agent.actor_target.net.parameters(), actor_t.parameters())
        assert_same(agent.critic.parameters(), flat_members(q, agent.critic))
        assert_same(agent.critic_target.parameters(), flat_members(q_t, agent.critic))
    stats = agent.pop_stats()
    assert set(stats) == {"critic_loss", "q", "actor_loss"} and all(np.isfinite(list(stats.values())))


def test_sac_matches_reference():
    torch.manual_seed(0)
    config = Config(algo="sac", hidden=(16, 16), actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2)
    agent = SAC(INFO, config)
    actor = copy.deepcopy(agent.actor.net)
    q = critic_members(agent.critic)
    q_t = copy.deepcopy(q)
    log_alpha = torch.zeros((), requires_grad=True)
    actor_opt = adam(actor.parameters(), 1e-2)
    critic_opt = adam([p for m in q for p in m.parameters()], 1e-2)
    alpha_opt = adam([log_alpha], 1e-2)

    def sample(obs):
        mean, log_std = actor(obs).chunk(2, -1)
        std = log_std.clamp(-20, 2).exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = torch.distributions.Normal(mean, std).log_prob(u).sum(-1) - torch.log(1 - a.square() + 1e-12).sum(-1)
        return a, logp

    for it in range(1, 4):
        b = batch(it)
        torch.manual_seed(100 + it)
        agent.update(b)
        torch.manual_seed(100 + it)
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = sample(b.next_obs)
            x2 = torch.cat([b.next_obs, a2], 1)
            soft_q = torch.min(q_t[0](x2), q_t[1](x2)).squeeze(-1) - alpha * logp2
            y = b.reward + 0.99 * (1 - b.terminated) * soft_q
        x = torch.cat([b.obs, b.action], 1)
        loss = F.mse_loss(q[0](x).squeeze(-1), y) + F.mse_loss(q[1](x).squeeze(-1), y)
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        a, logp = sample(b.obs)
        xa = torch.cat([b.obs, a], 1)
        for p in [p for m in q for p in m.parameters()]:
            p.requires_grad_(False)
        actor_loss = (alpha * logp - torch.min(q[0](xa), q[1](xa)).squeeze(-1)).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        for p in [p for m in q for p in m.parameters()]:
            p.requires_grad_(True)
        alpha_loss = -(log_alpha * (logp.detach() - 2.0)).mean()  # target entropy -|A| = -2
        alpha_opt.zero_grad()
        alpha_loss.backward()
        alpha_opt.step()
        with torch.no_grad():
            for net, target in [(q[0], q_t[0]), (q[1], q_t[1])]:
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.mul_(0.995).add_(0.005 * p)
        # the log-probability formulas differ in rounding (softplus form vs log(1 - a^2)), which Adam's
        # normalisation amplifies on near-zero gradients: a structural error would be orders larger
        assert_same(agent.actor.net.parameters(), actor.parameters(), atol=2e-5)
        assert_same(agent.critic.parameters(), flat_members(q, agent.critic), atol=2e-5)
        assert_same(agent.critic_target.parameters(), flat_members(q_t, agent.critic), atol=2e-5)
        torch.testing.assert_close(agent.temperature.log_alpha.detach(), log_alpha.detach())


def test_td3_exploration_noise_and_policy_action():
    torch.manual_seed(0)
    agent = TD3(INFO, Config(hidden=(8,)))
    obs = np.zeros(3, dtype=np.float32)
    action, mean = agent.act(obs)
    np.testing.assert_allclose(mean, agent.act_deterministic(obs))
    assert action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
    samples = np.stack([agent.act(obs)[0] - mean for _ in range(2000)])
    assert abs(samples.std() - 0.1) < 0.01  # N(0, 0.1) exploration noise


def test_agent_state_dict_round_trip():
    torch.manual_seed(0)
    a = SAC(INFO, Config(algo="sac", hidden=(8,)))
    a.update(batch(1))
    b = SAC(INFO, Config(algo="sac", hidden=(8,)))
    saved = io.BytesIO()
    torch.save(a.state_dict(), saved)  # as a checkpoint does: no tensor is shared with `a`
    saved.seek(0)
    b.load_state_dict(torch.load(saved, weights_only=True))
    for name in a.networks:
        for x, y in zip(a.networks[name].parameters(), b.networks[name].parameters()):
            assert torch.equal(x, y)
    torch.manual_seed(5)
    a.update(batch(2))
    torch.manual_seed(5)
    b.update(batch(2))
    for x, y in zip(a.critic.parameters(), b.critic.parameters()):
        assert torch.equal(x, y)
    assert a.pop_stats() == b.pop_stats()
