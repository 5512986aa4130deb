"""Re-evaluate a saved policy: a run directory's (what `sparserl eval RUN_DIR` does) or an exported
policy file (`sparserl eval --policy FILE`)."""

from __future__ import annotations

from pathlib import Path

from sparserl.deploy import load_policy
from sparserl.envs import env_info, make_env
from sparserl.envs.pixels import PixelSettings
from sparserl.errors import ConfigError
from sparserl.runs.build import make_run_env
from sparserl.runs.evaluate import EvalResult, evaluate
from sparserl.runs.files import load_run_config


def _check_episodes(episodes: int) -> None:
    if episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes}")


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int | None = None,
                 backend: str = "auto") -> tuple[EvalResult, int]:
    """Evaluate `run_dir`'s policy.safetensors on a fresh environment.

    Defaults are the run's own evaluation settings, so the result matches the run's evaluation at
    the step the policy was saved (up to float rounding where `backend` picks sparse kernels).
    Returns the result and that step.
    """
    config = load_run_config(Path(run_dir))
    policy = load_policy(run_dir, backend=backend)
    episodes = config.reevaluation_episodes if episodes is None else episodes
    _check_episodes(episodes)
    seed = config.evaluation_seed if seed is None else seed
    env = make_run_env(config)
    try:
        return evaluate(policy.act, env, episodes, seed), int(policy.meta.get("step", -1))
    finally:
        env.close()


def evaluate_policy_file(path: str | Path, env_id: str | None = None, episodes: int | None = None,
                         seed: int | None = None, backend: str = "auto") -> tuple[EvalResult, dict]:
    """Evaluate an exported policy file on `env_id` (default: the environment it was trained on).
    Episodes and seed default to the run's own evaluation protocol where the file records it (files
    of runs do), else 10 episodes from seed 0. Returns the result and the file's source description."""
    policy = load_policy(path, backend=backend)
    source = policy.meta
    episodes = int(source.get("eval_episodes", 10)) if episodes is None else episodes
    seed = int(source.get("eval_seed", 0)) if seed is None else seed
    _check_episodes(episodes)
    env_id = env_id or source.get("env")
    if not env_id:
        raise ConfigError(f"{path} does not name its environment: pass --env")
    pixels = PixelSettings(**source["pixels"]) if source.get("pixels") else None  # how a pixel run rendered
    env = make_env(env_id, action_repeat=int(source.get("action_repeat", 1)),
                   time_feature=bool(source.get("time_feature", False)), pixels=pixels)
    try:
        info = env_info(env)
        observed = info.obs_shape or (info.obs_dim,)
        if (observed, info.act_dim) != (policy.obs_shape, policy.act_dim):
            raise ConfigError(f"{path} maps observations of shape {policy.obs_shape} to {policy.act_dim} actions, "
                              f"but {env_id} has {observed} and {info.act_dim}")
        return evaluate(policy.act, env, episodes, seed), source
    finally:
        env.close()
