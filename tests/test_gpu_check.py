"""The prepared GPU check runs everywhere: on the CPU at tiny sizes (`--quick`), its code path is the
one a GPU machine runs, and it prints every RESULT line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_gpu_check_runs_on_the_cpu_and_prints_its_results():
    env = {**os.environ, "PYTHONWARNINGS": "error::UserWarning"}
    done = subprocess.run([sys.executable, "gpu_check.py", "--device", "cpu", "--quick"], cwd=BENCHMARKS, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = dict(line.split()[1:3] for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert set(results) == {"gpu_population_max_relative_difference", "gpu_short_run_agent_steps_per_s",
                            "gpu_td3_population_k2_agent_steps_per_s", "gpu_simba_update_ms_dense",
                            "gpu_simba_update_ms_sparse90"}
    assert "2:4 semi-structured step not run: invalid configuration: execution semi_structured needs a CUDA GPU" \
        in done.stdout  # the CPU has no 2:4 kernels: the refusal, in place of check 5's figures
    assert float(results["gpu_population_max_relative_difference"]) == 0.0  # the same device: the same numbers
    assert all(float(v) > 0 for k, v in results.items() if k != "gpu_population_max_relative_difference")
