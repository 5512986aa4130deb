"""Packing a sweep's runs into populations of a chosen size, and finding its finished runs again
however they were packed before."""

from __future__ import annotations

import json

import pytest

from sparserl.errors import ConfigError
from sparserl.studies import expand, run_sweep, spec_from_dict
from sparserl.studies.collect import collect_runs, label_runs
from sparserl.studies.spec import _population

BASE = {"env": "Pendulum-v1", "total_steps": 300, "start_steps": 100, "batch_size": 16, "hidden": [16, 16],
        "eval_every": 100, "eval_episodes": 1, "checkpoint_every": 100, "tensorboard": False}


def spec(tmp_path, seeds, **keys):
    return spec_from_dict({"name": "s", "base": BASE, "output": str(tmp_path / "s"),
                           "axes": {"sparsity": ["dense", "nm:2:4"], "seed": list(seeds)}, **keys})


@pytest.mark.parametrize("size, ids", [
    (None, ["seed=0+1+2+3+4"]), (3, ["seed=0+1+2", "seed=3+4"]), (2, ["seed=0+1", "seed=2+3", "seed=4"]),
    (5, ["seed=0+1+2+3+4"]), (9, ["seed=0+1+2+3+4"]), (1, [f"seed={s}" for s in range(5)])])
def test_pack_size_splits_each_group_evenly_in_order(tmp_path, size, ids):
    plans = expand(spec(tmp_path, range(5), pack=True, pack_size=size))
    assert [p.run_id for p in plans] == [f"sparsity={m}_{i}" for m in ("dense", "nm-2-4") for i in ids]
    assert sum(p.agents for p in plans) == 10
    for plan in plans:
        assert plan.config.population == plan.agents and len(plan.config.agent_seeds) == plan.agents


@pytest.mark.parametrize("keys, words", [
    ({"pack_size": 0}, "pack_size must be a positive integer"), ({"pack_size": True}, "pack_size must be"),
    ({"pack_size": "3"}, "pack_size must be"), ({"pack": False, "pack_size": 2}, "needs pack: true")])
def test_bad_pack_sizes_are_refused_by_name(tmp_path, keys, words):
    with pytest.raises(ConfigError, match=words):
        spec(tmp_path, range(2), **keys)


def test_pack_size_alone_packs():
    s = spec_from_dict({"base": BASE, "axes": {"seed": [0, 1, 2]}, "pack_size": 2})
    assert s.pack and [p.run_id for p in expand(s)] == ["seed=0+1", "seed=2"]


def test_a_split_group_whose_parts_list_the_same_values_gets_numbered_ids(tmp_path):
    s = spec(tmp_path, range(2), pack=True)
    group = [p for p in expand(s, packed=False) if p.values["sparsity"] == "dense"]
    (first,) = _population(group, s, taken=set())
    (second,) = _population(group, s, taken={first.run_id})
    assert (first.run_id, second.run_id) == ("sparsity=dense_seed=0+1", "sparsity=dense_seed=0+1_part-2")
    assert second.config.run_dir.endswith("sparsity=dense_seed=0+1_part-2")


def test_a_sweep_finds_its_finished_runs_however_they_were_packed(tmp_path):
    """Seeds 0 and 1 trained as one population; asked again with 4 seeds in populations of 2, the
    sweep trains only seeds 2 and 3, and the report reads all four once each, labelled by the axis."""
    lines = []
    first = run_sweep(spec(tmp_path, [0, 1], pack=True), workers=2, log=lines.append)
    assert {o.status for o in first.outcomes} == {"finished"} and len(first.outcomes) == 2
    second = run_sweep(spec(tmp_path, range(4), pack_size=2), workers=2, log=lines.append)
    statuses = {o.run_id: o.status for o in second.outcomes}
    assert statuses == {**{f"sparsity={m}_seed={s}": "skipped" for m in ("dense", "nm-2-4") for s in (0, 1)},
                        "sparsity=dense_seed=2+3": "finished", "sparsity=nm-2-4_seed=2+3": "finished"}
    assert any("8 runs, 4 already finished, 4 to run" in line for line in lines)
    assert any("populations of at most 2" in line for line in lines)
    log = json.loads((tmp_path / "s" / "sweep.json").read_text())
    skipped = {r["run_id"]: r["run_dir"] for r in log["runs"] if r["this_sweep"] == "skipped"}
    assert skipped["sparsity=dense_seed=1"] == str(tmp_path / "s" / "runs" / "sparsity=dense_seed=0+1" / "seed-1")

    runs = collect_runs([tmp_path / "s"])
    label_runs(runs)
    assert sorted((r.label, r.config.seed) for r in runs) == [
        (f"sparsity={m}", s) for m in ("dense", "nm:2:4") for s in range(4)]
    unpacked = run_sweep(spec(tmp_path, range(4)), workers=2, log=lines.append)  # not packed at all: all there
    assert {o.status for o in unpacked.outcomes} == {"skipped"} and len(unpacked.outcomes) == 8
