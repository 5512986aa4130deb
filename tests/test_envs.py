"""make_env: flat float32 observations, actions in [-1, 1], clear errors for unknown ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from sparserl.algos import check_action_space
from sparserl.envs import check_env_id, env_info, episode_seed, make_env
from sparserl.errors import EnvError


def test_pendulum_actions_rescaled_and_float32_obs():
    env = make_env("Pendulum-v1", seed=0)
    assert env.action_space.low.tolist() == [-1.0] and env.action_space.high.tolist() == [1.0]
    obs, _ = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == (3,)
    # +1 must reach the true bound (2.0 torque): compare with the raw env's dynamics
    import gymnasium as gym
    raw = gym.make("Pendulum-v1")
    raw.reset(seed=1)
    raw_obs, *_ = raw.step(np.array([2.0], dtype=np.float32))
    ours, *_ = env.step(np.array([1.0], dtype=np.float32))
    np.testing.assert_allclose(ours, raw_obs, rtol=1e-6)


def test_env_info_sizes_hopper():
    info = env_info(make_env("Hopper-v5"))
    assert (info.obs_dim, info.act_dim, info.max_episode_steps) == (11, 3, 1000)


def test_unknown_id_suggests_close_names():
    with pytest.raises(EnvError, match=r"unknown environment id 'Hoper-v5'. Did you mean: .*Hopper-v5"):
        check_env_id("Hoper-v5")


def test_unknown_dmc_task_is_refused():
    with pytest.raises(EnvError, match="unknown environment id 'dm_control/cheetah-fly-v0'"):
        check_env_id("dm_control/cheetah-fly-v0")


def test_discrete_actions_are_kept_and_refused_to_algorithms_that_cannot_act_in_them():
    env = make_env("CartPole-v1")
    info = env_info(env)
    assert info.discrete and info.act_dim == 2 and isinstance(env.action_space, gym.spaces.Discrete)
    with pytest.raises(EnvError, match=r"td3 needs continuous \(Box\) actions; CartPole-v1 has 2 discrete actions "
                                       r"\(algorithms for discrete actions: stream-ac\)"):
        check_action_space("td3", info)
    check_action_space("stream-ac", info)


def test_the_time_feature_counts_decisions_to_the_time_limit():
    env = make_env("Pendulum-v1", time_feature=True, action_repeat=3)  # limit 200 steps: 67 decisions
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs[-1] == -0.5
    for t in range(1, 68):
        obs, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        assert obs[-1] == pytest.approx(-0.5 + t / 67, abs=1e-6)
    assert truncated and obs.dtype == np.float32
    gym.register("sparserl-test/PendulumForever-v0", entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
                 max_episode_steps=None)
    with pytest.raises(EnvError, match="needs an episode time limit"):
        make_env("sparserl-test/PendulumForever-v0", time_feature=True)


def test_dmc_flattened_float32():
    env = make_env("dm_control/cartpole-swingup-v0", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (5,)
    assert env.observation_space.shape == (5,)
    assert env.action_space.low.tolist() == [-1.0] and env.action_space.high.tolist() == [1.0]
    obs, reward, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
    assert obs.dtype == np.float32 and 0.0 <= reward <= 1.0


def test_episode_seeds_are_stable_and_distinct():
    seeds = [episode_seed(0, k) for k in range(100)]
    assert len(set(seeds)) == 100
    assert seeds == [episode_seed(0, k) for k in range(100)]
    assert episode_seed(1, 0) != episode_seed(0, 0)


@pytest.mark.parametrize("task", ["humanoid-stand", "humanoid-walk", "humanoid-run", "dog-stand", "dog-walk",
                                  "dog-trot", "dog-run"])
def test_the_scaling_benchmark_tasks_are_known(task):
    check_env_id(f"dm_control/{task}-v0")


def test_a_misspelt_dmc_task_gets_close_names():
    with pytest.raises(EnvError, match=r"Did you mean: .*dm_control/humanoid-run-v0"):
        check_env_id("dm_control/humanoid-rnu-v0")


def test_dmc_without_the_extra_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_shimmy(name, *args, **kwargs):
        if name == "shimmy":
            raise ImportError("No module named 'shimmy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_shimmy)
    with pytest.raises(EnvError, match=r"need the dmc extra: pip install 'sparserl\[dmc\]'"):
        check_env_id("dm_control/humanoid-run-v0")


def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    plain, repeated = make_env("Pendulum-v1", seed=3), make_env("Pendulum-v1", seed=3, action_repeat=3)
    action = np.array([0.5], np.float32)
    total = sum(plain.step(action)[1] for _ in range(3))
    assert repeated.step(action)[1] == pytest.approx(total)
    steps = 0
    while True:
        steps += 1
        _, _, terminated, truncated, _ = repeated.step(action)
        if terminated or truncated:
            break
    assert steps == (200 - 3) // 3 + 1  # 200-step episodes: the last decision covers the remaining 2 steps
    with pytest.raises(EnvError, match="action_repeat must be >= 1, got 0"):
        make_env("Pendulum-v1", action_repeat=0)
