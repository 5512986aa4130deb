"""Stream AC(lambda) (Elsayed, Vasan, Mahmood 2024) against an independent computation of its update,
for continuous and discrete actions; the streaming normalisers against NumPy; the algorithm's
defaults and the refusals of replay settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.algos import make_agent
from sparserl.config import resolve_config
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError
from sparserl.nets import MLP, WelfordNorm
from sparserl.streaming.scaling import RewardScaler

OBS = 5


def agent_for(discrete: bool, **changes):
    config = resolve_config(algo="stream-ac", hidden=[16, 16], time_feature=False, threads=1, **changes)
    torch.manual_seed(0)
    return make_agent(EnvInfo("test", OBS, 3, None, discrete), config), config


def reference_forward(weights, x):
    """The layernorm-mlp of the paper written out: Linear, LayerNorm without affine, leaky ReLU."""
    (w0, b0), (w1, b1), (w2, b2) = weights
    h = F.leaky_relu(F.layer_norm(x @ w0.T + b0, (w0.shape[0],)))
    h = F.leaky_relu(F.layer_norm(h @ w1.T + b1, (w1.shape[0],)))
    return h @ w2.T + b2


class ReferenceNormaliser:
    """The paper's observation wrapper: each observation, as it arrives, joins Welford statistics
    (NumPy, float64; variance 1 until two samples) and is returned normalised by them."""

    def __init__(self, on: bool):
        self.on, self.seen = on, []

    def __call__(self, obs):
        if not self.on:
            return torch.as_tensor(obs)
        self.seen.append(obs.astype(np.float64))
        data = np.stack(self.seen)
        var = data.var(0, ddof=1) if len(data) >= 2 else np.ones(data.shape[1])
        return torch.as_tensor(((obs - data.mean(0)) / np.sqrt(var + 1e-8)).astype(np.float32))


def reference_run(agent, config, episodes, discrete):
    """Stream AC's update by the paper's pseudo-code: torch.distributions for the policy, autograd for
    the gradients, ObGD as per-tensor loops with a Python-side bound, observations normalised as they
    arrive; `episodes` is a list of (first observation, [(reward, next observation, terminal)]), the
    last step of each ending it. Returns the final weights."""
    nets = {}
    for name in ("actor", "critic"):
        layers = next(m for m in agent.networks[name].modules() if isinstance(m, MLP)).layers
        nets[name] = [(layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_())
                      for layer in layers]
    traces = {name: [torch.zeros_like(t) for pair in nets[name] for t in pair] for name in nets}
    kappa = {"actor": config.kappa_policy, "critic": config.kappa_value}
    normalise = ReferenceNormaliser(config.obs_norm)
    for first, steps in episodes:
        x = normalise(first)
        for t, (reward, next_obs, terminal) in enumerate(steps):
            end = t == len(steps) - 1
            out = reference_forward(nets["actor"], x)
            if discrete:
                dist = torch.distributions.Categorical(logits=out)
                u = torch.rand(())  # inverse-CDF sampling from one uniform
                action = torch.tensor(min(int((dist.probs.detach().cumsum(0) < u).sum()), out.shape[0] - 1))
            else:
                mean, std = out[:3], F.softplus(out[3:])
                dist = torch.distributions.Normal(mean, std)
                action = (mean + std * torch.randn_like(mean)).detach()
            x2 = normalise(next_obs)
            v, v2 = reference_forward(nets["critic"], x)[0], reference_forward(nets["critic"], x2)[0]
            delta = float(reward + (0.0 if terminal else config.gamma) * v2.detach() - v.detach())
            entropy = dist.entropy().sum()
            objectives = {"critic": v, "actor": dist.log_prob(action).sum() + config.entropy_coef * math.copysign(
                1.0, delta) * entropy * (delta != 0)}
            for name, objective in objectives.items():
                params = [t for pair in nets[name] for t in pair]
                grads = torch.autograd.grad(objective, params)
                z = traces[name]
                for i, g in enumerate(grads):
                    z[i] = config.gamma * config.trace_lambda * z[i] - g  # the trace of the loss, -objective
                bound = max(abs(delta), 1.0) * sum(float(zi.abs().sum()) for zi in z) * config.obgd_lr * kappa[name]
                alpha = config.obgd_lr / bound if bound > 1.0 else config.obgd_lr
                with torch.no_grad():
                    for p, zi in zip(params, z):
                        p -= alpha * delta * zi
                if end:
                    traces[name] = [torch.zeros_like(zi) for zi in z]
            x = x2
    return {name: [t.detach() for pair in nets[name] for t in pair] for name in nets}


def drive(agent, episodes):
    """The streaming learner's calls for `episodes`: statistics take each observation as it arrives."""
    for first, steps in episodes:
        agent.observe(first)
        obs = first
        for t, (reward, next_obs, terminal) in enumerate(steps):
            agent.act(obs)
            agent.observe(next_obs)
            agent.learn(reward, next_obs, terminal, t == len(steps) - 1)
            obs = next_obs


