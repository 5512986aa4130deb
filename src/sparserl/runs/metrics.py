"""metrics.csv and TensorBoard events of a run.

One CSV row per evaluation (every `eval_every` steps): the evaluation, the training episodes and
the training statistics averaged since the previous row, and throughput. The same values go to
TensorBoard under grouped tags (eval/, train/, losses/, perf/). On resume, rows after the
checkpoint's step are dropped and TensorBoard purges its events after that step, so a resumed
run's logs read as if it had never stopped.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from sparserl.errors import CheckpointError
from sparserl.runs.checkpoint import atomic_write

RUN_COLUMNS = ("step", "wall_time", "sps", "episodes", "train_return", "train_length",
               "eval_return", "eval_return_std", "eval_length")
#: Columns that depend on the machine's speed rather than on the run's computation.
TIMING_COLUMNS = ("wall_time", "sps")

_TAG_GROUPS = {"eval_return": "eval/return", "eval_return_std": "eval/return_std",
               "eval_length": "eval/episode_length", "train_return": "train/episode_return_mean",
               "train_length": "train/episode_length_mean", "episodes": "train/episodes",
               "sps": "perf/steps_per_second", "wall_time": "perf/wall_time",
               "buffer_size": "replay/size", "policy_distance": "replay/policy_distance"}


def tag_for(column: str) -> str:
    if column.startswith("diag_"):  # diag_actor_srank -> diagnostics/actor/srank
        _, network, name = column.split("_", 2)
        return f"diagnostics/{network}/{name}"
    if column.startswith(("density_", "sad_")):
        kind, _, rest = column.partition("_")
        return f"sparsity/{kind}/{rest.replace('_', '/')}"
    return _TAG_GROUPS.get(column, f"losses/{column}")


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of floats."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                if None in row or None in row.values() or "step" not in row:
                    raise ValueError("its number of fields differs from the header's")
                rows.append({k: float(v) if v != "" else math.nan for k, v in row.items()})
            except ValueError as exc:
                raise CheckpointError(f"{path} is damaged at line {reader.line_num}: {exc} (restore it, or "
                                      f"remove the damaged rows and everything after them)") from None
    return rows


class MetricsLog:
    """Appends rows to metrics.csv and mirrors them to TensorBoard."""

    def __init__(self, run_dir: Path, columns: tuple[str, ...], tensorboard: bool = True,
                 resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = columns
        if resume_step is None or not self.path.is_file():
            atomic_write(self.path, lambda f: f.write((",".join(columns) + "\n").encode()))
        else:
            self._truncate_after(resume_step)
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 (open for the run; closed in close())
        self._csv = csv.writer(self._file)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge)

    def _truncate_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            kept = [row for row in reader if row and float(row[0]) <= step]
        if header is not None and tuple(header) != self.columns:
            raise ValueError(f"{self.path} has columns {header}, expected {list(self.columns)}")

        def write(f) -> None:
            text = ",".join(self.columns) + "\n" + "".join(",".join(r) + "\n" for r in kept)
            f.write(text.encode())

        atomic_write(self.path, write)

    def write(self, row: dict[str, float]) -> None:
        step = int(row["step"])
        self._csv.writerow([_fmt(row.get(c, math.nan)) for c in self.columns])
        self._file.flush()
        if self._tb is not None:
            for column in self.columns[1:]:
                value = row.get(column, math.nan)
                if not math.isnan(value):
                    self._tb.add_scalar(tag_for(column), value, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A TensorBoard-only value (e.g. every training episode's return)."""
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)

    def sync(self) -> None:
        """Make everything written so far durable (called before each checkpoint)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))
