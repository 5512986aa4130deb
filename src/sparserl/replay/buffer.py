"""Uniform replay over a preallocated ring of transitions.

Each transition is one row of a single float32 tensor, laid out as
``[obs | action | reward | next_obs | policy_action | terminated | truncated]``, so a minibatch is
one gather and its fields are views. ``terminated`` (a true terminal: no bootstrap) and
``truncated`` (a time-limit end: bootstrap) are kept apart, and ``policy_action`` is the policy's
noise-free action (the random action itself during warm-up), which RLx2's dynamic buffer compares
against the current policy.

The live window is ``[start, start + size)`` modulo the capacity, so dropping the oldest
transitions (RLx2's dynamic capacity) only moves ``start``.

A population's buffer (`agents` K) holds one ring per agent in one (K, capacity, row) tensor: `add`
takes each field with a leading K axis, `sample` draws every agent's own minibatch in one gather,
fields (K, B, ...). The agents step in lockstep, so their rings fill alike; an agent's dynamic
capacity drops its own oldest transitions (`drop_oldest(count, agent=k)`): agent k's live window is
the shared one less its `skip[k]` oldest rows, which shrinks by one whenever a full ring overwrites its
oldest row, so each window grows back by one per step, as a one-agent buffer's does after a drop.

On a GPU (`device`) the storage, the sampling and its generator live there: `add` writes the
transition into a pinned host row and copies it over in one transfer; minibatches never leave the
device.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from sparserl.errors import ConfigWarning


class Batch(NamedTuple):
    """A minibatch. With ``n == 1`` fields are (B, dim) / (B,); with ``n > 1`` they are
    (B, n, dim) / (B, n): n consecutive transitions in insertion order. A population's fields lead
    with its K agents."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    policy_action: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


