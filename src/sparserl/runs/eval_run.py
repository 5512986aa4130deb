"""Re-evaluate the saved policy of a run directory (what `sparserl eval` does)."""

from __future__ import annotations

from pathlib import Path

from sparserl.envs import make_env
from sparserl.runs.evaluate import EvalResult, evaluate
from sparserl.runs.policy import load_policy
from sparserl.runs.trainer import load_run_config


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int | None = None) -> tuple[EvalResult, int]:
    """Evaluate `run_dir`'s policy.safetensors on a fresh environment.

    Defaults are the run's own evaluation settings, so the result matches the run's evaluation at
    the step the policy was saved. Returns the result and that step.
    """
    config = load_run_config(Path(run_dir))
    policy = load_policy(run_dir)
    episodes = config.eval_episodes if episodes is None else episodes
    if episodes < 1:
        from sparserl.errors import ConfigError
        raise ConfigError(f"episodes must be a positive integer, got {episodes}")
    if seed is None:
        seed = config.eval_seed if config.eval_seed is not None else config.seed + 100
    env = make_env(config.env, action_repeat=config.action_repeat)
    try:
        return evaluate(policy.act, env, episodes, seed), int(policy.meta.get("step", -1))
    finally:
        env.close()
