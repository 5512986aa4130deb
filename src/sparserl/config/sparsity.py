"""The sparsity section of the RL configuration: the engine's settings (SparsityConfig) plus the
level of each network the RL code attaches (actor, critics, a pixel agent's encoder). The engine
itself knows groups and their sparsity only; this section maps the networks to levels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro

from sparserl.errors import ConfigError
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.methods import allowed, method_class, setting

#: Networks with a level of their own (`<network>_sparsity`); any other network takes the actor's.
LEVELS = ("actor", "critic", "encoder")


@dataclass
class NetworkSparsity(SparsityConfig):
    """Sparsity of actor, critics and encoder: the method, its settings and each network's level."""

    method: Annotated[str, tyro.conf.arg(name="sparsity", help=f"Method: one of {allowed()}.")] = "dense"
    actor_sparsity: float | None = None
    """Fraction of the actor's weights that are zero (default: the method's, 0.9; N:M fixes it at 1 - N/M)."""
    critic_sparsity: float | None = None
    """Fraction of the critics' weights that are zero (default: the method's, 0.9; N:M fixes it at 1 - N/M)."""
    encoder_sparsity: float | None = None
    """Fraction of a pixel agent's encoder weights that are zero (default: the method's, 0.9; N:M fixes
    it at 1 - N/M; 0 keeps the encoder dense under sparse trunks and heads)."""
    actor_levels: tuple[float, ...] = ()
    """A population's actor sparsity per agent, one level per agent (in place of actor_sparsity);
    empty: every agent at actor_sparsity."""
    critic_levels: tuple[float, ...] = ()
    """A population's critic sparsity per agent, one level per agent (in place of critic_sparsity);
    empty: every agent at critic_sparsity."""
    encoder_levels: tuple[float, ...] = ()
    """A population's encoder sparsity per agent (in place of encoder_sparsity); empty: every agent
    at encoder_sparsity."""

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
        return any(getattr(self, f"{network}_levels") for network in LEVELS)

    def setting(self, name: str):
        """A setting, or the method's default for it when left unset."""
        return setting(self, name)

    def unused_levels(self, algo: str, algorithms: dict) -> list[str]:
        """A level given for a network that `algo` does not have (an encoder level on a state run);
        `algorithms`: the registered algorithm classes by name, whose `sparse_networks` say which have it."""
        networks = algorithms[algo].sparse_networks
        return [f"{network}_sparsity applies to a network {algo} does not have (its networks: {', '.join(networks)}; "
                "algorithms with one: "
                f"{', '.join(n for n, cls in algorithms.items() if network in cls.sparse_networks) or 'none'})"
                for network in LEVELS if network not in networks
                and (getattr(self, f"{network}_sparsity") is not None or getattr(self, f"{network}_levels"))]

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
