"""The base of every sparsity method, and its typed per-network state.

A method decides each network's layer densities and initial masks and what happens around each of
its optimiser steps. The base keeps pruned weights at exactly 0 by masking gradients before the
step: with zero gradients and zero moments there, Adam (with or without weight decay) never moves
a pruned weight, so no pass over the weights is needed after the step; Polyak averaging then keeps
the targets' zeros as well. The base has no name and is not registered: `Static` is the base with a
name, drop-and-grow methods build on `DropAndGrow`, N:M on `DenseShadow`.

A method class states, for the registry (sparserl.sparsity.methods):
- `name` (and `usage` when the name takes arguments, e.g. ``nm:N:M``), and a docstring;
- `defaults`: values for the settings a user leaves unset (``sparsity`` is its default level);
- its FLOPs rule, `training_flops`, and its weight pattern for packed export, `pattern`;
- `State`, a dataclass of what it keeps per network: every field not marked transient is
  checkpointed by construction (`save_state` / `load_state`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from sparserl.errors import ConfigError
from sparserl.sparsity.budget import layer_densities
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.layers import SparseLayer
from sparserl.sparsity.masks import magnitude_mask, member_counts, random_mask


def transient(**kwargs):
    """A State field rebuilt at attach time or used within one step, never checkpointed
    (give `default` or `default_factory`)."""
    return field(metadata={"transient": True}, **kwargs)


@dataclass
class State:
    """What a method keeps per network. `updated`: a mask update happened since the last
    `pop_flips` (then SAD is reported)."""

    updated: bool = False


def save_state(state: State) -> dict:
    """The checkpointed fields of `state`: tensors cloned (as booleans where the field's metadata
    says ``bool``, for 0/1 masks)."""
    out = {}
    for f in dataclasses.fields(state):
        if f.metadata.get("transient"):
            continue
        value = getattr(state, f.name)
        as_saved = (lambda t: t.bool()) if f.metadata.get("bool") else (lambda t: t.clone())
        if torch.is_tensor(value):
            value = as_saved(value)
        elif isinstance(value, list):
            value = [as_saved(v) if torch.is_tensor(v) else v for v in value]
        out[f.name] = value
    return out


def load_state(state: State, saved: dict) -> None:
    """Restore checkpointed fields in place (tensors are copied into the existing ones, so views
    taken at attach time stay valid); fields a checkpoint lacks keep their values."""
    for f in dataclasses.fields(state):
        if f.metadata.get("transient") or f.name not in saved:
            continue
        current, value = getattr(state, f.name), saved[f.name]
        if torch.is_tensor(current):
            current.copy_(value)
        elif isinstance(current, list) and current and torch.is_tensor(current[0]):
            for tensor, loaded in zip(current, value):
                tensor.copy_(loaded)
        elif isinstance(current, (bool, int, float)):
            setattr(state, f.name, type(current)(value))
        else:
            setattr(state, f.name, value)


def to_param_layout(layer: SparseLayer, view_tensor: torch.Tensor) -> torch.Tensor:
    """A (members, out, fan_in) tensor written into a new tensor laid out like the layer's weight."""
    out = torch.zeros_like(layer.param, dtype=torch.float32, memory_format=torch.contiguous_format)
    layer.view(out).copy_(view_tensor)
    return out


