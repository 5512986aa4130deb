"""--precision: bf16 autocast around the replay updates, float32 everywhere it accumulates; `auto`
decides from the machine's matrix units (sparserl.hardware)."""

from __future__ import annotations

import warnings

import pytest
import torch

from sparserl import hardware
from sparserl.algos import make_agent
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError, ConfigWarning
from sparserl.replay import ReplayBuffer
from sparserl.runs.learner import OffPolicyLearner

INFO = EnvInfo("test", obs_dim=5, act_dim=2, max_episode_steps=None)


@pytest.mark.parametrize("units", [True, False])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_takes_bf16_only_where_there_are_matrix_units(monkeypatch, units, device):
    monkeypatch.setattr(hardware, "cpu_has_bf16_matrix_units", lambda: units and device == "cpu")
    monkeypatch.setattr(hardware, "cuda_has_bf16", lambda: units and device == "cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto and fp32 never warn
        assert hardware.update_dtype("auto", device) == (torch.bfloat16 if units else None)
        assert hardware.update_dtype("fp32", device) is None
    if units:
        assert hardware.update_dtype("bf16", device) is torch.bfloat16
    else:
        with pytest.warns(ConfigWarning, match="emulated"):
            assert hardware.update_dtype("bf16", device) is torch.bfloat16
    assert ("float32" in hardware.precision_line(None, "auto")) and "bf16" in hardware.precision_line(torch.bfloat16,
                                                                                                      "bf16")


def learner(precision, updates_per_step=1, algo="td3"):
    torch.manual_seed(0)
    agent = make_agent(INFO, Config(algo=algo, hidden=(32, 32)))
    buffer = ReplayBuffer(INFO.obs_dim, INFO.act_dim, 1000, seed=0)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        obs, action = torch.randn(INFO.obs_dim, generator=generator), torch.rand(INFO.act_dim, generator=generator)
        buffer.add(obs.numpy(), action.numpy(), float(obs.sum()), (obs * 0.9).numpy(), False, False, action.numpy())
    return OffPolicyLearner(agent, buffer, None, seed=0, start_steps=0, batch_size=64,
                            updates_per_step=updates_per_step, autocast=precision)


def transition():
    zeros = torch.zeros(5).numpy(), torch.zeros(2).numpy()
    return zeros[0], zeros[1], 0.0, zeros[0], False, False, zeros[1]


def test_bf16_updates_keep_float32_weights_gradients_and_optimiser_state():
    fp32, bf16 = learner(None), learner(torch.bfloat16)
    for step in range(40):
        for run in (fp32, bf16):
            run.observe(*transition(), step)
    for name, module in bf16.agent.networks.items():
        for p in module.parameters():
            assert p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32), name
    for optimizer in bf16.agent.optimizers.values():
        for state in optimizer.state.values():
            assert all(v.dtype == torch.float32 for k, v in state.items() if k != "step")
    ours, theirs = bf16.agent.pop_stats(), fp32.agent.pop_stats()
    assert ours["critic_loss"] != theirs["critic_loss"]  # the products really ran in bfloat16
    assert ours["critic_loss"] == pytest.approx(theirs["critic_loss"], rel=0.1)
    for a, b in zip(bf16.agent.critic.parameters(), fp32.agent.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_every_bf16_update_of_a_step_runs_on_the_weights_of_that_moment(algo):
    """Two updates per environment step under bf16 equal two updates each in its own autocast region:
    the second one's products use the weights the first one's optimiser steps left."""
    per_step, one_by_one = learner(torch.bfloat16, updates_per_step=2, algo=algo), learner(None, algo=algo)
    torch.manual_seed(1)  # a single agent's noise comes from the global generator: one learner at a time
    for step in range(6):
        per_step.observe(*transition(), step)
    torch.manual_seed(1)
    for _ in range(6):
        one_by_one.buffer.add(*transition())
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                one_by_one.agent.update(one_by_one.buffer.sample(64))
    for name, module in per_step.agent.networks.items():
        for a, b in zip(module.parameters(), one_by_one.agent.networks[name].parameters()):
            assert torch.equal(a, b), name


def test_bf16_is_refused_for_a_streaming_algorithm():
    with pytest.raises(ConfigError, match="precision bf16: stream-ac"):
        Config(algo="stream-ac", precision="bf16", start_steps=0).validate()


def test_the_machine_line_names_the_cpu_and_its_extensions():
    line = hardware.describe()
    assert hardware.cpu_name() in line and f"bf16 products: {hardware.bf16_hardware()}" in line
    assert (hardware.bf16_hardware() != "emulated") == hardware.cpu_has_bf16_matrix_units()
    assert set(hardware.cpu_extensions()) <= set(hardware.EXTENSIONS)


def test_two_cpus_of_one_name_are_two_machines_in_a_runs_record(monkeypatch):
    """run.json lists the machines a run trained on; `--precision auto` chose by their extensions."""
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    names = set()
    for flags in ({"avx2"}, {"avx2", "avx512f", "avx512_bf16"}):
        monkeypatch.setattr(hardware, "_cpuinfo", lambda flags=flags: ("AMD EPYC", frozenset(flags)))
        names.add(hardware.machine())
        assert hardware.machine().startswith("AMD EPYC (avx2")
    assert len(names) == 2


def test_a_device_that_is_not_there_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    with pytest.raises(ConfigError, match="device cuda: no CUDA device is visible"):
        hardware.resolve_device("cuda")
    assert hardware.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert hardware.resolve_device("auto") == torch.device("cuda")
    assert hardware.resolve_device("auto", streaming=True) == torch.device("cpu")  # batch-1 steps stay on the CPU
    with pytest.raises(ConfigError, match="device cuda: streaming learners"):
        hardware.resolve_device("cuda", streaming=True)


def test_agents_are_built_on_their_device_and_act_through_host_arrays():
    agent = make_agent(INFO, Config(hidden=(16,), device="cpu"))
    assert agent.device == torch.device("cpu") and agent.draws.device == torch.device("cpu")
    assert all(p.device == agent.device for m in agent.networks.values() for p in m.parameters())
    action, mean = agent.act(torch.zeros(INFO.obs_dim).numpy())
    assert action.shape == mean.shape == (INFO.act_dim,)


def test_the_device_path_of_the_replay_buffer_stores_what_the_host_path_does():
    """On a GPU a transition goes through a host staging row; here the same path runs on the CPU."""
    host, staged = ReplayBuffer(3, 2, 50, seed=0, agents=2), ReplayBuffer(3, 2, 50, seed=0, agents=2)
    staged._rows, staged._staging = None, torch.zeros(2, staged.row_width)
    generator = torch.Generator().manual_seed(0)
    for step in range(70):  # wraps around the ring
        fields = [torch.randn(2, n, generator=generator).numpy() for n in (3, 2)]
        reward, flags = torch.randn(2, generator=generator).numpy(), (step % 3 == 0, step % 4 == 0)
        for buffer in (host, staged):
            buffer.add(fields[0], fields[1], reward, fields[0] * 2, *flags, fields[1] * -1)
    assert torch.equal(host._storage, staged._storage)
    assert all(torch.equal(a, b) for a, b in zip(host.sample(8, n=2), staged.sample(8, n=2)))
