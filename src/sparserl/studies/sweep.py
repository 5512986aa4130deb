"""Running a sweep: every run of the spec, side by side, on this machine or on a Ray cluster.

Backends:
- local (default): as many runs at once as there are cores divided by the threads per run; each
  run is its own Python process (``python -m sparserl.studies.worker``), so a crash, even a hard
  one, ends that run only. Its console output goes to ``<run_dir>/output.log``.
- ray: each run is a Ray task reserving ``threads`` CPUs, on an existing cluster
  (``address="auto"``) or a local Ray instance; needs ``pip install 'sparserl[ray]'``.

Re-running a sweep skips finished runs, resumes interrupted ones from their checkpoints (exactly,
see sparserl.runs.api) and retries failed ones. ``<output>/sweep.json`` records every run's
outcome; a run whose directory holds a different configuration than the spec now asks for is an
error before anything starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sparserl.config import Config
from sparserl.errors import ConfigError
from sparserl.runs import files
from sparserl.runs.build import check_sparsity
from sparserl.runs.checkpoint import atomic_write, list_checkpoints
from sparserl.studies.reuse import copy_run, finished_runs, is_finished
from sparserl.studies.spec import RunPlan, SweepSpec, expand, pack_runs

#: Config keys that do not change what a run computes (ignored when comparing configurations).
BOOKKEEPING = ("run_dir", "runs_root", "threads", "progress", "tensorboard", "checkpoint_every", "keep_checkpoints")


@dataclass
class RunOutcome:
    run_id: str
    status: str
    """finished (trained now), resumed (continued from a checkpoint), skipped (already finished),
    reused (copied from a finished run of another sweep, see `reuse`), or failed."""
    error: str | None = None
    score: float | None = None
    seconds: float = 0.0


@dataclass
class SweepResult:
    spec: SweepSpec
    outcomes: list[RunOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in ("finished", "resumed", "skipped", "reused", "failed"))
        lines = [f"sweep {self.spec.name}: {len(self.outcomes)} runs: {counts}"]
        lines += [f"  failed {o.run_id}: {o.error}" for o in self.failed]
        return "\n".join(lines)


def comparable(config: Config) -> dict:
    data = config.to_dict()
    for key in BOOKKEEPING:
        data.pop(key, None)
    return data


def run_key(config: Config) -> str:
    """What identifies a run's computation (its configuration less bookkeeping), as one string."""
    return json.dumps(comparable(config), sort_keys=True, default=str)


def run_state(plan: RunPlan) -> str:
    """new, finished, resume (started before) — or a ConfigError if the directory holds another run."""
    if not (plan.run_dir / files.CONFIG_FILE).is_file():
        return "new"
    before, now = comparable(files.read_run_config(plan.run_dir)), comparable(plan.config)
    if before != now:
        differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ConfigError(f"run {plan.run_id} already exists in {plan.run_dir} with a different configuration "
                          f"(differs in: {', '.join(differ)}); use another output folder or remove that run")
    return "finished" if is_finished(plan.run_dir, plan.config.total_steps) else "resume"


def execute(config_dict: dict) -> dict:
    """Train or resume one run in this process; never raises (errors are returned, with the
    traceback also in the run's output.log). Used by both backends: the local worker process and
    Ray tasks. The run's console output goes to ``<run_dir>/output.log``."""
    config = Config.from_dict(config_dict)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "output.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        outcome = _execute(config, run_dir)
        if "traceback" in outcome:
            log.write(outcome.pop("traceback"))
    return outcome


def _execute(config: Config, run_dir: Path) -> dict:
    import torch

    from sparserl.runs.api import resume, train

    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    try:
        if (run_dir / files.CONFIG_FILE).is_file():
            resumed = bool(list_checkpoints(run_dir / "checkpoints"))
            result = resume(run_dir, redo_uncheckpointed=True)  # killed before a checkpoint: redone
            status = "resumed" if resumed else "finished"
        else:
            result = train(config)
            status = "finished"
        return {"status": status, "score": result.score, "seconds": time.perf_counter() - start}
    except Exception as exc:  # recorded, and the sweep goes on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}


def _write_log(result: SweepResult, logged: list[tuple[RunPlan, Path]]) -> None:
    """sweep.json: every run or population of this sweep, where its files are (a finished run found
    in another population's folder is listed there, with its own values), and how it stands."""
    by_id = {o.run_id: o for o in result.outcomes}
    runs = []
    for plan, run_dir in logged:
        outcome = by_id.get(plan.run_id)
        state = "pending" if outcome is None else ("failed" if outcome.status == "failed" else "finished")
        runs.append({"run_id": plan.run_id, "values": plan.values, "run_dir": str(run_dir), "state": state,
                     "this_sweep": outcome.status if outcome else "pending",
                     "error": outcome.error if outcome else None,
                     "score": outcome.score if outcome else None})
    data = {"spec": result.spec.to_dict(), "runs": runs}
    atomic_write(result.spec.output_dir / "sweep.json", lambda f: f.write(json.dumps(data, indent=2).encode()))


