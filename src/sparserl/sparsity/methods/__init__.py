"""Sparsity methods, one file each. A method is a small class over `Method` (base.py)."""

from __future__ import annotations

import torch

from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.methods.base import Method
from sparserl.sparsity.methods.gmp import GMP
from sparserl.sparsity.methods.nm import NM
from sparserl.sparsity.methods.rigl import RigL
from sparserl.sparsity.methods.set import SET
from sparserl.sparsity.methods.static import Static

METHOD_CLASSES: dict[str, type[Method]] = {cls.name: cls for cls in (Static, RigL, SET, GMP, NM)}


def make_method(config: SparsityConfig, generator: torch.Generator) -> Method:
    return METHOD_CLASSES[config.kind](config, generator)


__all__ = ["GMP", "METHOD_CLASSES", "NM", "SET", "Method", "RigL", "Static", "make_method"]
