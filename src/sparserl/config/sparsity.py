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

    def level(self, network: str) -> float:
        """The sparsity of `network`: its level if set (and the method does not fix one), else the
        method's default."""
        if not self.enabled:
            return 0.0
        value = getattr(self, f"{network}_sparsity") if network in LEVELS else self.actor_sparsity
        return method_class(self.method).resolve_level(self.method, value)

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
            name, value = f"{network}_sparsity", getattr(self, f"{network}_sparsity")
            if value is None:
                continue
            if cls is None:
                out.append(f"{name} ({value}) has no effect on a dense run: give a sparsity method as well "
                           f"(sparsity: METHOD, --sparsity METHOD; one of {allowed()}), or leave it out")
            elif fixed is not None:
                out.append(f"{name} does not apply to {self.method}, which fixes the sparsity at {fixed:.3f}")
            elif not (0.0 <= value < 1.0):
                out.append(f"{name} must be in [0, 1), got {value!r}")
        return out
