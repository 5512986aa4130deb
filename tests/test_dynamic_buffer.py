"""RLx2's dynamic replay capacity against an independent simulation of its rule, on a scripted
policy drift: it shrinks exactly as specified, never below the minimum, and sampling never returns
a dropped transition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from sparserl.config import Config
from sparserl.errors import ConfigError
from sparserl.replay import DynamicCapacity, ReplayBuffer

OBS, ACT = 2, 3


class StalePolicy(nn.Module):
    """Acts 1 on transitions older than `boundary` (obs[0] is the transition's index), 0 on the rest;
    the stored noise-free actions are all 0, so each stale transition adds 1/2 to D's mean."""

    def __init__(self):
        super().__init__()
        self.boundary = 0

    def forward(self, obs):
        return (obs[:, :1] < self.boundary).float().expand(-1, ACT)


def add(buffer: ReplayBuffer, index: int) -> None:
    obs = np.array([index, 0.0], np.float32)
    buffer.add(obs, np.zeros(ACT, np.float32), 0.0, obs, False, False, np.zeros(ACT, np.float32))


def simulate(live: list[int], boundary: int, threshold: float, min_size: int, fraction: float, samples: int,
             until_below: bool) -> list[int]:
    """The rule written out on a plain list of transition indices."""
    def distance():  # a mean of float32 squared differences, as the rule measures it (ties at the
        oldest = live[:samples]  # threshold, e.g. 4/6 against 1/3, fall the same way on both sides)
        return 0.5 * float(np.float32(sum(i < boundary for i in oldest)) / np.float32(len(oldest)))

    while distance() > threshold and len(live) > min_size:
        count = min(max(1, math.floor(fraction * len(live))), len(live) - min_size)
        live = live[count:]
        if not until_below:
            break
    return live


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(20, 120), min_size=st.integers(1, 60), fraction=st.floats(0.01, 0.6),
       samples=st.integers(1, 40), threshold=st.floats(0.01, 0.45), until_below=st.booleans(),
       schedule=st.lists(st.tuples(st.integers(1, 60), st.integers(0, 40)), min_size=1, max_size=8))
@example(capacity=20, min_size=1, fraction=0.5, samples=6, threshold=1 / 3, until_below=False,
         schedule=[(1, 0), (5, 4)])  # D = 0.5 * 4/6 in float32 lies just above 1/3: it shrinks
def test_shrinks_as_specified_never_below_min_and_never_samples_a_dropped_transition(
        capacity, min_size, fraction, samples, threshold, until_below, schedule):
    min_size = min(min_size, capacity)
    buffer = ReplayBuffer(OBS, ACT, capacity, seed=0)
    policy = StalePolicy()
    rule = DynamicCapacity(buffer, every=1, threshold=threshold, min_size=min_size, drop_fraction=fraction,
                           samples=samples, until_below=until_below)
    live: list[int] = []
    index = 0
    for appended, drift in schedule:  # append, let the policy drift past more transitions, check
        for _ in range(appended):
            add(buffer, index)
            live = (live + [index])[-capacity:]
            index += 1
        policy.boundary += drift
        size_before = len(live)
        measured = 0.5 * sum(i < policy.boundary for i in live[:samples]) / len(live[:samples])
        live = simulate(live, policy.boundary, threshold, min_size, fraction, samples, until_below)
        dropped = rule.check(policy)
        assert dropped == size_before - len(live)
        assert len(buffer) == len(live) and (len(buffer) >= min_size or dropped == 0)
        contents = buffer.oldest(len(buffer)).obs[:, 0].long().tolist()
        assert contents == live
        sampled = set(buffer.sample(256).obs[:, 0].long().tolist())
        assert sampled <= set(live)
        assert rule.last_distance == pytest.approx(measured)  # D as measured, before the shrink


def test_the_distance_is_half_the_mean_squared_action_difference():
    buffer = ReplayBuffer(OBS, ACT, 10, seed=0)
    stored = np.array([[0.5, -0.5, 0.0], [1.0, 1.0, 1.0]], np.float32)
    for a in stored:
        buffer.add(np.zeros(OBS, np.float32), a, 0.0, np.zeros(OBS, np.float32), False, False, a)
    policy = nn.Linear(OBS, ACT)
    with torch.no_grad():
        policy.weight.zero_()
        policy.bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
    expected = 0.5 * np.mean((np.array([0.0, 0.5, -1.0]) - stored) ** 2)
    assert DynamicCapacity(buffer, samples=2048, min_size=1).distance(policy) == pytest.approx(expected)


