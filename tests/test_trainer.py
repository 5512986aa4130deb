"""The training loop's counters and options, on short real runs."""

from __future__ import annotations

import json

from sparserl.runs.api import train
from sparserl.runs.metrics import read_metrics
from sparserl.runs.trainer import Trainer


def test_updates_per_step_sets_the_update_to_data_ratio(make_config, tmp_path):
    config = make_config(total_steps=300, start_steps=200, updates_per_step=3, eval_every=100)
    trainer = Trainer(config, tmp_path / "utd")
    trainer.run()
    assert trainer.agent.updates == 3 * (300 - 200)  # learning starts at step index start_steps


def test_rows_at_every_evaluation_with_training_statistics(make_config):
    result = train(make_config(total_steps=600, eval_every=200, algo="sac"))
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [0, 200, 400, 600]
    assert all(r["eval_length"] == 200 for r in rows)  # Pendulum episodes: 200 steps
    assert rows[-1]["episodes"] == 3 and rows[-1]["train_return"] < 0
    for name in ("critic_loss", "actor_loss", "alpha", "entropy", "q"):
        assert name in rows[-1] and rows[-1][name] == rows[-1][name]  # recorded, not NaN
    status = json.loads((result.run_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["env"]["obs_dim"] == 3
    assert abs(status["score"] - result.score) < 1e-9


def test_dm_control_task_trains(make_config):
    result = train(make_config(env="dm_control/cartpole-swingup-v0", total_steps=300, start_steps=100,
                               eval_every=300, eval_episodes=1))
    rows = read_metrics(result.run_dir / "metrics.csv")
    assert rows[-1]["eval_length"] == 1000  # dm_control suite episodes end by time limit
    assert 0.0 <= rows[-1]["eval_return"] <= 1000.0