class Method:
    """Base of the sparsity methods; see the module docstring. Subclasses override the hooks they need."""

    name: ClassVar[str] = ""
    usage: ClassVar[str] = ""
    """How the method is written where it takes arguments (``nm:N:M``); empty: its name alone."""
    example: ClassVar[str] = ""
    """A complete method string for examples and tests (default: the name)."""
    defaults: ClassVar[dict] = {}
    """Settings used where the user leaves them unset; ``sparsity`` is the default level."""
    changes_masks: ClassVar[bool] = False
    """Whether masks change during training (then SAD is logged)."""
    State: ClassVar[type[State]] = State

    def __init__(self, config: SparsityConfig, generator: torch.Generator):
        self.config, self.generator = config, generator

    # --- the method string and settings -------------------------------------------------------
    @classmethod
    def parse(cls, method: str) -> tuple:
        """The arguments of a method string (none unless the method takes them)."""
        if method != cls.name:
            raise ConfigError(f"sparsity method {method!r}: {cls.name} takes no arguments (write {cls.name})")
        return ()

    @classmethod
    def fixed_level(cls, arguments: tuple) -> float | None:
        """A sparsity level the method's arguments fix (N:M: 1 - N/M), or None."""
        return None

    @classmethod
    def fixed_level_of(cls, method: str) -> float | None:
        """The level a method string fixes, or None."""
        return cls.fixed_level(cls.parse(method))

    @classmethod
    def resolve_level(cls, method: str, sparsity: float | None) -> float:
        """A network's sparsity: the level the method string fixes, else `sparsity`, else the default."""
        fixed = cls.fixed_level_of(method)
        if fixed is not None:
            return fixed
        return float(cls.defaults.get("sparsity", 0.0) if sparsity is None else sparsity)

    @classmethod
    def setting_of(cls, config: SparsityConfig, name: str):
        """A setting of `config`, or this method's default for it when left unset (None)."""
        value = getattr(config, name, None)
        return cls.defaults.get(name) if value is None else value

    def setting(self, name: str):
        return self.setting_of(self.config, name)

    def level(self, sparsity: float | None) -> float:
        """The sparsity of a network attached with `sparsity` (None: the method's default level)."""
        return self.resolve_level(self.config.method, sparsity)

    def pattern(self) -> tuple[int, int] | None:
        """(N, M) if every masked weight row is N:M (packed policy storage), else None."""
        return None

    # --- budgets and initial masks ------------------------------------------------------------
    def forced_dense(self, name: str, layers: list[SparseLayer]) -> set[int]:
        """Indices of network `name`'s layers kept dense: first and last where asked, and every
        layer whose NETWORK.WEIGHT name matches a `dense_layers` pattern."""
        dense = {i for i, layer in enumerate(layers)
                 if any(fnmatch.fnmatchcase(f"{name}.{layer.name}", p) for p in self.config.dense_layers)}
        if self.config.keep_first_dense:
            dense.add(0)
        if self.config.keep_last_dense:
            dense.add(len(layers) - 1)
        return dense

    def densities(self, name: str, module: nn.Module, layers: list[SparseLayer], sparsity: float) -> list[float]:
        """Target density of every layer, from the configured budget at the network's `sparsity`."""
        if not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"{name}: sparsity must be in [0, 1), got {sparsity!r}")
        forced = self.forced_dense(name, layers)
        if len(forced) == len(layers):  # every layer named dense: the network is, whatever its level
            return [1.0] * len(layers)
        extra = 0
        if self.config.budget_scope == "all":
            weights = {id(layer.param) for layer in layers}
            extra = sum(p.numel() for p in module.parameters() if id(p) not in weights)
        return layer_densities([layer.shape for layer in layers], sparsity, self.config.distribution,
                               frozenset(forced), extra, self.config.layer_lambdas, owner=name)

    def check(self, group) -> None:
        """Refuse settings this method cannot run with (before any work)."""

    def require_schedule(self, group) -> None:
        """Scheduled methods need the optimiser steps the network will take (its `total_steps`)."""
        if group.total_steps is None or group.total_steps <= 0:
            raise ConfigError(f"{self.name} needs the number of optimiser steps {group.name!r} will take "
                              f"(total_steps) for its schedule")

    def initial_mask(self, group, index: int) -> torch.Tensor:
        layer = group.sparse_layers[index]
        keep = group.kept(index)
        if self.config.mask_init == "magnitude":
            view = magnitude_mask(layer.view(layer.param.detach()), keep)
        else:
            view = random_mask(layer.view(layer.param.detach()).shape, keep, self.generator, layer.param.device)
        return to_param_layout(layer, view)

    def setup(self, group) -> None:
        """Called once masks exist and before weights are masked (dense shadows copy the weights)."""

    def after_load(self, group) -> None:
        """Called after a checkpoint's masks and state were restored into `group`."""

    # --- around each optimiser step -----------------------------------------------------------
    def pre_step(self, group) -> None:
        group.mask_gradients()

    def post_step(self, group) -> None:
        pass

    def plain(self, group) -> bool:
        """Whether the coming optimiser step is plain: gradients masked by the group's masks before
        the step and nothing else around it. A compiled step (sparserl.streaming.capture) inlines
        plain steps and leaves the others to the hooks. True for the base's own hooks; a method that
        overrides them says when its steps are plain."""
        return type(self).pre_step is Method.pre_step and type(self).post_step is Method.post_step

    def dense_gradient_needed(self, group) -> bool:
        """Whether the coming optimiser step needs the gradient at pruned positions too (then sparse
        execution runs this step's products densely). Masked-gradient methods never do."""
        return False

    def interval(self) -> int:
        return int(self.setting("update_interval") or 0)

    def due(self, group) -> bool:
        """Whether the step being taken is a scheduled mask update."""
        interval = self.interval()
        return interval > 0 and (group.step + 1) % interval == 0

    # --- targets ------------------------------------------------------------------------------
    def mask_targets(self, group) -> None:
        """After a mask change: targets share the online masks (RLx2, RNM-TD3), or, for DS-TD3's
        magnitude target masks, are pruned to the online count."""
        if self.config.target_mask == "magnitude":
            self.target_update(group)
        else:
            for weights in group.target_weights:
                torch._foreach_mul_(weights, group.masks)
        group.targets_dirty = False

    def target_update(self, group) -> None:
        """After a Polyak update. Shared masks need nothing: averaging keeps the zeros. DS-TD3 prunes
        each target weight to the online active count by its own magnitudes."""
        if self.config.target_mask != "magnitude":
            return
        for weights in group.target_weights:
            for layer, weight, mask in zip(group.sparse_layers, weights, group.masks):
                keep = member_counts(layer.view(mask))
                weight.mul_(to_param_layout(layer, magnitude_mask(layer.view(weight), keep)))

    def pop_flips(self, group) -> torch.Tensor:
        """SAD per sparse layer and agent, (layers, agents): mask entries changed by the latest mask
        update, if one happened since the last call (else 0)."""
        if not group.state.updated:
            return torch.zeros(len(group.sparse), group.agents)
        group.state.updated = False
        return group.flips.clone()

    # --- accounting -----------------------------------------------------------------------------
    def training_flops(self, group, dense: float, sparse: float) -> float:
        """FLOPs of one optimiser step of `group` whose forward pass costs `dense` multiply-adds dense
        and `sparse` with its masks (RigL's convention): forward, input gradient and weight gradient,
        each at the masked cost."""
        return 3.0 * sparse
