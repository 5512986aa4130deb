"""Streaming populations: K Stream AC agents batched as ensemble members learn exactly as K separately
built agents do, fed the same transitions (each agent's episodes ending at its own steps): the same
statistics rows, parameters, traces, observation statistics and reward scales, up to float rounding.

Streaming steps are large (ObGD's step size 1, bounded), so rounding differences grow with the steps
taken: in float64 the worst relative difference after 250 steps is about 1e-10, in float32 about
1e-4 after 60 steps (1e-2 after 250). A wrong rule (an agent's reset, norm or statistics taken
from another) differs at once by order one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sparserl.algos.draws import Draws
from sparserl.cli import main
from sparserl.config import resolve_config
from sparserl.deploy import load_policy
from sparserl.envs import EnvInfo
from sparserl.population import member_view
from sparserl.population.members import copy_member, member_state
from sparserl.runs.build import build_agent
from sparserl.streaming.learner import StreamingLearner
from tests.test_resume import checkpoint_steps, cli, kill_after_checkpoint, rows

OBS, ACT, AGENTS = 4, 2, 3
STEPS = {torch.float32: 60, torch.float64: 250}
TOLERANCE = {torch.float32: 2e-3, torch.float64: 1e-7}
"""The largest difference allowed, relative to the largest value of the tensor compared."""


def close(got: torch.Tensor, expected: torch.Tensor, dtype, msg: str) -> None:
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    worst = float((got - expected).abs().max()) if expected.numel() else 0.0
    assert worst <= TOLERANCE[dtype] * max(scale, 1e-6), f"{msg}: differs by {worst:.3g} (largest value {scale:.3g})"


def build(config, info: EnvInfo, dtype: torch.dtype):
    """A population learner and one single-agent learner per member holding the population's
    parameters (and sparsity state), each drawing from the stream its member draws from."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        population = build_agent(config, info)[0]
        singles = [build_agent(config.agent_config(k, Path("unused")), info)[0] for k in range(AGENTS)]
    finally:
        torch.set_default_dtype(default)
    for k, (single, seed) in enumerate(zip(singles, config.agent_seeds)):
        for name, module in single.networks.items():
            copy_member(population.networks[name], module, k, AGENTS)
        single.draws = Draws([seed], population=False)
        if single.sparsifier is not None:
            state = single.sparsifier.state_dict()
            single.sparsifier.load_state_dict(member_state(population.sparsifier.state_dict(), k, AGENTS, state))
    return StreamingLearner(population), [StreamingLearner(single) for single in singles]


def transitions(rng: np.random.Generator, steps: int):
    """Per step: next observations, rewards, terminal and truncation flags, (K, ...) each; episodes
    end at random steps, each agent's on its own."""
    for _ in range(steps):
        terminated = rng.random(AGENTS) < 0.06
        truncated = ~terminated & (rng.random(AGENTS) < 0.04)
        yield (rng.normal(size=(AGENTS, OBS)).astype(np.float32), rng.normal(size=AGENTS) * 3.0, terminated,
               truncated)


def agree(population: StreamingLearner, singles: list[StreamingLearner], dtype) -> None:
    for k, single in enumerate(singles):
        for name, module in single.agent.networks.items():
            ours = population.agent.networks[name].state_dict()
            for key, tensor in module.state_dict().items():
                close(member_view(ours[key], tensor.shape, k, AGENTS), tensor, dtype, f"agent {k} {name}.{key}")
        for name, optimizer in single.agent.optimizers.items():  # traces (and second moments) too
            ours = population.agent.optimizers[name]
            for p, q in zip(optimizer.param_groups[0]["params"], ours.param_groups[0]["params"], strict=True):
                for key, tensor in optimizer.state[p].items():
                    close(member_view(ours.state[q][key], tensor.shape, k, AGENTS), tensor, dtype,
                          f"agent {k} {name} {key}")
        scaler = single.scaler.state_dict()
        for key, value in population.scaler.state_dict().items():
            assert (value[k] if isinstance(value, list) else value) == pytest.approx(scaler[key], rel=1e-12), key


CASES = {
    "continuous": ({}, False),
    "discrete": ({}, True),
    "adaptive": ({"obgd": "adaptive"}, False),
    "time-feature": ({"time_feature": True}, False),
    "static": ({"sparsity": {"method": "static", "actor_sparsity": 0.8, "critic_sparsity": 0.8}}, False),
    # topology updates every 20 steps, a dozen in float64's 250 steps, per agent (RigL on Stream AC's
    # gradients), each agent at a level of its own
    "rigl-levels": ({"sparsity": {"method": "rigl", "distribution": "uniform", "actor_levels": (0.5, 0.7, 0.9),
                                  "critic_levels": (0.9, 0.7, 0.5), "update_interval": 20}}, False),
    "nm": ({"sparsity": "nm:2:4"}, False),
}


FLOAT32 = ("continuous", "discrete", "rigl-levels")
"""The cases also run in float32 (every case runs in float64, where the comparison is tightest)."""


