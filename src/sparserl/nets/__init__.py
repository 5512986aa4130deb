"""Networks: MLP actors and batched critic ensembles."""

from sparserl.nets.mlp import (
    MLP,
    POLICY_CLASSES,
    DeterministicActor,
    EnsembleLinear,
    GaussianActor,
    QEnsemble,
    mlp,
)

__all__ = ["POLICY_CLASSES", "DeterministicActor", "EnsembleLinear", "MLP", "GaussianActor", "QEnsemble", "mlp"]