@dataclass
class SweepPlan:
    """What a sweep would do now: its runs, those finished already (where), those to copy from the
    reuse folders (from where), and what to train: runs, or populations of them where packed."""

    runs: list[RunPlan]
    finished: dict[str, Path]
    copies: dict[str, Path]
    units: list[RunPlan]

    @property
    def trained(self) -> int:
        return sum(unit.agents for unit in self.units)


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """The plan of `spec` against what its output folder (and its reuse folders) hold; refuses an
    impossible sparsity budget or a run directory holding another configuration, before any work."""
    runs = expand(spec, packed=False)
    checked = set()
    for run in runs:  # impossible sparsity budgets (once per distinct network setup)
        key = json.dumps({k: v for k, v in comparable(run.config).items() if k != "seed"}, sort_keys=True)
        if run.config.sparsity.enabled and key not in checked:
            check_sparsity(run.config)
            checked.add(key)
    done = finished_runs([spec.output_dir], run_key)  # on their own or as agents of populations, however packed
    donors = finished_runs(spec.reuse, run_key) if spec.reuse else {}
    finished, copies, todo = {}, {}, []
    for run in runs:
        if run_key(run.config) in done:
            finished[run.run_id] = done[run_key(run.config)]
        elif run_key(run.config) in donors and run_state(run) == "new":
            copies[run.run_id] = donors[run_key(run.config)]
        else:
            todo.append(run)
    units = pack_runs(todo, spec) if spec.pack else todo
    for unit in units:
        run_state(unit)
    return SweepPlan(runs, finished, copies, units)


def run_sweep(spec: SweepSpec, backend: str = "local", workers: int | None = None, address: str | None = None,
              log: Callable[[str], None] = print) -> SweepResult:
    """Run every run of `spec` that is not finished yet; returns what happened to each."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r}; allowed: local, ray")
    plan = plan_sweep(spec)
    by_id = {run.run_id: run for run in plan.runs}
    out = spec.output_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "sweep.yaml", lambda f: f.write(yaml.safe_dump(spec.to_dict(), sort_keys=False).encode()))
    result = SweepResult(spec)
    result.outcomes += [RunOutcome(run_id, "skipped") for run_id in plan.finished]
    logged = [(by_id[run_id], path) for run_id, path in plan.finished.items()]
    for run_id, donor in plan.copies.items():
        copy_run(donor, by_id[run_id])
        result.outcomes.append(RunOutcome(run_id, "reused"))
        logged.append((by_id[run_id], by_id[run_id].run_dir))
        log(f"  {run_id}: the same run as {donor}, finished there: copied")
    units = plan.units
    logged += [(unit, unit.run_dir) for unit in units]
    log(f"sweep {spec.name}: {len(plan.runs)} runs, {len(plan.finished) + len(plan.copies)} already finished, "
        f"{plan.trained} to run on the {backend} backend")
    if spec.pack:
        packed = [unit for unit in units if unit.agents > 1]
        size = f" of at most {spec.pack_size}" if spec.pack_size else ""
        log(f"  packed: {sum(p.agents for p in packed)} runs trained as {len(packed)} populations{size} (one "
            f"process and one batched network per population), {len(units) - len(packed)} runs on their own")
    _write_log(result, logged)
    runner = _run_local if backend == "local" else _run_ray
    for count, (unit, outcome) in enumerate(runner(units, spec, workers, address), 1):
        result.outcomes.append(outcome)
        text = f"{outcome.status} after {outcome.seconds:.0f} s"
        if outcome.error:
            text += f": {outcome.error}"
        log(f"  [{count}/{len(units)}] {unit.run_id}: {text}")
        _write_log(result, logged)
    order = {plan.run_id: i for i, (plan, _) in enumerate(logged)}
    result.outcomes.sort(key=lambda o: order.get(o.run_id, len(order)))
    _write_log(result, logged)
    log(result.summary())
    return result


def _outcome(plan: RunPlan, data: dict) -> RunOutcome:
    return RunOutcome(plan.run_id, data["status"], data.get("error"), data.get("score"), data.get("seconds", 0.0))


def _run_local(plans: list[RunPlan], spec: SweepSpec, workers: int | None, address: str | None):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = workers or max(1, cores // spec.threads)

    def launch(plan: RunPlan) -> RunOutcome:
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(plan.config.to_dict())
        env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads), "MKL_NUM_THREADS": str(spec.threads)}
        start = time.perf_counter()
        with open(plan.run_dir / "output.log", "ab") as log_file:  # also catches what a hard crash prints
            proc = subprocess.run([sys.executable, "-m", "sparserl.studies.worker"], input=payload.encode(),
                                  stdout=subprocess.PIPE, stderr=log_file, env=env)
        lines = proc.stdout.decode().strip().splitlines()
        try:
            data = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            data = {"status": "failed", "error": f"the run's process ended with code {proc.returncode} "
                                                 f"without reporting (see {plan.run_dir / 'output.log'})"}
        data.setdefault("seconds", time.perf_counter() - start)
        return _outcome(plan, data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(launch, plan): plan for plan in plans}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _run_ray(plans: list[RunPlan], spec: SweepSpec, workers: int | None, address: str | None):
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'sparserl[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        # workers of a local instance see this process's import path (test environments, editable installs)
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
        kwargs = {"address": address} if address else {"num_cpus": workers * spec.threads if workers else None}
        ray.init(runtime_env=runtime_env, include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        task = ray.remote(num_cpus=spec.threads, max_retries=0)(execute)
        pending = {task.remote(plan.config.to_dict()): plan for plan in plans}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            plan = pending.pop(done[0])
            try:
                data = ray.get(done[0])
            except Exception as exc:  # the worker process itself died
                data = {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            yield plan, _outcome(plan, data)
    finally:
        if started_here:
            ray.shutdown()
