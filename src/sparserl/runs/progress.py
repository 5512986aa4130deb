"""Console output of a run: a live progress bar on a terminal, one line per evaluation everywhere."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class RunConsole:
    """Prints run lines; on a terminal also keeps a progress bar with steps/s and the last evaluation."""

    def __init__(self, total: int, initial: int, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(highlight=False, soft_wrap=True, emoji=False)
        self.enabled = enabled
        self._bar: Progress | None = None
        self._last_refresh = 0.0
        self._recent: deque[tuple[float, int]] = deque(maxlen=self.WINDOW)
        if enabled and self.console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>6} steps/s"), TextColumn("eval {task.fields[last_eval]}"),
                TimeRemainingColumn(), console=self.console, auto_refresh=False)
            self._task = self._bar.add_task("train", total=total, completed=initial, sps="-", last_eval="-")
            self._bar.start()

    WINDOW = 12
    """The bar's steps/s is measured over the last this-many refreshes (about 6 s) of the current phase."""

    def new_phase(self) -> None:
        """Learning starts (or the rate changes for another reason): measure steps/s afresh."""
        self._recent.clear()

    def rate(self) -> float | None:
        """Steps per second over the recent window, or None before two samples."""
        if len(self._recent) < 2:
            return None
        (t0, s0), (t1, s1) = self._recent[0], self._recent[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def update(self, step: int, last_eval: float | None = None) -> None:
        """Move the bar to `step` (throttled to a few refreshes per second)."""
        if self._bar is None:
            return
        fields = {}
        if last_eval is not None:
            fields["last_eval"] = f"{last_eval:.1f}"
        self._bar.update(self._task, completed=step, **fields)
        now = time.monotonic()
        if fields or now - self._last_refresh > 0.5:
            self._recent.append((now, step))
            rate = self.rate()
            if rate is not None:
                self._bar.update(self._task, sps=f"{rate:.0f}")
            self._bar.refresh()
            self._last_refresh = now

    def line(self, text: str) -> None:
        if self.enabled:
            self.console.print(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
