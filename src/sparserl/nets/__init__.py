"""Networks: MLP actors and batched critic ensembles."""

from sparserl.nets.mlp import (
    MLP,
    DeterministicActor,
    EnsembleLinear,
    GaussianActor,
    QEnsemble,
    mlp,
)

__all__ = ["DeterministicActor", "EnsembleLinear", "MLP", "GaussianActor", "QEnsemble", "mlp"]
