"""A real 2x2 sweep, locally and on a local Ray instance: one run crashes, the others finish, the
crash is reported, and re-running the sweep completes only what was missing (resuming the crashed
run from its checkpoint)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sparserl.errors import ConfigError
from sparserl.runs.lock import is_locked
from sparserl.runs.metrics import TIMING_COLUMNS
from sparserl.studies import run_sweep, spec_from_dict


def spec(tmp_path, **extra):
    return spec_from_dict({
        "name": "grid",
        "base": {"total_steps": 400, "start_steps": 100, "batch_size": 32, "buffer_size": 5000, "hidden": [16, 16],
                 "eval_every": 200, "eval_episodes": 2, "checkpoint_every": 100, "tensorboard": False},
        "axes": {"env": ["Pendulum-v1", "tests.crashing_env:CrashingPendulum-v0"], "seed": [0, 1]},
        "output": str(tmp_path / "grid"), **extra})


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "ray"])
def test_sweep_survives_a_crash_and_a_rerun_completes_what_is_missing(tmp_path, monkeypatch, backend):
    marker = tmp_path / "crash-now"
    marker.touch()
    monkeypatch.setenv("SPARSERL_TEST_CRASH_FILE", str(marker))
    lines = []
    first = run_sweep(spec(tmp_path), backend=backend, workers=2, log=lines.append)
    assert sorted(o.status for o in first.outcomes) == ["failed", "finished", "finished", "finished"]
    crashed = first.failed[0]
    assert crashed.run_id == "env=tests.crashing-env-CrashingPendulum-v0_seed=1"
    assert "RuntimeError: simulated crash of the environment" in crashed.error
    assert "1 failed" in lines[-1] and crashed.error in lines[-1]  # the summary says which and why
    log = json.loads((tmp_path / "grid" / "sweep.json").read_text())
    assert [r["state"] for r in log["runs"]].count("finished") == 3
    run_dir = tmp_path / "grid" / "runs" / crashed.run_id
    assert list((run_dir / "checkpoints").glob("ckpt_*.pt"))  # it got past its first checkpoint
    assert "simulated crash" in (run_dir / "output.log").read_text()  # the traceback is in its log

    second = run_sweep(spec(tmp_path), backend=backend, workers=2, log=lines.append)
    statuses = {o.run_id: o.status for o in second.outcomes}
    assert statuses.pop(crashed.run_id) == "resumed"
    assert set(statuses.values()) == {"skipped"}
    status = json.loads((run_dir / "run.json").read_text())
    assert status["status"] == "finished" and status["step"] == 400
    third = run_sweep(spec(tmp_path), backend=backend, workers=2, log=lines.append)
    assert {o.status for o in third.outcomes} == {"skipped"}


def test_changed_configuration_is_refused_before_any_work(tmp_path):
    run_sweep(spec_from_dict({"base": {"total_steps": 200, "start_steps": 100, "batch_size": 16, "hidden": [8],
                                       "eval_every": 100, "eval_episodes": 1, "tensorboard": False},
                              "axes": {"seed": [0]}, "output": str(tmp_path / "s")}), log=lambda _: None)
    changed = spec_from_dict({"base": {"total_steps": 200, "start_steps": 100, "batch_size": 32, "hidden": [8],
                                       "eval_every": 100, "eval_episodes": 1, "tensorboard": False},
                              "axes": {"seed": [0]}, "output": str(tmp_path / "s")})
    expected = r"run seed=0 already exists .* different configuration \(differs in: batch_size\)"
    with pytest.raises(ConfigError, match=expected):
        run_sweep(changed, log=lambda _: None)


@pytest.mark.slow
def test_a_sweep_killed_alone_leaves_no_orphan_and_a_rerun_equals_an_uninterrupted_sweep(tmp_path):
    """SIGKILL to the sweep process only (not its process group): its worker dies with it, so no run
    directory is ever trained by two processes, and the rerun's metrics equal an uninterrupted sweep's."""
    def write_spec(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "name": name, "base": {"env": "Pendulum-v1", "total_steps": 1000, "start_steps": 100, "batch_size": 32,
                                   "buffer_size": 5000, "hidden": [16, 16], "eval_every": 200, "eval_episodes": 1,
                                   "checkpoint_every": 200, "tensorboard": False},
            "axes": {"seed": [0]}, "output": str(tmp_path / name)}))
        return path

    def rows(run_dir: Path) -> list[dict]:
        with open(run_dir / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]

    sweep = [sys.executable, "-m", "sparserl", "sweep"]
    killed, whole = write_spec("killed"), write_spec("whole")
    run_dir = tmp_path / "killed" / "runs" / "seed=0"
    proc = subprocess.Popen([*sweep, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((run_dir / "checkpoints").glob("ckpt_*.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    assert is_locked(run_dir)  # its worker trains
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while is_locked(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_locked(run_dir), "the sweep's worker outlived it"
    assert int(rows(run_dir)[-1]["step"]) < 1000  # it was stopped part-way

    assert subprocess.run([*sweep, str(killed)], capture_output=True, timeout=300).returncode == 0
    assert subprocess.run([*sweep, str(whole)], capture_output=True, timeout=300).returncode == 0
    assert rows(run_dir) == rows(tmp_path / "whole" / "runs" / "seed=0")
    assert int(rows(run_dir)[-1]["step"]) == 1000
