"""SimBa and BroNet bodies: parameter counts by the reference formula, independent ensemble members,
running observation statistics, and every sparsity method on them (norms and biases dense)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.algos import SAC, TD3
from sparserl.architecture import Architecture
from sparserl.config import Config, NetworkSparsity
from sparserl.envs import EnvInfo
from sparserl.nets import GaussianActor, QEnsemble, ResidualBody, RunningNorm
from sparserl.sparsity import Sparsifier


def simba_parameters(d_in: int, h: int, blocks: int, outputs: int) -> int:
    """Ma et al.'s formula: (d_in + 1) h + N (8 h^2 + 7 h) + 2 h + (h + 1) out."""
    return (d_in + 1) * h + blocks * (8 * h * h + 7 * h) + 2 * h + (h + 1) * outputs


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def body(in_dim: int, out_dim: int, width: int, blocks: int, members: int = 1, kind: str = "simba") -> ResidualBody:
    return ResidualBody(Architecture(kind, in_dim, out_dim, width=width, blocks=blocks), members)


def test_humanoid_default_sizes():
    actor_arch = Architecture("simba", 67, 2 * 21, width=128, blocks=1)
    critic_arch = Architecture("simba", 67 + 21, 1, width=512, blocks=2)
    actor = GaussianActor(actor_arch, obs_norm=True)
    critic = QEnsemble(critic_arch, 1)
    assert count(actor) == 146_346 == actor_arch.parameters()
    assert count(critic) == 4_248_577 == critic_arch.parameters()


@settings(max_examples=25, deadline=None)
@given(d_in=st.integers(1, 40), h=st.integers(1, 48), blocks=st.integers(1, 3), outputs=st.integers(1, 8))
def test_simba_parameter_count_formula(d_in, h, blocks, outputs):
    module = body(d_in, outputs, h, blocks)
    assert count(module) == simba_parameters(d_in, h, blocks, outputs) == module.arch.parameters()


def test_bronet_parameter_count():
    d_in, h, blocks, out = 10, 16, 2, 3
    expected = (d_in + 1) * h + 2 * h + blocks * (2 * (h * h + h) + 4 * h) + (h + 1) * out
    module = body(d_in, out, h, blocks, kind="bronet")
    assert count(module) == expected == module.arch.parameters()


@pytest.mark.parametrize("kind", ["simba", "bronet"])
def test_ensemble_members_are_independent_networks(kind):
    torch.manual_seed(0)
    net = body(6, 2, 16, 2, members=3, kind=kind)
    for p in net.parameters():  # distinct norms too, not just the initial ones
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(5, 6)
    out = net(x)
    assert out.shape == (3, 5, 2)
    for m in range(3):
        torch.testing.assert_close(net(x, members=slice(m, m + 1))[0], out[m])
    changed = body(6, 2, 16, 2, members=3, kind=kind)
    changed.load_state_dict(net.state_dict())
    with torch.no_grad():
        changed.blocks[0]["fc1"].weight[1].add_(torch.randn(changed.blocks[0]["fc1"].weight[1].shape))
    after = changed(x)
    torch.testing.assert_close(after[0], out[0])
    torch.testing.assert_close(after[2], out[2])
    assert not torch.allclose(after[1], out[1])


@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.integers(1, 20), min_size=1, max_size=6), seed=st.integers(0, 1000))
def test_running_norm_matches_the_statistics_of_everything_seen(chunks, seed):
    rng = np.random.default_rng(seed)
    norm = RunningNorm(3)
    seen = []
    for size in chunks:
        x = rng.normal(2.0, 3.0, size=(size, 3))
        norm.update(torch.as_tensor(x, dtype=torch.float32))
        seen.append(x)
    data = np.concatenate(seen)
    prior = 1e-4  # the initial pseudo-count at mean 0, variance 1
    n = len(data)
    mean = data.sum(0) / (n + prior)
    var = (data.var(0) * n + prior * 1.0 + (data.mean(0) ** 2) * n * prior / (n + prior)) / (n + prior)
    np.testing.assert_allclose(norm.mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), var, rtol=1e-4)
    x = torch.randn(4, 3)
    torch.testing.assert_close(norm(x), (x - norm.mean) / torch.sqrt(norm.var + 1e-8))


@pytest.mark.parametrize("algo", [TD3, SAC])
def test_agents_share_observation_statistics_with_their_targets(algo):
    info = EnvInfo("test", obs_dim=5, act_dim=2, max_episode_steps=None)
    config = Config(algo=algo.__name__.lower(), network="simba", actor_width=16, critic_width=32, critic_blocks=1,
                    critics=1, obs_norm=True)
    agent = algo(info, config)
    norms = {id(m) for net in agent.networks.values() for m in net.modules() if isinstance(m, RunningNorm)}
    assert norms == {id(agent.obs_norm)}
    agent.observe(np.full(5, 3.0, np.float32))
    assert agent.networks["critic_target"].obs_norm.mean[0] > 0  # the target sees the update
    q = agent.critic(torch.randn(4, 5), torch.zeros(4, 2))
    assert q.shape == (1, 4)


