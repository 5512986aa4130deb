"""Which weights of a module can be sparse, and how to see each as (members, out, fan_in).

Recognised: nn.Linear (weight (out, in)), nn.Conv1d/2d/3d (weight (out, in/groups, *kernel);
N:M groups run along in * kernel, as in SR-STE), and any module with a `sparse_weight_view(tensor)`
method returning the (E, out, fan_in) view of its `weight`, optionally with `sparse_fan_in_dim`, the
fan-in axis of the weight itself (sparserl's EnsembleLinear stores (E, in, out): axis 1). Biases and
normalisation parameters stay dense (as in RLx2 and Ma et al. 2025).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sparserl.sparsity.budget import LayerShape


@dataclass
class SparseLayer:
    """A weight that the engine may sparsify."""

    name: str
    param: nn.Parameter
    view: Callable[[torch.Tensor], torch.Tensor]
    """Maps a tensor shaped like `param` to its (members, out, fan_in) view."""
    shape: LayerShape
    flat: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    """Maps a contiguous tensor shaped like `param` to a view with one fan-in axis (no copy)."""
    fan_in_dim: int = -1
    """The fan-in axis of `flat(tensor)`: N:M groups run along it."""

    @property
    def module_path(self) -> str:
        """The path of the module that owns the weight ("" for the root module)."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else ""


def _linear_view(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0)


def _conv_view(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, t.shape[0], -1)


def _conv_flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def find_sparse_layers(module: nn.Module) -> list[SparseLayer]:
    """The sparsifiable weights of `module`, in module order (first layer first)."""
    layers = []
    for prefix, sub in module.named_modules():
        name = f"{prefix}.weight" if prefix else "weight"
        custom = getattr(sub, "sparse_weight_view", None)
        if custom is not None:
            members, out, fan_in = custom(sub.weight).shape
            dim = getattr(sub, "sparse_fan_in_dim", None)
            flat, dim = (custom, -1) if dim is None else ((lambda t: t), dim)
            layers.append(SparseLayer(name, sub.weight, custom, LayerShape(name, fan_in, out, members), flat, dim))
        elif isinstance(sub, nn.Linear):
            out, fan_in = sub.weight.shape
            layers.append(SparseLayer(name, sub.weight, _linear_view, LayerShape(name, fan_in, out), fan_in_dim=1))
        elif isinstance(sub, nn.modules.conv._ConvNd):
            out, fan_in, *kernel = sub.weight.shape
            layers.append(SparseLayer(name, sub.weight, _conv_view, LayerShape(name, fan_in, out, 1, tuple(kernel)),
                                      _conv_flat, 1))
    return layers