@pytest.mark.parametrize("case, dtype", [(c, torch.float64) for c in CASES] + [(c, torch.float32) for c in FLOAT32],
                         ids=[f"{c}-float64" for c in CASES] + [f"{c}-float32" for c in FLOAT32])
def test_stream_population_learns_as_separate_agents(case, dtype):
    changes, discrete = CASES[case]
    changes = {"time_feature": False, **changes}
    config = resolve_config(algo="stream-ac", hidden=[16, 16], population=AGENTS, seed=5, threads=1,
                            total_steps=1000, **changes)
    info = EnvInfo("test", OBS + int(config.time_feature), 3 if discrete else ACT, None, discrete)
    population, singles = build(config, info, dtype)
    sparsifier = population.agent.sparsifier
    initial = [] if sparsifier is None else [m.clone() for m in sparsifier.groups["critic"].masks]
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(AGENTS, info.obs_dim)).astype(np.float32)
    ends = 0
    for step, (next_obs, reward, terminated, truncated) in enumerate(transitions(rng, STEPS[dtype])):
        next_obs = next_obs[:, :info.obs_dim] if info.obs_dim <= OBS else \
            np.concatenate([next_obs, rng.random((AGENTS, 1), dtype=np.float32)], axis=1)
        actions, _ = population.act(obs, step)
        for k, single in enumerate(singles):
            expected, _ = single.act(obs[k], step)
            np.testing.assert_allclose(actions[k], expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype],
                                       err_msg=f"agent {k} step {step}")
        population.observe(obs, actions, reward, next_obs, terminated, truncated, None, step)
        for k, single in enumerate(singles):
            single.observe(obs[k], actions[k], reward[k], next_obs[k], bool(terminated[k]), bool(truncated[k]),
                           None, step)
        end = terminated | truncated
        ends += int(end.sum())
        obs = next_obs.copy()
        obs[end] = rng.normal(size=(int(end.sum()), info.obs_dim)).astype(np.float32)  # the agents' resets
        if step % 30 == 29:
            for got, single in zip(population.pop_agent_stats(), singles):
                expected = single.pop_stats()
                assert got.keys() == expected.keys() and got
                for name in got:
                    assert got[name] == pytest.approx(expected[name], rel=TOLERANCE[dtype], abs=TOLERANCE[dtype]), name
    assert ends >= 8  # the agents' episodes did end apart, many times
    agree(population, singles, dtype)
    if "rigl" in case:  # the masks changed, and as each agent's own
        group = population.agent.sparsifier.groups["critic"]
        assert any(not torch.equal(mask, first) for mask, first in zip(group.masks, initial))
        for k, single in enumerate(singles):
            for mask, alone in zip(group.masks, single.agent.sparsifier.groups["critic"].masks, strict=True):
                assert torch.equal(member_view(mask, alone.shape, k, AGENTS), alone), f"agent {k}'s mask"


@pytest.mark.slow
def test_streaming_population_run_writes_single_runs_and_resumes_exactly_after_sigkill(tmp_path):
    """A Stream AC population of three under RigL on Pendulum (episodes of 200 steps, checkpoints at
    450 and 900 mid-episode): each agent's directory reads as a single run's, and a run killed
    after a checkpoint resumes (traces, statistics and environments replayed) to the same rows."""
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump({
        "algo": "stream-ac", "env": "Pendulum-v1", "population": 3, "seed": 4, "hidden": [32, 32],
        "total_steps": 1350, "eval_every": 150, "checkpoint_every": 450, "progress": False, "tensorboard": False,
        "sparsity": {"method": "rigl", "actor_sparsity": 0.5, "critic_sparsity": 0.5, "update_interval": 100}}))
    full, broken = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cli("train", "--config", str(path), "--run-dir", str(full)), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    names = ["seed-4", "seed-5", "seed-6"]
    for name, seed in zip(names, (4, 5, 6)):
        agent = full / name
        saved = yaml.safe_load((agent / "config.yaml").read_text())
        assert (saved["algo"], saved["population"], saved["seed"]) == ("stream-ac", 1, seed)
        assert [int(r["step"]) for r in rows(agent)] == list(range(0, 1351, 150))
        assert load_policy(agent).act(np.zeros(4, dtype=np.float32)).shape == (1,)  # the time feature included
        assert main(["eval", str(agent), "--episodes", "1"]) == 0
    assert rows(full / "seed-4") != rows(full / "seed-5")
    killed_at = kill_after_checkpoint(cli("train", "--config", str(path), "--run-dir", str(broken)), broken,
                                      min_step=800, metrics_dir=broken / "seed-4")
    assert killed_at == 900 and checkpoint_steps(broken)[-1] == 900  # row 1050: 300 steps before the end
    subprocess.run(cli("train", "--resume", str(broken)), check=True, stdout=subprocess.DEVNULL)
    for name in names:
        assert rows(broken / name) == rows(full / name), f"agent {name}: resumed metrics differ"
