"""Replay of pixel observations: every frame stored once, as uint8, and stacked at sampling time.

An agent acting from pixels sees the last k frames stacked along the channels (DrQ-v2: k = 3, a
reset fills the stack with k copies of the first frame). Storing the stacks of obs and next_obs
would keep each frame 2k times; this buffer keeps it once. Each transition records which stored
frames make up its observation (k sequence numbers); its next observation is those shifted by one,
plus the frame it brought. A transition adds one frame, and the first of an episode also its reset
frame.

Capacity counts frames (DrQ-v2's "1M-frame buffer": 84x84x3 uint8, 21 GB). The frames form a
FIFO ring; a transition stays sampleable while all its frames are still stored, so the oldest
transitions leave as their frames are overwritten (with episodes of L decisions, about
capacity * L / (L + 1) transitions are live).

`sample` draws windows of n consecutive transitions, uniformly over the live ones such that a
window never runs past the newest (as sparserl.replay.ReplayBuffer does), and gathers only two
stacks per window: the first transition's observation, and the next observation of its last
transition still in the first one's episode (`last`, the one an n-step target bootstraps from).

The buffer lives on `device` and samples there; with a `batch_device` of its own (a GPU agent whose
buffer does not fit beside it: sparserl.runs.build.replay_home) it stays in host memory and each
batch is copied over.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from sparserl.replay.windows import alive_mask


class FrameBatch(NamedTuple):
    """A minibatch of windows of n transitions. `obs` and `next_obs` are uint8 stacks
    (B, k * channels, H, W): the first transition's observation and the next observation of
    transition `last`. The other fields are per transition, (B, n, ...), or (B, ...) when n is 1."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    policy_action: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    last: torch.Tensor
    """(B,) the index in the window of the transition whose next observation `next_obs` is."""


