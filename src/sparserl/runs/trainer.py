"""The training loop: a Config becomes a run directory (its files: sparserl.runs.files; the agent's
logs in it: sparserl.runs.record; a population's loop builds on this one: sparserl.population.trainer).

Exact resume. Every training episode is reset with a seed derived from (seed, episode index) and
checkpoints are taken at the first episode end after each `checkpoint_every` steps, so the
environment needs no saved state; the learner (networks, optimisers, replay, warm-up RNG), the
sparsity engine, RNG states, counters and the partial metrics of the current row are all in the
checkpoint. A run killed at any point and resumed therefore writes the same later metrics as one
that never stopped (same machine, same thread count). The last checkpoint of a run, written at
`total_steps`, may fall inside an episode: extending a finished run starts a fresh episode there.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from sparserl.config import Config
from sparserl.envs import episode_seed
from sparserl.errors import CheckpointError, TrainingDiverged
from sparserl.hardware import precision_line
from sparserl.policy_file import POLICY_FILE
from sparserl.runs.build import build_run
from sparserl.runs.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    save_checkpoint,
    upgrade_payload,
)
from sparserl.runs.evaluate import evaluate
from sparserl.runs.files import RunResult
from sparserl.runs.metrics import RUN_COLUMNS
from sparserl.runs.progress import RunConsole
from sparserl.runs.publish import report_sparsity, save_policy
from sparserl.runs.record import AgentLog


class Trainer:
    """Runs a built run (sparserl.runs.build) to `total_steps`, writing its logs and checkpoints."""

    def __init__(self, config: Config, run_dir: Path, checkpoint: dict | None = None,
                 console: RunConsole | None = None):
        self.config, self.run_dir = config, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.parts = parts = build_run(config)
        self.env, self.eval_env, self.info = parts.env, parts.eval_env, parts.info
        self.agent, self.sparsifier, self.learner = parts.agent, parts.sparsifier, parts.learner
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.logs = self.make_logs()
        """Each agent's record in its run directory (a run has one agent)."""
        # counters
        self.step = self.row_step = 0
        self.wall_time = 0.0
        self.next_checkpoint = config.checkpoint_every
        self.next_diagnostics = config.diagnostics_every
        self.reports: list | None = None
        """Each agent's sparsity accounting (None when dense)."""
        self._wall_offset = self._row_clock = 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        sparsity_columns = self.sparsifier.stat_names() if self.sparsifier is not None else ()
        diagnostic_columns = parts.diagnostics.names if parts.diagnostics is not None else ()
        columns = RUN_COLUMNS + self.learner.stat_names + diagnostic_columns + sparsity_columns
        for log in self.logs:
            log.open(columns, resume_step=None if checkpoint is None else self.step)
        self.console = console or RunConsole(config.total_steps, self.step, enabled=config.progress)

    def make_logs(self) -> list[AgentLog]:
        return [AgentLog(self.run_dir, self.config, self.info)]

    @property
    def log(self) -> AgentLog:
        """The record of a one-agent run."""
        return self.logs[0]

    # --- checkpoint state ---------------------------------------------------------------------
    _COUNTERS = ("step", "wall_time", "row_step", "next_checkpoint", "next_diagnostics")

    def _payload(self) -> dict:
        probe = self.parts.diagnostics
        return {
            "format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
            "learner": self.learner.state_dict(),
            "sparsity": None if self.sparsifier is None else self.sparsifier.state_dict(),
            "trainer": {**{k: getattr(self, k) for k in self._COUNTERS}, **self._agents_state(),
                        "diagnostics_generator": None if probe is None else probe.state_dict()},
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    **({"cuda": torch.cuda.get_rng_state_all()} if self.agent.device.type == "cuda" else {})},
        }

    def _agents_state(self) -> dict:
        """The agents' records in the checkpoint (a run's at the trainer section's top level)."""
        return self.log.state_dict()

    def _load_agents_state(self, trainer_state: dict) -> None:
        self.log.load_state_dict(trainer_state)

    def _restore(self, payload: dict) -> None:
        payload = upgrade_payload(payload)
        self.learner.load_state_dict(payload["learner"])
        if (payload.get("sparsity") is None) != (self.sparsifier is None):
            raise CheckpointError("checkpoint and configuration disagree on whether the run is sparse")
        if self.sparsifier is not None:
            self.sparsifier.load_state_dict(payload["sparsity"])
        t = payload["trainer"]
        self.step, self.row_step = int(t["step"]), int(t["row_step"])
        self.wall_time, self.next_checkpoint = float(t["wall_time"]), int(t["next_checkpoint"])
        self.next_diagnostics = int(t.get("next_diagnostics", self.next_diagnostics))
        self._load_agents_state(t)
        probe = self.parts.diagnostics
        if probe is not None and t.get("diagnostics_generator") is not None:
            probe.load_state_dict(t["diagnostics_generator"])
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.config.checkpoint_every
        torch.set_rng_state(payload["rng"]["torch"])
        if "cuda" in payload["rng"] and self.agent.device.type == "cuda":
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        random.setstate(payload["rng"]["python"])

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> RunResult:
        session_start = time.perf_counter()
        self._wall_offset = self.wall_time - session_start  # wall_time = offset + perf_counter()
        self._row_clock = session_start
        self._write_status("running")
        self.reports = report_sparsity(self)
        if self.config.precision != "fp32":
            self.console.line(precision_line(getattr(self.learner, "autocast_dtype", None), self.config.precision))
        try:
            if self.step == 0 and not self.log.evaluations:
                self._log_row()  # the untrained policy, as in the TD3 protocol
            self._train_loop()
            if self.row_step != self.step:
                self._log_row()
            self._checkpoint()
        except KeyboardInterrupt as exc:
            self._write_status("interrupted")
            exc.run_dir = self.run_dir  # for the hint the command line prints
            raise
        except BaseException as exc:
            self._write_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.console.close()
            for log in self.logs:
                log.close()
            self.parts.close()
        self.reports = report_sparsity(self, final=True) or self.reports
        results = self._results()
        for log, result in zip(self.logs, results):
            log.write_status("finished", self.step, score=result.score,
                             final_eval=None if result.final_eval is None else result.final_eval.mean)
        return self.result(results)

    def _train_loop(self) -> None:
        c, env, learner = self.config, self.env, self.learner
        act, observe = learner.act, learner.observe
        total = c.total_steps
        time_aware = c.time_feature  # the time is in the state: a time limit is a true terminal
        obs = self._reset()
        episode_return, episode_length = 0.0, 0
        step = self.step
        pending_checkpoint = False
        while step < total:
            action, policy_action = act(obs, step)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            terminated = terminated or (truncated and time_aware)
            observe(obs, action, reward, next_obs, terminated, truncated, policy_action, step)
            obs = next_obs
            episode_return += float(reward)
            episode_length += 1
            step += 1
            self.step = step
            done = terminated or truncated
            if done:
                self.log.end_episode(episode_return, episode_length, step)
                episode_return, episode_length = 0.0, 0
            if self._row_if_due(step):
                break
            if step >= self.next_checkpoint:
                pending_checkpoint = True
                self.next_checkpoint += c.checkpoint_every
            if done:
                if pending_checkpoint:
                    self._checkpoint()
                    pending_checkpoint = False
                obs = self._reset()
            self._progress(step)

    STOP_LINE = "{what} reached {value:g}: stopping at step {step:,}"
    """The console line when stop_at_return stops the run."""

    def _row_if_due(self, step: int) -> bool:
        """Write the metrics row of `step` when one is due; True when stop_at_return then says stop."""
        c = self.config
        if step % c.eval_every:
            return False
        self._log_row()
        if c.stop_at_return is None or not self._reached(c.stop_at_return):
            return False
        what = "evaluation" if c.eval_episodes else "training return"
        self.console.line(self.STOP_LINE.format(what=what, value=c.stop_at_return, step=step))
        return True

    def _progress(self, step: int) -> None:
        """The progress bar after `step` (its rate measured afresh once learning starts: the warm-up's
        rate says nothing of what follows)."""
        if step == self.config.start_steps:
            self.console.new_phase()
        if step & 255 == 0:
            self.console.update(step)

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.config.seed, self.log.episodes))
        return obs

    def _reached(self, value: float) -> bool:
        """The latest row measures at least `value` (evaluation, or training return without one)."""
        return self.log.reached(value, self.step)

    def _evaluate(self) -> list:
        """Each agent's evaluation (None where the run evaluates nothing)."""
        c = self.config
        if not c.eval_episodes:
            return [None]
        return [evaluate(self.learner.act_deterministic, self.eval_env, c.eval_episodes, c.evaluation_seed)]

    def _agent_stats(self) -> list[dict]:
        """Each agent's training statistics since the last row."""
        return [self.learner.pop_stats()]

    def _log_row(self) -> None:
        c = self.config
        eval_start = time.perf_counter()
        results = self._evaluate()
        now = time.perf_counter()
        train_time = eval_start - self._row_clock
        sps = (self.step - self.row_step) / train_time if self.step > self.row_step and train_time > 0 else math.nan
        self.wall_time = self._wall_offset + now
        masks = self.sparsifier.pop_agent_stats() if self.sparsifier is not None else [{} for _ in self.logs]
        diagnostics = None
        if self.parts.diagnostics is not None and self.step >= self.next_diagnostics:
            diagnostics = self.parts.diagnostics.measure(self.learner, c.diagnostics_batch)
        if diagnostics is not None:
            self.next_diagnostics = (self.step // c.diagnostics_every + 1) * c.diagnostics_every
        diagnostics = diagnostics or [{} for _ in self.logs]
        stats = [{**agent, **sparsity} for agent, sparsity in zip(self._agent_stats(), masks, strict=True)]
        rows = [log.write_row(self.step, self.wall_time, sps, {**agent, **measured}, result)
                for log, agent, measured, result in zip(self.logs, stats, diagnostics, results, strict=True)]
        self.row_step = self.step
        self._row_clock = time.perf_counter()
        measures = [row[c.measure] for row in rows if not math.isnan(row[c.measure])]
        self.console.update(self.step, last_eval=float(np.mean(measures)) if measures else None)
        self.console.line(f"step {self.step:>9,d}  {row_text(rows, results)}  "
                          f"{'-' if math.isnan(sps) else f'{sps:.0f}':>6} steps/s")
        bad = sorted({k for agent in stats for k, v in agent.items() if not math.isfinite(v)})
        if bad:
            evaluations = self.log.evaluations
            since = evaluations[-2][0] if len(evaluations) > 1 else 0
            raise TrainingDiverged(f"non-finite {', '.join(bad)} between steps {since} and {self.step}; "
                                   f"training stopped. {self._last_good()}")

    def _last_good(self) -> str:
        found = list_checkpoints(self.checkpoint_dir)
        if not found:
            return "No checkpoint had been written yet."
        return f"The last good checkpoint is {found[0][1]} (step {found[0][0]})."

    def _checkpoint(self) -> None:
        if not self.learner.finite():
            raise TrainingDiverged(f"a network parameter or loss became NaN or infinite before step "
                                   f"{self.step}; no checkpoint was written. {self._last_good()}")
        for log in self.logs:
            log.sync()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_dir / checkpoint_name(self.step), self._payload())
        self._save_policies()
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)

    def _save_policies(self) -> None:
        save_policy(self, self.run_dir / POLICY_FILE, policy=self.agent.agent_policy(0))

    # --- results and status ---------------------------------------------------------------------
    def result(self, results: list[RunResult] | None = None) -> RunResult:
        """The run's result: its one agent's (a population overrides this)."""
        return (results or self._results())[0]

    def _results(self) -> list[RunResult]:
        """Each agent's result as it stands."""
        reports = self.reports or [None] * len(self.logs)
        return [log.result(self.step, report) for log, report in zip(self.logs, reports)]

    def _write_status(self, status: str, **extra) -> None:
        for log in self.logs:
            log.write_status(status, self.step, **extra)


def row_text(rows: list[dict], results: list) -> str:
    """The console's words for one metrics row: the evaluation and training return (for several
    agents, their mean, with the lowest and highest)."""
    def spread(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return f"{'-':>9}"
        if len(values) == 1:
            return f"{values[0]:9.1f}"
        return f"{np.mean(values):9.1f} [{min(values):.1f}, {max(values):.1f}]"

    text = f"train {spread([row['train_return'] for row in rows])}"
    if results[0] is None:
        return text
    if len(results) == 1:
        return f"eval {results[0].mean:9.1f} ± {results[0].std:7.1f}  {text}"
    return f"eval {spread([r.mean for r in results])}  {text}"
