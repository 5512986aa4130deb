"""Network bodies described once: their layer names and sizes, and their forward pass over given
layer functions. Training modules (sparserl.nets), the policy exporter (sparserl.export) and the
torch-only policy loader (sparserl.deploy) all read these descriptions, so the names they agree on
are written in one place. This module imports nothing of sparserl's training code.

Bodies (registered in `BODIES`):
- mlp: Linear -> ReLU -> ... -> Linear over `hidden` widths; layers ``layers.{i}``.
- layernorm-mlp (Elsayed, Vasan, Mahmood 2024, the streaming networks): the same with
  Linear -> LayerNorm (no affine parameters) -> leaky ReLU per hidden layer.
- simba (Lee et al., ICLR 2025, as scaled by Ma et al. 2025): Dense(in -> h) -> blocks x
  [x + Dense(4h -> h)(ReLU(Dense(h -> 4h)(LayerNorm(x))))] -> LayerNorm -> head.
- bronet (Nauman et al., NeurIPS 2024): Dense(in -> h) -> LayerNorm -> ReLU -> blocks x
  [x + LayerNorm(Dense(ReLU(LayerNorm(Dense(x)))))] -> head.
Residual layers are ``embed``, ``blocks.{i}.fc1`` / ``fc2``, ``head`` (or, for an output of several
heads, ``head.{j}``: SimBa's SAC actor has a mean and a log-std head, Dense(h -> |A|) each, whose
outputs are concatenated); norms ``blocks.{i}.norm1`` (and ``norm2`` for BroNet) and ``norm``. These
are the training modules' own submodule paths.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sparserl.errors import ConfigError
from sparserl.registry import Registry

Layer = Callable[[str, object], object]
"""linear(name, x) or norm(name, x): apply the named layer of a concrete network to x."""


@dataclass(frozen=True)
class Architecture:
    """One body: its kind, input and output sizes, and its widths."""

    body: str
    in_dim: int
    out_dim: int
    hidden: tuple[int, ...] = ()
    """mlp: hidden widths."""
    width: int = 0
    """Residual bodies: width."""
    blocks: int = 0
    """Residual bodies: residual blocks."""
    heads: int = 1
    """Residual bodies: the output as this many equal layers side by side (a Gaussian actor's mean
    and log-std heads: 2), each its own weight (as its own tensor in sparsity budgets)."""

    @cached_property
    def spec(self) -> BodySpec:
        return BODIES.get(self.body)

    @cached_property
    def _linears(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(self.spec.linears(self))

    def linears(self) -> list[tuple[str, int, int]]:
        """(name, fan_in, fan_out) of every linear layer, input first."""
        return list(self._linears)

    @cached_property
    def linear_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._linears)

    def norms(self) -> list[tuple[str, int]]:
        """(name, width) of every LayerNorm with a scale and shift."""
        return self.spec.norms(self)

    def parameters(self, members: int = 1) -> int:
        """Parameters of `members` copies (weights, biases and norm scales and shifts)."""
        per = sum((i + 1) * o for _, i, o in self.linears()) + sum(2 * w for _, w in self.norms())
        return members * per

    def forward(self, x, linear: Layer, norm: Layer, relu: Callable, record: list | None = None,
                point: str = "post"):
        """The body's output for x, with `linear` and `norm` applying the named layers; `record`
        collects hidden outputs (after the activation, or before it with point "pre")."""
        return self.spec.forward(self, x, linear, norm, relu, record, point)


class BodySpec:
    """A kind of body. `builder` makes its training module: a callable (arch, members) -> module, or
    the "module:function" path of one (imported when first used)."""

    name = ""
    builder: str | Callable = ""
    layered = False
    """Sized by a list of hidden widths (`hidden`) rather than by a width and a block count."""
    split_heads = False
    """Builds an output of several heads as separate layers (Architecture.heads); otherwise one layer."""

    def linears(self, arch: Architecture) -> list[tuple[str, int, int]]:
        raise NotImplementedError

    def norms(self, arch: Architecture) -> list[tuple[str, int]]:
        return []

    def forward(self, arch, x, linear, norm, relu, record, point):
        raise NotImplementedError

    def build(self, arch: Architecture, members: int | None):
        """The training module: one network (`members` None) or an ensemble of `members`."""
        builder = inspect.getattr_static(self, "builder")  # a function given as a class attribute stays unbound
        if isinstance(builder, staticmethod):
            builder = builder.__func__
        if isinstance(builder, str):
            module, _, function = builder.partition(":")
            builder = getattr(importlib.import_module(module), function)
        return builder(arch, members)


class MLPSpec(BodySpec):
    name = "mlp"
    builder = "sparserl.nets.bodies:build_mlp"
    layered = True

    def linears(self, arch):
        sizes = (arch.in_dim, *arch.hidden, arch.out_dim)
        return [(f"layers.{i}", a, b) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def activate(self, x, relu):
        """The nonlinearity after each hidden layer (given the caller's ReLU)."""
        return relu(x)

    def forward(self, arch, x, linear, norm, relu, record, point):
        names = arch.linear_names
        for name in names[:-1]:
            pre = linear(name, x)
            x = self.activate(pre, relu)
            if record is not None:
                record.append(pre if point == "pre" else x)
        return linear(names[-1], x)


class LayerNormMLPSpec(MLPSpec):
    """The streaming networks of Elsayed, Vasan, Mahmood (2024): each hidden Linear followed by a
    LayerNorm without affine parameters and a leaky ReLU (slope 0.01)."""

    name = "layernorm-mlp"

    def activate(self, x, relu):
        import torch.nn.functional as F

        return F.leaky_relu(F.layer_norm(x, x.shape[-1:]))


class ResidualSpec(BodySpec):
    """SimBa and BroNet: the same skeleton, with the norms placed differently."""

    builder = "sparserl.nets.bodies:build_residual"
    inner_scale = 1
    block_norms: tuple[str, ...] = ("norm1",)
    split_heads = True

    def linears(self, arch):
        inner = self.inner_scale * arch.width
        out = [("embed", arch.in_dim, arch.width)]
        for i in range(arch.blocks):
            out += [(f"blocks.{i}.fc1", arch.width, inner), (f"blocks.{i}.fc2", inner, arch.width)]
        if arch.heads == 1:
            return [*out, ("head", arch.width, arch.out_dim)]
        return [*out, *((f"head.{j}", arch.width, arch.out_dim // arch.heads) for j in range(arch.heads))]

    def norms(self, arch):
        out = [(f"blocks.{i}.{n}", arch.width) for i in range(arch.blocks) for n in self.block_norms]
        return [*out, ("norm", arch.width)]

    def forward(self, arch, x, linear, norm, relu, record, point):
        x = self.trunk(arch, x, linear, norm, relu, record, point)
        if arch.heads == 1:
            return linear("head", x)
        import torch

        return torch.cat([linear(f"head.{j}", x) for j in range(arch.heads)], dim=-1)

    def trunk(self, arch, x, linear, norm, relu, record, point):
        raise NotImplementedError


class SimBaSpec(ResidualSpec):
    name = "simba"
    inner_scale = 4

    def trunk(self, arch, x, linear, norm, relu, record, point):
        x = linear("embed", x)
        if record is not None and point == "pre":
            record.append(x)
        for i in range(arch.blocks):
            pre = linear(f"blocks.{i}.fc1", norm(f"blocks.{i}.norm1", x))
            hidden = relu(pre)
            out = linear(f"blocks.{i}.fc2", hidden)
            if record is not None:
                record.append(pre if point == "pre" else hidden)
            x = x + out
            if record is not None and point == "pre":
                record.append(out)
        x = norm("norm", x)
        if record is not None:
            record.append(x)  # the features (srank, feature norm)
        return x


class BroNetSpec(ResidualSpec):
    name = "bronet"
    block_norms = ("norm1", "norm2")

    def trunk(self, arch, x, linear, norm, relu, record, point):
        x = linear("embed", x)
        if record is not None and point == "pre":
            record.append(x)
        x = relu(norm("norm", x))
        if record is not None and point == "post":
            record.append(x)
        for i in range(arch.blocks):
            pre = linear(f"blocks.{i}.fc1", x)
            hidden = relu(norm(f"blocks.{i}.norm1", pre))
            out = norm(f"blocks.{i}.norm2", linear(f"blocks.{i}.fc2", hidden))
            if record is not None:
                record.append(pre if point == "pre" else hidden)
            x = x + out
            if record is not None and point == "pre":
                record.append(out)
        if record is not None:
            record.append(x)
        return x


def _check(name: str, spec: BodySpec) -> None:
    """Refuse a body whose description does not hold together, run on a small probe (3 inputs, 2
    outputs, width 5, one block): distinct layer names, sizes that chain from the input to the output,
    and a forward pass that uses exactly the layers it declares and gives (batch, out)."""
    import torch
    import torch.nn.functional as F

    def refuse(problem: str):
        return ConfigError(f"cannot register network body {name!r}: {problem}")

    if not isinstance(spec, BodySpec) or spec.name != name:
        raise refuse(f"give an instance of a BodySpec subclass whose name is {name!r}")
    probe = Architecture(name, 3, 2, (5,), 5, 1)
    probe.__dict__["spec"] = spec  # the probe reads this spec, not the registry
    try:
        layers, norms = spec.linears(probe), spec.norms(probe)
    except Exception as exc:  # noqa: BLE001 (any failure is the plugin's)
        raise refuse(f"linears() or norms() failed on a probe: {exc!r}") from None
    names = [n for n, _, _ in layers] + [n for n, _ in norms]
    if not layers or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
        raise refuse(f"linears() and norms() must name distinct layers, got {names}")
    if layers[0][1] != 3 or layers[-1][2] != 2:
        raise refuse(f"the first layer must take in_dim inputs and the last give out_dim outputs, got {layers}")
    weights = {n: (torch.randn(o, i), torch.zeros(o)) for n, i, o in layers}
    widths, used = dict(norms), []

    def linear(layer, x):
        used.append(layer)
        return F.linear(x, *weights[layer])

    def norm(layer, x):
        used.append(layer)
        return F.layer_norm(x, (widths[layer],))

    try:
        out = spec.forward(probe, torch.randn(4, 3), linear, norm, torch.relu, [], "post")
    except Exception as exc:  # noqa: BLE001
        raise refuse(f"forward() failed on a probe with the layers linears() and norms() give: {exc!r}") from None
    if tuple(out.shape) != (4, 2) or sorted(set(used)) != sorted(names):
        raise refuse(f"forward() must use every declared layer ({', '.join(names)}) and give (batch, out_dim); "
                     f"it used {', '.join(sorted(set(used)))} and gave {tuple(out.shape)}")


BODIES: Registry[BodySpec] = Registry("network body", _check)


def register_body(spec: BodySpec) -> BodySpec:
    """Register a body kind (an instance of a BodySpec subclass) under its `name`."""
    return BODIES.register(spec.name, spec)


for _spec in (MLPSpec(), LayerNormMLPSpec(), SimBaSpec(), BroNetSpec()):
    register_body(_spec)
