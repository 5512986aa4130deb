"""The progress bar's steps/s is the rate of the recent window of the current phase: random warm-up
steps (tens of thousands per second) do not inflate the rate shown once learning runs."""

from __future__ import annotations

import io

from rich.console import Console

from sparserl.runs import progress
from sparserl.runs.progress import RunConsole


def test_the_rate_is_measured_over_the_recent_window_of_the_current_phase(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    bar = RunConsole(100_000, 0, console=Console(file=io.StringIO(), force_terminal=True))
    step = 0
    for _ in range(20):  # warm-up: 10 000 steps/s
        clock[0] += 1.0
        step += 10_000
        bar.update(step)
    assert bar.rate() == 10_000
    bar.new_phase()  # learning starts
    assert bar.rate() is None
    for _ in range(30):  # learning: 150 steps/s
        clock[0] += 1.0
        step += 150
        bar.update(step)
    assert bar.rate() == 150
    field = bar._bar.tasks[0].fields["sps"]
    bar.close()
    assert field == "150"
