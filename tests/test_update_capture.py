"""The compiled replay update (sparserl.runs.capture) against the eager one: the same updates from
the same minibatches, for TD3 and SAC (MLPs and SimBa with AdamW), dense and sparse (static masks; RigL, whose topology
updates run eagerly in between), in float32 and under bf16 autocast; the fallback when compiling
fails; and the choices and refusals of `step_compile` for replay learners."""

from __future__ import annotations

import pytest
import torch

from sparserl.config import resolve_config
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError
from sparserl.replay import ReplayBuffer
from sparserl.runs import capture
from sparserl.runs.build import build_agent
from sparserl.runs.capture import wants_compiled_update
from sparserl.runs.learner import OffPolicyLearner

INFO = EnvInfo("test", obs_dim=5, act_dim=2, max_episode_steps=None)
UPDATES = 12
STATIC = {"method": "static", "actor_sparsity": 0.5, "critic_sparsity": 0.5, "distribution": "uniform"}
RIGL = {"method": "rigl", "actor_sparsity": 0.5, "critic_sparsity": 0.5, "distribution": "uniform",
        "update_interval": 5}


def batches(seed: int = 0) -> list:
    buffer = ReplayBuffer(INFO.obs_dim, INFO.act_dim, 500, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    for i in range(300):
        obs, action = torch.randn(INFO.obs_dim, generator=generator), torch.rand(INFO.act_dim, generator=generator)
        buffer.add(obs.numpy(), action.numpy(), float(obs.sum()), (obs * 0.9).numpy(), i % 50 == 49, False,
                   action.numpy())
    return [buffer.sample(32) for _ in range(UPDATES)]


def train(step_compile: str, algo: str, precision=None, **settings):
    """An agent of 16-wide networks after UPDATES updates from `batches()` through the learner's path."""
    config = resolve_config(algo=algo, hidden=[16, 16], threads=1, step_compile=step_compile, total_steps=1000,
                            start_steps=0, **settings)
    torch.manual_seed(0)
    agent, _ = build_agent(config, INFO)
    learner = OffPolicyLearner(agent, ReplayBuffer(INFO.obs_dim, INFO.act_dim, 10, seed=0), None, seed=0,
                               start_steps=0, batch_size=32, updates_per_step=1, autocast=precision,
                               compiled=step_compile == "on")
    torch.manual_seed(1)  # the updates' draws (target smoothing, SAC's samples) from the global generator
    for batch in batches():
        with learner._precision:
            learner._update(batch)
    return agent, learner


def state(agent) -> dict[str, torch.Tensor]:
    out = {f"{name}.{key}": p.detach().clone() for name, net in agent.networks.items()
           for key, p in net.state_dict().items()}
    for name, optimizer in agent.optimizers.items():
        for i, s in enumerate(optimizer.state.values()):
            out.update({f"{name}.{i}.{k}": v.clone() for k, v in s.items()})
    out["stat_sums"] = agent._stat_sums.clone()
    return out


def assert_same_updates(got, want, tolerance: float) -> None:
    """Every tensor equal to within `tolerance` relative to its norm (Inductor's fused kernels round
    differently from eager operations), and the same bookkeeping."""
    a, b = state(got), state(want)
    for key in b:
        error = float((a[key] - b[key]).norm() / b[key].norm().clamp(min=1e-12))
        assert error <= tolerance, f"{key}: relative error {error:.2e}"
    assert got.updates == want.updates == UPDATES and got._stat_counts == want._stat_counts
    if want.sparsifier is not None:
        for name, group in want.sparsifier.groups.items():
            other = got.sparsifier.groups[name]
            assert other.step == group.step and all(torch.equal(m, n) for m, n in zip(other.masks, group.masks))


# RigL every 5th optimiser step: the critic's 5th and 10th (updates 5, 10) and, while the actor's 5th
# step is coming (it steps every other update), updates 9 and 10 run eagerly
SIMBA = {"network": "simba", "actor_width": 16, "critic_width": 16, "critic_blocks": 1, "optimizer": "adamw",
         "weight_decay": 0.01}


@pytest.mark.parametrize("algo,settings,graph_updates", [
    ("td3", {"sparsity": STATIC}, UPDATES), ("sac", {**SIMBA, "sparsity": STATIC}, UPDATES),
    ("td3", {"sparsity": RIGL}, UPDATES - 3),
], ids=["td3-static", "sac-simba-adamw-static", "td3-rigl"])
def test_the_compiled_update_takes_the_eager_updates(algo, settings, graph_updates):
    compiled, learner = train("on", algo, **settings)
    eager, eager_learner = train("off", algo, **settings)
    assert learner.compiled.failed is None and eager_learner.compiled is None
    assert learner.compiled.graph_updates == graph_updates
    assert_same_updates(compiled, eager, 1e-4)
    if compiled.sparsifier is not None:
        for group in compiled.sparsifier.groups.values():
            for layer, mask in zip(group.sparse_layers, group.masks):
                assert not bool(layer.param.detach()[mask == 0].any())  # pruned weights stayed 0


def test_the_compiled_update_under_bf16_autocast_takes_the_eager_updates():
    compiled, learner = train("on", "td3", precision=torch.bfloat16, sparsity=STATIC)
    eager, _ = train("off", "td3", precision=torch.bfloat16, sparsity=STATIC)
    assert learner.compiled.graph_updates == UPDATES
    assert_same_updates(compiled, eager, 2e-2)  # bf16 products: rounding at 8 bits of mantissa


def test_an_update_that_fails_to_compile_runs_eagerly_and_loses_nothing(monkeypatch, capsys):
    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no compiler here")
        return call

    monkeypatch.setattr(capture.torch, "compile", broken)
    failing, learner = train("on", "td3", sparsity=STATIC)
    eager, _ = train("off", "td3", sparsity=STATIC)
    assert learner.compiled.failed == "RuntimeError: no compiler here" and learner.compiled.graph_updates == 0
    assert "could not be compiled" in capsys.readouterr().err
    assert_same_updates(failing, eager, 0.0)  # the very same updates
    assert "optimize" not in vars(failing) and "count_recorded" not in vars(failing)


def test_step_compile_for_replay_learners_choices_and_refusals(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    long = resolve_config(algo="td3", total_steps=100_000, start_steps=10_000)
    assert wants_compiled_update(long, cpu) and not wants_compiled_update(long, cuda)
    assert not wants_compiled_update(resolve_config(algo="td3", total_steps=40_000, start_steps=0), cpu)
    assert not wants_compiled_update(resolve_config(algo="td3", total_steps=100_000, step_compile="off"), cpu)
    assert wants_compiled_update(resolve_config(algo="td3", total_steps=1_000, start_steps=0, step_compile="on"), cpu)
    assert not wants_compiled_update(resolve_config(algo="td3", total_steps=100_000, population=2), cpu)
    with pytest.raises(ConfigError, match="step_compile on: a population's updates run eagerly"):
        resolve_config(algo="td3", step_compile="on", population=2)
    with pytest.raises(ConfigError, match="step_compile on: execution 'csr' runs its own sparse kernels"):
        resolve_config(algo="td3", step_compile="on", execution="csr", sparsity="static")
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert not wants_compiled_update(long, cpu)
    with pytest.raises(ConfigError, match="step_compile on: no C\\+\\+ compiler was found"):
        resolve_config(algo="td3", step_compile="on")
