"""A Pendulum that raises inside step() while the file named by SPARSERL_TEST_CRASH_FILE exists, for
the run trained with seed 1 only: a deterministic, removable crash for sweep tests."""

from __future__ import annotations

import os

import gymnasium as gym

from sparserl.envs import episode_seed

CRASH_AFTER = 250  # after the first episode (200 steps) ends, so a checkpoint exists


class CrashingPendulum(gym.Wrapper):
    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        self.doomed, self.steps = False, 0

    def reset(self, *, seed=None, options=None):
        if seed == episode_seed(1, 0):  # the first training episode of the run with seed 1
            self.doomed = True
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        marker = os.environ.get("SPARSERL_TEST_CRASH_FILE")
        if self.doomed and self.steps > CRASH_AFTER and marker and os.path.exists(marker):
            raise RuntimeError("simulated crash of the environment")
        return self.env.step(action)


gym.register("CrashingPendulum-v0", entry_point=CrashingPendulum, max_episode_steps=200)
