"""The files of a run directory, read and written in one place:

    config.yaml            the resolved configuration (what `--resume` reads back)
    run.json               status (running / finished / failed), environment sizes, versions, score
    sparsity.json          the sparsity accounting (sparse runs), at start and end
    metrics.csv            one row per evaluation (sparserl.runs.metrics)
    tb/                    TensorBoard events
    checkpoints/           ckpt_<step>.pt (sparserl.runs.checkpoint)
    policy.safetensors     the actor alone (sparserl.deploy)

Every file is written atomically (a crash leaves the old one or the new one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from sparserl import __version__, hardware
from sparserl.config import Config, load_yaml
from sparserl.errors import CheckpointError
from sparserl.runs.checkpoint import atomic_write
from sparserl.runs.evaluate import EvalResult
from sparserl.runs.metrics import read_metrics

CONFIG_FILE, STATUS_FILE, SPARSITY_FILE, METRICS_FILE = "config.yaml", "run.json", "sparsity.json", "metrics.csv"


@dataclass
class RunResult:
    """What a finished (or resumed-and-finished) run reports."""

    run_dir: Path
    step: int
    final_eval: EvalResult | None
    score: float
    """Mean of the last `score_window` evaluation means: the run's headline number."""
    evaluations: list[tuple[int, float]] = field(default_factory=list)
    sparsity: object | None = None
    """The SparsityReport at the end of the run (None for dense runs)."""
    agents: list[RunResult] = field(default_factory=list)
    """A population's: each agent's result (its score is their mean)."""


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2).encode()))


def default_run_dir(config: Config) -> Path:
    """<runs_root>/<env>__<algo>__s<seed>__<time>, with a suffix if that exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.env.replace('/', '-')}__{config.algo}__s{config.seed}__{stamp}"
    path = Path(config.runs_root) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(config.runs_root) / f"{name}-{suffix}"
    return path


def write_config(run_dir: Path, config: Config) -> None:
    atomic_write(Path(run_dir) / CONFIG_FILE,
                 lambda f: f.write(yaml.safe_dump(config.to_dict(), sort_keys=False).encode()))


def holds_run(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG_FILE).exists()


def read_run_config(run_dir: Path) -> Config:
    """The configuration a run directory was trained with, as written (not validated)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a sparserl run directory (no config.yaml)")
    return Config.from_dict(load_yaml(path), str(path))


def load_run_config(run_dir: Path) -> Config:
    """The configuration a run directory was trained with (validated, its plugins imported)."""
    return read_run_config(run_dir).validate()


def env_entry(info) -> dict:
    """What run.json says of the environment (an EnvInfo)."""
    return {"id": info.env_id, "obs_dim": info.obs_dim, "act_dim": info.act_dim,
            "max_episode_steps": info.max_episode_steps}


def write_status(run_dir: Path, status: str, step: int, env: dict, **extra) -> None:
    """run.json: the run's status, step, environment sizes and versions, every machine it has run on
    (a resumed run may continue elsewhere), plus `extra` (score, error)."""
    machines = _machines_so_far(run_dir)
    here = hardware.machine()
    _write_json(Path(run_dir) / STATUS_FILE, {
        "status": status, "step": step, "updated": datetime.now(timezone.utc).isoformat(), "env": env,
        "versions": {"sparserl": __version__, "torch": torch.__version__, "numpy": np.__version__},
        "machines": machines + [here] if here not in machines else machines, **extra})


def _machines_so_far(run_dir: Path) -> list[str]:
    try:
        return list((read_status(run_dir) or {}).get("machines", []))
    except CheckpointError:  # a damaged run.json is being replaced
        return []


def read_status(run_dir: Path) -> dict | None:
    """run.json's contents (None where there is none); a damaged file is named with its line."""
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is damaged: it is not text") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is damaged at line {exc.lineno}, column {exc.colno}: {exc.msg} (restore it, "
                              f"or delete it: a continued run writes it again)") from None
    if not isinstance(status, dict):
        raise CheckpointError(f"{path} is damaged: it holds no run status")
    return status


def write_sparsity(run_dir: Path, report) -> None:
    _write_json(Path(run_dir) / SPARSITY_FILE, report.to_dict())


def read_sparsity(run_dir: Path) -> dict | None:
    path = Path(run_dir) / SPARSITY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def population_result(run_dir: Path, agents: list[RunResult], sparsity=None) -> RunResult:
    """A population's result: its agents' results, scored by the mean of their scores."""
    scores = [r.score for r in agents if not math.isnan(r.score)]
    return RunResult(Path(run_dir), max(r.step for r in agents), None, float(np.mean(scores)) if scores else math.nan,
                     [], sparsity, agents=agents)


def read_result(run_dir: str | Path) -> RunResult:
    """The result of a run directory from its metrics.csv."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    agents = (read_status(run_dir) or {}).get("agents")
    if agents:
        return population_result(run_dir, [read_result(agent) for agent in agents])
    rows = read_metrics(run_dir / METRICS_FILE)
    measure = config.measure
    evaluations = [(int(r["step"]), r[measure]) for r in rows if not math.isnan(r[measure])]
    return RunResult(run_dir, evaluations[-1][0] if evaluations else 0, None,
                     config.score([m for _, m in evaluations]), evaluations)
