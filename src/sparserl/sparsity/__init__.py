"""The sparsity engine: budgets, masks and methods for any PyTorch network.

It imports nothing of sparserl's RL code (no Gymnasium), so it can sparsify any model:

    from sparserl.sparsity import Sparsifier, SparsityConfig
    sparsifier = Sparsifier(SparsityConfig(method="rigl"), seed=0)
    sparsifier.attach("model", model, optimizer, sparsity=0.9, total_steps=10_000)
    # train as usual: optimizer.step() keeps the masks

Methods are registered classes (sparserl.sparsity.methods: `METHODS`, `register_method`).
"""

from sparserl.sparsity.accounting import SparsityReport, sparsity_report
from sparserl.sparsity.budget import LayerShape, layer_densities
from sparserl.sparsity.config import SparsityConfig
from sparserl.sparsity.engine import Group, Sparsifier
from sparserl.sparsity.layers import find_sparse_layers
from sparserl.sparsity.masks import nm_mask
from sparserl.sparsity.methods import METHODS, Method, register_method

__all__ = ["METHODS", "Group", "LayerShape", "Method", "Sparsifier", "SparsityConfig", "SparsityReport",
           "find_sparse_layers", "layer_densities", "nm_mask", "register_method", "sparsity_report"]
