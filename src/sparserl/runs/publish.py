"""What a run publishes beside its logs: the deployable policy file (at every checkpoint) and the
sparsity accounting (sparsity.json and the console, at start and end)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from sparserl.export import export_actor
from sparserl.policy_file import POLICY_FILE
from sparserl.runs import files
from sparserl.runs.checkpoint import atomic_write


def _write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def spaces(env) -> dict:
    """Observation and action spaces for a policy file's header (the environment's own action
    bounds, which the policy's [-1, 1] actions are rescaled to)."""
    base = env.unwrapped.action_space
    if isinstance(base, gym.spaces.Discrete):
        return {"observation": {"shape": list(env.observation_space.shape)}, "action": {"n": int(base.n)}}
    return {"observation": {"shape": list(env.observation_space.shape)},
            "action": {"shape": list(base.shape), "low": np.asarray(base.low, dtype=float).tolist(),
                       "high": np.asarray(base.high, dtype=float).tolist()}}


def save_policy(trainer, path: Path, storage: str = "auto", policy=None, config=None) -> dict:
    """Export the trainer's actor (or `policy`, one agent's of a population, with its `config`) as a
    deployable policy file (atomically); returns its header."""
    c, sparsifier = config or trainer.config, trainer.sparsifier
    pattern = sparsifier.method.pattern() if sparsifier is not None else None
    source = {"env": c.env, "algo": c.algo, "step": trainer.step, "action_repeat": c.action_repeat,
              "time_feature": c.time_feature, "sparsity": c.sparsity.method, "eval_seed": c.evaluation_seed,
              "eval_episodes": c.reevaluation_episodes,
              **({"nm": list(pattern)} if pattern else {}),
              **({"pixels": dataclasses.asdict(c.pixel_settings())} if c.pixels else {})}
    return export_actor(policy or trainer.agent.policy, path, source, storage, pattern, writer=_write_atomic,
                        spaces=spaces(trainer.env))


def report_sparsity(trainer, final: bool = False):
    """Write each agent's sparsity.json and, at the start, print the (first agent's) accounting;
    returns each agent's report (None if dense)."""
    if trainer.sparsifier is None:
        return None
    from sparserl.sparsity import sparsity_report

    agents = len(trainer.logs)
    reports = [sparsity_report(trainer.sparsifier, inference=trainer.agent.policy_networks,
                               agent=k if agents > 1 else None) for k in range(agents)]
    for log, report in zip(trainer.logs, reports):
        policy = log.run_dir / POLICY_FILE
        if final and policy.is_file():
            report.policy_bytes = policy.stat().st_size
        files.write_sparsity(log.run_dir, report)
    if not final:
        trainer.console.line(str(reports[0]))
        if trainer.config.sparsity.per_agent:
            trainer.console.line("  each agent at its level: " + ", ".join(
                f"{log.run_dir.name} " + "/".join(f"{d:.3f}" for d in report.density.values())
                for log, report in zip(trainer.logs, reports)) + " (density per network)")
        if trainer.config.execution in ("csr", "auto"):
            from sparserl import native

            trainer.console.line(f"sparse execution ({trainer.config.execution}): {native.status()}")
        elif trainer.config.execution == "semi_structured":
            trainer.console.line(f"sparse execution (semi_structured): 2:4 kernels on {torch.cuda.get_device_name()}")
    return reports
