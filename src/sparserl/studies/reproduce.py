"""Reproductions of the papers' comparisons at a budget that fits a CPU.

Each reproduction is a sweep spec (the paper's preset(s), the comparison as an axis, its tasks and
seeds) and a report: ``sparserl reproduce rlx2-td3 --budget small`` is

    sweep over preset [rlx2-td3-dense, rlx2-td3, rlx2-td3-ss] x env [Hopper-v5] x seed [0, 1, 2],
    each run's schedule compressed to 20 000 steps (sparserl.studies.budget.compress_schedule),
    then a report normalised to the dense runs (mean of the last 3 evaluations of each run).

Budgets: ``small`` (20k steps, 3 seeds, one task: tens of minutes on 2 cores), ``medium`` (150k
steps, 5 seeds, the paper's first two tasks: one packed population of 5 seeds per core finishes in
about two hours on a Zen 3 core), ``paper`` (the presets' own schedules, tasks and seed counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparserl.errors import ConfigError
from sparserl.studies.spec import SweepSpec, spec_from_dict


@dataclass(frozen=True)
class Budget:
    total_steps: int | None
    """Compress each run's schedule to this many steps (None: the preset's own)."""
    start_steps: int | None
    seeds: int | None
    """Seeds per configuration (None: the paper's)."""
    eval_every: int | None
    score_window: int | None
    """Evaluations averaged into a run's score (None: the preset's)."""
    tasks: int | None
    """How many of the paper's tasks (None: all)."""


BUDGETS = {
    "small": Budget(total_steps=20_000, start_steps=5_000, seeds=3, eval_every=2_500, score_window=3, tasks=1),
    "medium": Budget(total_steps=150_000, start_steps=25_000, seeds=5, eval_every=5_000, score_window=5, tasks=2),
    "paper": Budget(total_steps=None, start_steps=None, seeds=None, eval_every=None, score_window=None, tasks=None),
}


@dataclass(frozen=True)
class Reproduction:
    description: str
    axes: dict[str, list[Any]]
    """The comparison: one label per value (the dense one is the baseline)."""
    envs: list[str]
    """The paper's tasks, the cheapest or most telling first (small budgets take the first ones)."""
    seeds: int
    """The paper's seed count."""
    preset: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    budget_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per budget: axes, tasks or base settings that replace the paper's (e.g. a smaller width grid)."""
    report: str = "normalised"
    """normalised (to dense, per task) or scaling (against network size)."""
    shares: str | None = None
    """The reproduction one of whose configurations this one repeats (an ablation's default cell):
    its finished runs at the same budget are copied, not trained again (sparserl.studies.reuse)."""


REPRODUCTIONS = {
    "rnm-td3": Reproduction(
        "RNM-TD3: dense TD3 against row-wise N:M at 2:4, 1:4 and 1:8 in all six networks",
        preset="rnm-td3", axes={"sparsity": ["dense", "nm:2:4", "nm:1:4", "nm:1:8"]},
        envs=["HalfCheetah-v5", "Ant-v5"], seeds=5),
    "rlx2-td3": Reproduction(
        "RLx2-TD3 against dense TD3 and static sparse networks (SS) at RLx2's sparsities",
        axes={"preset": ["rlx2-td3-dense", "rlx2-td3", "rlx2-td3-ss"]},
        envs=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"], seeds=8),
    "rlx2-sac": Reproduction(
        "RLx2-SAC against dense SAC and static sparse networks (SS) at RLx2's sparsities",
        axes={"preset": ["rlx2-sac-dense", "rlx2-sac", "rlx2-sac-ss"]},
        envs=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"], seeds=8),
}


# the ablations Vrce et al. 2026 and Tan et al. 2023 report beside their comparisons (read with the
# main reproduction's dense runs for normalised scores: `sparserl report DIR DIR`)
REPRODUCTIONS["rnm-td3-interval"] = Reproduction(
    "RNM-TD3's mask-update interval: 2:4 re-projected every 1, 100, 1 000 and 10 000 steps, with SR-STE and with "
    "masked gradients on a dense shadow (a budget's shorter schedule shrinks the intervals with it)",
    preset="rnm-td3", axes={"update_interval": [1, 100, 1_000, 10_000], "nm_gradient": ["srste", "shadow"]},
    envs=["HalfCheetah-v5", "Ant-v5"], seeds=5, shares="rnm-td3",
    budget_changes={"medium": {"envs": ["HalfCheetah-v5"]}})  # an ablation: the main comparison's first task
REPRODUCTIONS["rlx2-td3-nstep"] = Reproduction(
    "RLx2-TD3's multi-step target: n = 1 against RLx2's n = 3 (delayed), with everything else RLx2's",
    preset="rlx2-td3", axes={"nstep": [1, 3]},
    envs=["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"], seeds=8, shares="rlx2-td3",
    budget_changes={"medium": {"envs": ["Hopper-v5"]}})


def _sparsity(level: float) -> str | dict[str, Any]:
    return "dense" if level == 0 else {"method": "static", "actor_sparsity": level, "critic_sparsity": level}


REPRODUCTIONS["scaling"] = Reproduction(
    "Scaling (Ma et al. 2025): dense and one-shot sparse SAC-SimBa over a grid of critic sizes",
    preset="scaling-simba",
    axes={"critic_width": [256, 512, 1024], "critic_blocks": [2, 4],
          "sparsity": [_sparsity(s) for s in (0, 0.5, 0.8, 0.9)]},
    envs=["dm_control/humanoid-walk-v0", "dm_control/dog-run-v0", "dm_control/humanoid-run-v0",
          "dm_control/dog-walk-v0"], seeds=5, report="scaling",
    budget_changes={
        # a cheap DMC task and widths a CPU trains in minutes; one block, actor 64
        "small": {"envs": ["dm_control/cartpole-swingup-v0"], "steps": (8_000, 2_000), "seeds": 1,
                  "axes": {"critic_width": [64, 128, 256], "sparsity": [_sparsity(s) for s in (0, 0.5, 0.8, 0.9)]},
                  "base": {"actor_width": 64, "critic_blocks": 1, "diagnostics_every": 2_500}},
        # three widths on one task, dense against Ma et al.'s 80 % and 90 %, 5 seeds, with the
        # plasticity diagnostics (srank, dormant ratio)
        "medium": {"envs": ["dm_control/cheetah-run-v0"],
                   "axes": {"critic_width": [128, 256, 512], "sparsity": [_sparsity(s) for s in (0, 0.8, 0.9)]},
                   "seeds": 5, "base": {"diagnostics_every": 10_000}},
    })


REPRODUCTIONS["streaming"] = Reproduction(
    "Streaming RL (Ma et al. 2025, §5): Stream AC(lambda) dense, with SparseInit (zeros that may regrow) "
    "and with a fixed random 90 % mask, as the networks widen",
    axes={"preset": ["stream-ac-dense", "stream-ac", "stream-ac-static"],
          "hidden": [[128, 128], [512, 512], [1024, 1024]]},
    envs=["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5"], seeds=5, report="scaling",
    base={"eval_every": 10_000, "checkpoint_every": 50_000, "score_window": 10},
    budget_changes={
        "small": {"steps": (100_000, 0), "seeds": 2, "axes": {"preset": ["stream-ac-dense", "stream-ac",
                                                                          "stream-ac-static"],
                                                               "hidden": [[128, 128], [512, 512]]}},
        # the widths a 2-core machine trains 1M steps of in about a day per seed and task (BENCHMARKS.md)
        "medium": {"steps": (1_000_000, 0), "seeds": 2, "axes": {"preset": ["stream-ac-dense", "stream-ac",
                                                                             "stream-ac-static"],
                                                                  "hidden": [[128, 128], [512, 512]]}},
        "paper": {"steps": (2_000_000, 0)},
    })


def _steps(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def budgets_help() -> str:
    """One line per budget for the command line, from BUDGETS (and streaming's own steps)."""
    def text(name: str, b: Budget) -> str:
        if b.total_steps is None:
            return f"{name}: the paper's schedules, tasks and seeds"
        tasks = "one task" if b.tasks == 1 else f"{b.tasks} tasks"
        stream = REPRODUCTIONS["streaming"].budget_changes.get(name, {})
        note = f" (streaming: {_steps(stream['steps'][0])} steps, {stream['seeds']} seeds)" if "seeds" in stream else ""
        return f"{name}: {_steps(b.total_steps)} steps, {b.seeds} seeds, {tasks}{note}"
    return "; ".join(text(name, b) for name, b in BUDGETS.items()) + "."


def reproduction_spec(paper: str, budget: str = "small", envs: list[str] | None = None, seeds: int | None = None,
                      output: str | None = None, precision: str | None = None) -> SweepSpec:
    """The sweep spec of `paper`'s comparison at `budget` (tasks, seed count and the updates'
    precision may be overridden)."""
    if paper not in REPRODUCTIONS:
        raise ConfigError(f"unknown paper {paper!r}; reproductions exist for {', '.join(REPRODUCTIONS)}")
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    if seeds is not None and seeds < 1:
        raise ConfigError(f"seeds must be a positive integer, got {seeds}")
    r, b = REPRODUCTIONS[paper], BUDGETS[budget]
    changes = r.budget_changes.get(budget, {})
    envs = envs or changes.get("envs") or (r.envs[: b.tasks] if b.tasks else r.envs)
    axes = changes.get("axes", r.axes)
    seeds = seeds or changes.get("seeds") or b.seeds or r.seeds
    base = {**r.base, **changes.get("base", {})}
    if b.eval_every and "eval_every" not in r.base:
        base.update(eval_every=b.eval_every, checkpoint_every=b.eval_every * 4)
    if b.score_window and "score_window" not in r.base:
        base["score_window"] = b.score_window
    if precision is not None:
        base["precision"] = precision
    data: dict[str, Any] = {
        "name": f"reproduce-{paper}-{budget}",
        "preset": r.preset, "base": base,
        "axes": {"env": list(envs), **axes, "seed": list(range(seeds))},
        "threads": 1, "output": output}
    if r.shares:
        data["reuse"] = [f"studies/reproduce-{r.shares}-{budget}"]
    total, start = changes.get("steps", (b.total_steps, b.start_steps))
    if total:
        data["budget"] = {"total_steps": total, "start_steps": start}
    return spec_from_dict(data, source=f"reproduction {paper} ({budget})")
