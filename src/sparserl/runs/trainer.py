"""The training loop: a Config becomes a run directory.

Run directory::

    config.yaml            the resolved configuration (what `--resume` reads back)
    run.json               status (running / finished / failed), environment sizes, versions, score
    metrics.csv            one row per evaluation (see sparserl.runs.metrics)
    tb/                    TensorBoard events
    checkpoints/           ckpt_<step>.pt, the newest `keep_checkpoints` of them
    policy.safetensors     the actor alone, for `sparserl eval` and deployment

Exact resume. Every training episode is reset with a seed derived from (seed, episode index) and
checkpoints are taken at the first episode end after each `checkpoint_every` steps, so the
environment needs no saved state; networks, optimisers, replay contents, RNG states, counters and
the partial metrics of the current row are all in the checkpoint. A run killed at any point and
resumed therefore writes the same later metrics as one that never stopped (same machine, same
thread count). The last checkpoint of a run, written at `total_steps`, may fall inside an
episode: extending a finished run starts a fresh episode there.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from sparserl import __version__
from sparserl.algos import make_agent
from sparserl.config import Config, load_yaml
from sparserl.deploy import POLICY_FILE
from sparserl.envs import check_env_id, env_info, episode_seed, make_env
from sparserl.errors import CheckpointError, ConfigError, TrainingDiverged
from sparserl.export import export_actor
from sparserl.replay import DynamicCapacity, ReplayBuffer
from sparserl.runs.checkpoint import (
    atomic_write,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from sparserl.runs.evaluate import EvalResult, evaluate
from sparserl.runs.metrics import RUN_COLUMNS, MetricsLog, read_metrics
from sparserl.runs.progress import RunConsole

CHECKPOINT_FORMAT = 2  # 2: actors hold their body as `net.net` (SimBa support)


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


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _default_run_dir(config: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config.env.replace('/', '-')}__{config.algo}__s{config.seed}__{stamp}"
    path = Path(config.runs_root) / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(config.runs_root) / f"{name}-{suffix}"
    return path


def _resolve_threads(threads: int) -> int:
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Trainer:
    """Owns a run's environments, agent, buffer and logs; `run()` trains to `total_steps`."""

    def __init__(self, config: Config, run_dir: Path, checkpoint: dict | None = None,
                 console: RunConsole | None = None):
        self.config, self.run_dir = config, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        c = config
        torch.set_num_threads(_resolve_threads(c.threads))
        torch.manual_seed(c.seed)
        random.seed(c.seed)
        self.rng = np.random.default_rng(c.seed)  # warm-up actions
        self.env = make_env(c.env, action_repeat=c.action_repeat)
        self.eval_env = make_env(c.env, action_repeat=c.action_repeat)
        self.info = env_info(self.env)
        self.agent = make_agent(self.info, c)
        self.sparsifier = None
        if c.sparsity.enabled:
            from sparserl.sparsity import Sparsifier
            self.sparsifier = Sparsifier(c.sparsity, seed=c.seed)
            learning_steps = max(0, c.total_steps - c.start_steps) * c.updates_per_step
            self.agent.attach_sparsity(self.sparsifier, learning_steps)
            self.sparsifier.execute_sparse(c.execution, c.batch_size)
        self.buffer = ReplayBuffer(self.info.obs_dim, self.info.act_dim, c.buffer_size, seed=c.seed)
        self.capacity = None
        if c.dynamic_buffer:
            self.capacity = DynamicCapacity(
                self.buffer, every=c.buffer_check_every, threshold=c.buffer_threshold, min_size=c.buffer_min_size,
                drop_fraction=c.buffer_drop_fraction, samples=c.buffer_check_samples or 8 * c.batch_size,
                until_below=c.buffer_shrink == "until_below")
        self.eval_seed = c.eval_seed if c.eval_seed is not None else c.seed + 100
        self.diagnostics = None
        if c.diagnostics_every:
            from sparserl.diagnostics import Diagnostics
            self.diagnostics = Diagnostics(self.agent, self.sparsifier, c.dormant_point, c.interference_samples)
            self.diagnostics_generator = torch.Generator().manual_seed(c.seed + 7919)  # its own replay draws
        self.next_diagnostics = c.diagnostics_every
        self.checkpoint_dir = self.run_dir / "checkpoints"

        # counters and the partial metrics row
        self.step = 0
        self.episodes = 0
        self.wall_time = 0.0
        self.row_step = 0
        self.row_returns: list[float] = []
        self.row_lengths: list[int] = []
        self.evaluations: list[tuple[int, float]] = []
        self.next_checkpoint = c.checkpoint_every
        self.last_eval: EvalResult | None = None
        if checkpoint is not None:
            self._restore(checkpoint)

        sparsity_columns = self.sparsifier.stat_names() if self.sparsifier is not None else ()
        replay_columns = ("buffer_size", "policy_distance") if self.capacity is not None else ()
        diagnostic_columns = self.diagnostics.names if self.diagnostics is not None else ()
        columns = RUN_COLUMNS + self.agent.stat_names + replay_columns + diagnostic_columns + sparsity_columns
        self.metrics = MetricsLog(self.run_dir, columns, c.tensorboard,
                                  resume_step=None if checkpoint is None else self.step)
        self.console = console or RunConsole(c.total_steps, self.step, enabled=c.progress)

    # --- checkpoint state ---------------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "sparserl_version": __version__,
            "config": self.config.to_dict(),
            "agent": self.agent.state_dict(),
            "sparsity": None if self.sparsifier is None else self.sparsifier.state_dict(),
            "replay": self.buffer.state_dict(),
            "replay_capacity": None if self.capacity is None else self.capacity.state_dict(),
            "trainer": {
                "step": self.step, "episodes": self.episodes, "wall_time": self.wall_time,
                "row_step": self.row_step, "row_returns": list(self.row_returns),
                "row_lengths": list(self.row_lengths), "evaluations": [list(e) for e in self.evaluations],
                "next_checkpoint": self.next_checkpoint, "next_diagnostics": self.next_diagnostics,
                "diagnostics_generator": None if self.diagnostics is None else self.diagnostics_generator.get_state(),
            },
            "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state,
                    "python": random.getstate()},
        }

    def _restore(self, payload: dict) -> None:
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"checkpoint format {payload.get('format')} is not supported "
                                  f"(this sparserl reads format {CHECKPOINT_FORMAT})")
        self.agent.load_state_dict(payload["agent"])
        if (payload.get("sparsity") is None) != (self.sparsifier is None):
            raise CheckpointError("checkpoint and configuration disagree on whether the run is sparse")
        if self.sparsifier is not None:
            self.sparsifier.load_state_dict(payload["sparsity"])
        self.buffer.load_state_dict(payload["replay"])
        if self.capacity is not None and payload.get("replay_capacity") is not None:
            self.capacity.load_state_dict(payload["replay_capacity"])
        t = payload["trainer"]
        self.step, self.episodes, self.wall_time = int(t["step"]), int(t["episodes"]), float(t["wall_time"])
        self.row_step = int(t["row_step"])
        self.row_returns, self.row_lengths = list(t["row_returns"]), list(t["row_lengths"])
        self.evaluations = [(int(s), float(m)) for s, m in t["evaluations"]]
        self.next_checkpoint = int(t["next_checkpoint"])
        self.next_diagnostics = int(t.get("next_diagnostics", self.next_diagnostics))
        if self.diagnostics is not None and t.get("diagnostics_generator") is not None:
            self.diagnostics_generator.set_state(t["diagnostics_generator"])
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.config.checkpoint_every
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        self.rng.bit_generator.state = rng["numpy"]
        random.setstate(rng["python"])

    # --- the loop -------------------------------------------------------------------------------
    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.config.seed, self.episodes))
        return obs

    def run(self) -> RunResult:
        session_start = time.perf_counter()
        self._wall_offset = self.wall_time - session_start  # wall_time = offset + perf_counter()
        self._row_clock = session_start
        self._write_status("running")
        self._report_sparsity()
        try:
            if self.step == 0 and not self.evaluations:
                self._log_row()  # the untrained policy, as in the TD3 protocol
            self._train_loop()
            if not self.evaluations or self.evaluations[-1][0] != self.step:
                self._log_row()
            self._checkpoint()
        except KeyboardInterrupt:
            self._write_status("interrupted")
            raise
        except BaseException as exc:
            self._write_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.console.close()
            self.metrics.close()
            self.env.close()
            self.eval_env.close()
        result = self.result()
        self._report_sparsity(final=True)
        self._write_status("finished", score=result.score,
                           final_eval=None if result.final_eval is None else result.final_eval.mean)
        return result

    def _train_loop(self) -> None:
        c = self.config
        env, agent, buffer = self.env, self.agent, self.buffer
        act, update, sample, add = agent.act, agent.update, buffer.sample, buffer.add
        capacity = self.capacity
        observe = agent.observe if agent.obs_norm is not None else (lambda _: None)
        total, start_steps, batch_size, utd = c.total_steps, c.start_steps, c.batch_size, c.updates_per_step
        eval_every, act_dim = c.eval_every, self.info.act_dim
        obs = self._reset()
        episode_return, episode_length = 0.0, 0
        step = self.step
        pending_checkpoint = False
        while step < total:
            observe(obs)
            if step < start_steps:
                action = self.rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
                policy_action = action
            else:
                action, policy_action = act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            add(obs, action, reward, next_obs, terminated, truncated, policy_action)
            obs = next_obs
            episode_return += float(reward)
            episode_length += 1
            if step >= start_steps:
                for _ in range(utd):
                    update(sample(batch_size, min(agent.horizon, len(buffer))))
            step += 1
            self.step = step
            if capacity is not None:
                capacity.maybe_check(step, agent.policy)
            done = terminated or truncated
            if done:
                self.episodes += 1
                self.row_returns.append(episode_return)
                self.row_lengths.append(episode_length)
                self.metrics.scalar("train/episode_return", episode_return, step)
                episode_return, episode_length = 0.0, 0
            if step % eval_every == 0:
                self._log_row()
                if c.stop_at_return is not None and self.last_eval.mean >= c.stop_at_return:
                    self.console.line(f"evaluation reached {c.stop_at_return:g}: stopping at step {step:,}")
                    break
            if step >= self.next_checkpoint:
                pending_checkpoint = True
                self.next_checkpoint += c.checkpoint_every
            if done:
                if pending_checkpoint:
                    self._checkpoint()
                    pending_checkpoint = False
                obs = self._reset()
            if step & 255 == 0:
                self.console.update(step)

    def _log_row(self) -> None:
        c, agent = self.config, self.agent
        eval_start = time.perf_counter()
        result = evaluate(agent.act_deterministic, self.eval_env, c.eval_episodes, self.eval_seed)
        now = time.perf_counter()
        train_time = eval_start - self._row_clock
        sps = (self.step - self.row_step) / train_time if self.step > self.row_step and train_time > 0 else math.nan
        self.wall_time = self._wall_offset + now
        stats = agent.pop_stats()
        if self.sparsifier is not None:
            stats.update(self.sparsifier.pop_stats())
        replay = {}
        if self.capacity is not None:  # the distance is NaN until the first check
            replay = {"buffer_size": float(len(self.buffer)), "policy_distance": self.capacity.last_distance}
        if self.diagnostics is not None and self.step >= self.next_diagnostics \
                and len(self.buffer) >= c.diagnostics_batch:
            batch = self.buffer.sample(c.diagnostics_batch, generator=self.diagnostics_generator)
            replay.update(self.diagnostics.compute(batch))
            self.next_diagnostics = (self.step // c.diagnostics_every + 1) * c.diagnostics_every
        row = {"step": self.step, "wall_time": self.wall_time, "sps": sps, "episodes": self.episodes,
               "train_return": float(np.mean(self.row_returns)) if self.row_returns else math.nan,
               "train_length": float(np.mean(self.row_lengths)) if self.row_lengths else math.nan,
               "eval_return": result.mean, "eval_return_std": result.std, "eval_length": result.mean_length,
               **stats, **replay}
        self.metrics.write(row)
        self.evaluations.append((self.step, result.mean))
        self.last_eval = result
        self.row_step, self.row_returns, self.row_lengths = self.step, [], []
        self._row_clock = time.perf_counter()
        self.console.update(self.step, sps=None if math.isnan(sps) else sps, last_eval=result.mean)
        train_text = "-" if math.isnan(row["train_return"]) else f"{row['train_return']:.1f}"
        sps_text = "-" if math.isnan(sps) else f"{sps:.0f}"
        self.console.line(f"step {self.step:>9,d}  eval {result.mean:9.1f} ± {result.std:7.1f}  "
                          f"train {train_text:>9}  {sps_text:>6} steps/s")
        bad = [k for k, v in stats.items() if not math.isfinite(v)]
        if bad:
            since = self.evaluations[-2][0] if len(self.evaluations) > 1 else 0
            raise TrainingDiverged(f"non-finite {', '.join(bad)} between steps {since} and {self.step}; "
                                   f"training stopped. {self._last_good()}")

    def _last_good(self) -> str:
        found = list_checkpoints(self.checkpoint_dir)
        if not found:
            return "No checkpoint had been written yet."
        return f"The last good checkpoint is {found[0][1]} (step {found[0][0]})."

    def _checkpoint(self) -> None:
        if not self.agent.all_finite() or not self.agent.stats_finite():
            raise TrainingDiverged(f"a network parameter or loss became NaN or infinite before step "
                                   f"{self.step}; no checkpoint was written. {self._last_good()}")
        self.metrics.sync()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_dir / checkpoint_name(self.step), self._payload())
        self.save_policy(self.run_dir / POLICY_FILE)
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)

    def save_policy(self, path: Path, storage: str = "auto") -> dict:
        """Export the actor as a deployable policy file (atomically); returns its header."""
        c = self.config
        nm = c.sparsity.nm if c.sparsity.method.startswith("nm") else None
        source = {"env": c.env, "algo": c.algo, "step": self.step, "action_repeat": c.action_repeat,
                  "sparsity": c.sparsity.method, **({"nm": list(nm)} if nm else {})}
        return export_actor(self.agent.policy, path, source, storage, nm, writer=_write_atomic, spaces=self._spaces())

    def _spaces(self) -> dict:
        """Observation and action spaces for a policy file's header (the environment's own action
        bounds, which the policy's [-1, 1] actions are rescaled to)."""
        base = self.env.unwrapped.action_space
        return {"observation": {"shape": list(self.env.observation_space.shape)},
                "action": {"shape": list(base.shape), "low": np.asarray(base.low, dtype=float).tolist(),
                           "high": np.asarray(base.high, dtype=float).tolist()}}

    # --- results and status ---------------------------------------------------------------------
    def _report_sparsity(self, final: bool = False) -> None:
        """Print the sparsity accounting and write it to sparsity.json (at start and end)."""
        if self.sparsifier is None:
            return
        from sparserl.sparsity import sparsity_report

        report = sparsity_report(self.sparsifier)
        policy = self.run_dir / POLICY_FILE
        if final and policy.is_file():
            report.policy_bytes = policy.stat().st_size
        data = report.to_dict()
        atomic_write(self.run_dir / "sparsity.json", lambda f: f.write(json.dumps(data, indent=2).encode()))
        if not final:
            self.console.line(str(report))
            if self.config.execution != "dense":
                from sparserl import native

                self.console.line(f"sparse execution ({self.config.execution}): {native.status()}")
        self.sparsity = report

    def result(self) -> RunResult:
        window = [m for _, m in self.evaluations[-self.config.score_window:]]
        return RunResult(self.run_dir, self.step, self.last_eval,
                         float(np.mean(window)) if window else math.nan, list(self.evaluations),
                         getattr(self, "sparsity", None))

    def _write_status(self, status: str, **extra) -> None:
        info = self.info
        data = {"status": status, "step": self.step, "updated": datetime.now(timezone.utc).isoformat(),
                "env": {"id": info.env_id, "obs_dim": info.obs_dim, "act_dim": info.act_dim,
                        "max_episode_steps": info.max_episode_steps},
                "versions": {"sparserl": __version__, "torch": torch.__version__, "numpy": np.__version__},
                **extra}
        atomic_write(self.run_dir / "run.json", lambda f: f.write(json.dumps(data, indent=2).encode()))


