"""Accounting: per-layer and total density, model size, inference and training FLOPs (the measures
RLx2, Tan et al. 2023 §5, and RigL, Evci et al. 2020 Appendix H, report).

- Model size (RLx2 convention): non-zero weight-matrix entries of the networks and their targets,
  divided by the dense count (biases and norms excluded).
- Inference FLOPs: multiply-adds of one forward pass of the policy's networks (the actor; a pixel
  agent's encoder too) relative to dense: each layer's kept weights times the times they are applied
  per sample (a convolution's output positions, 1 for a linear layer), so an MLP's is its density.
- Training FLOPs (RigL convention): each optimiser step costs a forward, an input-gradient and a
  weight-gradient pass, each scaled by the layer densities, as the method's `training_flops` rule
  says (dense weight gradients under STE and SR-STE, RigL's dense gradient at each topology update,
  GMP's time-averaged sparsity). Networks are weighted by their optimiser steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sparserl.sparsity.engine import Sparsifier
from sparserl.sparsity.group import Group


@dataclass
class LayerLine:
    network: str
    layer: str
    shape: str
    """One member's weight shape, out x fan_in."""
    kept: int
    total: int
    members: int = 1
    """Ensemble members of the layer (twin critics: 2; a population of K agents multiplies them by K)."""

    @property
    def density(self) -> float:
        return self.kept / self.total

    @property
    def label(self) -> str:
        return self.shape if self.members == 1 else f"{self.members}x({self.shape})"


@dataclass
class SparsityReport:
    method: str
    layers: list[LayerLine]
    density: dict[str, float]
    """Kept fraction of each network's weight matrices."""
    model_size: float
    inference_flops: float
    training_flops: float
    policy_bytes: int | None = None
    """Size of the saved policy file, when there is one."""

    def to_dict(self) -> dict:
        out = asdict(self)
        for line, layer in zip(out["layers"], self.layers):
            line["density"] = layer.density
        return out

    def lines(self) -> list[str]:
        """A plain-text table: one line per layer, then the totals."""
        name = max([22, *(len(line.layer) for line in self.layers)])
        shape = max([14, *(len(line.label) for line in self.layers)])
        out = [f"sparsity: {self.method}",
               f"  {'network':<8} {'layer':<{name}} {'shape':<{shape}} {'density':>8} {'kept':>9}"]
        for line in self.layers:
            out.append(f"  {line.network:<8} {line.layer:<{name}} {line.label:<{shape}} {line.density:>8.3f} "
                       f"{line.kept:>9,d}")
        out.append("  " + ", ".join(f"{name} density {value:.3f}" for name, value in self.density.items()))
        out.append(f"  model size {self.model_size:.3f}x dense (networks and targets), inference FLOPs "
                   f"{self.inference_flops:.3f}x, training FLOPs {self.training_flops:.3f}x")
        if self.policy_bytes is not None:
            out.append(f"  policy file {self.policy_bytes:,} bytes (dense storage)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _kept(group: Group, agent: int | None) -> list[int]:
    """Kept weights of each layer (of one agent's members, for `agent`)."""
    share = 1 if agent is None else group.agents
    kept = [layer.shape.numel // share for layer in group.layers]
    for i, (index, mask) in enumerate(zip(group.sparse, group.masks)):
        kept[index] = int(mask.sum()) if agent is None else int(group.agent_sums(i, mask)[agent])
    return kept


def _for_agent(group: Group, agent: int | None) -> Group:
    """`group` as the FLOPs rules see one agent's network: its own level."""
    if agent is None or len(group.levels) == 1:
        return group
    return replace(group, levels=(group.levels[agent],), budgets=[group.budgets[agent]])


def sparsity_report(sparsifier: Sparsifier, inference: str | tuple[str, ...] | None = None,
                    agent: int | None = None) -> SparsityReport:
    """The accounting of every attached network; inference FLOPs are those of the networks
    `inference` (default: the first attached). `agent`: that agent's share of networks that hold a
    population (its members only, at its own level)."""
    config, method = sparsifier.config, sparsifier.method
    lines, density = [], {}
    size_kept = size_total = 0.0
    train_sparse = train_dense = 0.0
    inference = inference or next(iter(sparsifier.groups), None)
    inference = (inference,) if isinstance(inference, str) else tuple(inference or ())
    inference_sparse = inference_dense = 0.0
    for group in sparsifier.groups.values():
        share = 1 if agent is None else group.agents
        kept = _kept(group, agent)
        totals = [layer.shape.numel // share for layer in group.layers]
        for layer, k, total in zip(group.layers, kept, totals):
            shape = "x".join(str(d) for d in layer.view(layer.param.detach()).shape[1:])
            lines.append(LayerLine(group.name, layer.name, shape, k, total, layer.shape.members // share))
        density[group.name] = sum(kept) / sum(totals)
        copies = 1 + len(group.targets)
        size_kept += copies * sum(kept)
        size_total += copies * sum(totals)

        dense_f = float(sum(t * u for t, u in zip(totals, group.uses)))
        sparse_f = float(sum(k * u for k, u in zip(kept, group.uses)))
        if group.name in inference:
            inference_sparse, inference_dense = inference_sparse + sparse_f, inference_dense + dense_f
        steps = float(group.total_steps or 1)
        train_sparse += steps * method.training_flops(_for_agent(group, agent), dense_f, sparse_f)
        train_dense += steps * 3 * dense_f
    inference_ratio = inference_sparse / inference_dense if inference_dense else 1.0
    return SparsityReport(config.method, lines, density, size_kept / size_total, inference_ratio,
                          train_sparse / train_dense)
