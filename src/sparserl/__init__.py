"""sparserl: train sparse deep-RL agents from scratch.

    from sparserl import Config, train, load_policy
    result = train(Config(env="Pendulum-v1", total_steps=20_000, start_steps=1_000))
    policy = load_policy(result.run_dir)
    action = policy.act(obs)

The top-level names are imported lazily, so `import sparserl.<part>` pulls in only what that
part needs (e.g. no Gymnasium for code that only uses networks).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "sparserl.config",
    "resolve_config": "sparserl.config",
    "train": "sparserl.runs.api",
    "resume": "sparserl.runs.api",
    "read_result": "sparserl.runs.files",
    "RunResult": "sparserl.runs.files",
    "load_policy": "sparserl.deploy",
    "Policy": "sparserl.deploy",
    "export_run": "sparserl.export",
    "evaluate_run": "sparserl.runs.eval_run",
    "make_env": "sparserl.envs",
}

if TYPE_CHECKING:
    from sparserl.config import Config, resolve_config
    from sparserl.deploy import Policy, load_policy
    from sparserl.envs import make_env
    from sparserl.export import export_run
    from sparserl.runs.api import RunResult, read_result, resume, train
    from sparserl.runs.eval_run import evaluate_run


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sparserl' has no attribute {name!r}")


__all__ = ["Config", "Policy", "RunResult", "__version__", "evaluate_run", "export_run", "load_policy", "make_env",
           "read_result", "resolve_config", "resume", "train"]
