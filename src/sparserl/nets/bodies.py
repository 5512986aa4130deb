"""Training modules of the network bodies described in sparserl.architecture, built by one factory
(`make_body`) for actors (one network) and critics (an ensemble) alike.

- MLP: ReLU MLP of `Linear` layers for one network; the forward calls each layer's `run` directly
  and applies ReLU in place on the fresh layer output (the same maths as nn.Sequential, with one op
  fewer per hidden layer and no per-layer module dispatch, which matters at batch size 1).
- EnsembleMLP: the same over `EnsembleLinear` layers, E members in one batched product per layer.
- ResidualBody: SimBa or BroNet of E members (orthogonal initialisation of the first layer and the
  head, gain 1 for SimBa and sqrt 2 for BroNet; He-normal block layers for SimBa, orthogonal for
  BroNet). SimBa's parameters: (in + 1) h + blocks (8 h^2 + 7 h) + 2 h + (h + 1) out; humanoid's
  default actor (h 128, 1 block, 2 x 21 outputs) has 146 346, its critic (h 512, 2 blocks) 4 248 577.

Ensembles take (B, in) or (E, B, in) and give (E, B, out); single networks give (B, out). Norms and
biases are ordinary dense parameters; only linear weights are sparsifiable. A layer feeding a
sparse-executed one writes features-major output (sparserl.kernels.features_major).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sparserl.architecture import Architecture, MLPSpec
from sparserl.errors import CheckpointError
from sparserl.nets.layers import EnsembleLayerNorm, EnsembleLinear, Linear, relu, runs_sparse


def _relu_of(arch: Architecture | None):
    """The hidden nonlinearity of `arch`'s body (its spec's `activate`; ReLU in place by default)."""
    if arch is None or type(arch.spec).activate is MLPSpec.activate:
        return relu
    spec = arch.spec
    return lambda x: spec.activate(x, relu)


class MLP(nn.Module):
    """MLP of `Linear` layers (no activation after the last); (B, in) -> (B, out). The activation
    after each hidden layer is `arch`'s (ReLU for mlp; LayerNorm + leaky ReLU for layernorm-mlp)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...], arch: Architecture | None = None):
        super().__init__()
        sizes = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self._activate = _relu_of(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers, activate = self.layers, self._activate
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            x = layer.run(x, features_major=i < last and runs_sparse(layers[i + 1]))
            if i < last:
                x = activate(x)
        return x

    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """The hidden layers' outputs, after the activation ("post") or before it ("pre"), for diagnostics."""
        linear = lambda layer, h: nn.functional.linear(h, layer.weight, layer.bias)  # noqa: E731
        return _hidden(self.layers, linear, x, point, self._activate)


class EnsembleMLP(nn.Module):
    """The MLP over `EnsembleLinear` layers: E members evaluated together, (E, B, out)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...], members: int,
                 arch: Architecture | None = None):
        super().__init__()
        sizes = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(EnsembleLinear(i, o, members) for i, o in zip(sizes[:-1], sizes[1:]))
        self._activate = _relu_of(arch)

    def forward(self, x: torch.Tensor, detach: bool = False, members: slice | None = None) -> torch.Tensor:
        layers, activate = self.layers, self._activate
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            x = layer(x, detach=detach, members=members, features_major=i < last and runs_sparse(layers[i + 1]))
            if i < last:
                x = activate(x)
        return x

    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """Hidden layers' outputs, (E, B, width) each, after the activation ("post") or before it ("pre")."""
        return _hidden(self.layers, lambda layer, h: layer(h), x, point, self._activate)


def _hidden(layers, apply, x: torch.Tensor, point: str, activate) -> list[torch.Tensor]:
    out = []
    for layer in layers[:-1]:
        pre = apply(layer, x)
        x = (torch.relu if activate is relu else activate)(pre)  # out of place: `pre` is kept
        out.append(pre if point == "pre" else x)
    return out


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
    """A SimBa or BroNet body of E members; `single` (one network) returns (B, out) instead of (1, B, out)."""

    def __init__(self, arch: Architecture, members: int = 1, single: bool = False):
        super().__init__()
        self.arch, self.single = arch, single
        simba = arch.body == "simba"
        gain = 1.0 if simba else math.sqrt(2.0)
        self.embed = _init(EnsembleLinear(arch.in_dim, arch.width, members), "orthogonal", gain)
        linears = {name: (i, o) for name, i, o in arch.linears()}
        block_init = "he" if simba else "orthogonal"
        self.blocks = nn.ModuleList()
        for b in range(arch.blocks):
            block = nn.ModuleDict({
                "norm1": EnsembleLayerNorm(arch.width, members),
                "fc1": _init(EnsembleLinear(*linears[f"blocks.{b}.fc1"], members), block_init, gain),
                "fc2": _init(EnsembleLinear(*linears[f"blocks.{b}.fc2"], members), block_init, gain),
            })
            if not simba:
                block["norm2"] = EnsembleLayerNorm(arch.width, members)
            self.blocks.append(block)
        self.norm = EnsembleLayerNorm(arch.width, members)  # SimBa's final norm; BroNet's norm after the embedding
        heads = [_init(EnsembleLinear(arch.width, arch.out_dim // arch.heads, members), "orthogonal", gain)
                 for _ in range(arch.heads)]
        self.head = heads[0] if arch.heads == 1 else nn.ModuleList(heads)  # (SimBa's mean and log-std heads)
        self._layers = {name: self.get_submodule(name) for name, _, _ in arch.linears()}
        self._norms = {name: self.get_submodule(name) for name, _ in arch.norms()}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if isinstance(self.head, nn.ModuleList) and f"{prefix}head.weight" in state_dict:
            raise CheckpointError("this checkpoint's actor has one fused mean and log-std head, as sparserl built "
                                  "residual actors before they got a head each (Lee et al. 2025); its masks and "
                                  "optimiser state follow that layout: finish the run with the sparserl that "
                                  "started it, or start it anew")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _run(self, x, detach=False, members=None, record=None, point="post", trunk=False):
        kw = {"detach": detach, "members": members}
        layers, norms, spec = self._layers, self._norms, self.arch.spec
        run = spec.trunk if trunk else spec.forward
        return run(self.arch, x, lambda name, h: layers[name](h, **kw), lambda name, h: norms[name](h, **kw),
                   torch.relu, record, point)

    def trunk(self, x: torch.Tensor, detach: bool = False, members: slice | None = None,
              record: list | None = None, point: str = "post") -> torch.Tensor:
        """The features before the head; `record` collects hidden outputs for diagnostics."""
        return self._run(x, detach, members, record, point, trunk=True)

    def forward(self, x: torch.Tensor, detach: bool = False, members: slice | None = None) -> torch.Tensor:
        out = self._run(x, detach, members)
        return out[0] if self.single else out

    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        record: list[torch.Tensor] = []
        self.trunk(x, record=record, point=point)
        return [h[0] for h in record] if self.single else record


def build_mlp(arch: Architecture, members: int | None) -> nn.Module:
    return MLP(arch.in_dim, arch.out_dim, arch.hidden, arch) if members is None else \
        EnsembleMLP(arch.in_dim, arch.out_dim, arch.hidden, members, arch)


def build_residual(arch: Architecture, members: int | None) -> nn.Module:
    return ResidualBody(arch, 1 if members is None else members, single=members is None)


def make_body(arch: Architecture, members: int | None = None) -> nn.Module:
    """The training module of `arch`: one network (`members` None: (B, in) -> (B, out)) or an ensemble."""
    return arch.spec.build(arch, members)
