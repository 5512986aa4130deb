"""Networks: layers (layers.py), input normalisers (norms.py), bodies built from sparserl.architecture's descriptions
(bodies.py), actors (actors.py) and critic ensembles (critics.py)."""

from sparserl.nets.actors import Actor, Body, CategoricalActor, ClippedGaussianActor, DeterministicActor, GaussianActor
from sparserl.nets.bodies import MLP, EnsembleMLP, ResidualBody, make_body
from sparserl.nets.critics import QEnsemble
from sparserl.nets.layers import EnsembleLayerNorm, EnsembleLinear, Linear
from sparserl.nets.norms import RunningNorm, WelfordNorm

__all__ = ["MLP", "Actor", "Body", "CategoricalActor", "ClippedGaussianActor", "DeterministicActor",
           "EnsembleLayerNorm", "EnsembleLinear", "EnsembleMLP", "GaussianActor", "Linear", "QEnsemble",
           "ResidualBody", "RunningNorm", "WelfordNorm", "make_body"]
