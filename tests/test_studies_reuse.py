"""An ablation's cell that equals a run of its main comparison is copied from there, not trained
again: the copy is finished, names its own directory everywhere, and a rerun skips it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sparserl.config import resolve_config
from sparserl.errors import ConfigError
from sparserl.runs import files
from sparserl.studies import run_sweep, spec_from_dict
from sparserl.studies.collect import RunData, collect_runs, label_runs
from sparserl.studies.reproduce import reproduction_spec
from sparserl.studies.reuse import REUSED_NOTE

BASE = {"env": "Pendulum-v1", "total_steps": 300, "start_steps": 100, "batch_size": 16, "hidden": [16, 16],
        "eval_every": 100, "eval_episodes": 1, "checkpoint_every": 100, "tensorboard": False}


def test_an_ablation_copies_the_run_it_shares_and_trains_only_the_rest(tmp_path):
    main = spec_from_dict({"name": "main", "base": {**BASE, "update_interval": 1}, "pack": True,
                           "output": str(tmp_path / "main"), "axes": {"sparsity": ["dense", "nm:2:4"], "seed": [0, 1]}})
    run_sweep(main, workers=2, log=lambda _: None)
    lines = []
    ablation = spec_from_dict({"name": "abl", "base": {**BASE, "sparsity": "nm:2:4"}, "pack": True,
                               "output": str(tmp_path / "abl"), "reuse": [str(tmp_path / "main")],
                               "axes": {"update_interval": [1, 50], "seed": [0, 1]}})
    first = run_sweep(ablation, workers=2, log=lines.append)
    # each agent of the main comparison's 2:4 population is copied as a run of its own
    assert {o.run_id: o.status for o in first.outcomes} == {
        "update_interval=1_seed=0": "reused", "update_interval=1_seed=1": "reused",
        "update_interval=50_seed=0+1": "finished"}
    assert "2 reused" in lines[-1]

    donor = tmp_path / "main" / "runs" / "sparsity=nm-2-4_seed=0+1"
    for seed in (0, 1):
        copy = tmp_path / "abl" / "runs" / f"update_interval=1_seed={seed}"
        assert (copy / REUSED_NOTE).read_text().strip() == str(donor / f"seed-{seed}")
        assert not (copy / "checkpoints").exists()
        assert files.read_run_config(copy).run_dir == str(copy)
        assert yaml.safe_load((copy / "config.yaml").read_text())["seed"] == seed
        assert (copy / "metrics.csv").read_text() == (donor / f"seed-{seed}" / "metrics.csv").read_text()

    runs = collect_runs([tmp_path / "abl"])  # the report sees all four agents, labelled by the ablation's axis
    label_runs(runs)
    assert sorted(r.label for r in runs) == ["update_interval=1"] * 2 + ["update_interval=50"] * 2
    again = run_sweep(ablation, workers=2, log=lambda _: None)
    assert {o.status for o in again.outcomes} == {"skipped"}


def test_a_reuse_folder_without_the_run_trains_it(tmp_path):
    spec = spec_from_dict({"name": "solo", "base": BASE, "output": str(tmp_path / "solo"),
                           "reuse": [str(tmp_path / "nowhere")], "axes": {"seed": [0]}})
    assert [o.status for o in run_sweep(spec, log=lambda _: None).outcomes] == ["finished"]


def test_reuse_must_list_folders():
    with pytest.raises(ConfigError, match="reuse must be a list of sweep output folders"):
        spec_from_dict({"base": BASE, "axes": {"seed": [0]}, "reuse": "studies/main"})


def test_the_ablations_reuse_their_main_comparisons_runs():
    assert reproduction_spec("rnm-td3-interval", "medium").reuse == ["studies/reproduce-rnm-td3-medium"]
    assert reproduction_spec("rlx2-td3-nstep", "small").reuse == ["studies/reproduce-rlx2-td3-small"]
    assert reproduction_spec("rnm-td3", "medium").reuse == []


def test_agents_of_a_packed_population_are_labelled_by_their_own_axis_values(tmp_path):
    """A population's sweep-log entry lists every agent's levels; each agent's label takes its own."""
    population = tmp_path / "runs" / "pop"
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [{"run_dir": str(population), "values": {
        "sparsity": "static", "actor_sparsity": [0.5, 0.8], "update_interval": 10, "seed": [0, 1]}}]}))
    runs = [RunData(population / f"seed-{i}", resolve_config(env="Pendulum-v1", seed=i, sparsity="static",
                                                             actor_sparsity=level, update_interval=10),
                    np.arange(3), np.zeros(3), None) for i, level in enumerate((0.5, 0.8))]
    label_runs(runs)
    assert [r.label.split(", ")[1:] for r in runs] == [["actor_sparsity=0.5", "update_interval=10"],
                                                       ["actor_sparsity=0.8", "update_interval=10"]]
