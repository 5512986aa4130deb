"""Populations as runs: one buffer ring per agent, lockstep evaluation, one run directory per agent
(read by report, eval and export like a single run's), exact resume after SIGKILL, clear refusals."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.cli import main
from sparserl.config import Config
from sparserl.deploy import load_policy
from sparserl.errors import ConfigError
from sparserl.replay import ReplayBuffer
from sparserl.runs.api import resume, train
from sparserl.runs.evaluate import evaluate, evaluate_agents
from sparserl.studies.collect import collect_runs
from tests.test_resume import checkpoint_steps, cli, kill_after_checkpoint, rows

OBS, ACT = 3, 2


def fill(buffer: ReplayBuffer, agents: int, count: int) -> None:
    """Agent a's transition t carries 1000 a + t in every field."""
    for t in range(count):
        v = (1000 * np.arange(agents) + t).astype(np.float32)
        buffer.add(np.repeat(v[:, None], OBS, 1), np.repeat(v[:, None], ACT, 1), v, np.repeat(v[:, None] + 0.5, OBS, 1),
                   t % 7 == 6, t % 5 == 4, np.repeat(-v[:, None], ACT, 1))


@settings(max_examples=40, deadline=None)
@given(agents=st.integers(2, 4), capacity=st.integers(4, 30), count=st.integers(4, 80), n=st.integers(1, 3),
       seed=st.integers(0, 5))
def test_population_buffer_samples_each_agents_own_windows(agents, capacity, count, n, seed):
    buffer = ReplayBuffer(OBS, ACT, capacity, seed=seed, agents=agents)
    fill(buffer, agents, count)
    batch = buffer.sample(32, n=n)
    rewards = batch.reward if n > 1 else batch.reward.unsqueeze(-1)
    assert rewards.shape == (agents, 32, n) and batch.obs.shape[:2] == (agents, 32)
    step = rewards - 1000 * torch.arange(agents).view(-1, 1, 1)  # each agent's own transitions only
    assert (step >= count - len(buffer)).all() and (step <= count - 1).all()
    np.testing.assert_array_equal(np.diff(rewards.numpy(), axis=-1), 1.0)  # consecutive windows
    assert torch.equal(batch.terminated, ((step % 7) == 6).float().squeeze(-1) if n == 1 else ((step % 7) == 6).float())
    restored = ReplayBuffer(OBS, ACT, capacity, seed=99, agents=agents)
    restored.load_state_dict(buffer.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.sample(16, n=n), buffer.sample(16, n=n)))


def test_lockstep_evaluation_equals_each_agents_own():
    envs = [gym.make("Pendulum-v1") for _ in range(3)]
    weights = np.random.default_rng(0).normal(size=(3, 3, 1)).astype(np.float32)

    def policy(obs):  # (K, 3) -> (K, 1): a different linear policy per agent
        return np.stack([np.tanh(o @ w) for o, w in zip(obs, weights)])

    together = evaluate_agents(policy, envs, 2, [5, 6, 7])
    for k in range(3):
        alone = evaluate(lambda o, k=k: np.tanh(o @ weights[k]), gym.make("Pendulum-v1"), 2, 5 + k)
        assert together[k] == alone


def population_config(tmp_path: Path, **changes) -> Config:
    values = dict(env="Pendulum-v1", algo="td3", population=3, seed=4, total_steps=700, start_steps=200,
                  batch_size=32, buffer_size=5000, hidden=(32, 32), eval_every=350, eval_episodes=1,
                  checkpoint_every=350, threads=1, progress=False, tensorboard=False, diagnostics_every=0,
                  run_dir=str(tmp_path / "population"))
    values.update(changes)
    return Config(**values)


def test_each_agent_writes_a_run_directory_that_reads_as_a_single_run(tmp_path):
    config = population_config(tmp_path, sparsity={"method": "static", "actor_sparsity": 0.8, "critic_sparsity": 0.8},
                               diagnostics_every=350, diagnostics_batch=64)
    result = train(config)
    assert [Path(r.run_dir).name for r in result.agents] == ["seed-4", "seed-5", "seed-6"]
    assert result.score == pytest.approx(np.mean([r.score for r in result.agents]))
    for agent, seed in zip(result.agents, (4, 5, 6)):
        saved = yaml.safe_load((agent.run_dir / "config.yaml").read_text())
        assert saved["population"] == 1 and saved["seed"] == seed and saved["run_dir"] == str(agent.run_dir)
        assert [int(r["step"]) for r in rows(agent.run_dir)] == [0, 350, 700]
        assert [r["diag_critic_srank"] != "" for r in rows(agent.run_dir)] == [False, True, True]  # its own diagnostics
        policy = load_policy(agent.run_dir)  # its own actor, 80 % sparse, as a single run's file
        assert policy.act(np.zeros(3, dtype=np.float32)).shape == (1,)
        assert main(["eval", str(agent.run_dir), "--episodes", "1"]) == 0
        assert main(["export", str(agent.run_dir), "--out", str(tmp_path / f"{seed}.safetensors")]) == 0
        with pytest.raises(ConfigError, match="one agent of the population"):
            resume(agent.run_dir)
    scores = [r.score for r in result.agents]
    assert len(set(scores)) == 3  # three different agents, not one trained three times
    assert len({rows(r.run_dir)[-1]["diag_critic_param_norm"] for r in result.agents}) == 3
    assert sorted(run.path.name for run in collect_runs([config.run_dir])) == ["seed-4", "seed-5", "seed-6"]
    finished = resume(config.run_dir)  # already at total_steps: its result, read back
    assert [r.score for r in finished.agents] == pytest.approx(scores)


