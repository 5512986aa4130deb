"""The public entry points of a run: `train` a new one, `resume` a stopped one.

    from sparserl import Config, train, resume
    result = train(Config(env="Pendulum-v1", total_steps=20_000, start_steps=1_000))
    result = resume(result.run_dir, total_steps=40_000)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sparserl.algos import ALGORITHMS, check_action_space
from sparserl.config import Config
from sparserl.envs import check_env_id
from sparserl.errors import CheckpointError, ConfigError
from sparserl.hardware import resolve_device
from sparserl.registry import absolute_plugins
from sparserl.runs import files
from sparserl.runs.build import check_memory, check_sparsity, probe_info, resolve_threads
from sparserl.runs.checkpoint import list_checkpoints, load_checkpoint
from sparserl.runs.files import RunResult, load_run_config, read_result
from sparserl.runs.lock import run_lock
from sparserl.runs.metrics import read_metrics
from sparserl.runs.progress import RunConsole
from sparserl.runs.trainer import Trainer


def trainer_class(config: Config) -> type[Trainer]:
    """The loop that trains `config`: one agent's, or a population's (sparserl.population.trainer)."""
    if config.population > 1:
        from sparserl.population.trainer import PopulationTrainer

        return PopulationTrainer
    return Trainer

__all__ = ["RunResult", "load_run_config", "read_result", "resume", "train"]


def _prepare(config: Config) -> Config:
    """Validate everything that can be refused before a run directory exists."""
    config.validate()
    check_env_id(config.env, config.pixels)
    info = probe_info(config)
    check_action_space(config.algo, info)
    resolve_device(config.device, ALGORITHMS.get(config.algo).streaming)  # a device that is not there
    check_memory(config, info)
    if config.sparsity.enabled:
        check_sparsity(config, info)
    return config.replace(threads=resolve_threads(config.threads), plugins=absolute_plugins(config.plugins))


def _make_run_dir(run_dir: Path) -> None:
    """Create the run directory, refusing a path that is a file or a place this process cannot write."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory; choose another path")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"the run directory {run_dir} is not writable by this user; choose another --run-dir")


def _refuse_existing_run(run_dir: Path) -> None:
    if files.holds_run(run_dir):
        raise ConfigError(f"run directory {run_dir} already holds a run: continue it with "
                          f"`sparserl train --resume {run_dir}` or choose another --run-dir")


def train(config: Config, console: RunConsole | None = None) -> RunResult:
    """Train a new run described by `config` and return its result."""
    config = _prepare(config)
    run_dir = Path(config.run_dir) if config.run_dir else files.default_run_dir(config)
    _refuse_existing_run(run_dir)  # before anything is created or locked
    _make_run_dir(run_dir)
    with run_lock(run_dir):
        _refuse_existing_run(run_dir)  # written by a trainer that held the lock meanwhile
        config = config.replace(run_dir=str(run_dir))
        files.write_config(run_dir, config)
        return trainer_class(config)(config, run_dir, console=console).run()


def _restart_without_checkpoint(run_dir: Path, discard: bool = False) -> None:
    """A run killed before its first checkpoint starts again from step 0, which is lossless only while
    its metrics hold nothing past step 0; otherwise resuming would rewrite its history, so it is
    refused, unless `discard` (a sweep's own run, which can only be redone): its metrics then go."""
    steps = [int(row["step"]) for row in read_metrics(run_dir / files.METRICS_FILE)]
    if discard:
        (run_dir / files.METRICS_FILE).unlink(missing_ok=True)
    elif any(step > 0 for step in steps):
        raise CheckpointError(
            f"{run_dir} has metrics up to step {max(steps):,} but no checkpoint to continue from (the "
            f"checkpoints folder is empty or gone); resuming would start again from step 0 and overwrite them. "
            f"Continue from a checkpoint file with --checkpoint FILE, or start afresh in a new directory: "
            f"`sparserl train --config {run_dir / files.CONFIG_FILE} --run-dir NEW_DIR`")
    shutil.rmtree(run_dir / "tb", ignore_errors=True)


def resume(run_dir: str | Path, checkpoint: str | Path | None = None, total_steps: int | None = None,
           console: RunConsole | None = None, redo_uncheckpointed: bool = False) -> RunResult:
    """Continue the run in `run_dir` from its newest checkpoint (or `checkpoint`).

    `total_steps` extends (or shortens, if not yet reached) the run. A corrupt newest checkpoint is
    an error that names the previous good one, which is never deleted by a failed resume. A run
    with metrics but no checkpoint is refused unless `redo_uncheckpointed` (sweeps): it then starts
    again from step 0.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    population = (files.read_status(run_dir) or {}).get("population")
    if population:
        raise ConfigError(f"{run_dir} is one agent of the population in {population}: resume the population, "
                          f"`sparserl train --resume {population}`")
    if total_steps is not None:
        config = config.replace(total_steps=total_steps).validate()
    check_env_id(config.env, config.pixels)
    with run_lock(run_dir):
        return _resume_locked(run_dir, config, checkpoint, console, redo_uncheckpointed)


def _resume_locked(run_dir: Path, config: Config, checkpoint: str | Path | None, console,
                   redo_uncheckpointed: bool = False) -> RunResult:
    found = list_checkpoints(run_dir / "checkpoints")
    if checkpoint is not None:
        path = Path(checkpoint)
    elif found:
        path = found[0][1]
    else:
        _restart_without_checkpoint(run_dir, discard=redo_uncheckpointed)
        return trainer_class(config)(config, run_dir, console=console).run()
    try:
        payload = load_checkpoint(path)
    except CheckpointError as exc:
        older = [p for _, p in found if p != path]
        hint = (f" The previous checkpoint {older[0]} is kept; resume from it with "
                f"`sparserl train --resume {run_dir} --checkpoint {older[0]}`.") if older else ""
        raise CheckpointError(f"{exc}.{hint}") from None
    step = int(payload["trainer"]["step"])
    if step > config.total_steps:
        raise ConfigError(f"total_steps ({config.total_steps}) is below the checkpoint's step ({step})")
    if step == config.total_steps:
        return read_result(run_dir)  # (a population's: its agents' results too)
    for newer_step, newer in found:  # checkpoints past the one resumed from belong to a lost future
        if newer_step > step:
            newer.rename(newer.with_name(newer.name + ".abandoned"))
    if config.total_steps != payload["config"]["total_steps"]:
        files.write_config(run_dir, config)
    return trainer_class(config)(config, run_dir, checkpoint=payload, console=console).run()