@pytest.mark.parametrize("method", ["static", "rigl", "set", "gmp", "nm:2:4"])
def test_every_sparsity_method_runs_on_simba_with_norms_and_biases_dense(method):
    info = EnvInfo("test", obs_dim=8, act_dim=4, max_episode_steps=None)
    sparsity = NetworkSparsity(method=method, budget_scope="all" if method == "static" else "weights",
                              **({} if method.startswith("nm") else {"actor_sparsity": 0.8, "critic_sparsity": 0.8}))
    config = Config(algo="sac", network="simba", actor_width=16, critic_width=32, critic_blocks=2, critics=2,
                    obs_norm=True, batch_size=16, sparsity=sparsity)
    agent = SAC(info, config)
    sparsifier = Sparsifier(sparsity, seed=0)
    agent.attach_sparsity(sparsifier, 100)
    from sparserl.replay import ReplayBuffer

    buffer = ReplayBuffer(8, 4, 100, seed=0)
    for _ in range(40):
        buffer.add(np.random.randn(8).astype(np.float32), np.random.uniform(-1, 1, 4).astype(np.float32), 1.0,
                   np.random.randn(8).astype(np.float32), False, False, np.zeros(4, np.float32))
    for _ in range(5):
        agent.update(buffer.sample(16))
    masked = {id(p) for group in sparsifier.groups.values() for p in group.params}
    for name in ("actor", "critic"):
        for pname, p in agent.networks[name].named_parameters():
            if pname.endswith("bias") or "norm" in pname:  # biases and LayerNorm parameters stay dense
                assert id(p) not in masked, pname
        weights = [p for p in agent.networks[name].parameters() if id(p) in masked]
        assert weights, f"{name}: no sparse layer"
        zero = sum(int((p == 0).sum()) for p in weights) / sum(p.numel() for p in weights)
        assert zero > 0.45 or method == "gmp"  # GMP only starts pruning at 20 % of training


def test_a_saved_simba_policy_with_observation_statistics_acts_like_the_trained_actor(tmp_path):
    from sparserl import load_policy
    from sparserl.runs.trainer import Trainer

    config = Config(env="Pendulum-v1", algo="sac", network="simba", actor_width=16, critic_width=32, critic_blocks=1,
                    obs_norm=True, action_repeat=2, total_steps=300, start_steps=100, batch_size=32,
                    buffer_size=1000, eval_every=300, eval_episodes=1, checkpoint_every=10**9, threads=1,
                    progress=False, tensorboard=False, run_dir=str(tmp_path / "run"))
    trainer = Trainer(config, config.run_dir)
    trainer.run()
    actor = trainer.agent.policy
    assert actor.obs_norm.count > 300  # the statistics moved with every acted observation
    policy = load_policy(config.run_dir)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():
        expected = actor(torch.as_tensor(obs)).numpy()
    for o, e in zip(obs, expected):
        np.testing.assert_allclose(policy.act(o), e, atol=1e-6)


def test_gaussian_residual_actors_have_a_mean_and_a_log_std_head_of_their_own():
    """As SimBa's SAC actor (Lee et al. 2025; Ma et al. 2025 scale it): two Dense(h -> |A|) heads, each
    orthogonally initialised, their outputs side by side (means first); the same parameter count as
    one fused head. A checkpoint of a fused head is refused by name."""
    from sparserl.errors import CheckpointError

    torch.manual_seed(0)
    arch = Architecture("simba", 67, 2 * 21, width=128, blocks=1, heads=2)
    actor = GaussianActor(arch, obs_norm=True)
    heads = [actor.net.net.get_submodule(f"head.{j}") for j in (0, 1)]
    assert [tuple(h.weight_oi[0].shape) for h in heads] == [(21, 128), (21, 128)]
    for head in heads:  # orthogonal rows, each head on its own
        rows = head.weight_oi[0]
        torch.testing.assert_close(rows @ rows.T, torch.eye(21), atol=1e-5, rtol=0)
    assert count(actor) == 146_346 == arch.parameters()
    x = torch.randn(4, 67)
    out = actor.net(x)
    features = actor.net.net.trunk(actor.net.obs_norm(x))
    assert out.shape == (4, 42)
    torch.testing.assert_close(out, torch.cat([heads[0](features)[0], heads[1](features)[0]], -1))
    fused = GaussianActor(Architecture("simba", 67, 2 * 21, width=128, blocks=1), obs_norm=True)
    with pytest.raises(CheckpointError, match="one fused mean and log-std head"):
        actor.load_state_dict(fused.state_dict())


def test_the_scaling_preset_squashes_the_log_std_as_simba():
    """SimBa's log-std: -10 + 12 (1 + tanh(x)) / 2, smooth inside [-10, 2] (the clamp elsewhere)."""
    from sparserl.config import resolve_values

    config = Config(**resolve_values("scaling-simba"))
    assert (config.log_std_bound, config.log_std_min, config.log_std_max) == ("tanh", -10.0, 2.0)
    actor = GaussianActor(Architecture("simba", 3, 2, width=8, blocks=1, heads=2), log_std_min=-10.0,
                          log_std_max=2.0, log_std_bound="tanh")
    x = torch.tensor([-30.0, -1.0, 0.0, 0.5, 30.0])
    torch.testing.assert_close(actor.bounded(x), -10.0 + 6.0 * (1.0 + torch.tanh(x)))
    assert actor.bounded(torch.tensor([0.0])).item() == pytest.approx(-4.0)
    clamped = GaussianActor(Architecture("simba", 3, 2, width=8, blocks=1, heads=2))
    assert clamped.bounded(torch.tensor([-30.0, 0.5, 30.0])).tolist() == [-20.0, 0.5, 2.0]