def trajectory(seed: int = 3):
    """Three short episodes: ended by a terminal, by a truncation (bootstrapped, traces reset), and
    by a truncation again."""
    rng = np.random.default_rng(seed)
    episodes = []
    for length, terminal in ((3, True), (2, False), (2, False)):
        steps = [(float(rng.normal() * 3), rng.normal(size=OBS).astype(np.float32), terminal and t == length - 1)
                 for t in range(length)]
        episodes.append((rng.normal(size=OBS).astype(np.float32), steps))
    return episodes


@pytest.mark.parametrize("discrete,obs_norm", [(False, True), (False, False), (True, True)],
                         ids=["gaussian", "gaussian-unnormalised", "categorical"])
def test_stream_ac_updates_as_the_paper_writes_them(discrete, obs_norm):
    agent, config = agent_for(discrete, obs_norm=obs_norm)
    episodes = trajectory()
    twin = agent_for(discrete, obs_norm=obs_norm)[0]  # the same initial weights
    torch.manual_seed(11)  # the same exploration draws in both
    expected = reference_run(twin, config, episodes, discrete)
    torch.manual_seed(11)
    drive(agent, episodes)
    for name, tensors in reversed(list(expected.items())):
        for got, want in zip(agent.networks[name].parameters(), tensors):
            torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-5, msg=name)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), count=st.integers(1, 30), keep=st.integers(0, 2))
def test_welford_statistics_equal_numpy_and_leave_the_time_feature_alone(seed, count, keep):
    data = np.random.default_rng(seed).normal(2.0, 3.0, size=(count, 4)).astype(np.float32)
    norm = WelfordNorm(4, keep=keep)
    for row in data:
        norm.update(row)
    k = 4 - keep
    mean = data[:, :k].astype(np.float64).mean(0)
    var = data[:, :k].astype(np.float64).var(0, ddof=1) if count >= 2 else np.ones(k)
    np.testing.assert_allclose(norm.mean[:k].numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.var[:k].numpy(), var, rtol=1e-4, atol=1e-5)
    x = torch.from_numpy(data[:3])
    expected = (x - norm.mean) / torch.sqrt(norm.var + 1e-8)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm(x)[:, k:], x[:, k:])  # the kept columns pass exactly
    loaded = WelfordNorm(4, keep=keep)
    loaded.load_state_dict(norm.state_dict())
    torch.testing.assert_close(loaded(x), norm(x))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 40))
def test_reward_scaling_divides_by_the_std_of_the_discounted_return_trace(seed, steps):
    rng = np.random.default_rng(seed)
    rewards, ends = rng.normal(size=steps) * 5, rng.random(steps) < 0.2
    scaler, trace, traces = RewardScaler(0.99), 0.0, []
    for reward, end in zip(rewards, ends):
        got = scaler(float(reward), bool(end))
        trace = 0.99 * trace * (not end) + reward
        traces.append(trace)
        var = np.var(traces, ddof=1) if len(traces) >= 2 else 1.0
        assert got == pytest.approx(reward / math.sqrt(var + 1e-8), rel=1e-9, abs=1e-12)


def test_the_algorithm_starts_from_the_papers_settings_and_flags_override_them():
    config = resolve_config(algo="stream-ac")
    assert (config.network, config.hidden, config.init, config.obs_norm, config.time_feature) == \
        ("layernorm-mlp", (128, 128), "sparse", True, True)
    assert (config.trace_lambda, config.kappa_policy, config.kappa_value, config.obgd_lr, config.entropy_coef) == \
        (0.8, 3.0, 2.0, 1.0, 0.01)
    assert (config.start_steps, config.total_steps, config.eval_episodes, config.gamma) == (0, 2_000_000, 0, 0.99)
    assert resolve_config(algo="stream-ac", hidden=[1024, 1024], init="default").hidden == (1024, 1024)
    assert resolve_config(algo="td3").network == "mlp"  # the replay algorithms keep the dataclass defaults


