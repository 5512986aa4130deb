"""One owner per run directory, and a resume that never rewrites a run's history: a second trainer on
a held directory is refused naming the holder and changes nothing on disk; the kernel frees the lock
of a killed trainer; `--resume` without a checkpoint refuses once the metrics hold anything past
step 0; a damaged metrics.csv is named with its line."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparserl.errors import CheckpointError, RunBusy
from sparserl.runs.api import resume, train
from sparserl.runs.lock import LOCK_FILE, is_locked, run_lock

FLAGS = ["--env", "Pendulum-v1", "--start-steps", "100", "--batch-size", "32", "--buffer-size", "5000", "--hidden",
         "16", "16", "--eval-every", "200", "--eval-episodes", "1", "--checkpoint-every", "200", "--threads", "1",
         "--no-progress", "--no-tensorboard"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sparserl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def snapshot(folder: Path, lock: bool = True) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes (without the lock file, which records its
    latest holder's PID, with `lock` False)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and (lock or p.name != LOCK_FILE)}


@pytest.fixture
def finished_run(make_config):
    return train(make_config(total_steps=400, checkpoint_every=200)).run_dir


def test_a_second_trainer_on_a_held_directory_is_refused_and_changes_nothing(finished_run, tmp_path):
    before = snapshot(finished_run)
    with run_lock(finished_run):
        resumed = cli("train", "--resume", str(finished_run), "--total-steps", "600")
        again = cli("train", *FLAGS, "--total-steps", "600", "--run-dir", str(finished_run))
        with pytest.raises(RunBusy, match=f"in use by process {os.getpid()}"):
            resume(finished_run, total_steps=600)
    assert resumed.returncode == 2, resumed.stderr
    assert f"run directory {finished_run} is in use by process {os.getpid()}" in resumed.stderr
    assert "Traceback" not in resumed.stderr and len(resumed.stderr.strip().splitlines()) == 1
    assert again.returncode == 2 and "already holds a run" in again.stderr, again.stderr
    assert snapshot(finished_run) == before


def test_a_new_run_into_a_directory_another_trainer_holds_is_refused(tmp_path):
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    with run_lock(run_dir):
        before = snapshot(run_dir)
        refused = cli("train", *FLAGS, "--total-steps", "400", "--run-dir", str(run_dir))
        assert snapshot(run_dir) == before  # no config.yaml, no metrics: nothing but the holder's lock file
    assert refused.returncode == 2 and "is in use by process" in refused.stderr, refused.stderr


def test_the_lock_of_a_killed_trainer_is_free_at_once(tmp_path):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sparserl", "train", *FLAGS, "--total-steps", "100000",
                             "--run-dir", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "metrics.csv").is_file() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        assert is_locked(run_dir) and (run_dir / LOCK_FILE).read_text().strip() == str(proc.pid)
        with pytest.raises(RunBusy, match=f"process {proc.pid}"), run_lock(run_dir):
            pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not is_locked(run_dir)
    with run_lock(run_dir):  # no stale lock to clean up
        assert (run_dir / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_resume_without_a_checkpoint_refuses_instead_of_starting_again(finished_run):
    for checkpoint in (finished_run / "checkpoints").iterdir():
        checkpoint.unlink()
    before = snapshot(finished_run, lock=False)
    refused = cli("train", "--resume", str(finished_run), "--total-steps", "600")
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr.strip()
    assert "has metrics up to step 400 but no checkpoint to continue from" in message
    assert "--checkpoint FILE" in message and "--run-dir NEW_DIR" in message and "Traceback" not in message
    assert snapshot(finished_run, lock=False) == before


def test_resume_before_the_first_checkpoint_starts_again_losing_nothing(make_config):
    """A run killed before its first checkpoint has only its step-0 row: starting again rewrites that
    row with the same numbers."""
    config = make_config(total_steps=400, checkpoint_every=10_000)
    run_dir = train(config).run_dir
    with open(run_dir / "metrics.csv") as f:
        header, first = f.readline(), f.readline()
    (run_dir / "metrics.csv").write_text(header + first)
    for checkpoint in (run_dir / "checkpoints").glob("*.pt"):
        checkpoint.unlink()
    result = resume(run_dir)
    assert result.step == 400 and [s for s, _ in result.evaluations] == [0, 200, 400]


def test_a_damaged_metrics_file_is_named_with_its_line(finished_run):
    for checkpoint in (finished_run / "checkpoints").iterdir():
        checkpoint.unlink()
    path = finished_run / "metrics.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",", ",not-a-number", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match=rf"{path} is damaged at line 3"):
        resume(finished_run)


def test_a_sweep_redoes_a_run_killed_before_its_first_checkpoint(make_config):
    """A sweep's run that has metrics but no checkpoint cannot be continued: the sweep redoes it from
    step 0 (its history replaced by the same numbers, the run being seeded) instead of failing."""
    config = make_config(total_steps=400, checkpoint_every=10_000)
    run_dir = train(config).run_dir
    expected = (run_dir / "metrics.csv").read_text()
    for checkpoint in (run_dir / "checkpoints").glob("*.pt"):
        checkpoint.unlink()
    with pytest.raises(CheckpointError, match="no checkpoint to continue from"):
        resume(run_dir)
    resume(run_dir, redo_uncheckpointed=True)
    rows = lambda text: [line.split(",")[:1] + line.split(",")[3:] for line in text.splitlines()]  # noqa: E731
    assert rows((run_dir / "metrics.csv").read_text()) == rows(expected)  # all but wall_time and sps
