"""Presets (each paper is a YAML file of config keys in sparserl/presets) and YAML config files.

A preset may `extends:` another (sparsity keys merge) and may hold `per_env:` settings (e.g. RLx2's
sparsities per task; `per_env: null` drops the parent's). Files are read as plain mappings here and
merged and typed by sparserl.config.resolve.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sparserl.config.merge import merged
from sparserl.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file's contents; errors name `what` it is (e.g. "config file"), the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not a text file (byte {exc.start} is not UTF-8): give a "
                          f"YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML{where}: {problem}") from None


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's mapping of config keys, uncoerced; errors name the file, line and problem."""
    data = read_yaml(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of config keys, "
                          f"got {type(data).__name__}")
    return data


def list_presets() -> list[str]:
    """Names of the presets shipped with sparserl."""
    folder = resources.files("sparserl") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_header(name: str) -> tuple[str, str]:
    """A preset's one-line description and its source (its first comment line and `# source:` line)."""
    text = (resources.files("sparserl") / "presets" / f"{name}.yaml").read_text()
    comments = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    source = next((c.split(":", 1)[1].strip() for c in comments if c.lower().startswith("source:")), "")
    description = next((c for c in comments if not c.lower().startswith("source:")), "")
    return description, source


def _preset_data(name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    names = list_presets()
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=3)
        did_you_mean = f" Did you mean {', '.join(hint)}?" if hint else ""
        raise ConfigError(f"unknown preset {name!r}.{did_you_mean} Available presets: {', '.join(names)}")
    if name in chain:
        raise ConfigError(f"preset {name!r} extends itself ({' -> '.join(chain + (name,))})")
    with resources.as_file(resources.files("sparserl") / "presets" / f"{name}.yaml") as path:
        data = read_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = _preset_data(parent, chain + (name,))
    base_envs = base.pop("per_env", None) or {}
    if "per_env" in data and data["per_env"] is None:  # `per_env: null` drops the parent's table
        data.pop("per_env")
        base_envs = {}
    per_env = {**base_envs, **(data.pop("per_env", None) or {})}
    out = merged(base, data)
    if per_env:
        out["per_env"] = per_env
    return out


def preset_envs(name: str) -> list[str] | None:
    """The environments a preset has settings for, or None if it applies to any environment."""
    per_env = _preset_data(name).get("per_env")
    return list(per_env) if per_env else None


def load_preset(name: str, env: str | None = None) -> dict[str, Any]:
    """A preset's config values (a plain mapping, sparsity keys in their section), with the `per_env`
    settings of `env` (default: the preset's own env) applied; an environment it has none for is an
    error that lists those it has."""
    data = _preset_data(name)
    per_env = data.pop("per_env", None)
    if per_env:
        env = env or data.get("env")
        if env not in per_env:
            raise ConfigError(f"preset {name!r} has no settings for {env}; it has them for "
                              f"{', '.join(per_env)} (pass one of these with --env)")
        data = merged(data, {**per_env[env], "env": env})
    return data


