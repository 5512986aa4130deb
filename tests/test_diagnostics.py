"""Each diagnostic against an independent computation on constructed inputs, and the diagnostics of
a real run: logged as columns, finite, and without any effect on training."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.algos import SAC, TD3
from sparserl.config import Config, NetworkSparsity
from sparserl.diagnostics import Diagnostics, dormant_ratio, interference, masked_norm, parameter_norm, srank
from sparserl.envs import EnvInfo
from sparserl.replay import Batch
from sparserl.runs.api import train
from sparserl.runs.metrics import TIMING_COLUMNS


def matrix_with_singular_values(values, rows=64, cols=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))
    s = torch.zeros(rows, cols, dtype=torch.float64)
    s[range(len(values)), range(len(values))] = torch.tensor(values, dtype=torch.float64)
    return u @ s @ v.T


@settings(max_examples=30, deadline=None)
@given(rank=st.integers(1, 40), seed=st.integers(0, 100))
def test_srank_of_a_matrix_of_known_rank_with_equal_singular_values(rank, seed):
    assert srank(matrix_with_singular_values([3.0] * rank, seed=seed)) == rank


def test_srank_counts_singular_values_up_to_99_percent_of_their_sum():
    values = [50.0, 30.0, 15.0, 4.2, 0.5, 0.3]  # cumulative share: .5 .8 .95 .992 .997 1.0
    features = matrix_with_singular_values(values)
    assert srank(features, delta=0.01) == 4  # 0.99 passed at the fourth
    assert srank(features, delta=0.1) == 3
    assert srank(features, delta=0.3) == 2
    assert srank(torch.zeros(8, 4)) == 0


def test_dormant_ratio_finds_planted_dead_and_weak_units():
    g = torch.Generator().manual_seed(0)
    layer = torch.rand(256, 10, generator=g) + 0.5  # mean |h| about 1
    layer[:, :3] = 0.0                               # three dead units
    layer[:, 3] = 0.05                               # one weak unit: score about 0.07
    scores = layer.abs().mean(0) / layer.abs().mean(0).mean()
    assert scores[3] < 0.1
    assert dormant_ratio([layer], 0.1) == pytest.approx(4 / 10)
    other = torch.ones(256, 6)  # a second layer with no dormant unit
    assert dormant_ratio([layer, other], 0.1) == pytest.approx(4 / 16)
    middle = torch.ones(64, 4) * torch.tensor([1.0, 1.0, 1.0, 0.45])  # score 0.45 / 0.8625 = 0.52
    assert dormant_ratio([middle], 0.2) == 0.0 and dormant_ratio([middle], 0.6) == 0.25


def test_interference_of_identical_orthogonal_and_opposite_gradients():
    g = torch.randn(1, 30)
    assert interference(g.repeat(5, 1)) == pytest.approx(1.0)
    assert interference(torch.eye(6, 30)) == pytest.approx(0.0, abs=1e-7)
    assert interference(torch.cat((g, -g))) == pytest.approx(-1.0)
    rows = torch.randn(7, 12, dtype=torch.float64)
    unit = rows.numpy() / np.linalg.norm(rows.numpy(), axis=1, keepdims=True)
    cos = unit @ unit.T
    expected = (cos.sum() - np.trace(cos)) / (7 * 6)
    assert interference(rows) == pytest.approx(expected)


def test_norms():
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0], [2.0, 0.0]])]
    masks = [None, torch.tensor([[1.0, 0.0], [1.0, 0.0]])]
    assert masked_norm(grads, masks) == pytest.approx(math.sqrt(9 + 16 + 1 + 4))
    net = torch.nn.Linear(3, 2)
    flat = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])
    assert parameter_norm(net) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-6)


@pytest.mark.parametrize("algo", [TD3, SAC])
def test_agent_diagnostics_are_finite_hook_points_differ_and_random_state_is_untouched(algo):
    info = EnvInfo("test", obs_dim=5, act_dim=2, max_episode_steps=None)
    agent = algo(info, Config(algo=algo.__name__.lower(), hidden=(32, 32)))
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(64, 5, generator=g), torch.rand(64, 2, generator=g) * 2 - 1, torch.randn(64, generator=g),
                  torch.randn(64, 5, generator=g), torch.zeros(64, 2), torch.zeros(64), torch.zeros(64))
    state = torch.get_rng_state()
    post = Diagnostics(agent, point="post", interference_samples=8).compute(batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert set(post) == set(Diagnostics(agent).names) and all(math.isfinite(v) for v in post.values())
    assert 1 <= post["diag_actor_srank"] <= 32 and 1 <= post["diag_critic_srank"] <= 32
    assert -1 <= post["diag_actor_interference"] <= 1
    pre = Diagnostics(agent, point="pre", interference_samples=8).compute(batch)
    assert pre["diag_actor_feature_norm"] != post["diag_actor_feature_norm"]  # ReLU changes the features
    with torch.no_grad():
        hidden = agent.policy.hidden(batch.obs, "post")
    assert post["diag_actor_feature_norm"] == pytest.approx(float(hidden[-1].norm(dim=1).mean()))
    assert all(p.grad is None for p in agent.networks["actor"].parameters())  # no gradient left behind


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_logs_diagnostics_that_do_not_change_training(tmp_path):
    base = Config(env="Pendulum-v1", total_steps=1200, start_steps=300, batch_size=64, buffer_size=5000,
                  hidden=(32, 32), eval_every=300, eval_episodes=1, checkpoint_every=600, threads=1,
                  progress=False, tensorboard=False, sparsity=NetworkSparsity(method="rigl"))
    with_diag = train(base.replace(diagnostics_every=600, run_dir=str(tmp_path / "on")))
    without = train(base.replace(diagnostics_every=0, run_dir=str(tmp_path / "off")))
    rows = read_rows(with_diag.run_dir / "metrics.csv")
    logged = [r for r in rows if r["diag_actor_srank"] != ""]
    assert [int(r["step"]) for r in logged] == [600, 1200]  # the first evaluation row after every 600 steps
    assert all(math.isfinite(float(r["diag_critic_grad_norm"])) for r in logged)
    plain = read_rows(without.run_dir / "metrics.csv")
    keep = [k for k in plain[0] if k not in TIMING_COLUMNS]
    assert [{k: r[k] for k in keep} for r in rows] == [{k: r[k] for k in keep} for r in plain]
