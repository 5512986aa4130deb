"""The sparsity engine works on any PyTorch model without sparserl's RL code (no Gymnasium)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_imports_without_gymnasium():
    code = ("import sys, sparserl.sparsity, sparserl.nets, sparserl.optim; "
            "assert 'gymnasium' not in sys.modules, sorted(m for m in sys.modules if 'gym' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_supervised_example_runs_and_learns():
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__'); "
            "assert 'gymnasium' not in sys.modules")
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # beside the other test worker
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "sparse_supervised.py")],
                         check=True, capture_output=True, text=True, env=one_thread).stdout
    lines = re.findall(r"^(\S+(?: \S+)*?)\s+test accuracy ([\d.]+)", out, re.M)
    accuracy = {name: float(value) for name, value in lines}
    assert set(accuracy) == {"dense", "rigl 90%", "nm 2:4 (SR-STE)"}, out
    assert all(a > 0.6 for a in accuracy.values()), out  # 10 classes: chance is 0.1
    assert "density 0.100" in out and "density 0.500" in out
