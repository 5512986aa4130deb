"""A run killed with SIGKILL and resumed writes exactly the metrics of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sparserl.runs.metrics import TIMING_COLUMNS


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sparserl", *args]


TOTAL = 1200
"""Steps of each run: checkpoints at 400 and 800; a run is killed after the one at 800."""


def config_file(tmp_path: Path, **values) -> Path:
    base = dict(env="Pendulum-v1", total_steps=TOTAL, hidden=[32, 32], eval_every=300, eval_episodes=2,
                checkpoint_every=400, threads=1, progress=False, tensorboard=True)
    if values["algo"] != "stream-ac":  # replay settings
        base.update(start_steps=300, batch_size=64, buffer_size=5000)
    base.update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def checkpoint_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name[5:15]) for p in folder.glob("ckpt_*.pt")) if folder.is_dir() else []


def kill_after_checkpoint(cmd: list[str], run_dir: Path, min_step: int, timeout: float = 300,
                          metrics_dir: Path | None = None) -> int:
    """Start `cmd`, wait until a checkpoint >= min_step exists and a metrics row was written after it
    (in `metrics_dir`, by default the run directory), then SIGKILL the process. Returns the
    checkpoint step it was killed after."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    metrics_dir = metrics_dir or run_dir
    try:
        while time.monotonic() < deadline:
            steps = [s for s in checkpoint_steps(run_dir) if s >= min_step]
            if steps and (metrics_dir / "metrics.csv").is_file() and rows(metrics_dir) \
                    and int(rows(metrics_dir)[-1]["step"]) > steps[-1]:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return steps[-1]
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()}"
            time.sleep(0.02)
        raise AssertionError("timed out waiting for a checkpoint")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# Each case combines the pieces whose state a checkpoint must carry (the in-process conformance
# suite resumes every method x algorithm; these runs add real processes, SIGKILL and the files).
RLX2_EXTRAS = {"nstep": 3, "delay_nstep": 550, "dynamic_buffer": True, "buffer_check_every": 400,
               "buffer_threshold": 0.01, "buffer_min_size": 500}
"""RLx2's value learning: the switch to 3-step targets (update 550, step 850) and a buffer shrink (at
step 1200) fall after the checkpoint the run is killed at."""
CASES = {
    "td3-dense": {"algo": "td3"},
    # SAC's temperature, N:M's dense shadow weights (SR-STE) and RLx2's extras
    "sac-nm-srste-rlx2-extras": {"algo": "sac", **RLX2_EXTRAS,
                                 "sparsity": {"method": "nm:2:4", "nm_gradient": "srste"}},
    # topology updates every 200 critic steps (several before and after the checkpoint), CSR products in
    # training (structures rebuilt after every topology update and after the resume), diagnostics, RLx2
    "td3-rigl-csr-rlx2-extras": {"algo": "td3", "execution": "csr", "diagnostics_every": 600, **RLX2_EXTRAS,
                                 "sparsity": {"method": "rigl", "actor_sparsity": 0.9, "critic_sparsity": 0.9,
                                              "update_interval": 200}},
    # DS-TD3's options: random regrowth, target masks pruned by their own magnitudes
    "td3-set-dstd3": {"algo": "td3", "sparsity": {"method": "set", "actor_sparsity": 0.5, "critic_sparsity": 0.5,
                                                  "update_interval": 100, "drop_fraction": 0.2,
                                                  "target_mask": "magnitude"}},
    # pixels: the frame replay (uint8 frames, stacked when sampled), the random shifts' draws, the std
    # schedule, GMP pruning encoder convolutions, trunks and heads on its schedule; episodes of 125
    # decisions, so several end on each side of the checkpoint
    "drqv2-pixels-gmp": {"algo": "drqv2", "env": "dm_control/cartpole-swingup-v0", "pixels": True, "pixel_size": 16,
                         "action_repeat": 8,
                         "feature_dim": 8, "eval_episodes": 1,
                         "sparsity": {"method": "gmp", "actor_sparsity": 0.8, "critic_sparsity": 0.8,
                                      "encoder_sparsity": 0.8, "update_interval": 100}},
    # streaming: eligibility traces and adaptive ObGD's second moments, the Welford observation
    # statistics, the reward scaler's trace, the time feature, SparseInit under a RigL mask, rows and
    # score on training returns (no evaluation episodes); the compiled step, with RigL's mask
    # updates and the episode ends taken eagerly in between
    "stream-ac-adaptive-rigl-compiled": {"algo": "stream-ac", "obgd": "adaptive", "eval_episodes": 0,
                                         "step_compile": "on",
                                         "sparsity": {"method": "rigl", "actor_sparsity": 0.5,
                                                      "critic_sparsity": 0.5, "update_interval": 200}},
}
FIRST_STAT = {"stream-ac": "td_error"}
"""The first training statistic of each algorithm whose runs are resumed here (default critic_loss)."""


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_and_resume_gives_identical_metrics(tmp_path, case):
    for algo in [CASES[case]["algo"]]:
        cfg = config_file(tmp_path, **CASES[case])
        full, broken = tmp_path / f"{algo}-full", tmp_path / f"{algo}-killed"
        done = subprocess.run(cli("train", "--config", str(cfg), "--run-dir", str(full)), check=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if CASES[case].get("step_compile") == "on":  # the compiled step ran (and did not fall back)
            assert "compiling the streaming step" in done.stderr and "could not be compiled" not in done.stderr
        killed_at = kill_after_checkpoint(cli("train", "--config", str(cfg), "--run-dir", str(broken)),
                                          broken, min_step=700)
        assert killed_at < TOTAL
        assert int(rows(broken)[-1]["step"]) > killed_at  # rows past the checkpoint exist and must be redone
        subprocess.run(cli("train", "--resume", str(broken)), check=True, stdout=subprocess.DEVNULL)
        expected, got = rows(full), rows(broken)
        assert len(expected) == TOTAL // 300 + 1
        assert got == expected, f"{algo}: resumed metrics differ from the uninterrupted run"
        later = [r for r in expected if int(r["step"]) > killed_at]
        assert later and all(r[FIRST_STAT.get(algo, "critic_loss")] for r in later)
        if CASES[case].get("diagnostics_every"):  # diagnostics after the checkpoint, identical too
            assert any(r["diag_actor_srank"] for r in later)
        if CASES[case].get("dynamic_buffer"):  # the buffer did shrink after the checkpoint, and identically
            assert any(float(r["buffer_size"]) < int(r["step"]) for r in later)
        if "sparsity" in CASES[case]:  # the masks did change after the checkpoint, and identically
            sad = [k for k in expected[0] if k.startswith("sad_")]
            assert sad and any(float(r[k]) > 0 for r in later for k in sad)
