"""The sparsity section of the RL configuration: the engine's settings (SparsityConfig) plus the
level of each network the RL code attaches (actor, critics). The engine itself knows groups and
their sparsity only; this section maps the networks to levels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro

from sparserl.errors import ConfigError
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.methods import allowed, method_class, setting

#: Networks with a level of their own (`<network>_sparsity`); any other network takes the actor's.
LEVELS = ("actor", "critic")


@dataclass
class NetworkSparsity(SparsityConfig):
    """Sparsity of actor and critics: the method, its settings and each network's level."""

    method: Annotated[str, tyro.conf.arg(name="sparsity", help=f"Method: one of {allowed()}.")] = "dense"
    actor_sparsity: float | None = None
    """Fraction of the actor's weights that are zero (default: the method's, 0.9; N:M fixes it at 1 - N/M)."""
    critic_sparsity: float | None = None
    """Fraction of the critics' weights that are zero (default: the method's, 0.9; N:M fixes it at 1 - N/M)."""
    actor_levels: tuple[float, ...] = ()
    """A population's actor sparsity per agent, one level per agent (in place of actor_sparsity);
    empty: every agent at actor_sparsity."""
    critic_levels: tuple[float, ...] = ()
    """A population's critic sparsity per agent, one level per agent (in place of critic_sparsity);
    empty: every agent at critic_sparsity."""

    def level(self, network: str) -> float | tuple[float, ...]:
        """The sparsity of `network`: its level if set (and the method does not fix one), else the
        method's default; a tuple of levels, one per agent, where the agents have levels of their own."""
        if not self.enabled:
            return 0.0
        network = network if network in LEVELS else "actor"
        resolve = method_class(self.method).resolve_level
        per_agent = getattr(self, f"{network}_levels")
        if per_agent:
            return tuple(resolve(self.method, value) for value in per_agent)
        return resolve(self.method, getattr(self, f"{network}_sparsity"))

    def agent_level(self, network: str, k: int) -> float:
        """The sparsity of agent k's `network`."""
        level = self.level(network)
        return level[k] if isinstance(level, tuple) else level

    @property
    def per_agent(self) -> bool:
        """Whether a population's agents have levels of their own."""
        return bool(self.actor_levels or self.critic_levels)

    def setting(self, name: str):
        """A setting, or the method's default for it when left unset."""
        return setting(self, name)

    def problems(self) -> list[str]:
        try:
            self.validate()
            cls = method_class(self.method) if self.enabled else None
        except ConfigError as exc:
            return [str(exc)]
        out = []
        fixed = cls.fixed_level_of(self.method) if cls is not None else None
        for network in LEVELS:
            every, per_agent = getattr(self, f"{network}_sparsity"), getattr(self, f"{network}_levels")
            if every is not None and per_agent:
                out.append(f"give {network}_sparsity (every agent) or {network}_levels (one per agent), not both")
            for name, given, values in ((f"{network}_sparsity", every, [] if every is None else [every]),
                                        (f"{network}_levels", list(per_agent), list(per_agent))):
                if not values:
                    continue
                if cls is None:
                    out.append(f"{name} ({given}) has no effect on a dense run: give a sparsity method as well "
                               f"(sparsity: METHOD, --sparsity METHOD; one of {allowed()}), or leave it out")
                elif fixed is not None:
                    out.append(f"{name} does not apply to {self.method}, which fixes the sparsity at {fixed:.3f}")
                else:
                    out += [f"{name} must be in [0, 1), got {v!r}" for v in values if not (0.0 <= v < 1.0)]
        return out