def test_checks_only_every_interval_and_keeps_its_state():
    buffer = ReplayBuffer(OBS, ACT, 50, seed=0)
    for i in range(50):
        add(buffer, i)
    policy = StalePolicy()
    policy.boundary = 50
    rule = DynamicCapacity(buffer, every=10, threshold=0.2, min_size=30, drop_fraction=0.1, samples=8)
    assert [rule.maybe_check(step, policy) for step in (7, 10, 15, 20)] == [False, True, False, True]
    assert len(buffer) == 50 - 5 - 4 and rule.dropped == 9 and rule.last_distance == 0.5
    copy = DynamicCapacity(buffer)
    copy.load_state_dict(rule.state_dict())
    assert (copy.dropped, copy.last_distance) == (9, 0.5)


@pytest.mark.parametrize("changes,message", [
    ({"buffer_threshold": 0.0}, r"buffer_threshold must be a positive number, got 0.0"),
    ({"buffer_min_size": 2_000_000}, r"buffer_min_size \(2000000\) must be positive and at most buffer_size "
                                     r"\(1000000\)"),
    ({"buffer_drop_fraction": 1.0}, r"buffer_drop_fraction must be in \(0, 1\), got 1.0"),
    ({"buffer_check_every": 0}, r"buffer_check_every must be a positive integer, got 0"),
])
def test_config_rejects_bad_dynamic_buffer_settings(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config(dynamic_buffer=True, **changes).validate()
    if "buffer_min_size" in changes:  # buffer_size bounds the minimum only while the buffer shrinks
        Config(dynamic_buffer=False, **changes).validate()
    else:  # a value no buffer could use is refused even while the buffer is fixed
        with pytest.raises(ConfigError, match=message):
            Config(dynamic_buffer=False, **changes).validate()


class StalePopulation(nn.Module):
    """StalePolicy for each agent of a population, each with its own boundary."""

    def __init__(self, agents: int):
        super().__init__()
        self.boundaries = torch.zeros(agents)

    def forward(self, obs):
        return (obs[..., :1] < self.boundaries.view(-1, 1, 1)).float().expand(*obs.shape[:-1], ACT)


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(20, 80), min_size=st.integers(1, 40), fraction=st.floats(0.01, 0.6),
       samples=st.integers(1, 30), until_below=st.booleans(),
       schedule=st.lists(st.tuples(st.integers(1, 50), st.lists(st.integers(0, 30), min_size=3, max_size=3)),
                         min_size=1, max_size=6))
def test_each_agent_of_a_population_shrinks_its_own_window_as_a_single_buffer_would(
        capacity, min_size, fraction, samples, until_below, schedule):
    """Agents whose policies drift apart: every agent's live window, its D and what it samples are a
    single buffer's under the same rule and the same drift."""
    min_size, agents = min(min_size, capacity), 3
    settings_ = dict(every=1, threshold=0.2, min_size=min_size, drop_fraction=fraction, samples=samples,
                     until_below=until_below)
    population = ReplayBuffer(OBS, ACT, capacity, seed=0, agents=agents)
    rule = DynamicCapacity(population, **settings_)
    policies = StalePopulation(agents)
    singles = [ReplayBuffer(OBS, ACT, capacity, seed=0) for _ in range(agents)]
    rules = [DynamicCapacity(b, **settings_) for b in singles]
    single_policies = [StalePolicy() for _ in range(agents)]
    index = 0
    for appended, drifts in schedule:
        for _ in range(appended):
            obs = np.array([index, 0.0], np.float32)
            zeros = np.zeros((agents, ACT), np.float32)
            population.add(np.tile(obs, (agents, 1)), zeros, np.zeros(agents), np.tile(obs, (agents, 1)),
                           np.zeros(agents, bool), np.zeros(agents, bool), zeros)
            for b in singles:
                add(b, index)
            index += 1
        for k, drift in enumerate(drifts):
            policies.boundaries[k] += drift
            single_policies[k].boundary += drift
        dropped = rule.check(policies)
        assert dropped == sum(r.check(p) for r, p in zip(rules, single_policies))
        window = population.oldest(capacity).obs[..., 0].long()
        sampled = population.sample(128).obs[..., 0].long()
        for k, (single, r) in enumerate(zip(singles, rules)):
            assert population.live(k) == len(single)
            assert rule.last_distances[k] == pytest.approx(r.last_distance)
            contents = single.oldest(len(single)).obs[:, 0].long().tolist()
            assert set(sampled[k].tolist()) <= set(contents)
            assert window[k].tolist() == contents[: window.shape[1]]  # (oldest: the smallest window's size)
    state = rule.state_dict()
    again = DynamicCapacity(ReplayBuffer(OBS, ACT, capacity, seed=0, agents=agents), **settings_)
    again.load_state_dict(state)
    assert again.dropped_by_agent.tolist() == rule.dropped_by_agent.tolist()
    restored = ReplayBuffer(OBS, ACT, capacity, seed=0, agents=agents)
    restored.load_state_dict(population.state_dict())
    assert [restored.live(k) for k in range(agents)] == [population.live(k) for k in range(agents)]
    assert torch.equal(restored.oldest(capacity).obs, population.oldest(capacity).obs)
