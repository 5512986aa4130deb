"""Populations: K agents batched as ensemble members learn exactly as K separately built agents do
(the same minibatches and noise streams give the same losses and parameters, up to float rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.algos.draws import Draws
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.population import member_view
from sparserl.population.members import copy_member, member_state
from sparserl.replay import Batch, ReplayBuffer
from sparserl.runs.build import build_agent
from sparserl.runs.probe import DiagnosticsProbe

INFO = EnvInfo("test", obs_dim=3, act_dim=2, max_episode_steps=None)
AGENTS = 3


def random_batch(generator: torch.Generator, size: int, n: int, dtype: torch.dtype) -> Batch:
    """A minibatch of `size` windows of n transitions (plain one-step fields when n is 1)."""
    lead = (size,) if n == 1 else (size, n)

    def draw(*shape):
        return torch.randn(*lead, *shape, generator=generator, dtype=dtype)

    def flags(p):
        return (torch.rand(*lead, generator=generator) < p).to(dtype)

    return Batch(draw(INFO.obs_dim), draw(INFO.act_dim).clamp(-1, 1), draw(), draw(INFO.obs_dim),
                 draw(INFO.act_dim).clamp(-1, 1), flags(0.1), flags(0.05))


def stack(batches: list[Batch]) -> Batch:
    return Batch(*(torch.stack(fields) for fields in zip(*batches)))


def build(config: Config, dtype: torch.dtype):
    """A population of AGENTS and one single agent per member, holding the population's parameters
    (and, when sparse, its masks and the sparsity method's state)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        population = build_agent(config, INFO)[0]
        singles = [build_agent(config.agent_config(k, Path("unused")), INFO)[0] for k in range(config.population)]
    finally:
        torch.set_default_dtype(default)
    for k, (single, seed) in enumerate(zip(singles, config.agent_seeds)):
        for name, module in single.networks.items():
            copy_member(population.networks[name], module, k, AGENTS)
        single.draws = Draws([seed], population=False)  # the stream agent k draws in the population
        if single.sparsifier is not None:
            state = single.sparsifier.state_dict()
            single.sparsifier.load_state_dict(member_state(population.sparsifier.state_dict(), k, AGENTS, state))
    return population, singles


TOLERANCE = {torch.float32: dict(rtol=2e-4, atol=2e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("algo, nstep", [("td3", 1), ("sac", 1), ("ddpg", 1), ("td3", 3), ("sac", 3)])
def test_population_updates_equal_separate_agents(algo, nstep, dtype):
    config = Config(algo=algo, hidden=(16, 16), population=AGENTS, seed=7, nstep=nstep, delay_nstep=0)
    torch.manual_seed(0)
    population, singles = build(config, dtype)
    generator = torch.Generator().manual_seed(1)
    for update in range(200):
        batches = [random_batch(generator, 16, population.horizon, dtype) for _ in singles]
        population.update(stack(batches))
        for single, batch in zip(singles, batches):
            single.update(batch)
        if update % 50 == 49:  # the losses, averaged since the last look, agent by agent
            for got, single in zip(population.pop_agent_stats(), singles):
                expected = single.pop_stats()
                assert got.keys() == expected.keys()
                for name in got:
                    torch.testing.assert_close(got[name], expected[name], **TOLERANCE[dtype], msg=name)
    for k, single in enumerate(singles):
        for name, module in single.networks.items():
            for key, tensor in module.state_dict().items():
                ours = member_view(population.networks[name].state_dict()[key], tensor.shape, k, AGENTS)
                torch.testing.assert_close(ours, tensor, **TOLERANCE[dtype], msg=f"agent {k} {name}.{key}")


SPARSE = {
    "static": {"method": "static", "actor_sparsity": 0.8, "critic_sparsity": 0.8},
    # topology updates every 25 critic steps: eight of them within the 200 updates, per agent
    "rigl": {"method": "rigl", "actor_sparsity": 0.7, "critic_sparsity": 0.7, "update_interval": 25},
    "nm:2:4-srste": {"method": "nm:2:4", "nm_gradient": "srste"},
    # agents with levels of their own (two alike in the critic: members are grouped by level), uniform
    # budgets so every layer is sparse at every level (as in the single agents, layer for layer)
    "static-levels": {"method": "static", "distribution": "uniform", "actor_levels": (0.5, 0.8, 0.9),
                      "critic_levels": (0.9, 0.6, 0.9)},
    "rigl-levels": {"method": "rigl", "distribution": "uniform", "actor_levels": (0.3, 0.7, 0.8),
                    "critic_levels": (0.5, 0.7, 0.9), "update_interval": 25},
    # a 100-step schedule: pruning every 10 steps from step 20 on, each agent at its level from step 80
    "gmp-levels": {"method": "gmp", "distribution": "uniform", "actor_levels": (0.5, 0.75, 0.9),
                   "critic_levels": (0.5, 0.75, 0.9), "update_interval": 10},
}
CHANGING = ("rigl", "rigl-levels", "gmp-levels")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", list(SPARSE))
def test_sparse_populations_keep_each_agents_masks_and_their_evolution(method, dtype):
    config = Config(algo="td3", hidden=(16, 16), population=AGENTS, seed=11, sparsity=SPARSE[method],
                    total_steps=100 if method.startswith("gmp") else 1000, start_steps=0)
    torch.manual_seed(0)
    population, singles = build(config, dtype)
    initial = [m.clone() for m in population.sparsifier.groups["critic"].masks]
    generator = torch.Generator().manual_seed(2)
    for _ in range(200):
        batches = [random_batch(generator, 16, 1, dtype) for _ in singles]
        population.update(stack(batches))
        for single, batch in zip(singles, batches):
            single.update(batch)
    masks = population.sparsifier.groups["critic"].masks
    if method in CHANGING:  # the topology moved, differently for each agent's critics
        assert any(not torch.equal(a, b) for a, b in zip(initial, masks))
    for k, single in enumerate(singles):
        for name in ("actor", "critic"):
            ours, theirs = population.sparsifier.groups[name].masks, single.sparsifier.groups[name].masks
            for mask, expected in zip(ours, theirs):
                assert torch.equal(member_view(mask, expected.shape, k, AGENTS), expected), (method, k, name)
            for key, tensor in single.networks[name].state_dict().items():
                got = member_view(population.networks[name].state_dict()[key], tensor.shape, k, AGENTS)
                torch.testing.assert_close(got, tensor, **TOLERANCE[dtype], msg=f"agent {k} {name}.{key}")
    stats = population.sparsifier.pop_agent_stats()
    for got, single in zip(stats, singles):  # density and SAD, agent by agent
        assert got == pytest.approx(single.sparsifier.pop_stats()), method
    if method.endswith("-levels"):  # each at its own level, restored as it was from a checkpoint
        assert len({round(row["density_actor"], 3) for row in stats}) == AGENTS, stats
        restored = build_agent(config, INFO)[0].sparsifier
        restored.load_state_dict(population.sparsifier.state_dict())
        for name, group in population.sparsifier.groups.items():
            again = restored.groups[name]
            assert again.budgets == group.budgets and again.step == group.step
            assert all(torch.equal(a, b) for a, b in zip(again.masks, group.masks))
    first, second = (member_view(masks[1], singles[0].sparsifier.groups["critic"].masks[1].shape, k, AGENTS)
                     for k in (0, 1))
    assert not torch.equal(first, second)  # each agent its own mask


class _Replay:
    """A learner's diagnostics sampling over a buffer (sparserl.runs.learner.OffPolicyLearner's rule)."""

    def __init__(self, buffer: ReplayBuffer):
        self.buffer = buffer

    def sample_for_diagnostics(self, size, generator, agent=None):
        return self.buffer.sample(size, generator=generator, agent=agent) if len(self.buffer) >= size else None


@pytest.mark.parametrize("algo, sparsity", [("sac", SPARSE["static"]), ("td3", SPARSE["rigl-levels"])],
                         ids=["sac-static", "td3-rigl-levels"])
def test_population_diagnostics_equal_each_agents_own(algo, sparsity):
    """Agent k's diagnostics (through its one-agent twin, its masks and its own replay ring) are those
    its single run computes, on the same transitions drawn with the same generator."""
    config = Config(algo=algo, hidden=(16, 16), population=AGENTS, seed=7, sparsity=sparsity, run_dir="unused")
    torch.manual_seed(0)
    population, singles = build(config, torch.float32)
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):  # the agents drift apart
        batches = [random_batch(generator, 16, 1, torch.float32) for _ in singles]
        population.update(stack(batches))
        for single, batch in zip(singles, batches):
            single.update(batch)
    shared = ReplayBuffer(INFO.obs_dim, INFO.act_dim, 100, agents=AGENTS)
    own = [ReplayBuffer(INFO.obs_dim, INFO.act_dim, 100) for _ in singles]
    rng = np.random.default_rng(2)
    for _ in range(130):  # wraps the rings
        fields = [rng.normal(size=(AGENTS, d)).astype(np.float32) for d in (3, 2, 3, 2)]
        reward, done = rng.normal(size=AGENTS), rng.random(AGENTS) < 0.05
        shared.add(fields[0], fields[1], reward, fields[2], done, done, fields[3])
        for k, buffer in enumerate(own):
            buffer.add(fields[0][k], fields[1][k], reward[k], fields[2][k], done[k], done[k], fields[3][k])
    probe = DiagnosticsProbe(config, INFO, population, population.sparsifier)
    torch.manual_seed(5)  # each agent's noise draws start from the same global state (restored after each)
    measured = probe.measure(_Replay(shared), 64)
    assert probe.measure(_Replay(ReplayBuffer(INFO.obs_dim, INFO.act_dim, 100, agents=AGENTS)), 64) is None
    for k, (single, buffer) in enumerate(zip(singles, own)):
        single.draws = Draws()  # a single run draws from the global stream, as the twin does
        alone = DiagnosticsProbe(config.agent_config(k, Path("unused")), INFO, single, single.sparsifier)
        torch.manual_seed(5)
        (expected,) = alone.measure(_Replay(buffer), 64)
        assert measured[k].keys() == expected.keys()
        for name, value in expected.items():
            assert measured[k][name] == pytest.approx(value, rel=1e-4, abs=1e-6), f"agent {k}: {name}"
    assert measured[0]["diag_critic_param_norm"] != pytest.approx(measured[1]["diag_critic_param_norm"])


def test_population_acts_per_agent_with_its_own_noise():
    config = Config(algo="td3", hidden=(16,), population=AGENTS, seed=3)
    torch.manual_seed(0)
    population, singles = build(config, torch.float32)
    obs = torch.randn(AGENTS, INFO.obs_dim).numpy()
    actions, means = population.act(obs)
    assert actions.shape == means.shape == (AGENTS, INFO.act_dim)
    for k, single in enumerate(singles):
        action, mean = single.act(obs[k])
        torch.testing.assert_close(torch.as_tensor(means[k]), torch.as_tensor(mean))
        torch.testing.assert_close(torch.as_tensor(actions[k]), torch.as_tensor(action))
        torch.testing.assert_close(torch.as_tensor(population.act_deterministic(obs)[k]),
                                   torch.as_tensor(single.act_deterministic(obs[k])))
    assert not torch.allclose(torch.as_tensor(actions[0] - means[0]), torch.as_tensor(actions[1] - means[1]))


@settings(max_examples=40, deadline=None)
@given(agents=st.integers(2, 4), ensemble=st.integers(1, 3), rest=st.lists(st.integers(1, 4), max_size=2),
       k=st.data())
def test_member_views_write_through_and_cover_each_tensor_once(agents, ensemble, rest, k):
    """Every element of a population tensor belongs to exactly one agent's view (or all share it)."""
    k = k.draw(st.integers(0, agents - 1))
    for single, population in [((ensemble, *rest), (ensemble * agents, *rest)), ((5, 4), (agents, 4, 5)),
                               ((5,), (agents, 1, 5)), ((), (agents,))]:
        tensor = torch.zeros(population)
        for j in range(agents):
            member_view(tensor, single, j, agents).add_(j + 1)
        assert torch.all(tensor >= 1) and torch.all(tensor <= agents)  # each element written once
        assert torch.all(member_view(tensor, single, k, agents) == k + 1)
