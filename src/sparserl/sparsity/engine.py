"""The sparsity engine: masks for any set of networks, kept by their optimisers' step hooks.

    sparsifier = Sparsifier(SparsityConfig(method="rigl", actor_sparsity=0.9), seed=0)
    sparsifier.attach("actor", actor, actor_optimizer, targets=[actor_target], total_steps=500_000)
    ...  loss.backward(); actor_optimizer.step()      # masks are enforced inside step()
    ...  polyak(actor_target, actor); sparsifier.after_target_update()

`attach` chooses each layer's budget, builds the initial masks, zeroes pruned weights in the
network and its targets, and registers a pre- and a post-hook on the optimiser. The method object
(one file per method in sparserl.sparsity.methods) decides what happens around each step:
masking gradients, topology updates, N:M re-projection. Networks and algorithms know nothing of
the method; the only call an algorithm makes is `after_target_update()` after Polyak averaging.

Masks live in the engine (float tensors shaped like the weights), with counters and the engine's
RNG, in `state_dict`, so a checkpointed run resumes exactly.
"""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from sparserl.errors import ConfigError
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.group import Group
from sparserl.sparsity.layers import SparseLayer, find_sparse_layers
from sparserl.sparsity.methods import load_state, make_method, save_state


class Sparsifier:
    """Keeps the masks of any number of networks; see the module docstring."""

    def __init__(self, config: SparsityConfig, seed: int = 0, agents: int = 1):
        """`agents`: how many independent agents the attached networks hold as ensemble members
        (a population's K; member m of each layer is agent m % agents's); statistics are per agent."""
        self.config = config.validate()
        self.agents = agents
        self.generator = torch.Generator().manual_seed(seed)
        self.method = make_method(self.config, self.generator)
        self.groups: dict[str, Group] = {}

    # --- attaching ----------------------------------------------------------------------------
    def attach(self, name: str, module: nn.Module, optimizer: torch.optim.Optimizer,
               targets: list[nn.Module] | tuple = (), sparsity: float | tuple[float, ...] | None = None,
               total_steps: int | None = None, uses: dict[str, int] | None = None) -> Group:
        """Put `module` (trained by `optimizer`, with Polyak copies `targets`) under the engine.

        `sparsity` is the network's global sparsity (None: the method's default level; N:M fixes it),
        or one level per agent; `total_steps` the optimiser steps it will take, which scheduled
        methods (RigL, SET, GMP) need; `uses` the times a layer's weights are applied per sample where
        that is not once (a convolution's output positions, by weight name), for the FLOPs accounting.
        """
        if name in self.groups:
            raise ConfigError(f"a network named {name!r} is already attached")
        layers = find_sparse_layers(module)
        if not layers:
            raise ConfigError(f"{name}: no Linear, Conv or ensemble layer to sparsify")
        in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
        for layer in layers:
            if id(layer.param) not in in_optimizer:
                raise ConfigError(f"{name}: {layer.name} is not trained by the optimiser given to attach()")
        levels = self._levels(name, layers, sparsity)
        budgets = [self.method.densities(name, module, layers, level) for level in levels]
        unknown = sorted(set(uses or {}) - {layer.name for layer in layers})
        if unknown:
            raise ConfigError(f"{name}: uses given for {', '.join(unknown)}, which are not sparsifiable layers of it")
        group = Group(name, module, optimizer, list(targets), layers, budgets, total_steps,
                      [int((uses or {}).get(layer.name, 1)) for layer in layers], levels, self.agents,
                      state=self.method.State())
        group.sparse = [i for i in range(len(layers)) if min(budget[i] for budget in budgets) < 1.0]
        group.params = [layers[i].param for i in group.sparse]
        target_params = [dict(t.named_parameters()) for t in group.targets]
        group.target_weights = [[tp[layers[i].name] for i in group.sparse] for tp in target_params]
        group.flips = torch.zeros(len(group.sparse), self.agents)
        self.method.check(group)
        with torch.no_grad():
            group.masks = [self.method.initial_mask(group, k) for k in range(len(group.sparse))]
            if group.sparse:  # a network kept wholly dense takes no part in the method's hooks
                self.method.setup(group)
            for layer, mask in zip(group.sparse_layers, group.masks):
                layer.param.mul_(mask)
            for weights in group.target_weights:
                for weight, mask in zip(weights, group.masks):
                    weight.mul_(mask)
        if group.sparse:
            group.hooks = [optimizer.register_step_pre_hook(lambda *_: self._pre_step(group)),
                           optimizer.register_step_post_hook(lambda *_: self._post_step(group))]
        self.groups[name] = group
        return group

    def check_dense_layers(self) -> None:
        """Once every network is attached: refuse a `dense_layers` pattern that matched no layer (a
        typo would otherwise leave the layers it meant sparse)."""
        names = [f"{group.name}.{layer.name}" for group in self.groups.values() for layer in group.layers]
        unmatched = [p for p in self.config.dense_layers if not any(fnmatch.fnmatchcase(n, p) for n in names)]
        if unmatched:
            raise ConfigError(f"dense_layers: {', '.join(map(repr, unmatched))} matches no layer; "
                              f"the sparsifiable layers are {', '.join(names)}")

    def _levels(self, name: str, layers: list[SparseLayer], sparsity) -> tuple[float, ...]:
        """The network's level, or its agents' levels (one level when they are all the same)."""
        if sparsity is None or isinstance(sparsity, (int, float)):
            return (self.method.level(sparsity),)
        levels = tuple(self.method.level(level) for level in sparsity)
        if len(levels) != self.agents:
            raise ConfigError(f"{name}: {len(levels)} sparsity levels given for {self.agents} agents; "
                              f"give one per agent")
        uneven = [layer.name for layer in layers if layer.shape.members % self.agents]
        if uneven:
            raise ConfigError(f"{name}: {', '.join(uneven)} cannot hold {self.agents} agents' levels "
                              f"(its members are not a multiple of {self.agents})")
        return levels if len(set(levels)) > 1 else levels[:1]

    def detach(self) -> None:
        """Remove the optimiser hooks (masks and weights stay as they are)."""
        for group in self.groups.values():
            for hook in group.hooks:
                hook.remove()
            group.hooks = []

    # --- the hooks ----------------------------------------------------------------------------
    @torch.no_grad()
    def _pre_step(self, group: Group) -> None:
        self.method.pre_step(group)

    @torch.no_grad()
    def _post_step(self, group: Group) -> None:
        self.method.post_step(group)
        group.step += 1
        if group.targets_dirty:  # masks changed: targets follow at once
            group.mask_version += 1
            self.method.mask_targets(group)

    def plain_masks(self, name: str) -> list[tuple[nn.Parameter, torch.Tensor]] | None:
        """(weight, mask) of each sparse layer of network `name` when its coming optimiser step is
        plain (Method.plain: gradients masked, nothing else); None when it is not, and the step must
        go through the optimiser's hooks. A network the engine does not hold has no masks ([]). A
        step taken outside the hooks is counted with `count_plain_step`."""
        group = self.groups.get(name)
        if group is None or not group.sparse:
            return []
        if not self.method.plain(group):
            return None
        return list(zip(group.params, group.masks))

    def count_plain_step(self, name: str) -> None:
        """Count a plain step of network `name` taken outside its optimiser's hooks."""
        group = self.groups.get(name)
        if group is not None and group.sparse:
            group.step += 1

    @torch.no_grad()
    def after_target_update(self) -> None:
        """Call after each Polyak update. With shared masks nothing is needed (averaging keeps the
        zeros); DS-TD3's magnitude-pruned target masks are recomputed here."""
        for group in self.groups.values():
            if group.sparse:
                self.method.target_update(group)

    # --- sparse execution -----------------------------------------------------------------------
    def execute_sparse(self, mode: str = "auto", batch: int = 256) -> int:
        """Run the masked layers (and their targets, when they share the masks) through CSR products
        where no dense gradient is needed (sparserl.sparsity.execution). `mode`: csr (always), auto
        (per layer, whichever measures faster at `batch`) or semi_structured (2:4 GPU kernels in the
        forward, sparserl.sparsity.semi_structured). Layers take part if they declare an `executor`
        attribute (sparserl.nets.layers.SparseExecutor); returns how many were set."""
        from sparserl.sparsity.execution import EXECUTIONS, LayerExecutor
        from sparserl.sparsity.semi_structured import SemiStructuredExecutor

        if mode not in EXECUTIONS:
            raise ConfigError(f"unknown execution {mode!r}; use one of {', '.join(EXECUTIONS)}")
        if mode == "dense":
            return 0
        count = 0
        for group in self.groups.values():
            modules = [group.module] + (group.targets if self.config.target_mask != "magnitude" else [])
            needs_dense = lambda g=group: self.method.dense_gradient_needed(g)  # noqa: E731
            for index, layer in enumerate(group.sparse_layers):
                for module in modules:
                    sub = module.get_submodule(layer.module_path)
                    if hasattr(sub, "executor"):  # layers that declare the interface (sparserl.nets.layers)
                        sub.executor = SemiStructuredExecutor(layer) if mode == "semi_structured" else \
                            LayerExecutor(group, index, layer, mode, batch, needs_dense)
                        count += 1
        return count

    # --- statistics ---------------------------------------------------------------------------
    def masks_by_param(self, name: str) -> dict[nn.Parameter, torch.Tensor]:
        """The masks of network `name`'s sparse weights, keyed by parameter (empty if not attached)."""
        group = self.groups.get(name)
        return {} if group is None else dict(zip(group.params, group.masks))

    def stat_names(self) -> tuple[str, ...]:
        """Names of the values `pop_stats` returns (metrics columns)."""
        names = []
        for group in self.groups.values():
            names.append(f"density_{group.name}")
            if self.method.changes_masks:
                names += [f"sad_{group.name}_{i}" for i in range(len(group.sparse))]
        return tuple(names)

    def pop_stats(self) -> dict[str, float]:
        """Density of each network and, per sparse layer, the mask entries changed by the latest mask
        update since the last call (SAD; 0 if there was none). One agent's; a population's are
        per agent (`pop_agent_stats`)."""
        if self.agents != 1:
            raise TypeError("the networks hold several agents, whose statistics are per agent: call pop_agent_stats")
        return self.pop_agent_stats()[0]

    def pop_agent_stats(self) -> list[dict[str, float]]:
        """`pop_stats` of each agent: its networks' densities and its layers' SAD."""
        rows = [{} for _ in range(self.agents)]
        for group in self.groups.values():
            for row, value in zip(rows, self.agent_densities(group)):
                row[f"density_{group.name}"] = value
            if self.method.changes_masks and group.sparse:
                flips = self.method.pop_flips(group).reshape(len(group.sparse), self.agents).T.tolist()
                for row, values in zip(rows, flips):
                    row.update({f"sad_{group.name}_{i}": value for i, value in enumerate(values)})
        return rows

    def density(self, group: Group) -> float:
        """Kept fraction of the network's sparsifiable weights (from the masks), all agents together."""
        return sum(self.agent_densities(group)) / group.agents

    def agent_densities(self, group: Group) -> list[float]:
        """Each agent's kept fraction of the network's sparsifiable weights (from the masks)."""
        total = sum(layer.shape.numel for layer in group.layers) / group.agents
        dense = sum(layer.shape.numel for i, layer in enumerate(group.layers) if i not in group.sparse) / group.agents
        if not group.masks:
            return [1.0] * group.agents
        kept = torch.stack([group.agent_sums(i, mask) for i, mask in enumerate(group.masks)]).sum(0)
        return [(dense + k) / total for k in kept.tolist()]

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "groups": {name: {"step": g.step, "flips": g.flips.T.clone(),  # (agents, layers)
                              "budgets": torch.tensor(g.budgets, dtype=torch.float64),
                              "masks": [m.bool() for m in g.masks],
                              "state": save_state(g.state)}
                       for name, g in self.groups.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        for name, saved in state["groups"].items():
            if name not in self.groups:
                raise ConfigError(f"checkpoint has sparsity state for {name!r}, which is not attached")
            group = self.groups[name]
            if len(saved["masks"]) != len(group.masks):
                raise ConfigError(f"{name}: checkpoint has {len(saved['masks'])} masks, this network "
                                  f"{len(group.masks)} sparse layers")
            group.step = int(saved["step"])
            group.flips.copy_(saved["flips"].reshape(group.agents, -1).T)
            if "budgets" in saved:
                group.budgets = [[float(d) for d in budget] for budget in saved["budgets"].tolist()]
            else:  # format 2: one level's densities
                group.budgets = [[float(d) for d in saved["densities"]]]
            for mask, loaded in zip(group.masks, saved["masks"]):
                mask.copy_(loaded)
            group.mask_version += 1
            load_state(group.state, saved["state"] if "state" in saved else saved["extra"])  # "extra": format 2
            if group.sparse:
                self.method.after_load(group)
