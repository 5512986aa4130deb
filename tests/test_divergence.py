"""A non-finite loss stops the run with a clear message and the last good checkpoint survives."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from sparserl.errors import TrainingDiverged
from sparserl.runs.api import train
from sparserl.runs.checkpoint import list_checkpoints, load_checkpoint


class NanRewardAfter(gym.Wrapper):
    """Pendulum whose rewards turn NaN after a number of steps (a broken simulator, say)."""

    def __init__(self, after: int = 700):
        super().__init__(gym.make("Pendulum-v1"))
        self.after, self.count = after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        return obs, (math.nan if self.count > self.after else reward), terminated, truncated, info


gym.register("sparserl-test/NanReward-v0", entry_point=NanRewardAfter, max_episode_steps=200)


def test_non_finite_loss_stops_run_and_keeps_last_good_checkpoint(make_config):
    config = make_config(env="sparserl-test/NanReward-v0", total_steps=2000, start_steps=200)
    with pytest.raises(TrainingDiverged) as info:
        train(config)
    message = str(info.value)
    assert "non-finite" in message or "NaN" in message
    found = list_checkpoints(config.run_dir + "/checkpoints")
    assert found and str(found[0][1]) in message
    payload = load_checkpoint(found[0][1])
    assert payload["trainer"]["step"] <= 800  # written before the NaNs reached the networks
    for tensors in payload["learner"]["agent"]["networks"].values():
        assert all(torch.isfinite(t).all() for t in tensors.values())
    import json
    status = json.loads((found[0][1].parent.parent / "run.json").read_text())
    assert status["status"] == "failed" and "TrainingDiverged" in status["error"]
