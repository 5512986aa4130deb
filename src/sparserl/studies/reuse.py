"""Runs another sweep already trained: an ablation's cell that equals a run of its main comparison
(RNM-TD3's 2:4 re-projected every step, RLx2's n = 3) is copied, not trained again.

A sweep spec's ``reuse: [FOLDER, ...]`` names other sweeps' output folders. Before anything runs, a
new run whose configuration equals a finished run there (everything but bookkeeping: run directory,
threads, checkpoint cadence), whether that run trained on its own or as an agent of a population,
gets that run's files, its paths rewritten to its own directory; checkpoints are left behind (the
run is finished). The copy says where it came from in ``reused_from.txt``. The sweep's own finished
runs are found the same way (`finished_runs`), so a rerun packed differently skips them too.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from sparserl.config import Config
from sparserl.runs import files
from sparserl.studies.spec import RunPlan

REUSED_NOTE = "reused_from.txt"
_PARTIAL = ".copying"
"""A copy being written (renamed to the run's directory once whole)."""
_REWRITTEN = (".yaml", ".json")
"""Files whose text names the run's directory (configs, run.json with a population's agents)."""


def is_finished(run_dir: Path, total_steps: int) -> bool:
    status = files.read_status(run_dir)
    return status is not None and status.get("status") == "finished" and status.get("step", 0) >= total_steps


def finished_runs(folders: Iterable[str | Path], key: Callable[[Config], str]) -> dict[str, Path]:
    """Every finished one-agent run in `folders`' runs/ (a run of its own or an agent of a
    population), by `key` of its configuration; the first found where two are equal."""
    found: dict[str, Path] = {}
    for folder in map(Path, folders):
        runs = folder / "runs"
        for config_file in sorted([*runs.glob("*/" + files.CONFIG_FILE), *runs.glob("*/*/" + files.CONFIG_FILE)]):
            run_dir = config_file.parent
            if any(part.endswith(_PARTIAL) for part in run_dir.relative_to(runs).parts):
                continue
            config = files.read_run_config(run_dir)
            if config.population == 1 and is_finished(run_dir, config.total_steps):
                found.setdefault(key(config), run_dir)
    return found


def copy_run(donor: Path, plan: RunPlan) -> None:
    """`donor`'s files (not its checkpoints) into `plan`'s run directory, its paths made the plan's."""
    old, new = files.read_run_config(donor).run_dir, str(plan.run_dir)
    target = plan.run_dir
    partial = target.with_name(target.name + _PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(donor, partial, ignore=shutil.ignore_patterns("checkpoints"))
    for path in partial.rglob("*"):
        if path.suffix in _REWRITTEN and path.is_file():
            path.write_text(path.read_text().replace(old, new))
    (partial / REUSED_NOTE).write_text(f"{donor}\n")
    partial.rename(target)  # whole or not at all: an interrupted copy leaves no half run behind