def test_agents_with_levels_of_their_own_each_train_and_report_at_their_level(tmp_path):
    """One seed at three levels (a level sweep as one population): each agent's directory, config,
    metrics and accounting are those of a single run at its level."""
    levels = (0.5, 0.8, 0.95)
    config = population_config(tmp_path, seeds=(4, 4, 4), total_steps=400, eval_every=200, checkpoint_every=200,
                               sparsity={"method": "static", "distribution": "uniform", "actor_levels": levels,
                                         "critic_levels": levels})
    result = train(config)
    names = [f"seed-4_actor-{level:g}_critic-{level:g}" for level in levels]
    assert [Path(r.run_dir).name for r in result.agents] == names
    for agent, level in zip(result.agents, levels):
        saved = Config(**yaml.safe_load((agent.run_dir / "config.yaml").read_text()))
        assert (saved.population, saved.seed) == (1, 4)
        assert saved.sparsity.actor_sparsity == saved.sparsity.critic_sparsity == level
        assert saved.sparsity.actor_levels == saved.sparsity.critic_levels == ()
        accounting = json.loads((agent.run_dir / "sparsity.json").read_text())
        assert accounting["density"]["critic"] == pytest.approx(1 - level, abs=0.01)
        assert all(line["members"] == 2 for line in accounting["layers"] if line["network"] == "critic")
        assert float(rows(agent.run_dir)[-1]["density_actor"]) == pytest.approx(1 - level, abs=0.01)
    assert sorted(run.path.name for run in collect_runs([config.run_dir])) == sorted(names)


@pytest.mark.slow
def test_population_sigkill_and_resume_gives_identical_metrics_for_every_agent(tmp_path):
    """Checkpoints at 450 and 900 fall mid-episode (Pendulum's episodes are 200 steps): the resumed
    population replays each agent's episode so far; RigL's topology updates continue per agent; each
    agent's diagnostics (every 300 steps) resume with its replay generator."""
    values = population_config(tmp_path, total_steps=1350, eval_every=150, checkpoint_every=450, diagnostics_every=300,
                               diagnostics_batch=32,
                               sparsity={"method": "rigl", "actor_sparsity": 0.5, "critic_sparsity": 0.5,
                                         "update_interval": 100}).to_dict()
    values.pop("run_dir")
    path = tmp_path / "population.yaml"
    path.write_text(yaml.safe_dump(values))
    full, broken = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cli("train", "--config", str(path), "--run-dir", str(full)), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = kill_after_checkpoint(cli("train", "--config", str(path), "--run-dir", str(broken)), broken,
                                      min_step=800, metrics_dir=broken / "seed-4")
    # killed after checkpoint 900 once row 1050 is written: 300 steps before the run ends, never at its end
    assert killed_at == 900 and checkpoint_steps(broken)[-1] == 900
    subprocess.run(cli("train", "--resume", str(broken)), check=True, stdout=subprocess.DEVNULL)
    for seed in (4, 5, 6):
        expected, got = rows(full / f"seed-{seed}"), rows(broken / f"seed-{seed}")
        assert len(expected) == 10 and got == expected, f"agent {seed}: resumed metrics differ"
    assert rows(full / "seed-4") != rows(full / "seed-5")


