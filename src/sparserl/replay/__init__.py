"""Replay: a preallocated ring buffer of transitions with n-step sampling, RLx2's dynamic capacity,
and a frame replay for pixel observations (frames stored once, stacked at sampling time)."""

from sparserl.replay.buffer import Batch, ReplayBuffer
from sparserl.replay.dynamic import DynamicCapacity
from sparserl.replay.frames import FrameBatch, FrameReplay

__all__ = ["Batch", "DynamicCapacity", "FrameBatch", "FrameReplay", "ReplayBuffer"]
