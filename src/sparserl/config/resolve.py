"""Resolution of a run's configuration, the one function behind the CLI, sweeps and the Python API:

    dataclass defaults < preset < config file < overrides (flags, sweep axes, keyword arguments)

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
    return coerce_fields(merged(*(values for values, _ in layers)), "configuration", Config)


def resolve_config(preset: str | None = None, config_file: str | Path | None = None, **overrides: Any) -> Config:
    """Defaults < preset < config file < overrides, validated."""
    return Config(**resolve_values(preset, config_file, overrides)).validate()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file of config keys, typed; errors name the file, line and problem."""
    return coerce_fields(read_mapping(path), str(Path(path)), Config)
