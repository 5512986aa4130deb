"""Windows of n consecutive transitions: which of them are still in the first one's episode."""

from __future__ import annotations

import torch


def alive_mask(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """alive[..., k] = 1 while transitions 0..k-1 of a window (last axis) have not ended the
    episode (a terminal or a time-limit end): the part of the window an n-step target sums over."""
    ended = torch.maximum(terminated, truncated)
    return torch.cat((torch.ones_like(ended[..., :1]), torch.cumprod(1.0 - ended[..., :-1], dim=-1)), dim=-1)