# --- public entry points ----------------------------------------------------------------------------

def _prepare(config: Config) -> Config:
    """Validate everything that can be refused before a run directory exists."""
    config.validate()
    check_env_id(config.env)
    if config.sparsity.enabled:
        check_sparsity(config)
    return config.replace(threads=_resolve_threads(config.threads))


def check_sparsity(config: Config) -> None:
    """Build the networks once and attach the sparsity engine, so an impossible budget or a layer
    left without weights is reported before any work starts."""
    from sparserl.sparsity import Sparsifier

    env = make_env(config.env)
    try:
        agent = make_agent(env_info(env), config)
    finally:
        env.close()
    updates = max(1, config.total_steps - config.start_steps) * config.updates_per_step
    agent.attach_sparsity(Sparsifier(config.sparsity, seed=config.seed), updates)


def train(config: Config, console: RunConsole | None = None) -> RunResult:
    """Train a new run described by `config` and return its result."""
    config = _prepare(config)
    run_dir = Path(config.run_dir) if config.run_dir else _default_run_dir(config)
    if (run_dir / "config.yaml").exists():
        raise ConfigError(f"run directory {run_dir} already holds a run: continue it with "
                          f"`sparserl train --resume {run_dir}` or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = config.replace(run_dir=str(run_dir))
    atomic_write(run_dir / "config.yaml", lambda f: f.write(yaml.safe_dump(config.to_dict(), sort_keys=False).encode()))
    return Trainer(config, run_dir, console=console).run()


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a sparserl run directory (no config.yaml)")
    return Config.from_dict(load_yaml(path), str(path)).validate()


def resume(run_dir: str | Path, checkpoint: str | Path | None = None, total_steps: int | None = None,
           console: RunConsole | None = None) -> RunResult:
    """Continue the run in `run_dir` from its newest checkpoint (or `checkpoint`).

    `total_steps` extends (or shortens, if not yet reached) the run. A corrupt newest checkpoint is
    an error that names the previous good one, which is never deleted by a failed resume.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    if total_steps is not None:
        config = config.replace(total_steps=total_steps).validate()
    check_env_id(config.env)
    found = list_checkpoints(run_dir / "checkpoints")
    if checkpoint is not None:
        path = Path(checkpoint)
    elif found:
        path = found[0][1]
    else:  # killed before its first checkpoint: nothing to continue from, so start it again
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
        return Trainer(config, run_dir, console=console).run()
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
        return read_result(run_dir)
    for newer_step, newer in found:  # checkpoints past the one resumed from belong to a lost future
        if newer_step > step:
            newer.rename(newer.with_name(newer.name + ".abandoned"))
    if config.total_steps != payload["config"]["total_steps"]:
        atomic_write(run_dir / "config.yaml",
                     lambda f: f.write(yaml.safe_dump(config.to_dict(), sort_keys=False).encode()))
    return Trainer(config, run_dir, checkpoint=payload, console=console).run()


def read_result(run_dir: str | Path) -> RunResult:
    """The result of a run directory from its metrics.csv."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    evaluations = [(int(r["step"]), r["eval_return"]) for r in rows]
    window = [m for _, m in evaluations[-config.score_window:]]
    return RunResult(run_dir, evaluations[-1][0] if evaluations else 0, None,
                     float(np.mean(window)) if window else math.nan, evaluations)
