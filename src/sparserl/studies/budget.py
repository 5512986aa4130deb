"""Reduced budgets: a run's whole schedule compressed into fewer environment steps, for
reproductions at a size a CPU can afford (sparserl.studies.reproduce, a sweep spec's `budget`)."""

from __future__ import annotations

import dataclasses

from sparserl.config import Config
from sparserl.errors import ConfigError


def compress_schedule(config: Config, total_steps: int, start_steps: int) -> Config:
    """`config` with its whole schedule compressed into `total_steps` environment steps.

    For reduced-budget reproductions: settings counted in gradient updates (delay_nstep, the
    sparsity update interval) scale by the ratio of learning steps, (total - start) before and after;
    those counted in environment steps (the dynamic buffer's check interval and minimum size) by
    the ratio of total steps. Each stays at least 1; an interval of 0 (never) stays 0.
    """
    if not 0 <= start_steps < total_steps:
        raise ConfigError(f"budget: start_steps ({start_steps}) must be >= 0 and below total_steps ({total_steps})")
    learning = (total_steps - start_steps) / max(1, config.total_steps - config.start_steps)
    steps = total_steps / config.total_steps

    def scaled(value: int, ratio: float) -> int:
        return max(1, round(value * ratio)) if value > 0 else value

    sparsity = config.sparsity
    interval = sparsity.setting("update_interval") if sparsity.enabled else None
    if interval and interval > 1:
        sparsity = dataclasses.replace(sparsity, update_interval=scaled(interval, learning))
    changes = {}
    if config.dynamic_buffer:  # (settings of a buffer that is not dynamic stay as they are)
        changes = dict(buffer_check_every=scaled(config.buffer_check_every, steps),
                       buffer_min_size=min(config.buffer_size, scaled(config.buffer_min_size, steps)))
    return config.replace(
        total_steps=total_steps, start_steps=start_steps, sparsity=sparsity,
        delay_nstep=scaled(config.delay_nstep, learning) if config.delay_nstep else 0, **changes)

