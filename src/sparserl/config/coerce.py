"""YAML values to typed configuration fields, and the one rule that folds flat sparsity keys into
their section.

Sparsity settings may be written as a section (``sparsity: {method: rigl, actor_sparsity: 0.9}``),
as a method name (``sparsity: nm:2:4``) or as flat keys beside the others, as the flags are
(``actor_sparsity: 0.9``); `fold_sparsity` turns all three into the section form.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import fields
from typing import Any, Literal

from sparserl.errors import ConfigError


def _section_type(cls: type) -> type | None:
    """The dataclass type of `cls`'s `sparsity` field, if it has one."""
    hints = typing.get_type_hints(cls, include_extras=False)
    tp = hints.get("sparsity")
    return tp if tp is not None and dataclasses.is_dataclass(tp) else None


def section_keys(cls: type) -> frozenset[str]:
    """The keys of `cls`'s sparsity section (empty if it has none)."""
    section = _section_type(cls)
    return frozenset(f.name for f in fields(section)) if section else frozenset()


def fold_sparsity(values: dict[str, Any], keys: frozenset[str], source: str = "config") -> dict[str, Any]:
    """`values` with its sparsity settings gathered in one `sparsity` mapping (a method name becomes
    {method: name}; flat keys move in; an empty section is dropped)."""
    out = dict(values)
    section = out.pop("sparsity", {})
    if isinstance(section, str):
        section = {"method": section}
    elif dataclasses.is_dataclass(section):
        section = dataclasses.asdict(section)
    elif section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: sparsity must be a method name (e.g. nm:2:4) or a mapping, got {section!r}")
    section = dict(section)
    for key in [k for k in out if k in keys and k != "method"]:
        section[key] = out.pop(key)
    if section:
        out["sparsity"] = section
    return out


def coerce_fields(data: dict[str, Any], source: str, cls: type) -> dict[str, Any]:
    """Validate keys against dataclass `cls` and convert YAML values to the declared field types;
    for a class with a sparsity section, flat sparsity keys are folded into it first."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    keys = section_keys(cls)
    if keys:
        data = fold_sparsity(data, keys, source)
    types_ = typing.get_type_hints(cls, include_extras=False)
    known = [f.name for f in fields(cls)] + sorted(keys)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types_:
            hint = difflib.get_close_matches(str(key), known, n=3)
            did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
            raise ConfigError(f"{source}: unknown config key {key!r}{did_you_mean} "
                              f"(run `sparserl train --help` for all keys)")
        out[key] = _coerce(key, value, types_[key], source)
    return out


def _coerce(name: str, value: Any, tp: Any, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return tp(**coerce_fields(value, f"{source}: {name}", tp))
    bad = ConfigError(f"{source}: {name} must be {_describe(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], source)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(name, v, args[0], source) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # exact, however large (a float cannot hold every integer)
        number = _number(value)
        if number is None or float(number) != int(number):
            raise bad
        return int(number)
    if tp is float:
        number = _number(value)
        if number is None:
            raise bad
        return float(number)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    return value


def _number(value: Any) -> float | int | None:
    """Numbers, plus strings such as '1e6' that YAML 1.1 leaves as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return None
    return None


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))
