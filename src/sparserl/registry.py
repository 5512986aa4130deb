"""Registries: one per extension point (algorithms, sparsity methods, network bodies, policy
storages). Every list of names, CLI choice and error message about an extension point is derived
from its registry, so registering an entry is the only edit that adds one.

    from sparserl.registry import Registry
    COLOURS = Registry("colour")
    COLOURS.register("red", Red)
    COLOURS.get("rde")   # ConfigError: unknown colour 'rde'; did you mean red? (allowed: red)

Plugins: `load_plugins(["my_method.py", "package.module"])` imports user files or modules that
register their own entries; runs record them (the `plugins` config key), so resumed runs and sweep
workers import them again.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from sparserl.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None):
        self.kind = kind
        self._check = check
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a clash or an entry that fails the registry's check is refused."""
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"cannot register {self.kind} {name!r}: a name is letters, digits, '-' and '_'")
        if name in self._entries and self._entries[name] is not entry:
            raise ConfigError(f"cannot register {self.kind} {name!r}: that name is taken by "
                              f"{_describe(self._entries[name])}")
        if self._check is not None:
            self._check(name, entry)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and interactive sessions)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry called `name`, or a ConfigError listing the registered ones (closest first)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for a name that is not registered."""
        hint = difflib.get_close_matches(str(name), list(self._entries), n=3)
        did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
        return f"unknown {self.kind} {name!r}{did_you_mean} (allowed: {', '.join(self._entries)})"

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def _describe(entry: object) -> str:
    module, name = getattr(entry, "__module__", None), getattr(entry, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(entry)


_LOADED: dict[str, object] = {}


def load_plugins(plugins: tuple[str, ...] | list[str]) -> None:
    """Import each plugin once: a path to a .py file, or an importable module name."""
    for plugin in plugins:
        path = Path(plugin)
        key = str(path.resolve()) if plugin.endswith(".py") else plugin  # one file, however it is spelled
        if key in _LOADED:
            continue
        if plugin.endswith(".py"):
            if not path.is_file():
                raise ConfigError(f"plugin file {plugin!r} does not exist")
            module_name = f"sparserl_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except ConfigError:
                sys.modules.pop(module_name, None)
                raise
        else:
            try:
                module = importlib.import_module(plugin)
            except ImportError as exc:
                raise ConfigError(f"plugin {plugin!r} could not be imported: {exc}") from None
        _LOADED[key] = module


def absolute_plugins(plugins: tuple[str, ...]) -> tuple[str, ...]:
    """Plugin files as absolute paths (so a run's recorded plugins load from any directory)."""
    return tuple(str(Path(p).resolve()) if p.endswith(".py") else p for p in plugins)
