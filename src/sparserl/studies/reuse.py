"""Runs another sweep already trained: an ablation's cell that equals a run of its main comparison
(RNM-TD3's 2:4 re-projected every step, RLx2's n = 3) is copied, not trained again.

A sweep spec's ``reuse: [FOLDER, ...]`` names other sweeps' output folders. Before anything runs, a
new run whose configuration equals a finished run there (everything but bookkeeping: run directory,
threads, checkpoint cadence) gets that run's files, its paths rewritten to its own directory;
checkpoints are left behind (the run is finished). The copy says where it came from in
``reused_from.txt``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from sparserl.runs import files
from sparserl.studies.spec import RunPlan

REUSED_NOTE = "reused_from.txt"
_REWRITTEN = (".yaml", ".json")
"""Files whose text names the run's directory (configs, run.json with a population's agents)."""


def is_finished(run_dir: Path, total_steps: int) -> bool:
    status = files.read_status(run_dir)
    return status is not None and status.get("status") == "finished" and status.get("step", 0) >= total_steps


def find_donor(plan: RunPlan, folders: Iterable[str | Path], comparable: Callable) -> Path | None:
    """A finished run in `folders`' runs/ whose configuration equals `plan`'s, or None."""
    wanted = comparable(plan.config)
    for folder in folders:
        for run_dir in sorted((Path(folder) / "runs").glob("*")):
            if not (run_dir / files.CONFIG_FILE).is_file() or not is_finished(run_dir, plan.config.total_steps):
                continue
            if comparable(files.read_run_config(run_dir)) == wanted:
                return run_dir
    return None


def copy_run(donor: Path, plan: RunPlan) -> None:
    """`donor`'s files (not its checkpoints) into `plan`'s run directory, its paths made the plan's."""
    old, new = files.read_run_config(donor).run_dir, str(plan.run_dir)
    target = plan.run_dir
    partial = target.with_name(target.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(donor, partial, ignore=shutil.ignore_patterns("checkpoints"))
    for path in partial.rglob("*"):
        if path.suffix in _REWRITTEN and path.is_file():
            path.write_text(path.read_text().replace(old, new))
    (partial / REUSED_NOTE).write_text(f"{donor}\n")
    partial.rename(target)  # whole or not at all: an interrupted copy leaves no half run behind
