"""Streaming RL (Elsayed, Vasan, Mahmood 2024): learning from each transition once, with no replay
buffer, batches or target networks. `ObGD` (and `AdaptiveObGD`) is its optimiser; `sparse_init_`
its initialisation; the learner (learner.py) drives a StreamingAgent (agent.py) such as Stream AC,
with the reward scaling of scaling.py."""

from sparserl.streaming.init import sparse_init_
from sparserl.streaming.obgd import AdaptiveObGD, ObGD

__all__ = ["AdaptiveObGD", "ObGD", "sparse_init_"]
