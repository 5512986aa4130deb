"""SparseInit (Elsayed, Vasan, Mahmood 2024): the streaming networks' initialisation. Each weight is
drawn uniformly from ±sqrt(1 / fan_in); then, for every output unit, exactly ceil(0.9 * fan_in) of
its inputs, chosen at random, are set to zero; biases are zero. The zeros are not a mask: training
may make them non-zero (unlike `--sparsity static`, whose masks the sparsity engine keeps)."""

from __future__ import annotations

import math

import torch

SPARSE_INIT_FRACTION = 0.9


@torch.no_grad()
def sparse_init_(weight: torch.Tensor, bias: torch.Tensor | None = None, fraction: float = SPARSE_INIT_FRACTION,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Initialise an (out, in) weight (a view is fine) in place as SparseInit does; returns it."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"SparseInit fraction must be in [0, 1), got {fraction!r}")
    out, fan_in = weight.shape
    bound = math.sqrt(1.0 / fan_in)
    weight.uniform_(-bound, bound, generator=generator)
    zeros = math.ceil(fraction * fan_in)
    order = torch.rand(out, fan_in, generator=generator).argsort(dim=1)
    weight.masked_fill_(order < zeros, 0.0)
    if bias is not None:
        bias.zero_()
    return weight


INITS = ("default", "sparse")
"""Network initialisations: each body's own ("default"), or SparseInit on every linear and
convolutional weight ("sparse")."""


@torch.no_grad()
def initialise(module: torch.nn.Module, init: str) -> torch.nn.Module:
    """Apply initialisation `init` (one of INITS) to `module` in place; returns it. SparseInit covers
    every weight the sparsity engine could sparsify (sparserl.sparsity.layers), each ensemble member
    on its own, and zeroes the biases of those layers."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")
    if init == "sparse":
        from sparserl.sparsity.layers import find_sparse_layers

        for layer in find_sparse_layers(module):
            bias = getattr(module.get_submodule(layer.module_path), "bias", None)
            for member in layer.view(layer.param.data):
                sparse_init_(member)  # (out, fan_in), a view of the weight
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return module
