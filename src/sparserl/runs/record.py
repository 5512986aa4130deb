"""One agent's record in its run directory: the training episodes of the current metrics row, the
evaluations so far (the score's series), metrics.csv and TensorBoard (sparserl.runs.metrics), and
run.json. A run keeps one; a population (sparserl.population.trainer) one per agent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sparserl.config import Config
from sparserl.runs import files
from sparserl.runs.evaluate import EvalResult
from sparserl.runs.files import RunResult
from sparserl.runs.metrics import MetricsLog


class AgentLog:
    """The logs of one agent: rows are written by `write_row`, episodes counted by `end_episode`."""

    def __init__(self, run_dir: Path, config: Config, info, status: dict | None = None):
        self.run_dir, self.config, self.info = Path(run_dir), config, info
        self.status = dict(status or {})
        """What run.json says besides the status itself (a population's agent: where its population is)."""
        self.episodes = 0
        self.row_returns: list[float] = []
        self.row_lengths: list[int] = []
        self.evaluations: list[tuple[int, float]] = []
        self.last_eval: EvalResult | None = None
        self.metrics: MetricsLog | None = None

    def open(self, columns: tuple[str, ...], resume_step: int | None) -> None:
        """Open metrics.csv (truncated after `resume_step` when resuming) and TensorBoard."""
        self.metrics = MetricsLog(self.run_dir, columns, self.config.tensorboard, resume_step=resume_step)

    def end_episode(self, episode_return: float, length: int, step: int) -> None:
        self.episodes += 1
        self.row_returns.append(episode_return)
        self.row_lengths.append(length)
        self.metrics.scalar("train/episode_return", episode_return, step)

    def write_row(self, step: int, wall_time: float, sps: float, stats: dict, result: EvalResult | None) -> dict:
        """Write the metrics row of `step` (the training episodes since the last row, the evaluation
        `result`, `stats`), note its measure among the evaluations and start the next row."""
        train_return = float(np.mean(self.row_returns)) if self.row_returns else math.nan
        evaluated = {"eval_return": math.nan, "eval_return_std": math.nan, "eval_length": math.nan}
        if result is not None:
            evaluated = {"eval_return": result.mean, "eval_return_std": result.std, "eval_length": result.mean_length}
        row = {"step": step, "wall_time": wall_time, "sps": sps, "episodes": self.episodes,
               "train_return": train_return,
               "train_length": float(np.mean(self.row_lengths)) if self.row_lengths else math.nan,
               **evaluated, **stats}
        self.metrics.write(row)
        measure = row[self.config.measure]  # the score's series
        if not math.isnan(measure):
            self.evaluations.append((step, measure))
        self.last_eval = result if result is not None else self.last_eval
        self.row_returns, self.row_lengths = [], []
        return row

    def reached(self, value: float, step: int) -> bool:
        """The latest row's measure (evaluation, or training return without one) is at least `value`."""
        return bool(self.evaluations) and self.evaluations[-1][0] == step and self.evaluations[-1][1] >= value

    # --- checkpoint state ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"episodes": self.episodes, "row_returns": list(self.row_returns),
                "row_lengths": list(self.row_lengths), "evaluations": [list(e) for e in self.evaluations]}

    def load_state_dict(self, state: dict) -> None:
        self.episodes = int(state["episodes"])
        self.row_returns, self.row_lengths = list(state["row_returns"]), list(state["row_lengths"])
        self.evaluations = [(int(s), float(m)) for s, m in state["evaluations"]]

    # --- status and result ----------------------------------------------------------------------
    def write_status(self, status: str, step: int, **extra) -> None:
        files.write_status(self.run_dir, status, step, files.env_entry(self.info), **self.status, **extra)

    def result(self, step: int, sparsity=None) -> RunResult:
        return RunResult(self.run_dir, step, self.last_eval, self.config.score([m for _, m in self.evaluations]),
                         list(self.evaluations), sparsity)

    def sync(self) -> None:
        self.metrics.sync()

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
