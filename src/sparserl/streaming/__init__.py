"""Streaming RL (Elsayed, Vasan, Mahmood 2024): learning from each transition once, with no replay
buffer, batches or target networks. `ObGD` is its optimiser; `sparse_init_` its initialisation."""

from sparserl.streaming.init import sparse_init_
from sparserl.streaming.obgd import ObGD

__all__ = ["ObGD", "sparse_init_"]
