"""The compiled streaming step (sparserl.streaming.capture) against the eager one: the same run,
step for step, with masks, the adaptive optimiser, observation statistics and episode ends (which
run eagerly in between); the fallback when compiling fails; when the sparsity engine lets a step be
compiled; and the refusals and choices of `step_compile`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparserl.config import resolve_config
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError
from sparserl.runs.build import build_agent
from sparserl.sparsity import Sparsifier, SparsityConfig
from sparserl.streaming import capture
from sparserl.streaming.capture import wants_compiled
from sparserl.streaming.learner import StreamingLearner

OBS = 6


def stream(seed: int = 0):
    """A fixed stream of transitions that the actions do not steer (so that the two runs see the same
    observations): three episodes, the first ended by a terminal, the others by truncations."""
    rng = np.random.default_rng(seed)
    for length, terminal in ((50, True), (40, False), (60, False)):
        obs = rng.normal(size=OBS).astype(np.float32)
        for t in range(length):
            next_obs = (0.9 * obs + rng.normal(size=OBS) * 0.5).astype(np.float32)
            end = t == length - 1
            yield obs, float(rng.normal() * 2), next_obs, terminal and end, end and not terminal
            obs = next_obs


STEPS = 150


def run(discrete: bool, step_compile: str, **settings):
    """A streaming learner of 16-wide networks fed `stream()` through the training loop's calls."""
    config = resolve_config(algo="stream-ac", hidden=[16, 16], threads=1, step_compile=step_compile,
                            total_steps=1000, **settings)
    torch.manual_seed(0)
    agent, _ = build_agent(config, EnvInfo("test", OBS, 3, None, discrete))
    learner = StreamingLearner(agent, compiled=wants_compiled(config, 10_000))
    for step, (obs, reward, next_obs, terminated, truncated) in enumerate(stream()):
        action, policy_action = learner.act(obs, step)
        learner.observe(obs, action, reward, next_obs, terminated, truncated, policy_action, step)
    return agent, learner


def state(agent) -> dict[str, torch.Tensor]:
    out = {f"{name}.{key}": t.clone() for name, opt in agent.optimizers.items()
           for key, t in opt._flat[0].items() if key != "grad"}
    out.update({f"obs_norm.{k}": v.clone() for k, v in agent.obs_norm.state_dict().items()})
    out["stat_sums"] = agent._stat_sums.clone()
    return out


def assert_same_run(got, want, tolerance: float) -> None:
    """Every buffer equal to within `tolerance` relative to its norm (float32 rounding, which differs
    between Inductor's fused kernels and eager operations, accumulates over the steps)."""
    a, b = state(got), state(want)
    for key in b:
        error = float((a[key] - b[key]).norm() / b[key].norm().clamp(min=1e-12))
        assert error <= tolerance, f"{key}: relative error {error:.2e}"
    assert got.updates == want.updates == STEPS and got._stat_counts == want._stat_counts


SPARSE = {"method": "static", "actor_sparsity": 0.5, "critic_sparsity": 0.5, "distribution": "uniform"}


@pytest.mark.parametrize("discrete,settings", [(False, dict(obgd="adaptive", sparsity=SPARSE)), (True, {})],
                         ids=["gaussian-static-adaptive", "categorical"])
def test_the_compiled_step_takes_the_eager_steps(discrete, settings):
    compiled, learner = run(discrete, "on", **settings)
    eager, eager_learner = run(discrete, "off", **settings)
    step = learner.compiled
    assert step.compiled and step.failed is None and eager_learner.compiled is None
    assert step.steps == STEPS - 3  # all but the episodes' last steps (their first actions are eager acts)
    assert_same_run(compiled, eager, 1e-3)
    if compiled.sparsifier is not None:
        for name, group in compiled.sparsifier.groups.items():
            assert group.step == eager.sparsifier.groups[name].step == STEPS
            for layer, mask in zip(group.sparse_layers, group.masks):
                assert not bool(layer.param.detach()[mask == 0].any())  # pruned weights stayed 0


def test_a_step_that_fails_to_compile_runs_eagerly_and_loses_nothing(monkeypatch, capsys):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no compiler here")
        return call

    monkeypatch.setattr(capture.torch, "compile", broken)
    failing, learner = run(False, "on", obgd="adaptive")
    eager, _ = run(False, "off", obgd="adaptive")
    assert learner.compiled.failed == "RuntimeError: no compiler here" and learner.compiled.steps == 0
    assert "could not be compiled" in capsys.readouterr().err
    assert_same_run(failing, eager, 0.0)  # the very same steps
    assert failing.optimizers["actor"].param_groups[0]["steps"] == STEPS


def _group(method: str, **settings):
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    sparsifier = Sparsifier(SparsityConfig(method=method, **settings), seed=0)
    sparsifier.attach("net", net, optimizer, total_steps=100)
    return sparsifier


def test_the_engine_lets_only_plain_steps_be_compiled():
    sparsifier = _group("static", distribution="uniform")
    pairs = sparsifier.plain_masks("net")
    assert [p for p, _ in pairs] == sparsifier.groups["net"].params and sparsifier.plain_masks("other") == []
    sparsifier = _group("rigl", update_interval=5, distribution="uniform")
    plain = []
    for _ in range(10):
        plain.append(sparsifier.plain_masks("net") is not None)
        sparsifier.count_plain_step("net")
    assert plain == [True] * 4 + [False] + [True] * 4 + [False]  # a mask update every 5th step
    assert sparsifier.groups["net"].step == 10
    assert _group("nm:2:4", nm_gradient="masked").plain_masks("net") is not None  # its mask never changes
    assert _group("nm:2:4", nm_gradient="ste").plain_masks("net") is None  # dense latents: every step hooked


def test_step_compile_choices_and_refusals(monkeypatch):
    long, short = (resolve_config(algo="stream-ac", total_steps=n) for n in (capture.AUTO_MIN_STEPS, 1000))
    small, wide = 36_000, capture.AUTO_MAX_PARAMETERS + 1
    assert capture.wants_compiled(long, small) == (capture.compiler_problem(long) is None)
    assert not capture.wants_compiled(short, small) and not capture.wants_compiled(long, wide)
    assert capture.wants_compiled(resolve_config(algo="stream-ac", total_steps=1000, step_compile="on"), wide)
    assert not capture.wants_compiled(resolve_config(algo="stream-ac", step_compile="off"), small)
    with pytest.raises(ConfigError, match="step_compile on: execution 'csr' runs its own sparse kernels"):
        resolve_config(algo="stream-ac", step_compile="on", execution="csr", sparsity="static")
    monkeypatch.setattr(capture.shutil, "which", lambda name: None)
    assert not capture.wants_compiled(long, small)
    with pytest.raises(ConfigError, match="step_compile on: no C\\+\\+ compiler was found"):
        resolve_config(algo="stream-ac", step_compile="on")


def test_observation_statistics_in_tensors_equal_the_numpy_update():
    from sparserl.nets import WelfordNorm

    data = np.random.default_rng(0).normal(1.0, 2.0, size=(6, 4)).astype(np.float32)
    host, graph = WelfordNorm(4, keep=1), WelfordNorm(4, keep=1)
    for row in data:
        host.update(row)
        graph.add(torch.from_numpy(row))
    for key, value in host.state_dict().items():
        torch.testing.assert_close(graph.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=key)
    torch.testing.assert_close(graph.scale, host.scale)
