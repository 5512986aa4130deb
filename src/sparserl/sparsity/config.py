"""Settings of the sparsity engine: one dataclass, usable alone or as the sparsity section of the
RL configuration (which adds the per-network levels, `--actor-sparsity` and `--critic-sparsity`).

Every field is a CLI flag (``--sparsity nm:2:4``, ``--distribution er``) and a key of the
``sparsity:`` mapping in YAML files. Fields left at None take the method's default (its class's
`defaults`, sparserl.sparsity.methods), so a method name alone reproduces its paper. Which method
strings exist is the methods registry's business: this module checks each field on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from sparserl.errors import ConfigError


@dataclass
class SparsityConfig:
    """How networks are sparsified: the method and its settings. Defaults reproduce each method's paper."""

    method: Annotated[str, tyro.conf.arg(name="sparsity")] = "dense"
    """Method: dense, or a registered method (sparserl.sparsity.methods), e.g. static, rigl or nm:2:4."""
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
    dense_layers: tuple[str, ...] = ()
    """Layers kept dense, as shell-style patterns over NETWORK.WEIGHT names (e.g. ``encoder.*`` for a
    dense encoder under sparse heads, ``*.trunk.*`` for dense trunks); each must match some layer."""
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
    nm_gradient: Literal["masked", "ste", "srste", "shadow"] = "srste"
    """N:M gradient: masked (only kept weights learn; the mask never changes), ste (dense gradient to a
    dense latent weight, forward uses its projection), srste (ste plus lambda * (1 - E) * W), shadow
    (only kept weights learn; pruned ones keep their values in a dense shadow, from whose magnitudes
    the mask is re-chosen every update_interval steps)."""
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
        """The method name without its arguments (nm:2:4 -> nm)."""
        return self.method.split(":")[0]

    @property
    def enabled(self) -> bool:
        return self.kind != "dense"

    def validate(self) -> SparsityConfig:
        """Raise ConfigError naming a field's value and what is allowed (the method string itself is
        checked against the registry by sparserl.sparsity.methods.method_class)."""
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(f"sparsity method must be a name such as rigl or nm:2:4, got {self.method!r}")
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
        bad = [p for p in self.dense_layers if not isinstance(p, str) or not p.strip()]
        if bad:
            raise ConfigError(f"dense_layers must be patterns over NETWORK.WEIGHT names such as 'encoder.*', "
                              f"got {bad!r}")
        if self.layer_lambdas is not None and any(not (x > 0) for x in self.layer_lambdas):
            raise ConfigError(f"layer_lambdas must be positive, got {self.layer_lambdas!r}")
        return self
