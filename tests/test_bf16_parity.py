"""The bf16 parity study's reader (benchmarks/bf16_parity.py) on synthetic run directories: each
precision's final returns per seed, unfinished runs left out, and the parity rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.test_studies_report import STEPS, make_run

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "bf16_parity.py"
spec = importlib.util.spec_from_file_location("bf16_parity", SCRIPT)
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)


def test_final_returns_per_precision_and_seed_leave_unfinished_runs_out(tmp_path):
    finals = {("fp32", 0): 100.0, ("fp32", 1): 300.0, ("bf16", 0): 250.0, ("bf16", 1): 150.0}
    for (precision, seed), final in finals.items():
        make_run(tmp_path / precision, f"seed-{seed}", "Pendulum-v1", seed, returns=[0, 0, 0, final, final, final],
                 precision=precision, total_steps=STEPS[-1])
    running = make_run(tmp_path / "bf16", "seed-2", "Pendulum-v1", 2, returns=[0] * 6, precision="bf16")
    (running / "run.json").write_text(json.dumps({"status": "running"}))
    scores = parity.final_returns(str(tmp_path))
    assert scores == {"fp32": {0: 100.0, 1: 300.0}, "bf16": {0: 250.0, 1: 150.0}}  # score_window 3: the last three
    assert parity.within_spread(200.0, [100.0, 300.0]) and not parity.within_spread(301.0, [100.0, 300.0])
