"""Sparsity methods, one file each, and their registry.

    from sparserl.sparsity.methods import Method, register_method

    @register_method
    class Mine(Method):
        '''What it does, with its paper's numbers.'''
        name = "mine"
        defaults = {"sparsity": 0.8}

A registered method works everywhere a built-in does: `--sparsity mine` on the command line, YAML
files, sweeps, resume, export, accounting and the conformance tests. A class with a clashing name,
no docstring, defaults that are not settings, or a FLOPs rule that does not give a sane number is
refused at registration with a message naming it.
"""

from __future__ import annotations

import dataclasses

import torch

from sparserl.errors import ConfigError
from sparserl.registry import Registry
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.methods.base import Method, State, load_state, save_state, to_param_layout, transient
from sparserl.sparsity.methods.drop_grow import DropAndGrow
from sparserl.sparsity.methods.shadow import DenseShadow

SETTINGS = {f.name for f in dataclasses.fields(SparsityConfig) if f.default is None}
"""Settings a method may give defaults for: those a user leaves at None (unset)."""


def _check(name: str, cls: type) -> None:
    where = f"sparsity method {name!r} ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, Method)) or cls.name != name:
        raise ConfigError(f"{where}: a method is a subclass of sparserl.sparsity.methods.Method with name = {name!r}")
    if not (cls.__doc__ or "").strip():
        raise ConfigError(f"{where}: give the class a docstring (its rule and its paper's numbers)")
    if "defaults" not in cls.__dict__:
        raise ConfigError(f"{where}: give it `defaults` (a dict, empty if none)")
    defaults = cls.__dict__["defaults"]
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: `defaults` must be a dict of settings, got {defaults!r}")
    unknown = sorted({*defaults} - SETTINGS - {"sparsity"})  # (`set` here is the module set.py)
    if unknown:
        raise ConfigError(f"{where}: defaults name unknown settings {unknown} (allowed: sparsity, "
                          f"{', '.join(sorted(SETTINGS))})")
    level = defaults.get("sparsity", 0.0)
    if not isinstance(level, (int, float)) or not 0.0 <= level < 1.0:
        raise ConfigError(f"{where}: its default sparsity must be in [0, 1), got {level!r}")
    if not (dataclasses.is_dataclass(cls.State) and issubclass(cls.State, State)):
        raise ConfigError(f"{where}: State must be a dataclass subclass of sparserl.sparsity.methods.State")
    try:
        cls.parse(cls.example or name)
        method = cls(SparsityConfig(method=cls.example or name), torch.Generator())
        probe = _Probe(cls.State(), (method.level(None),))
        flops = [float(method.training_flops(probe, 1.0, density)) for density in (0.1, 0.5)]
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (any failure of a user's rule is reported, naming it)
        raise ConfigError(f"{where}: its FLOPs rule or method string failed on a probe: "
                          f"{type(exc).__name__}: {exc}") from None
    if not all(0.0 < f <= 6.0 for f in flops):
        raise ConfigError(f"{where}: training_flops must give a positive cost of at most twice the dense one "
                          f"(3 passes of the dense forward = 3.0); it gave {flops} at densities 0.1 and 0.5")


@dataclasses.dataclass
class _Probe:
    """The parts of a group a FLOPs rule may read, for the registration check."""

    state: State
    levels: tuple[float, ...]
    total_steps: int = 1000
    step: int = 0
    name: str = "probe"


METHODS: Registry[type[Method]] = Registry("sparsity method", check=_check)


def register_method(cls: type[Method]) -> type[Method]:
    """Register a method class under its `name` (usable as a decorator)."""
    return METHODS.register(getattr(cls, "name", ""), cls)


def method_class(method: str) -> type[Method]:
    """The registered class of a method string such as "rigl" or "nm:2:4"; validates its arguments."""
    name = method.split(":")[0]
    if name not in METHODS:
        raise ConfigError(f"unknown sparsity method {method!r}; allowed: {allowed()}")
    cls = METHODS.get(name)
    if ":" in method and not cls.usage:
        takers = [c for _, c in METHODS.items() if c.usage]
        raise ConfigError(f"sparsity method {method!r}: only {' and '.join(c.name for c in takers)} takes numbers "
                          f"({', '.join(c.usage for c in takers)})")
    cls.parse(method)
    return cls


def allowed() -> str:
    """The method strings a user may write, for messages and help."""
    entries = [cls.usage or name for name, cls in METHODS.items()]
    return ", ".join(["dense", *(f"{e} (e.g. {METHODS.get(e.split(':')[0]).example})" if ":" in e else e
                                 for e in entries)])


def make_method(config: SparsityConfig, generator: torch.Generator) -> Method:
    return method_class(config.method)(config, generator)


def setting(config: SparsityConfig, name: str):
    """A setting of `config`, or its method's default when left unset (None for dense)."""
    if not config.enabled:
        return getattr(config, name)
    return method_class(config.method).setting_of(config, name)


from sparserl.sparsity.methods.gmp import GMP  # noqa: E402  (the built-ins register after the registry exists)
from sparserl.sparsity.methods.nm import NM  # noqa: E402
from sparserl.sparsity.methods.rigl import RigL  # noqa: E402
from sparserl.sparsity.methods.set import SET  # noqa: E402
from sparserl.sparsity.methods.static import Static  # noqa: E402

for _builtin in (Static, RigL, SET, GMP, NM):
    register_method(_builtin)

__all__ = ["GMP", "METHODS", "NM", "SET", "DenseShadow", "DropAndGrow", "Method", "RigL", "State", "Static",
           "allowed", "load_state", "make_method", "method_class", "register_method", "save_state",
           "setting", "to_param_layout", "transient"]
