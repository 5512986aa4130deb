"""Run directories for reports: collecting them (config, evaluations, sparsity accounting) and
labelling them. A run's label is, in this order: the values of the keys given with ``label_by``; the
sweep axes it was run with (other than env and seed, read from the sweep's sweep.json); or its
algorithm and sparsity (``td3 rigl 0.9/0.9``). Runs under one label must differ only in their seed
(and bookkeeping such as threads): `check_groups` refuses anything else."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparserl.config import Config
from sparserl.errors import ConfigError
from sparserl.runs import files
from sparserl.runs.metrics import read_metrics
from sparserl.sparsity.methods import method_class
from sparserl.studies.sweep import comparable


@dataclass
class RunData:
    path: Path
    config: Config
    steps: np.ndarray
    returns: np.ndarray
    sparsity: dict | None
    wall_time: float = math.nan
    """Seconds the run trained (its last row's wall_time; a population's agents share theirs)."""
    machines: tuple[str, ...] = ()
    """The machines run.json names (none for runs from before sparserl recorded them)."""
    label: str = ""

    @property
    def env(self) -> str:
        return self.config.env

    def score(self, last_k: int | None) -> float:
        k = last_k or self.config.score_window
        return float(np.mean(self.returns[-k:]))


def collect_runs(dirs: list[str | Path], unfinished: list[Path] | None = None) -> list[RunData]:
    """Every finished run directory (config.yaml + metrics.csv with evaluations) under `dirs`. A run
    whose run.json says it is still running, interrupted or failed is left out of the results (its
    scores would be an earlier step's) and appended to `unfinished` when given."""
    runs = []
    for root in map(Path, dirs):
        if not root.exists():
            raise ConfigError(f"report: {root} does not exist")
        single = (root / "config.yaml").is_file() and not (files.read_status(root) or {}).get("agents")
        candidates = [root] if single else sorted(p.parent for p in root.rglob("config.yaml"))
        for path in candidates:
            config = files.read_run_config(path)
            measure = config.measure
            every = read_metrics(path / "metrics.csv")
            rows = [r for r in every if not math.isnan(r.get(measure, math.nan))]
            if not rows:
                continue
            status = files.read_status(path) or {}
            if status.get("status", "finished") != "finished":
                if unfinished is not None:
                    unfinished.append(path)
                continue
            runs.append(RunData(path, config, np.array([r["step"] for r in rows]),
                                np.array([r[measure] for r in rows]), files.read_sparsity(path),
                                float(every[-1].get("wall_time", math.nan)), tuple(status.get("machines", ()))))
    if not runs:
        raise ConfigError(f"report: no finished runs with evaluations under {', '.join(map(str, dirs))}")
    return runs


def unfinished_note(unfinished: list[Path]) -> str | None:
    """The report's note on the runs left out because they have not finished, or None."""
    if not unfinished:
        return None
    names = ", ".join(path.name for path in unfinished[:3]) + (", ..." if len(unfinished) > 3 else "")
    return f"left out: {len(unfinished)} run(s) not finished yet ({names})"


def describe(config: Config) -> str:
    """The default label: algorithm and sparsity (with the levels of unstructured methods), and
    SparseInit where the weights started with its zeros (which are not a mask)."""
    s = config.sparsity
    sparse_init = config.init == "sparse"
    if not s.enabled:
        return f"{config.algo} {'SparseInit' if sparse_init else 'dense'}"
    on = " on SparseInit" if sparse_init else ""
    if method_class(s.method).fixed_level_of(s.method) is not None:  # N:M: the method fixes the levels
        return f"{config.algo} {s.method}{on}"
    return f"{config.algo} {s.method} {s.level('actor'):g}/{s.level('critic'):g}{on}"


def _config_value(config: Config, key: str):
    if hasattr(config, key):
        value = getattr(config, key)
        return describe(config).split(" ", 1)[1] if key == "sparsity" else value
    if hasattr(config.sparsity, key):
        return config.sparsity.level(key[:-len("_sparsity")]) if key.endswith("_sparsity") else \
            getattr(config.sparsity, key)
    raise ConfigError(f"report: unknown label key {key!r} (use config keys, e.g. algo, sparsity, hidden)")


def _sweep_values(path: Path) -> tuple[dict | None, bool]:
    """The axis values the sweep log beside `path` gives its run, and whether `path` is one agent of
    a packed population (whose seed- and level-axes then hold every agent's values)."""
    for parent in path.parents:
        log = parent / "sweep.json"
        if log.is_file():
            for run in json.loads(log.read_text()).get("runs", []):
                run_dir = Path(run["run_dir"]).resolve()
                if run_dir in (path.resolve(), path.parent.resolve()):
                    return run["values"], run_dir != path.resolve()
            return None, False
    return None, False


def label_runs(runs: list[RunData], label_by: list[str] | None = None) -> None:
    for run in runs:
        if label_by:
            run.label = ", ".join(f"{k}={_value_text(_config_value(run.config, k))}" for k in label_by)
            continue
        values, agent = _sweep_values(run.path)
        varying = {k: v for k, v in (values or {}).items() if k not in ("env", "seed")}
        # a sparsity value reads as the method and its levels (rigl 0.5/0.5), whatever form the axis gave it
        # in; a population's agent reads the values its population lists for all agents from its own config
        own = {k for k, v in varying.items() if k == "sparsity" or (agent and isinstance(v, list))}
        run.label = (", ".join(f"{k}={_value_text(_config_value(run.config, k) if k in own else v)}"
                               for k, v in varying.items()) if varying else describe(run.config))


def _value_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return str(value)


def check_groups(groups: dict[tuple[str, str], list[RunData]]) -> None:
    for (env, label), runs in groups.items():
        reference = dict(comparable(runs[0].config), seed=None)
        for run in runs[1:]:
            other = dict(comparable(run.config), seed=None)
            if other != reference:
                differ = sorted(k for k in set(reference) | set(other) if reference.get(k) != other.get(k))
                raise ConfigError(
                    f"report: runs labelled {label!r} on {env} have different configurations (they differ in: "
                    f"{', '.join(differ)}: {runs[0].path} vs {run.path}); a label may only group seeds: "
                    f"split them with label_by / --label-by {','.join(differ)}")
        seeds = [r.config.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"report: runs labelled {label!r} on {env} repeat a seed ({seeds}); "
                              f"the same run was given twice, or they need distinct labels")
