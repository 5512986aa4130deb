"""Replay: a preallocated ring buffer of transitions with n-step sampling, and RLx2's dynamic capacity."""

from sparserl.replay.buffer import Batch, ReplayBuffer
from sparserl.replay.dynamic import DynamicCapacity

__all__ = ["Batch", "DynamicCapacity", "ReplayBuffer"]