@pytest.mark.parametrize("changes,message", [
    (dict(trace_lambda=1.5), r"trace_lambda must be in \[0, 1\], got 1.5"),
    (dict(kappa_policy=0.0), r"kappa_policy must be a positive number, got 0.0"),
    (dict(kappa_value=-2.0), r"kappa_value must be a positive number, got -2.0"),
    (dict(obgd_lr=-1.0), r"obgd_lr must be a positive number, got -1.0"),
    (dict(batch_size=64), r"batch_size = 64 is a replay setting; stream-ac learns from each transition once"),
    (dict(buffer_size=10_000), r"buffer_size = 10000 is a replay setting"),
    (dict(nstep=3), r"nstep = 3 is a replay setting"),
    (dict(start_steps=1000), r"start_steps must be 0 for stream-ac"),
    (dict(diagnostics_every=5000), r"diagnostics_every must be 0 for stream-ac"),
    (dict(sparsity={"method": "static", "target_mask": "magnitude"}), r"target_mask 'magnitude' needs target"),
])
def test_bad_streaming_settings_are_refused_by_name(changes, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(algo="stream-ac", **changes)


def _trained_zeros(sparsity: str, init: str, tmp_path):
    """(weights at the start, after 600 streaming steps, the mask or None) of the critic's middle layer."""
    from sparserl.runs.trainer import Trainer

    config = resolve_config(algo="stream-ac", env="Pendulum-v1", hidden=[32, 32], init=init, total_steps=600,
                            eval_every=600, checkpoint_every=10**9, progress=False, tensorboard=False,
                            sparsity={"method": sparsity, "critic_sparsity": 0.9, "actor_sparsity": 0.9,
                                      "distribution": "uniform"} if sparsity != "dense" else "dense")
    trainer = Trainer(config, tmp_path / f"{sparsity}-{init}")
    weight = trainer.agent.critic.net.layers[1].weight
    start = weight.detach().clone()
    trainer.run()
    mask = None if trainer.sparsifier is None else trainer.sparsifier.groups["critic"].masks[1].reshape(32, 32)
    return start, weight.detach(), mask


def test_under_a_static_mask_the_zeros_stay_zero_through_training_under_sparse_init_they_do_not(tmp_path):
    start, end, _ = _trained_zeros("dense", "sparse", tmp_path)
    assert (start == 0).sum(1).tolist() == [29] * 32  # ceil(0.9 * 32)
    assert int(((start == 0) & (end != 0)).sum()) > 0.5 * int((start == 0).sum())  # most have regrown
    start, end, mask = _trained_zeros("static", "default", tmp_path)
    assert int(mask.sum()) == round(0.1 * 32 * 32)
    assert not bool(end[mask == 0].any()) and bool((end[mask == 1] != start[mask == 1]).all())


@pytest.mark.slow
@pytest.mark.parametrize("env,kind", [("Pendulum-v1", "clipped-gaussian"), ("CartPole-v1", "categorical")])
def test_streaming_runs_export_and_evaluate(tmp_path, env, kind):
    import subprocess
    import sys

    from sparserl import load_policy

    run = tmp_path / "run"
    cli = [sys.executable, "-m", "sparserl"]
    subprocess.run([*cli, "train", "--algo", "stream-ac", "--env", env, "--total-steps", "1000", "--eval-every",
                    "500", "--hidden", "32", "32", "--run-dir", str(run), "--no-progress", "--no-tensorboard"],
                   check=True, capture_output=True)
    out = tmp_path / "policy.safetensors"
    subprocess.run([*cli, "export", str(run), "--out", str(out)], check=True, capture_output=True)
    policy = load_policy(out)
    assert policy.kind == kind and policy.meta["time_feature"] is True and policy.obs_dim == (4 if env == "Pendulum-v1"
                                                                                              else 5)
    action = policy.act(np.zeros(policy.obs_dim, dtype=np.float32))
    assert (action.dtype == np.int64 and action.shape == ()) if kind == "categorical" else \
        (action.shape == (1,) and -1 <= float(action[0]) <= 1)
    for target in ([str(run)], ["--policy", str(out)]):
        report = subprocess.run([*cli, "eval", *target], check=True, capture_output=True, text=True).stdout
        assert "over 10 episodes" in report  # a run that evaluated nothing is re-evaluated on 10
