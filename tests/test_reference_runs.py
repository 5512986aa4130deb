"""Behaviour pinned by recorded runs: the five reference runs (tests/reference_runs.py) give the
recorded metrics.csv rows in every column but the wall-clock ones, and a run directory written by
an earlier sparserl (tests/data/legacy_run: checkpoint format 2, policy format 1) still resumes
exactly and its policy file still loads."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparserl.runs.metrics import TIMING_COLUMNS
from tests import reference_runs

LEGACY = Path(__file__).parent / "data" / "legacy_run"


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _compare(recorded: Path, produced: Path) -> None:
    columns, want = _rows(recorded)
    got_columns, got = _rows(produced)
    versions = json.loads((recorded.parent / "fingerprint.json").read_text())
    now = reference_runs.fingerprint()
    context = "" if versions == now else f" (recorded with {versions}, running {now}: floats may differ there)"
    assert got_columns == columns, f"columns differ{context}"
    assert len(got) == len(want), f"{len(got)} rows instead of {len(want)}{context}"
    for expected, actual in zip(want, got):
        for column in columns:
            if column in TIMING_COLUMNS:
                continue
            assert actual[column] == expected[column], \
                f"step {expected['step']}, {column}: {actual[column]!r} instead of {expected[column]!r}{context}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(reference_runs.RUNS))
def test_reference_run_gives_the_recorded_rows(name, tmp_path):
    produced = reference_runs.run(name, tmp_path / name)
    _compare(reference_runs.DATA / f"{name}.csv", produced)


def test_timing_columns_are_the_only_ones_left_out():
    assert set(TIMING_COLUMNS) == {"wall_time", "sps"}


def _resume_legacy(run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **reference_runs.PINNED_ENV}
    return subprocess.run([sys.executable, "-m", "sparserl", "train", "--resume", str(run_dir)], env=env,
                          capture_output=True, text=True)


def test_a_checkpoint_written_by_an_earlier_version_resumes_exactly(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(LEGACY, run_dir)  # holds the step-400 checkpoint of a 600-step N:M run
    proc = _resume_legacy(run_dir)
    assert proc.returncode == 0, proc.stderr
    _, want = _rows(LEGACY / "metrics.csv")
    _, got = _rows(run_dir / "metrics.csv")
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for expected, actual in zip(want, got):
        for column, value in expected.items():
            if column not in TIMING_COLUMNS:
                assert actual[column] == value, (expected["step"], column)


def test_a_policy_file_written_by_an_earlier_version_loads_and_acts_as_saved(tmp_path):
    from sparserl import load_policy
    from sparserl.errors import PolicyWarning

    with pytest.warns(PolicyWarning, match="has no checksum"):  # written before policy files carried one
        policy = load_policy(LEGACY / "policy.safetensors", backend="dense")
    assert (policy.obs_dim, policy.act_dim) == (3, 1)
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    actions = policy.act(obs)
    assert actions.shape == (4, 1) and np.all(np.abs(actions) <= 1.0)
    # the resumed run re-exports the same weights, so the same actions (the legacy file is the step-600 policy)
    run_dir = tmp_path / "run"
    shutil.copytree(LEGACY, run_dir)
    (run_dir / "policy.safetensors").unlink()
    assert _resume_legacy(run_dir).returncode == 0
    again = load_policy(run_dir / "policy.safetensors", backend="dense").act(obs)  # with a checksum: no warning
    np.testing.assert_array_equal(again, actions)
    assert not any(math.isnan(a) for a in actions.ravel())