class FrameReplay:
    """Uniform replay over stored frames (see the module docstring)."""

    def __init__(self, frame_shape: tuple[int, int, int], stack: int, act_dim: int, capacity: int, seed: int = 0,
                 device: torch.device | str = "cpu", batch_device: torch.device | str | None = None):
        channels, height, width = frame_shape
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if capacity < stack + 2:
            raise ValueError(f"a frame replay needs room for more than one stack ({stack + 2} frames), got {capacity}")
        self.frame_shape, self.stack, self.act_dim, self.capacity = (channels, height, width), stack, act_dim, capacity
        device = torch.device(device)
        self.batch_device = device if batch_device is None else torch.device(batch_device)
        self.frames = torch.zeros(capacity, channels, height, width, dtype=torch.uint8, device=device)
        self.obs_frames = torch.zeros(capacity, stack, dtype=torch.int64, device=device)
        """Each transition's observation, as the sequence numbers of its k frames (oldest first)."""
        self.new_frame = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.action = torch.zeros(capacity, act_dim, device=device)
        self.policy_action = torch.zeros(capacity, act_dim, device=device)
        self.reward = torch.zeros(capacity, device=device)
        self.terminated = torch.zeros(capacity, device=device)
        self.truncated = torch.zeros(capacity, device=device)
        self.frames_written = 0
        self.transitions_written = 0
        self.first = 0
        """Sequence number of the oldest live transition."""
        self._recent: list[int] | None = None
        """The frames of the observation the next transition starts from (None: an episode begins)."""
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        return self.transitions_written - self.first

    @staticmethod
    def bytes_needed(frame_shape: tuple[int, int, int], capacity: int, act_dim: int, stack: int) -> int:
        """Bytes this buffer allocates (frames as uint8, plus each transition's fields)."""
        per_transition = 8 * (stack + 1) + 4 * (2 * act_dim + 3)
        return capacity * (int(np.prod(frame_shape)) + per_transition)

    def _write_frame(self, frame: np.ndarray) -> int:
        self.frames[self.frames_written % self.capacity] = torch.as_tensor(frame)
        self.frames_written += 1
        return self.frames_written - 1

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
            truncated: bool, policy_action: np.ndarray) -> None:
        """Append one transition; `obs` and `next_obs` are the stacks the agent saw (uint8,
        (k * channels, H, W)); only their newest frames are stored."""
        channels = self.frame_shape[0]
        if self._recent is None:  # an episode's first transition: its reset frame fills the stack
            self._recent = [self._write_frame(np.asarray(obs)[-channels:])] * self.stack
        newest = self._write_frame(np.asarray(next_obs)[-channels:])
        slot = self.transitions_written % self.capacity
        self.obs_frames[slot] = torch.tensor(self._recent)
        self.new_frame[slot] = newest
        self.action[slot] = torch.as_tensor(action, dtype=torch.float32)
        self.policy_action[slot] = torch.as_tensor(policy_action, dtype=torch.float32)
        self.reward[slot] = float(reward)
        self.terminated[slot], self.truncated[slot] = float(terminated), float(truncated)
        self.transitions_written += 1
        self._recent = None if (terminated or truncated) else self._recent[1:] + [newest]
        self._evict()

    def _evict(self) -> None:
        """Drop the oldest transitions whose frames have been overwritten (or whose slot is reused)."""
        oldest_frame = self.frames_written - self.capacity
        while self.first < self.transitions_written and (
                self.transitions_written - self.first > self.capacity
                or int(self.obs_frames[self.first % self.capacity, 0]) < oldest_frame):
            self.first += 1

    def _stacks(self, frame_numbers: torch.Tensor) -> torch.Tensor:
        """(B, k) sequence numbers -> (B, k * channels, H, W) uint8 stacks."""
        frames = self.frames[frame_numbers % self.capacity]  # (B, k, C, H, W)
        return frames.flatten(1, 2)

    def sample(self, batch_size: int, n: int = 1, generator: torch.Generator | None = None,
               agent: int | None = None) -> FrameBatch:
        """`batch_size` windows of `n` consecutive transitions (see the module docstring). A frame
        replay serves one agent; `agent` (a population's) is refused."""
        if agent is not None:
            raise ValueError("a frame replay holds one agent's frames; pixel agents are not trained as populations")
        if len(self) < n:
            raise ValueError(f"cannot sample windows of {n} from a frame replay holding {len(self)} transitions")
        generator = generator or self.generator
        starts = torch.randint(0, len(self) - n + 1, (batch_size,), generator=generator, device=generator.device)
        seq = self.first + starts.to(self.frames.device).unsqueeze(1) + torch.arange(n, device=self.frames.device)
        slots = seq % self.capacity  # (B, n)
        terminated, truncated = self.terminated[slots], self.truncated[slots]
        last = alive_mask(terminated, truncated).sum(dim=-1).long() - 1
        at_last = slots.take_along_dim(last[:, None], dim=1).squeeze(1)
        next_frames = torch.cat((self.obs_frames[at_last, 1:], self.new_frame[at_last, None]), dim=1)
        fields = [self.action[slots], self.reward[slots], self.policy_action[slots], terminated, truncated]
        if n == 1:
            fields = [f.squeeze(1) for f in fields]
        action, reward, policy_action, terminated, truncated = fields
        batch = FrameBatch(self._stacks(self.obs_frames[slots[:, 0]]), action, reward, self._stacks(next_frames),
                           policy_action, terminated, truncated, last)
        if self.batch_device != self.frames.device:
            batch = FrameBatch(*(field.to(self.batch_device, non_blocking=True) for field in batch))
        return batch

    # --- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The stored frames and transitions, counters, the episode in progress and the generator."""
        return {"frames": self.frames.cpu().clone(), "obs_frames": self.obs_frames.cpu().clone(),
                "new_frame": self.new_frame.cpu().clone(),
                **{name: getattr(self, name).cpu().clone()
                   for name in ("action", "policy_action", "reward", "terminated", "truncated")},
                "frames_written": self.frames_written, "transitions_written": self.transitions_written,
                "first": self.first, "recent": self._recent, "generator": self.generator.get_state(),
                "layout": (self.frame_shape, self.stack, self.act_dim, self.capacity)}

    def load_state_dict(self, state: dict) -> None:
        layout = (self.frame_shape, self.stack, self.act_dim, self.capacity)
        if tuple(state["layout"]) != layout:
            raise ValueError(f"frame replay layout mismatch: checkpoint {tuple(state['layout'])}, this buffer {layout}")
        for name in ("frames", "obs_frames", "new_frame", "action", "policy_action", "reward", "terminated",
                     "truncated"):
            getattr(self, name).copy_(state[name])
        self.frames_written, self.transitions_written = int(state["frames_written"]), int(state["transitions_written"])
        self.first, self._recent = int(state["first"]), state["recent"]
        self.generator.set_state(state["generator"])
