"""The training loop: a Config becomes a run directory (its files: sparserl.runs.files).

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
from sparserl.policy_file import POLICY_FILE
from sparserl.runs import files
from sparserl.runs.build import build_run
from sparserl.runs.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    save_checkpoint,
    upgrade_payload,
)
from sparserl.runs.evaluate import EvalResult, evaluate
from sparserl.runs.files import RunResult
from sparserl.runs.metrics import RUN_COLUMNS, MetricsLog
from sparserl.runs.progress import RunConsole
from sparserl.runs.publish import report_sparsity, save_policy


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
        # counters and the partial metrics row
        self.step = self.episodes = self.row_step = 0
        self.wall_time = 0.0
        self.row_returns: list[float] = []
        self.row_lengths: list[int] = []
        self.evaluations: list[tuple[int, float]] = []
        self.next_checkpoint = config.checkpoint_every
        self.next_diagnostics = config.diagnostics_every
        self.last_eval: EvalResult | None = None
        self.sparsity = None
        self._wall_offset = self._row_clock = 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        sparsity_columns = self.sparsifier.stat_names() if self.sparsifier is not None else ()
        diagnostic_columns = parts.diagnostics.names if parts.diagnostics is not None else ()
        columns = RUN_COLUMNS + self.learner.stat_names + diagnostic_columns + sparsity_columns
        self.metrics = MetricsLog(self.run_dir, columns, config.tensorboard,
                                  resume_step=None if checkpoint is None else self.step)
        self.console = console or RunConsole(config.total_steps, self.step, enabled=config.progress)

    # --- checkpoint state ---------------------------------------------------------------------
    _COUNTERS = ("step", "episodes", "wall_time", "row_step", "next_checkpoint", "next_diagnostics")

    def _payload(self) -> dict:
        generator = self.parts.diagnostics_generator
        return {
            "format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
            "learner": self.learner.state_dict(),
            "sparsity": None if self.sparsifier is None else self.sparsifier.state_dict(),
            "trainer": {**{k: getattr(self, k) for k in self._COUNTERS},
                        "row_returns": list(self.row_returns), "row_lengths": list(self.row_lengths),
                        "evaluations": [list(e) for e in self.evaluations],
                        "diagnostics_generator": None if generator is None else generator.get_state()},
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        }

    def _restore(self, payload: dict) -> None:
        payload = upgrade_payload(payload)
        self.learner.load_state_dict(payload["learner"])
        if (payload.get("sparsity") is None) != (self.sparsifier is None):
            raise CheckpointError("checkpoint and configuration disagree on whether the run is sparse")
        if self.sparsifier is not None:
            self.sparsifier.load_state_dict(payload["sparsity"])
        t = payload["trainer"]
        self.step, self.episodes, self.row_step = int(t["step"]), int(t["episodes"]), int(t["row_step"])
        self.wall_time, self.next_checkpoint = float(t["wall_time"]), int(t["next_checkpoint"])
        self.next_diagnostics = int(t.get("next_diagnostics", self.next_diagnostics))
        self.row_returns, self.row_lengths = list(t["row_returns"]), list(t["row_lengths"])
        self.evaluations = [(int(s), float(m)) for s, m in t["evaluations"]]
        generator = self.parts.diagnostics_generator
        if generator is not None and t.get("diagnostics_generator") is not None:
            generator.set_state(t["diagnostics_generator"])
        while self.next_checkpoint <= self.step:
            self.next_checkpoint += self.config.checkpoint_every
        torch.set_rng_state(payload["rng"]["torch"])
        random.setstate(payload["rng"]["python"])

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> RunResult:
        session_start = time.perf_counter()
        self._wall_offset = self.wall_time - session_start  # wall_time = offset + perf_counter()
        self._row_clock = session_start
        self._write_status("running")
        self.sparsity = report_sparsity(self)
        try:
            if self.step == 0 and not self.evaluations:
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
            self.metrics.close()
            self.parts.close()
        result = self.result()
        self.sparsity = report_sparsity(self, final=True) or self.sparsity
        self._write_status("finished", score=result.score,
                           final_eval=None if result.final_eval is None else result.final_eval.mean)
        return result

    def _train_loop(self) -> None:
        c, env, learner = self.config, self.env, self.learner
        act, observe = learner.act, learner.observe
        total, eval_every = c.total_steps, c.eval_every
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
                self.episodes += 1
                self.row_returns.append(episode_return)
                self.row_lengths.append(episode_length)
                self.metrics.scalar("train/episode_return", episode_return, step)
                episode_return, episode_length = 0.0, 0
            if step % eval_every == 0:
                self._log_row()
                if c.stop_at_return is not None and self._reached(c.stop_at_return):
                    what = "evaluation" if c.eval_episodes else "training return"
                    self.console.line(f"{what} reached {c.stop_at_return:g}: stopping at step {step:,}")
                    break
            if step >= self.next_checkpoint:
                pending_checkpoint = True
                self.next_checkpoint += c.checkpoint_every
            if done:
                if pending_checkpoint:
                    self._checkpoint()
                    pending_checkpoint = False
                obs = self._reset()
            if step == c.start_steps:  # learning starts: the warm-up's rate says nothing of what follows
                self.console.new_phase()
            if step & 255 == 0:
                self.console.update(step)

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.config.seed, self.episodes))
        return obs

    def _reached(self, value: float) -> bool:
        """The latest row's measure (evaluation, or training return without one) is at least `value`."""
        return bool(self.evaluations) and self.evaluations[-1][0] == self.step and self.evaluations[-1][1] >= value

    def _log_row(self) -> None:
        c = self.config
        eval_start = time.perf_counter()
        result = evaluate(self.learner.act_deterministic, self.eval_env, c.eval_episodes, c.evaluation_seed) \
            if c.eval_episodes else None
        now = time.perf_counter()
        train_time = eval_start - self._row_clock
        sps = (self.step - self.row_step) / train_time if self.step > self.row_step and train_time > 0 else math.nan
        self.wall_time = self._wall_offset + now
        stats = self.learner.pop_stats()
        if self.sparsifier is not None:
            stats.update(self.sparsifier.pop_stats())
        diagnostics, parts = {}, self.parts
        batch = None
        if parts.diagnostics is not None and self.step >= self.next_diagnostics:
            batch = self.learner.sample_for_diagnostics(c.diagnostics_batch, parts.diagnostics_generator)
        if batch is not None:
            diagnostics = parts.diagnostics.compute(batch)
            self.next_diagnostics = (self.step // c.diagnostics_every + 1) * c.diagnostics_every
        train_return = float(np.mean(self.row_returns)) if self.row_returns else math.nan
        evaluated = {"eval_return": math.nan, "eval_return_std": math.nan, "eval_length": math.nan}
        if result is not None:
            evaluated = {"eval_return": result.mean, "eval_return_std": result.std, "eval_length": result.mean_length}
        row = {"step": self.step, "wall_time": self.wall_time, "sps": sps, "episodes": self.episodes,
               "train_return": train_return,
               "train_length": float(np.mean(self.row_lengths)) if self.row_lengths else math.nan,
               **evaluated, **stats, **diagnostics}
        self.metrics.write(row)
        measure = row[c.measure]  # the score's series
        if not math.isnan(measure):
            self.evaluations.append((self.step, measure))
        self.last_eval = result if result is not None else self.last_eval
        self.row_step, self.row_returns, self.row_lengths = self.step, [], []
        self._row_clock = time.perf_counter()
        self.console.update(self.step, last_eval=None if math.isnan(measure) else measure)
        train_text = "-" if math.isnan(train_return) else f"{train_return:.1f}"
        sps_text = "-" if math.isnan(sps) else f"{sps:.0f}"
        eval_text = f"eval {result.mean:9.1f} ± {result.std:7.1f}  " if result is not None else ""
        self.console.line(f"step {self.step:>9,d}  {eval_text}train {train_text:>9}  {sps_text:>6} steps/s")
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
        if not self.learner.finite():
            raise TrainingDiverged(f"a network parameter or loss became NaN or infinite before step "
                                   f"{self.step}; no checkpoint was written. {self._last_good()}")
        self.metrics.sync()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.checkpoint_dir / checkpoint_name(self.step), self._payload())
        save_policy(self, self.run_dir / POLICY_FILE)
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)

    # --- results and status ---------------------------------------------------------------------
    def result(self) -> RunResult:
        return RunResult(self.run_dir, self.step, self.last_eval, self.config.score([m for _, m in self.evaluations]),
                         list(self.evaluations), self.sparsity)

    def _write_status(self, status: str, **extra) -> None:
        info = self.info
        env = {"id": info.env_id, "obs_dim": info.obs_dim, "act_dim": info.act_dim,
               "max_episode_steps": info.max_episode_steps}
        files.write_status(self.run_dir, status, self.step, env, **extra)
