"""n-step TD targets of TD3 and SAC equal a brute-force loop over hand-made episodes with terminals
and time-limit cuts (property-based), and the delay switches the window length exactly once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sparserl.algos import SAC, TD3
from sparserl.algos.nstep import td_window
from sparserl.config import Config
from sparserl.envs import EnvInfo
from sparserl.replay import ReplayBuffer

OBS, ACT = 4, 2
INFO = EnvInfo("test", obs_dim=OBS, act_dim=ACT, max_episode_steps=None)


@dataclass
class Step:
    obs: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool


# an episode: its length and how it ends; the last episode of a buffer may still be running
episodes = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["terminal", "time-limit", "both"])),
                    min_size=1, max_size=8)


def play(spec: list[tuple[int, str]], open_tail: int, seed: int) -> list[Step]:
    """Transitions of the given episodes; obs[0] holds the transition's index, to find it again."""
    rng = np.random.default_rng(seed)
    steps: list[Step] = []
    lengths = [(length, end) for length, end in spec] + ([(open_tail, "open")] if open_tail else [])
    for length, end in lengths:
        obs = rng.normal(size=OBS).astype(np.float32)
        for k in range(length):
            obs[0] = len(steps)
            next_obs = rng.normal(size=OBS).astype(np.float32)
            last = k == length - 1
            steps.append(Step(obs.copy(), float(rng.normal()), next_obs,
                              last and end in ("terminal", "both"), last and end in ("time-limit", "both")))
            obs = next_obs
    return steps


def buffer_of(steps: list[Step], capacity: int) -> ReplayBuffer:
    buffer = ReplayBuffer(OBS, ACT, capacity, seed=3)
    for s in steps:
        buffer.add(s.obs, np.zeros(ACT, np.float32), s.reward, s.next_obs, s.terminated, s.truncated,
                   np.zeros(ACT, np.float32))
    return buffer


def brute_force(steps: list[Step], start: int, n: int, gamma: float, value, bonus=None) -> float:
    """Sum rewards along the episode, stopping at a terminal (no bootstrap) or a time-limit cut or the
    n-th step (bootstrap with value); `bonus` (SAC's entropy term) is added at every next state."""
    total, discount = 0.0, 1.0
    for k in range(n):
        s = steps[start + k]
        total += discount * s.reward
        discount *= gamma
        if s.terminated:
            return total
        if s.truncated or k == n - 1:
            return total + discount * value(s.next_obs)
        if bonus is not None:
            total += discount * bonus(s.next_obs)
    raise AssertionError("unreachable")


def one(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x).unsqueeze(0)


def sample(buffer: ReplayBuffer, n: int):
    batch = buffer.sample(64, n=n)
    first_obs = batch.obs if n == 1 else batch.obs[:, 0]
    return batch, [int(i) for i in first_obs[:, 0].tolist()]


common = dict(spec=episodes, open_tail=st.integers(0, 4), n=st.integers(1, 5),
              gamma=st.floats(0.5, 1.0), seed=st.integers(0, 10_000), spare=st.integers(0, 12))


@settings(max_examples=40, deadline=None)
@given(**common)
def test_td3_nstep_target_equals_brute_force(spec, open_tail, n, gamma, seed, spare):
    steps = play(spec, open_tail, seed)
    assume(len(steps) >= n)
    capacity = max(n, len(steps) - spare)  # a full ring has overwritten the oldest transitions
    buffer = buffer_of(steps, capacity)
    offset = len(steps) - len(buffer)
    torch.manual_seed(seed)
    agent = TD3(INFO, Config(hidden=(8,), gamma=gamma, policy_noise=0.0))  # no smoothing noise: exact
    batch, starts = sample(buffer, n)
    ours = agent.td_target(td_window(batch, gamma))

    def value(next_obs):
        s = one(next_obs)
        return float(agent.critic_target(s, agent.actor_target(s)).amin(dim=0))

    expected = [brute_force(steps, start, n, gamma, value) for start in starts]
    assert all(start >= offset for start in starts)
    torch.testing.assert_close(ours, torch.tensor(expected), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(**common, alpha=st.floats(0.01, 2.0))
def test_sac_nstep_target_equals_brute_force(spec, open_tail, n, gamma, seed, spare, alpha):
    steps = play(spec, open_tail, seed)
    assume(len(steps) >= n)
    buffer = buffer_of(steps, max(n, len(steps) - spare))
    torch.manual_seed(seed)
    agent = SAC(INFO, Config(algo="sac", hidden=(8,), gamma=gamma))
    # a deterministic stand-in for the policy's sample, so the loop and the agent see the same draws
    weights = torch.randn(OBS, ACT)

    def fake_sample(obs, eps=None):
        return torch.tanh(obs @ weights), obs.square().sum(dim=-1) * -0.1 + obs[:, 1]

    agent.actor.sample = fake_sample
    batch, starts = sample(buffer, n)
    ours = agent.td_target(td_window(batch, gamma), torch.tensor(alpha))

    def value(next_obs):
        s = one(next_obs)
        action, log_prob = fake_sample(s)
        return float(agent.critic_target(s, action).amin(dim=0) - alpha * log_prob)

    def bonus(next_obs):
        return float(-alpha * fake_sample(one(next_obs))[1])

    expected = [brute_force(steps, start, n, gamma, value, bonus) for start in starts]
    torch.testing.assert_close(ours, torch.tensor(expected), rtol=1e-5, atol=1e-4)


def test_one_step_fast_path_equals_the_general_window_of_length_one():
    steps = play([(5, "terminal"), (4, "time-limit"), (3, "both")], 3, seed=0)
    batch = buffer_of(steps, 64).sample(32, n=1)
    fast = td_window(batch, 0.9)
    general = td_window(type(batch)(*(field.unsqueeze(1) for field in batch)), 0.9)
    for name in ("obs", "action", "reward_sum", "bootstrap_obs", "bootstrap_discount", "next_obs", "next_discount"):
        torch.testing.assert_close(getattr(fast, name), getattr(general, name), msg=name)
    torch.testing.assert_close(fast.bootstrap_discount, 0.9 * (1 - batch.terminated))


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_delay_switches_to_nstep_after_that_many_updates(algo):
    agent = (TD3 if algo == "td3" else SAC)(INFO, Config(algo=algo, hidden=(8,), nstep=3, delay_nstep=4))
    steps = play([(6, "terminal"), (6, "time-limit")], 0, seed=1)
    buffer = buffer_of(steps, 64)
    seen = []
    for _ in range(7):
        seen.append(agent.horizon)
        agent.update(buffer.sample(8, n=agent.horizon))
    assert seen == [1, 1, 1, 1, 3, 3, 3]


def test_config_rejects_bad_nstep_settings():
    from sparserl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"nstep must be an integer >= 1, got 0"):
        Config(nstep=0).validate()
    with pytest.raises(ConfigError, match=r"delay_nstep must be an integer >= 0 \(gradient updates\), got -1"):
        Config(delay_nstep=-1).validate()
