"""The streaming learners' section of the run configuration (Elsayed, Vasan, Mahmood 2024,
"Streaming Deep RL Finally Works"), and the rule that keeps replay settings off them: a streaming
algorithm learns from each transition once, as it arrives, with no replay buffer, batches or target
networks, so a replay setting given to it is a mistake, refused by name before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from sparserl.config import checks
from sparserl.config.checks import positive_numbers, require


@dataclass
class Streaming:
    """Stream AC(lambda): ObGD's eligibility traces and step-size bound, and the reward scaling."""

    trace_lambda: float = 0.8
    """Stream AC: lambda of the eligibility traces z <- gamma * lambda * z + grad (Elsayed et al.: 0.8)."""
    kappa_policy: float = 3.0
    """Stream AC: ObGD's overshooting bound kappa for the policy (Elsayed et al.: 3)."""
    kappa_value: float = 2.0
    """Stream AC: ObGD's overshooting bound kappa for the value network (Elsayed et al.: 2)."""
    obgd_lr: float = 1.0
    """Stream AC: ObGD's step size alpha, before the bound (Elsayed et al.: 1.0)."""
    obgd: Literal["obgd", "adaptive"] = "obgd"
    """Stream AC: ObGD, or its adaptive variant that divides delta * z by a running RMS (beta2 below)."""
    obgd_beta2: float = 0.999
    """Stream AC, adaptive ObGD: decay of the running second moment of delta * z (Elsayed et al.: 0.999)."""
    entropy_coef: float = 0.01
    """Stream AC: policy entropy bonus, multiplied by sign(delta) (Elsayed et al.: 0.01)."""
    reward_scaling: bool = True
    """Stream AC: divide rewards by the running std of a discounted-return trace that restarts at
    each episode end (Elsayed et al.)."""
    def problems(self) -> list[str]:
        out = []
        if not (math.isfinite(self.trace_lambda) and 0.0 <= self.trace_lambda <= 1.0):
            out.append(f"trace_lambda must be in [0, 1], got {self.trace_lambda!r}")
        out += positive_numbers(self, "kappa_policy", "kappa_value", "obgd_lr")
        out += require(self, ("entropy_coef",), checks.non_negative, ">= 0")
        if not 0.0 < self.obgd_beta2 < 1.0:
            out.append(f"obgd_beta2 must be in (0, 1), got {self.obgd_beta2!r}")
        return out + streaming_problems(self)


REPLAY_SECTIONS = ("ValueLearning",)
"""Sections whose every setting belongs to replay-based learning."""
REPLAY_SETTINGS = ("updates_per_step", "update_every", "batch_size", "buffer_size", "tau", "critics", "actor_lr",
                   "critic_lr", "weight_decay", "optimizer")
"""Settings of other sections that only the replay-based learners (and their Adam) read."""


def streaming_problems(config) -> list[str]:
    """For a streaming algorithm: every replay setting set away from its default, a warm-up, the
    diagnostics (they sample a replay buffer) and target-network masks, each named."""
    from sparserl.algos import ALGORITHMS

    if config.algo not in ALGORITHMS or not ALGORITHMS.get(config.algo).streaming:
        return []
    algo = config.algo
    out = []
    names = list(REPLAY_SETTINGS)
    for section in type(config).__mro__:
        if section.__name__ in REPLAY_SECTIONS:
            names += [f.name for f in fields(section)]
    defaults = {f.name: f.default for f in fields(config)}  # (these settings all have plain defaults)
    for name in names:
        if getattr(config, name) != defaults[name]:
            out.append(f"{name} = {getattr(config, name)!r} is a replay setting; {algo} learns from each "
                       f"transition once, as it arrives (no replay buffer, batches or target networks)")
    if config.start_steps != 0:
        out.append(f"start_steps must be 0 for {algo}, which learns from its first step; got {config.start_steps!r} "
                   f"(sparserl.resolve_config(algo={algo!r}, ...) starts from the algorithm's own defaults; a bare "
                   f"Config from the replay learners')")
    if config.diagnostics_every != 0:
        out.append(f"diagnostics_every must be 0 for {algo}: the plasticity diagnostics sample a replay buffer")
    sparsity = getattr(config, "sparsity", None)
    if getattr(sparsity, "target_mask", "online") != "online":
        out.append(f"target_mask {sparsity.target_mask!r} needs target networks, which {algo} does not have")
    return out
