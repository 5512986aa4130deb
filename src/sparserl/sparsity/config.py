"""Settings of the sparsity engine: one dataclass, usable alone or nested in the RL Config.

Every field is a CLI flag (``--sparsity nm:2:4``, ``--actor-sparsity 0.9``, ``--distribution er``)
and a key of the ``sparsity:`` mapping in YAML files. Fields left at None take the method's
default (listed in `METHOD_DEFAULTS`), so a method name alone reproduces its paper.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from sparserl.errors import ConfigError

METHODS = ("dense", "static", "rigl", "set", "gmp", "nm")

#: Per-method defaults for fields left at None (sources: SPEC §3.3).
METHOD_DEFAULTS = {
    "static": {"sparsity": 0.9},
    # RLx2: Δ = 10 000 steps of the network's own optimiser, ζ₀ = 0.5 cosine-annealed to T_end
    "rigl": {"sparsity": 0.9, "update_interval": 10_000, "drop_fraction": 0.5, "drop_schedule": "cosine"},
    # DS-TD3 (Sokar et al. 2022): every 1 000 steps, constant η = 0.05
    "set": {"sparsity": 0.9, "update_interval": 1_000, "drop_fraction": 0.05, "drop_schedule": "constant"},
    # Zhu & Gupta cubic schedule, mask updated every 1 000 steps (Obando-Ceron et al. 2024: 95 %)
    "gmp": {"sparsity": 0.9, "update_interval": 1_000},
    # SR-STE (Zhou et al. 2021): projection recomputed every step
    "nm": {"update_interval": 1},
}


@dataclass
class SparsityConfig:
    """Sparsity of actor and critics (SPEC §3). Defaults reproduce each method's paper."""

    method: Annotated[str, tyro.conf.arg(name="sparsity")] = "dense"
    """Method: dense, static (fixed mask), rigl (RLx2 topology evolution), set (random regrowth,
    DS-TD3), gmp (gradual magnitude pruning) or nm:N:M (row-wise N:M, e.g. nm:2:4)."""
    actor_sparsity: float | None = None
    """Fraction of the actor's weights that are zero (default 0.9; N:M fixes it at 1 - N/M)."""
    critic_sparsity: float | None = None
    """Fraction of the critics' weights that are zero (default 0.9; N:M fixes it at 1 - N/M)."""
    distribution: Literal["uniform", "er", "erk"] = "er"
    """Layer budget: uniform (every layer at the global sparsity), er (Erdős–Rényi: density
    proportional to (fan_in + fan_out) / (fan_in * fan_out), overfull layers made dense), erk
    (ER with kernel dimensions, for conv layers)."""
    layer_lambdas: tuple[float, ...] | None = None
    """ER with a hand-set lambda per sparse layer instead of a solved global one (DS-TD3 uses 7, 64):
    density_l = lambda_l * (fan_in + fan_out) / (fan_in * fan_out)."""
    keep_first_dense: bool = False
    """Keep each network's first layer dense."""
    keep_last_dense: bool = False
    """Keep each network's output layer dense."""
    budget_scope: Literal["weights", "all"] = "weights"
    """What the sparsity is a fraction of: weight matrices only (RLx2) or all parameters,
    dense biases and norms included (Ma et al. 2025)."""
    mask_init: Literal["random", "magnitude"] = "random"
    """Initial mask: exactly round(density * n) positions uniformly at random, or the largest |w| of
    the fresh dense initialisation (RLx2). N:M always starts from the magnitude projection."""
    update_interval: int | None = None
    """Optimiser steps (of each network) between mask updates: RigL/SET topology updates, N:M
    re-projections (1 = every step), GMP pruning steps. 0 means never (static after init)."""
    drop_fraction: float | None = None
    """RigL/SET: initial fraction of each layer's active weights dropped and regrown per update."""
    drop_schedule: Literal["cosine", "constant"] | None = None
    """RigL/SET: how the drop fraction decays to topology_end (cosine: zeta0/2 * (1 + cos(pi t / T)))."""
    topology_end: float = 1.0
    """RigL/SET: fraction of each network's optimiser steps after which the topology is frozen."""
    skip_step_on_update: bool = False
    """RigL/SET: skip the optimiser step of an update iteration, using its gradient only to grow (RLx2)."""
    reset_moments: bool = True
    """Zero the optimiser moments of dropped and grown weights (jaxpruner); RLx2 leaves Adam's as they are."""
    nm_gradient: Literal["masked", "ste", "srste"] = "srste"
    """N:M gradient: masked (only kept weights learn; the mask never changes), ste (dense gradient to a
    dense latent weight, forward uses its projection), srste (ste plus lambda * (1 - E) * W)."""
    srste_decay: float = 2e-4
    """SR-STE lambda_W (Zhou et al. 2021)."""
    nm_partial: Literal["ceil", "dense"] = "ceil"
    """N:M when fan_in % M != 0: the last partial group of r weights keeps ceil(r * N / M), or the
    whole layer stays dense."""
    target_mask: Literal["online", "magnitude"] = "online"
    """Target networks share the online masks (RLx2, RNM-TD3), or are magnitude-pruned to the online
    count after each Polyak update (DS-TD3)."""
    gmp_start: float = 0.2
    """GMP: fraction of training at which pruning starts (Zhu & Gupta; Graesser et al. 2022)."""
    gmp_end: float = 0.8
    """GMP: fraction of training at which the final sparsity is reached."""

    # --- derived ------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The method name without N:M numbers."""
        return self.method.split(":")[0]

    @property
    def enabled(self) -> bool:
        return self.kind != "dense"

    @property
    def nm(self) -> tuple[int, int]:
        """(N, M) of an N:M method."""
        n, m = _parse_nm(self.method)
        return n, m

    def default(self, name: str):
        """A field's value, or the method's default for it."""
        value = getattr(self, name, None)
        if name in ("actor_sparsity", "critic_sparsity"):
            if self.kind == "nm":
                n, m = self.nm
                return 1.0 - n / m
            if value is None:
                return METHOD_DEFAULTS.get(self.kind, {}).get("sparsity", 0.0)
            return value
        if value is None:
            return METHOD_DEFAULTS.get(self.kind, {}).get(name)
        return value

    def validate(self) -> SparsityConfig:
        """Raise ConfigError naming the value and what is allowed."""
        kind = self.kind
        if kind not in METHODS:
            raise ConfigError(f"unknown sparsity method {self.method!r}; allowed: dense, static, rigl, set, gmp, "
                              f"nm:N:M (e.g. nm:2:4)")
        if kind == "nm":
            _parse_nm(self.method)
            for name in ("actor_sparsity", "critic_sparsity"):
                if getattr(self, name) is not None:
                    n, m = self.nm
                    raise ConfigError(f"{name} does not apply to {self.method}: N:M fixes the sparsity at "
                                      f"1 - N/M = {1 - n / m:.3f}")
        elif ":" in self.method:
            raise ConfigError(f"sparsity method {self.method!r}: only nm takes numbers (nm:N:M)")
        for name in ("actor_sparsity", "critic_sparsity"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value < 1.0):
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if self.update_interval is not None and self.update_interval < 0:
            raise ConfigError(f"update_interval must be >= 0 (0 = never), got {self.update_interval!r}")
        if self.drop_fraction is not None and not (0.0 < self.drop_fraction < 1.0):
            raise ConfigError(f"drop_fraction must be in (0, 1), got {self.drop_fraction!r}")
        if not (0.0 < self.topology_end <= 1.0):
            raise ConfigError(f"topology_end must be in (0, 1], got {self.topology_end!r}")
        if not (0.0 <= self.gmp_start < self.gmp_end <= 1.0):
            raise ConfigError(f"gmp_start and gmp_end must satisfy 0 <= start < end <= 1, "
                              f"got {self.gmp_start!r} and {self.gmp_end!r}")
        if not (math.isfinite(self.srste_decay) and self.srste_decay >= 0):
            raise ConfigError(f"srste_decay must be >= 0, got {self.srste_decay!r}")
        if self.layer_lambdas is not None and any(not (x > 0) for x in self.layer_lambdas):
            raise ConfigError(f"layer_lambdas must be positive, got {self.layer_lambdas!r}")
        return self


_NM = re.compile(r"^nm:(-?\d+):(-?\d+)$")


def _parse_nm(method: str) -> tuple[int, int]:
    match = _NM.match(method)
    if not match:
        raise ConfigError(f"N:M sparsity is written nm:N:M with integers 1 <= N < M (e.g. nm:2:4), got {method!r}")
    n, m = int(match.group(1)), int(match.group(2))
    if m < 2:
        raise ConfigError(f"{method}: M must be at least 2, got M = {m}")
    if n < 1:
        raise ConfigError(f"{method}: N must be at least 1, got N = {n}")
    if n >= m:
        raise ConfigError(f"{method}: N must be smaller than M (N = M would be dense), got N = {n}, M = {m}")
    return n, m
