"""Report numbers against an independent computation on synthetic run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sparserl.config import Config, NetworkSparsity
from sparserl.errors import ConfigError
from sparserl.studies.report import build_report

STEPS = [0, 100, 200, 300, 400, 500]


def make_run(root, name, env, seed, sparsity=None, returns=None, score_window=3, **config):
    run = root / name
    run.mkdir(parents=True)
    cfg = Config(env=env, seed=seed, sparsity=sparsity or NetworkSparsity(), score_window=score_window,
                 run_dir=str(run), **config)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    lines = ["step,wall_time,sps,episodes,train_return,train_length,eval_return,eval_return_std,eval_length"]
    # wall time: 36 s per 1000 steps, times (seed + 1)
    lines += [f"{s},{0.036 * s * (seed + 1)},,0,,,{r},0,200" for s, r in zip(STEPS, returns)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / "run.json").write_text(json.dumps({"status": "finished", "machines": ["CPU A", "CPU B"][:seed + 1]}))
    if sparsity is not None and sparsity.enabled:
        (run / "sparsity.json").write_text(json.dumps({"model_size": 0.5, "inference_flops": 0.4,
                                                       "training_flops": 0.6}))
    return run


def synthetic(root):
    """2 envs x 3 methods x 3 seeds with known returns (rising curves ending at known levels)."""
    rng = np.random.default_rng(0)
    truth = {}
    methods = {"dense": None, "nm": NetworkSparsity(method="nm:2:4"),
               "rigl": NetworkSparsity(method="rigl", actor_sparsity=0.9, critic_sparsity=0.9)}
    for env, (start, end) in {"Pendulum-v1": (-1500.0, -200.0), "Hopper-v5": (10.0, 3000.0)}.items():
        for m, (method, sparsity) in enumerate(methods.items()):
            for seed in range(3):
                returns = np.linspace(start, end * (1.0 - 0.1 * m), len(STEPS)) + rng.normal(0, 20, len(STEPS))
                make_run(root, f"{env}-{method}-{seed}", env, seed, sparsity, returns)
                truth[(env, method, seed)] = returns
    return truth


def trimmed_mean_quarter(values):
    values = sorted(values)
    cut = len(values) // 4
    kept = values[cut:len(values) - cut]
    return sum(kept) / len(kept)


def test_numbers_match_an_independent_computation(tmp_path):
    truth = synthetic(tmp_path)
    report = build_report([tmp_path], reps=2000)
    labels = {"dense": "td3 dense", "nm": "td3 nm:2:4", "rigl": "td3 rigl 0.9/0.9"}
    rows = {(r["env"], r["label"]): r for r in report.rows}
    assert len(rows) == 6
    pooled = {m: [] for m in labels}
    for env in ("Pendulum-v1", "Hopper-v5"):
        dense_scores = [truth[(env, "dense", s)][-3:].mean() for s in range(3)]
        dense = np.mean(dense_scores)
        untrained = np.mean([truth[(env, "dense", s)][0] for s in range(3)])
        for method, label in labels.items():
            scores = [truth[(env, method, s)][-3:].mean() for s in range(3)]  # last K = score_window = 3
            row = rows[(env, label)]
            assert row["seeds"] == 3
            assert row["score_mean"] == pytest.approx(np.mean(scores))
            assert row["score_std"] == pytest.approx(np.std(scores))
            assert min(scores) <= row["score_ci_low"] < row["score_mean"] < row["score_ci_high"] <= max(scores)
            assert row["wall_time_h"] == pytest.approx(STEPS[-1] * 0.036 * 2 / 3600)  # median of seeds 0, 1, 2
            normalised = [(s - untrained) / (dense - untrained) for s in scores]
            assert row["normalised"] == pytest.approx(np.mean(normalised))
            pooled[method] += normalised
            if dense > 0:
                assert row["pct_of_dense"] == pytest.approx(100 * np.mean(scores) / dense)
            else:
                assert row["pct_of_dense"] is None  # RLx2's ratio means nothing for negative returns
            expected_size = 1.0 if method == "dense" else 0.5
            assert row["model_size"] == expected_size and row["training_flops"] == (1.0 if method == "dense" else 0.6)
    for r in report.iqm_rows:
        method = {v: k for k, v in labels.items()}[r["label"]]
        assert r["runs"] == 6 and r["tasks"] == 2
        assert r["iqm"] == pytest.approx(trimmed_mean_quarter(pooled[method]))
        assert r["ci_low"] <= r["iqm"] <= r["ci_high"]
    for r in report.improvement_rows:  # P(a run of the method beats a dense run), averaged over both tasks
        method = {v: k for k, v in labels.items()}[r["label"]]
        per_task = []
        for env in ("Pendulum-v1", "Hopper-v5"):
            ours = [truth[(env, method, s)][-3:].mean() for s in range(3)]
            dense = [truth[(env, "dense", s)][-3:].mean() for s in range(3)]
            per_task.append(np.mean([float(a > b) for a in ours for b in dense]))
        assert r["baseline"] == "td3 dense" and r["tasks"] == 2
        assert r["probability"] == pytest.approx(np.mean(per_task))
        assert r["ci_low"] <= r["probability"] <= r["ci_high"]
    assert sorted(r["label"] for r in report.improvement_rows) == ["td3 nm:2:4", "td3 rigl 0.9/0.9"]
    assert "machines (runs): CPU A (18), CPU B (12)" in report.notes
    steps, mean, low, high = report.curves["Hopper-v5"]["td3 rigl 0.9/0.9"]
    assert steps.tolist() == STEPS
    expected = np.mean([truth[("Hopper-v5", "rigl", s)] for s in range(3)], axis=0)
    np.testing.assert_allclose(mean, expected)
    assert (low <= mean + 1e-9).all() and (mean <= high + 1e-9).all()


def test_last_k_option_and_outputs(tmp_path):
    truth = synthetic(tmp_path / "runs")
    report = build_report([tmp_path / "runs"], last_k=1, reps=500)
    row = next(r for r in report.rows if r["env"] == "Hopper-v5" and r["label"] == "td3 dense")
    assert row["score_mean"] == pytest.approx(np.mean([truth[("Hopper-v5", "dense", s)][-1] for s in range(3)]))
    written = report.write(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["curves_Hopper-v5.png", "curves_Pendulum-v1.png", "improvement.csv", "improvement.png", "iqm.csv",
                     "iqm.png", "report.csv", "report.md"]
    for png in (p for p in written if p.suffix == ".png"):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "| Hopper-v5 | td3 dense | 3 |" in (tmp_path / "out" / "report.md").read_text()


def test_no_runs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no finished runs with evaluations"):
        build_report([tmp_path / "empty"])


def test_runs_still_training_are_left_out_of_both_reports_and_named(tmp_path):
    from sparserl.studies.scaling import build_scaling_report

    truth = synthetic(tmp_path / "runs")
    running = make_run(tmp_path / "runs", "late", "Hopper-v5", 7, returns=[-1e6] * 6)
    (running / "run.json").write_text(json.dumps({"status": "running"}))
    report = build_report([tmp_path / "runs"], reps=200)
    row = next(r for r in report.rows if r["env"] == "Hopper-v5" and r["label"] == "td3 dense")
    assert row["seeds"] == 3 and row["score_mean"] == pytest.approx(
        np.mean([np.mean(truth[("Hopper-v5", "dense", s)][-3:]) for s in range(3)]))
    assert "left out: 1 run(s) not finished yet (late)" in report.notes
    hopper = {"id": "Hopper-v5", "obs_dim": 11, "act_dim": 3, "max_episode_steps": 1000}
    for seed, (status, final) in enumerate([("finished", 100.0), ("finished", 300.0), ("interrupted", -1e6)]):
        run = make_run(tmp_path / "sizes", f"dense-{seed}", "Hopper-v5", seed, returns=[final] * 6)
        (run / "run.json").write_text(json.dumps({"status": status, "env": hopper}))
    scaling = build_scaling_report([tmp_path / "sizes"])
    assert [(r["seeds"], r["score_mean"]) for r in scaling.rows] == [(2, 200.0)]
    assert "left out: 1 run(s) not finished yet (dense-2)" in scaling.markdown()


def test_incompatible_runs_under_one_label_are_refused_and_label_by_splits_them(tmp_path):
    returns = np.linspace(-1500, -200, len(STEPS))
    make_run(tmp_path, "a", "Pendulum-v1", 0, None, returns, critic_lr=3e-4)
    make_run(tmp_path, "b", "Pendulum-v1", 1, None, returns, critic_lr=1e-3)
    with pytest.raises(ConfigError, match=r"runs labelled 'td3 dense' on Pendulum-v1 have different configurations "
                                          r"\(they differ in: critic_lr"):
        build_report([tmp_path])
    with pytest.raises(ConfigError, match="several dense labels on Pendulum-v1"):
        build_report([tmp_path], label_by=["critic_lr"])
    report = build_report([tmp_path], label_by=["critic_lr"], baseline="critic_lr=0.0003", reps=200)
    assert sorted(r["label"] for r in report.rows) == ["critic_lr=0.0003", "critic_lr=0.001"]


def test_no_normalisation_while_dense_is_below_its_untrained_policy(tmp_path):
    # HalfCheetah early in training: standing still (about -1) beats the first learned gaits
    for seed in range(2):
        make_run(tmp_path, f"dense-{seed}", "HalfCheetah-v5", seed, None, [-1, -300, -250, -200, -180, -170])
        make_run(tmp_path, f"nm-{seed}", "HalfCheetah-v5", seed, NetworkSparsity(method="nm:1:4"),
                 [-1, -400, -380, -360, -350, -340])
    report = build_report([tmp_path])
    assert all(row["normalised"] is None and row["pct_of_dense"] is None for row in report.rows)
    assert not report.iqm_rows
    assert any("has not improved on its untrained policy" in note for note in report.notes)


def test_run_json_keeps_every_machine_a_resumed_run_trained_on(tmp_path, monkeypatch):
    from sparserl import hardware
    from sparserl.runs import files

    for name in ("CPU A", "CPU A", "CPU B", "CPU A"):  # started, checkpointed, resumed elsewhere, back home
        monkeypatch.setattr(hardware, "machine", lambda name=name: name)
        files.write_status(tmp_path, "running", 0, {})
    assert files.read_status(tmp_path)["machines"] == ["CPU A", "CPU B"]
    (tmp_path / "run.json").write_text("{damaged")
    files.write_status(tmp_path, "running", 0, {})  # a damaged file is replaced, not a reason to fail
    assert files.read_status(tmp_path)["machines"] == ["CPU A"]


def test_report_takes_the_kind_of_the_reproduction_whose_sweep_it_reads(tmp_path):
    """`sparserl report` on a streaming or scaling reproduction's sweep gives the report by network
    size (its dense runs span several widths); any other folder, or a mix, the normalised one."""
    from sparserl.studies.commands import report_kind

    folders = {}
    for name in ("reproduce-streaming-medium", "reproduce-scaling-small", "reproduce-rnm-td3-interval-medium", "x"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "sweep.yaml").write_text(f"name: {name}\n")
    assert report_kind([folders["reproduce-streaming-medium"]]) == "scaling"
    assert report_kind([folders["reproduce-streaming-medium"], folders["reproduce-scaling-small"]]) == "scaling"
    assert report_kind([folders["reproduce-rnm-td3-interval-medium"]]) == "normalised"
    assert report_kind([folders["reproduce-streaming-medium"], folders["x"]]) == "normalised"
    assert report_kind([tmp_path / "no-sweep-here"]) == "normalised"


def test_curves_name_the_returns_they_plot(tmp_path):
    synthetic(tmp_path / "runs")
    assert build_report([tmp_path / "runs"], reps=100).curve_kind == "evaluation return"
    for run in (tmp_path / "runs").iterdir():  # every run measured by training returns
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "eval_episodes": 0}))
        csv = (run / "metrics.csv").read_text().splitlines()
        rows = [line.split(",") for line in csv[1:]]
        for row in rows:
            row[4], row[6] = row[6], ""
        (run / "metrics.csv").write_text("\n".join([csv[0]] + [",".join(r) for r in rows]) + "\n")
    assert build_report([tmp_path / "runs"], reps=100).curve_kind == "training return"
