"""SimBa and BroNet bodies (for scaling studies), and running observation normalisation.

SimBa (Lee et al., ICLR 2025), as scaled by Ma et al. 2025:
    Dense(in -> h) -> blocks x [x + Dense(4h -> h)(ReLU(Dense(h -> 4h)(LayerNorm(x))))] -> LayerNorm -> head
with orthogonal initialisation (gain 1) of the first layer and the head and He-normal initialisation
of the block layers. Parameters: (in + 1) h + blocks (8 h^2 + 7 h) + 2 h + (h + 1) out; humanoid's
default actor (h 128, 1 block, 2 x 21 outputs) has 146 346, its critic (h 512, 2 blocks) 4 248 577.

BroNet (Nauman et al., NeurIPS 2024): Dense(in -> h) -> LayerNorm -> ReLU -> blocks x
[x + LayerNorm(Dense(ReLU(LayerNorm(Dense(x)))))] -> head, orthogonal initialisation (gain sqrt 2).

Every body is an ensemble of E members (E independent networks in batched matmuls, as QEnsemble):
(B, in) or (E, B, in) in, (E, B, out) out. Norms and biases are ordinary dense parameters; only the
EnsembleLinear weights are sparsifiable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sparserl.nets.mlp import EnsembleLinear


class RunningNorm(nn.Module):
    """Per-dimension running mean and variance (parallel Welford, initial count 1e-4), applied as
    (x - mean) / sqrt(var + 1e-8). Statistics are buffers: checkpointed, never learned."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).double()
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean.double()
        mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean.copy_(mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a separate scale and shift per ensemble member."""

    def __init__(self, width: int, members: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))

    def forward(self, x: torch.Tensor, detach: bool = False, member: int | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if member is not None:
            weight, bias = weight[member:member + 1], bias[member:member + 1]
        if detach:
            weight, bias = weight.detach(), bias.detach()
        return F.layer_norm(x, x.shape[-1:]) * weight + bias


def _init(layer: EnsembleLinear, kind: str, gain: float = 1.0) -> EnsembleLinear:
    with torch.no_grad():
        for m in range(layer.ensemble_size):
            if kind == "orthogonal":
                nn.init.orthogonal_(layer.weight_oi[m], gain=gain)
            else:  # He-normal for ReLU layers
                nn.init.kaiming_normal_(layer.weight_oi[m], nonlinearity="relu")
        layer.bias.zero_()
    return layer


class ResidualBody(nn.Module):
    """A SimBa or BroNet body of E members with `blocks` residual blocks of width `width`."""

    def __init__(self, in_dim: int, out_dim: int, width: int, blocks: int, members: int = 1, kind: str = "simba"):
        super().__init__()
        if kind not in ("simba", "bronet"):
            raise ValueError(f"unknown residual body {kind!r}; use simba or bronet")
        self.kind, self.width, self.blocks_count = kind, width, blocks
        gain = 1.0 if kind == "simba" else math.sqrt(2.0)
        init = "he" if kind == "simba" else "orthogonal"
        self.embed = _init(EnsembleLinear(in_dim, width, members), "orthogonal", gain)
        inner = 4 * width if kind == "simba" else width
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            block = nn.ModuleDict({
                "norm1": EnsembleLayerNorm(width if kind == "simba" else inner, members),
                "fc1": _init(EnsembleLinear(width, inner, members), init, gain),
                "fc2": _init(EnsembleLinear(inner, width, members), init, gain),
            })
            if kind == "bronet":
                block["norm2"] = EnsembleLayerNorm(width, members)
            self.blocks.append(block)
        self.norm = EnsembleLayerNorm(width, members)  # SimBa's final norm; BroNet's norm after the embedding
        self.head = _init(EnsembleLinear(width, out_dim, members), "orthogonal", gain)

    def trunk(self, x: torch.Tensor, detach: bool = False, member: int | None = None,
              record: list | None = None, point: str = "post") -> torch.Tensor:
        """The features before the head; `record` collects hidden outputs for diagnostics."""
        kw = {"detach": detach, "member": member}
        x = self.embed(x, **kw)
        if record is not None and point == "pre":
            record.append(x)
        if self.kind == "bronet":
            x = torch.relu(self.norm(x, **kw))
            if record is not None and point == "post":
                record.append(x)
        for block in self.blocks:
            if self.kind == "simba":
                pre = block["fc1"](block["norm1"](x, **kw), **kw)
                hidden = torch.relu(pre)
                out = block["fc2"](hidden, **kw)
            else:
                pre = block["fc1"](x, **kw)
                hidden = torch.relu(block["norm1"](pre, **kw))
                out = block["norm2"](block["fc2"](hidden, **kw), **kw)
            if record is not None:
                record.append(pre if point == "pre" else hidden)
            x = x + out
            if record is not None and point == "pre":
                record.append(out)
        if self.kind == "simba":
            x = self.norm(x, **kw)
        if record is not None:
            record.append(x)  # the features (srank, feature norm)
        return x

    def forward(self, x: torch.Tensor, detach: bool = False, member: int | None = None) -> torch.Tensor:
        return self.head(self.trunk(x, detach, member), detach=detach, member=member)

    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        record: list[torch.Tensor] = []
        self.trunk(x, record=record, point=point)
        return record
