"""Algorithms on one shared agent base (base.py), and their registry.

    from sparserl.algos import Agent, register_algorithm

    @register_algorithm
    class Mine(TD3):
        '''What it changes.'''
        name = "mine"

A registered algorithm works everywhere a built-in does (`--algo mine`, YAML, sweeps, resume,
export). A class with a clashing name, no docstring or an unimplemented method is refused at
registration with a message naming it.
"""

from __future__ import annotations

import inspect

from sparserl.algos.base import Agent, ReplayAgent
from sparserl.errors import ConfigError, EnvError
from sparserl.registry import Registry


def _check(name: str, cls: type) -> None:
    where = f"algorithm {name!r} ({getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)})"
    if not (inspect.isclass(cls) and issubclass(cls, Agent)) or cls.name != name:
        raise ConfigError(f"{where}: an algorithm is a subclass of sparserl.algos.Agent with name = {name!r}")
    if not (cls.__doc__ or "").strip():
        raise ConfigError(f"{where}: give the class a docstring (its update rule)")
    if inspect.isabstract(cls):
        raise ConfigError(f"{where}: implement {', '.join(sorted(cls.__abstractmethods__))}")
    if not all(isinstance(s, str) for s in cls.stat_names):
        raise ConfigError(f"{where}: stat_names must be a tuple of metric names, got {cls.stat_names!r}")


ALGORITHMS: Registry[type[Agent]] = Registry("algorithm", check=_check)


def register_algorithm(cls: type[Agent]) -> type[Agent]:
    """Register an algorithm class under its `name` (usable as a decorator)."""
    return ALGORITHMS.register(getattr(cls, "name", ""), cls)


def check_action_space(algo: str, info) -> None:
    """Refuse an algorithm for an environment whose kind of action space it cannot act in."""
    if info.discrete and not ALGORITHMS.get(algo).discrete_actions:
        able = [name for name, c in ALGORITHMS.items() if c.discrete_actions]
        raise EnvError(f"{algo} needs continuous (Box) actions; {info.env_id} has {info.act_dim} discrete "
                          f"actions (algorithms for discrete actions: {', '.join(able) or 'none registered'})")


def make_agent(info, config) -> Agent:
    """The agent named by config.algo for an environment described by `info`, built on the
    config's device (every tensor it makes is made there)."""
    from sparserl.hardware import resolve_device

    check_action_space(config.algo, info)
    cls = ALGORITHMS.get(config.algo)
    with resolve_device(config.device, cls.streaming):
        return cls(info, config)


from sparserl.algos.ddpg import DDPG  # noqa: E402  (the built-ins register after the registry exists)
from sparserl.algos.drqv2 import DrQV2  # noqa: E402
from sparserl.algos.sac import SAC  # noqa: E402
from sparserl.algos.stream_ac import StreamAC  # noqa: E402
from sparserl.algos.td3 import TD3  # noqa: E402

for _builtin in (TD3, SAC, DDPG, StreamAC, DrQV2):
    register_algorithm(_builtin)

__all__ = ["ALGORITHMS", "DDPG", "SAC", "TD3", "Agent", "DrQV2", "ReplayAgent", "StreamAC", "check_action_space",
           "make_agent", "register_algorithm"]
