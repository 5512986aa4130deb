"""tanh-mlp: a new network body in one file (walkthrough: docs/extending.md).

`blocks` hidden layers of `width` tanh units. A registered body gets the config's `<role>_width` and
`<role>_blocks` (actor and critic each; `hidden` belongs to the built-in mlp), so

    sparserl train --plugins examples/extending/tanh_mlp.py --network tanh-mlp \
        --actor-width 64 --actor-blocks 2 --critic-width 64 --critic-blocks 2
"""

from __future__ import annotations

import torch
from torch import nn

from sparserl.architecture import Architecture, BodySpec, register_body
from sparserl.nets.layers import EnsembleLinear, Linear


class TanhMLP(nn.Module):
    """The training module. `members` None: one network of `Linear` layers, (B, in) -> (B, out);
    otherwise an ensemble of `EnsembleLinear` layers, (B, in) or (E, B, in) -> (E, B, out)."""

    def __init__(self, arch: Architecture, members: int | None):
        super().__init__()
        self.arch, self.single = arch, members is None
        self.layers = nn.ModuleList(Linear(i, o) if self.single else EnsembleLinear(i, o, members)
                                    for _, i, o in arch.linears())
        # the names arch.linears() gives are these submodules' paths: layers.0, layers.1, ...
        self._by_name = {name: self.get_submodule(name) for name, _, _ in arch.linears()}

    def _run(self, x, record=None, point="post", **kw):
        layers = self._by_name
        return self.arch.forward(x, lambda name, h: layers[name](h, **kw), None, None, record, point)

    def forward(self, x: torch.Tensor, detach: bool = False, members: slice | None = None) -> torch.Tensor:
        return self._run(x) if self.single else self._run(x, detach=detach, members=members)

    def hidden(self, x: torch.Tensor, point: str = "post") -> list[torch.Tensor]:
        """Hidden layers' outputs after tanh ("post") or before it ("pre"), for diagnostics."""
        record: list[torch.Tensor] = []
        self._run(x, record, point)
        return record


class TanhMLPSpec(BodySpec):
    """The description that training, export and sparserl.deploy's loader all read."""

    name = "tanh-mlp"
    builder = TanhMLP  # any callable (arch, members) -> module; a plain function needs staticmethod(...)

    def linears(self, arch):
        sizes = (arch.in_dim, *[arch.width] * arch.blocks, arch.out_dim)
        return [(f"layers.{i}", a, b) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def forward(self, arch, x, linear, norm, relu, record, point):
        names = [name for name, _, _ in self.linears(arch)]
        for name in names[:-1]:
            pre = linear(name, x)
            x = torch.tanh(pre)  # tanh, not the `relu` the caller offers
            if record is not None:
                record.append(pre if point == "pre" else x)
        return linear(names[-1], x)


register_body(TanhMLPSpec())
