"""Replay: a preallocated ring buffer of transitions with n-step sampling."""

from sparserl.replay.buffer import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
