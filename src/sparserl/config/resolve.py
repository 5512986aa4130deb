"""Resolution of a run's configuration, the one function behind the CLI, sweeps and the Python API:

    dataclass defaults < algorithm defaults < preset < config file < overrides (flags, sweep axes,
    keyword arguments)

The algorithm defaults are the chosen algorithm's `defaults` (sparserl.algos): Stream AC(lambda),
for one, starts from the streaming networks and settings of its paper rather than from TD3's.

Each layer's keys are checked with its own name in the message, then the layers are merged by
sparserl.config.merge (sparsity settings key by key) and typed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparserl.config.coerce import coerce_fields
from sparserl.config.merge import merged
from sparserl.config.presets import load_preset, read_mapping
from sparserl.config.schema import Config


def resolve_values(preset: str | None = None, config_file: str | Path | None = None,
                   overrides: dict[str, Any] | None = None, env: str | None = None,
                   overrides_source: str = "arguments") -> dict[str, Any]:
    """The merged, typed config values of the layers (not yet a validated Config). A preset with
    per-environment settings takes those of the env the later layers (or `env`) name."""
    overrides = dict(overrides or {})
    from_file = read_mapping(config_file) if config_file else {}
    layers = []
    if preset:
        env = overrides.get("env") or from_file.get("env") or env
        layers.append((load_preset(preset, env=env), f"preset {preset!r}"))
    layers += [(from_file, str(config_file)), (overrides, overrides_source)]
    for values, source in layers:
        coerce_fields(values, source, Config)  # unknown keys and wrong types, named by their layer
    user = merged(*(values for values, _ in layers))
    return coerce_fields(merged(algorithm_defaults(user), user), "configuration", Config)


def algorithm_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The `defaults` of the algorithm `values` names (td3 when none; nothing for an unknown name,
    which validation reports), after importing the plugins `values` names."""
    from sparserl.algos import ALGORITHMS
    from sparserl.registry import load_plugins

    load_plugins(tuple(values.get("plugins", ())))
    algo = values.get("algo", Config.algo)
    return dict(ALGORITHMS.get(algo).defaults) if algo in ALGORITHMS else {}


def resolve_config(preset: str | None = None, config_file: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults < preset < config file < overrides, validated."""
    return Config(**resolve_values(preset, config_file, overrides)).validate()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file of config keys, typed; errors name the file, line and problem."""
    return coerce_fields(read_mapping(path), str(Path(path)), Config)
