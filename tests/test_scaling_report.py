"""The scaling report over real (tiny) runs: parameter counts by the SimBa formula, pruned counts
from the runs' accounting, diagnostics carried over, a PNG written."""

from __future__ import annotations

import pytest

from sparserl.config import Config, NetworkSparsity, resolve_values
from sparserl.runs.api import train
from sparserl.studies.scaling import build_scaling_report
from tests.test_simba import simba_parameters


def test_scaling_report_over_tiny_simba_runs(tmp_path):
    base = Config(**resolve_values("scaling-simba")).replace(
        env="Pendulum-v1", actor_width=8, critic_blocks=1, total_steps=300, start_steps=100, updates_per_step=1,
        batch_size=32, buffer_size=1000, eval_every=150, eval_episodes=1, diagnostics_every=150,
        diagnostics_batch=32, interference_samples=4, checkpoint_every=10**9, threads=1, progress=False,
        tensorboard=False)
    for width in (16, 32):
        for level in (0.0, 0.8):
            sparsity = NetworkSparsity(method="static", actor_sparsity=level, critic_sparsity=level,
                                      budget_scope="all") if level else NetworkSparsity()
            run_dir = str(tmp_path / "runs" / f"{width}-{level}")
            train(base.replace(critic_width=width, sparsity=sparsity, run_dir=run_dir))
    report = build_scaling_report([tmp_path / "runs"])
    assert [(r["sparsity"], r["parameters"]) for r in report.rows] == sorted(
        (level, simba_parameters(3, 8, 1, 2) + simba_parameters(4, w, 1, 1)) for w in (16, 32) for level in (0.0, 0.8))
    for row in report.rows:
        expected = row["parameters"] * (0.2 if row["sparsity"] else 1.0)
        assert row["nonzero"] == pytest.approx(expected, rel=0.02)
        assert row["diag_critic_srank"] >= 1 and row["seeds"] == 1
    written = report.write(tmp_path / "report")
    assert (tmp_path / "report" / "scaling_Pendulum-v1.png").stat().st_size > 10_000
    assert "| Pendulum-v1 | static 0.8/0.8 |" in (tmp_path / "report" / "scaling.md").read_text() and len(written) == 3


def test_sparse_init_is_its_own_series_beside_dense_and_masked_runs():
    from sparserl.config import resolve_config
    from sparserl.studies.scaling import variant

    assert variant(resolve_config(algo="stream-ac")) == "SparseInit"
    assert variant(resolve_config(preset="stream-ac-dense")) == "dense"
    assert variant(resolve_config(preset="stream-ac-static")) == "static 0.9/0.9"
    assert variant(resolve_config(algo="stream-ac", sparsity={"method": "static", "critic_sparsity": 0.5,
                                                             "actor_sparsity": 0.5})) == "static 0.5/0.5 on SparseInit"


def test_diagnostics_no_run_logged_are_left_out_of_the_table_and_plots(tmp_path):
    """Streaming runs log no plasticity diagnostics: their report shows the score alone."""
    from sparserl.studies.scaling import DIAGNOSTICS, ScalingReport

    row = {"env": "Hopper-v5", "variant": "dense", "sparsity": 0.0, "parameters": 100, "nonzero": 100, "seeds": 2,
           "score_mean": 10.0, "score_ci_low": 9.0, "score_ci_high": 11.0, "per_seed": "9, 11", "wall_time_h": 0.5,
           **{k: float("nan") for k in DIAGNOSTICS}}
    bare = ScalingReport([row])
    assert "srank" not in bare.markdown() and "| 10.0 [9.0, 11.0] | 9, 11 | 0.50 |" in bare.markdown()
    assert "critic srank" in ScalingReport([{**row, "diag_critic_srank": 3.0}]).markdown()
    assert [p.name for p in bare.write(tmp_path)][-1] == "scaling_Hopper-v5.png"