@pytest.mark.parametrize("changes, words", [
    ({"population": 0}, "population must be an integer >= 1, got 0"),
    ({"seeds": (1, 2)}, "seeds lists 2 seeds for a population of 3"),
    ({"seeds": (1, 1, 2)}, "seeds must differ"),
    ({"algo": "stream-ac", "start_steps": 0, "batch_size": 256, "buffer_size": 1_000_000, "step_compile": "on"},
     "step_compile on: a population's streaming step runs eagerly"),
    ({"execution": "csr", "sparsity": "rigl"}, "execution csr"),
    ({"sparsity": {"method": "rigl", "critic_levels": (0.5, 0.9)}},
     "critic_levels lists 2 levels for a population of 3"),
    ({"sparsity": {"method": "nm:2:4", "actor_levels": (0.5, 0.6, 0.9)}}, "actor_levels does not apply to nm:2:4"),
    ({"sparsity": {"method": "static", "actor_sparsity": 0.5, "actor_levels": (0.5, 0.6, 0.9)}},
     "give actor_sparsity (every agent) or actor_levels (one per agent), not both"),
    ({"seeds": (1, 1, 2), "sparsity": {"method": "static", "critic_levels": (0.5, 0.5, 0.9)}},
     "two agents of the population would be alike"),
])
def test_a_population_that_cannot_be_batched_is_refused_by_name(tmp_path, changes, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        population_config(tmp_path, **changes).validate()


def test_a_packed_sweep_trains_each_seed_group_as_one_population(tmp_path):
    from sparserl.studies import run_sweep, spec_from_dict

    def spec(pack):
        return spec_from_dict({
            "name": "packed", "pack": pack, "output": str(tmp_path / "packed"),
            "base": {"env": "Pendulum-v1", "total_steps": 300, "start_steps": 100, "batch_size": 32,
                     "buffer_size": 5000, "hidden": [16, 16], "eval_every": 150, "eval_episodes": 1,
                     "checkpoint_every": 150, "tensorboard": False, "diagnostics_every": 0,
                     "buffer_min_size": 1000, "buffer_check_every": 150},
            "axes": {"seed": [0, 1, 2], "dynamic_buffer": [False, True]}})

    lines = []
    result = run_sweep(spec(True), workers=2, log=lines.append)
    ids = sorted(o.run_id for o in result.outcomes)
    # RLx2's dynamic buffer packs too: each agent's capacity shrinks on its own
    assert ids == ["seed=0+1+2_dynamic_buffer=False", "seed=0+1+2_dynamic_buffer=True"]
    assert any("6 runs trained as 2 populations" in line and "0 runs on their own" in line for line in lines)
    assert {o.status for o in result.outcomes} == {"finished"}
    population = tmp_path / "packed" / "runs" / "seed=0+1+2_dynamic_buffer=False"
    assert sorted(p.name for p in population.glob("seed-*")) == ["seed-0", "seed-1", "seed-2"]
    dynamic = tmp_path / "packed" / "runs" / "seed=0+1+2_dynamic_buffer=True"
    for member in dynamic.glob("seed-*"):
        sizes = [float(r["buffer_size"]) for r in csv.DictReader((member / "metrics.csv").open()) if r["buffer_size"]]
        assert sizes and max(sizes) <= 300
    assert len(collect_runs([tmp_path / "packed"])) == 6  # every seed reads as a run
    again = run_sweep(spec(True), workers=2, log=lines.append)
    assert {o.status for o in again.outcomes} == {"skipped"}


def test_runs_a_population_cannot_batch_stay_single_in_a_packed_sweep(tmp_path):
    from sparserl.studies import expand, spec_from_dict

    spec = spec_from_dict({
        "name": "mixed", "pack": True, "output": str(tmp_path / "mixed"),
        "base": {"algo": "stream-ac", "env": "Pendulum-v1", "total_steps": 300},
        "axes": {"seed": [0, 1, 2], "step_compile": ["off", "on"]}})
    assert sorted(plan.run_id for plan in expand(spec)) == [
        "seed=0+1+2_step_compile=off", "seed=0_step_compile=on", "seed=1_step_compile=on", "seed=2_step_compile=on"]


def test_a_packed_sweep_trains_a_level_axis_as_one_population_per_method(tmp_path):
    """Seeds x levels of one method pack into one population whose agents have levels of their own."""
    from sparserl.studies import expand, spec_from_dict

    spec = spec_from_dict({
        "name": "levels", "pack": True, "output": str(tmp_path / "levels"),
        "base": {"env": "Pendulum-v1", "total_steps": 300, "start_steps": 100, "hidden": [16, 16]},
        "axes": {"sparsity": ["static", "rigl"], "critic_sparsity": [0.5, 0.9], "seed": [0, 1]}})
    plans = {plan.run_id: plan for plan in expand(spec)}
    assert sorted(plans) == ["sparsity=rigl_critic_sparsity=0.5+0.9_seed=0+1",
                             "sparsity=static_critic_sparsity=0.5+0.9_seed=0+1"]
    config = plans["sparsity=static_critic_sparsity=0.5+0.9_seed=0+1"].config
    assert config.population == 4 and config.seeds == (0, 1, 0, 1)
    assert config.sparsity.critic_levels == (0.5, 0.5, 0.9, 0.9) and config.sparsity.actor_levels == ()
    assert config.agent_names == ["seed-0_critic-0.5", "seed-1_critic-0.5", "seed-0_critic-0.9", "seed-1_critic-0.9"]