class ReplayBuffer:
    """Preallocated FIFO replay buffer with its own sampling generator (checkpointed); one ring per
    agent for a population (`agents`)."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, seed: int = 0, agents: int | None = None,
                 device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.obs_dim, self.act_dim, self.capacity, self.agents = obs_dim, act_dim, capacity, agents
        self._slices: dict[str, slice] = {}
        col = 0
        for name, width in self.widths(obs_dim, act_dim).items():
            self._slices[name] = slice(col, col + width)
            col += width
        self.row_width = col
        device = torch.device(device)
        self._storage = torch.zeros(agents or 1, capacity, col, dtype=torch.float32, device=device)
        on_cpu = device.type == "cpu"
        self._staging = None if on_cpu else torch.zeros(agents or 1, col, device="cpu",
                                                                 pin_memory=torch.cuda.is_available())
        """The host row a transition is written into before its one copy to the device."""
        self._rows = self._storage.numpy() if on_cpu else None  # shares memory: cheap per-step writes
        self._offsets = torch.arange(agents or 1, device=device).unsqueeze(1) * capacity  # each agent's first row
        self._start = 0
        self.size = 0
        self.skip = np.zeros(agents or 1, dtype=np.int64)
        """Per agent: the oldest rows of the shared window it has dropped (all 0 but after a drop)."""
        self.generator = torch.Generator(device).manual_seed(seed)

    @staticmethod
    def widths(obs_dim: int, act_dim: int) -> dict[str, int]:
        """The float32 columns of one stored transition, by field."""
        return {"obs": obs_dim, "action": act_dim, "reward": 1, "next_obs": obs_dim, "policy_action": act_dim,
                "terminated": 1, "truncated": 1}

    @classmethod
    def bytes_needed(cls, obs_dim: int, act_dim: int, capacity: int, agents: int = 1) -> int:
        """The memory a buffer of `capacity` transitions (per agent) preallocates."""
        return agents * capacity * sum(cls.widths(obs_dim, act_dim).values()) * 4

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool, policy_action: np.ndarray) -> None:
        """Append one transition (a population: one per agent, each field leading with K),
        overwriting the oldest when full."""
        s = self._slices
        position = (self._start + self.size) % self.capacity
        row = self._rows[:, position] if self._staging is None else self._staging.numpy()
        row[:, s["obs"]] = obs
        row[:, s["action"]] = action
        row[:, s["reward"].start] = reward
        row[:, s["next_obs"]] = next_obs
        row[:, s["policy_action"]] = policy_action
        row[:, s["terminated"].start] = terminated
        row[:, s["truncated"].start] = truncated
        if self._staging is not None:
            self._storage[:, position].copy_(self._staging)  # (blocking: the row is rewritten next step)
        if self.size < self.capacity:
            self.size += 1
        else:
            self._start = (self._start + 1) % self.capacity
            np.maximum(self.skip - 1, 0, out=self.skip)  # the overwritten row was the oldest of all

    def live(self, agent: int = 0) -> int:
        """Transitions in agent `agent`'s live window (a single buffer: len)."""
        return self.size - int(self.skip[agent])

    def drop_oldest(self, count: int, agent: int | None = None) -> None:
        """Forget the `count` oldest transitions (RLx2's dynamic capacity): of every agent, or of
        agent `agent` of a population alone."""
        if agent is not None and self.agents is not None:
            self.skip[agent] += max(0, min(count, self.live(agent)))
            return
        count = max(0, min(count, self.size))
        self._start = (self._start + count) % self.capacity
        self.size -= count
        np.maximum(self.skip - count, 0, out=self.skip)

    def _physical(self, logical: torch.Tensor) -> torch.Tensor:
        if self._start == 0:  # the live window has not wrapped: logical positions are rows
            return logical
        return (logical + self._start) % self.capacity

    def sample(self, batch_size: int, n: int = 1, generator: torch.Generator | None = None,
               agent: int | None = None) -> Batch:
        """Uniform minibatch of `batch_size` windows of `n` consecutive transitions.

        Window starts are uniform over the live window such that a window never runs past the
        newest transition (RLx2's rule). Windows may cross episode boundaries: the flags say where.
        `generator` replaces the buffer's own (which then does not advance). With `agent` k, agent
        k's minibatch alone, shaped and drawn as a one-agent buffer's (a population's diagnostics).
        """
        low = self.skip[[agent or 0]] if agent is not None else self.skip
        if self.size - int(low.max()) < n:
            raise ValueError(f"cannot sample windows of {n} from a buffer holding {self.size - int(low.max())}")
        generator = generator or self.generator
        if not low.any():
            starts = torch.randint(0, self.size - n + 1, (len(low), batch_size), generator=generator,
                                   device=generator.device).to(self._storage.device)
        else:  # each agent uniform over its own window
            low_t = torch.as_tensor(low, device=generator.device).unsqueeze(1)
            u = torch.rand((len(low), batch_size), generator=generator, device=generator.device, dtype=torch.float64)
            starts = (low_t + (u * (self.size - n + 1 - low_t)).long()).to(self._storage.device)
        logical = starts if n == 1 else starts.unsqueeze(-1) + torch.arange(n, device=starts.device)
        return self._fields(self._gather(logical, agent))

    def _gather(self, logical: torch.Tensor, agent: int | None = None) -> torch.Tensor:
        """The rows at logical positions (agents, ...) of each agent's ring, in one gather; a single
        agent's (or only agent `agent`'s) without the leading axis."""
        index = self._physical(logical)
        if self.agents is None or agent is not None:
            ring = self._storage[agent or 0]
            return ring.index_select(0, index.reshape(-1)).view(*index.shape[1:], self.row_width)
        index = index + self._offsets.view(-1, *[1] * (index.dim() - 1))
        rows = self._storage.view(-1, self.row_width).index_select(0, index.reshape(-1))
        return rows.view(*index.shape, self.row_width)

    def _fields(self, rows: torch.Tensor) -> Batch:
        s = self._slices
        return Batch(
            obs=rows[..., s["obs"]],
            action=rows[..., s["action"]],
            reward=rows[..., s["reward"].start],
            next_obs=rows[..., s["next_obs"]],
            policy_action=rows[..., s["policy_action"]],
            terminated=rows[..., s["terminated"].start],
            truncated=rows[..., s["truncated"].start],
        )

    def _arange(self, count: int, first: np.ndarray | None = None) -> torch.Tensor:
        """Logical positions first..first+count-1 of every agent's ring (first: 0 for all)."""
        positions = torch.arange(count, device=self._storage.device).expand(self._storage.shape[0], count)
        return positions if first is None else positions + torch.as_tensor(first, device=positions.device)[:, None]

    def oldest(self, count: int) -> Batch:
        """The `count` oldest transitions of each agent's live window, in insertion order (at most
        the smallest window's size)."""
        count = min(count, min(self.live(k) for k in range(len(self.skip))))
        return self._fields(self._gather(self._arange(count, self.skip)))

    # --- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Contents in insertion order (a copy), sizes and the sampling generator's state."""
        rows = self._gather(self._arange(self.size)).cpu()
        return {"rows": rows, "capacity": self.capacity, "row_width": self.row_width,
                "generator": self.generator.get_state(), "skip": self.skip.tolist()}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity or state["row_width"] != self.row_width:
            raise ValueError(
                f"replay layout mismatch: checkpoint has capacity {state['capacity']} and row width "
                f"{state['row_width']}, this buffer {self.capacity} and {self.row_width}")
        rows = state["rows"]
        if rows.dim() != (2 if self.agents is None else 3) or (self.agents and rows.shape[0] != self.agents):
            raise ValueError(f"replay layout mismatch: checkpoint rows {tuple(rows.shape)} for "
                             f"{self.agents or 1} agent(s)")
        self.size = rows.shape[-2]
        self._storage[:, : self.size] = rows
        self._start = 0
        self.skip[:] = state.get("skip", 0)  # (checkpoints from before per-agent drops have none)
        try:
            self.generator.set_state(state["generator"])
        except RuntimeError:  # saved on another kind of device: sampling restarts from the seed's stream
            warnings.warn("the checkpoint's replay sampling generator is from another device; sampling "
                          "continues from a fresh stream", ConfigWarning, stacklevel=2)
