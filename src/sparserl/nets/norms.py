"""Normalisers of network inputs: SimBa's running observation statistics (`RunningNorm`, per agent
in a population) and the per-sample Welford statistics of streaming RL (`WelfordNorm`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RunningNorm(nn.Module):
    """Per-dimension running mean and variance (parallel Welford, initial count 1e-4), applied as
    (x - mean) / sqrt(var + 1e-8). Statistics are buffers: checkpointed, never learned.

    For a population of K agents (`population`), each agent keeps its own statistics, shaped
    (K, 1, dim) to broadcast over its (K, B, dim) inputs; the count is shared (in lockstep every agent
    has seen as many observations)."""

    def __init__(self, dim: int, population: int | None = None):
        super().__init__()
        shape = (dim,) if population is None else (population, 1, dim)
        self._lead = () if population is None else (population,)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    def single(self) -> RunningNorm:
        """A fresh one-agent normaliser of the same kind (for an agent copied out of a population)."""
        return RunningNorm(self.mean.shape[-1])

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add a batch of observations, (N, dim) or, for a population, (K, N, dim)."""
        x = x.reshape(*self._lead, -1, self.mean.shape[-1]).double()
        n = x.shape[-2]
        batch_mean = x.mean(-2, keepdim=True).view(self.mean.shape)
        batch_var = x.var(-2, unbiased=False, keepdim=True).view(self.mean.shape)
        total = self.count + n
        delta = batch_mean - self.mean.double()
        mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean.copy_(mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)


def welford_update(mean, m2, count, x):
    """One sample x of Welford's running statistics, for floats or arrays: the new mean and sum of
    squared deviations, `count` already counting x."""
    delta = x - mean
    mean = mean + delta / count
    return mean, m2 + delta * (x - mean)


def welford_variance(m2, count):
    """The unbiased variance of Welford's statistics, 1 until there are two samples (Elsayed et al.);
    for a tensor count without a host branch (so a compiled graph can take it), and per agent for a
    population's array of counts."""
    if isinstance(count, torch.Tensor):
        return torch.where(count >= 2, m2 / (count - 1).clamp(min=1.0), 1.0)
    if isinstance(count, np.ndarray) and count.ndim:
        return np.where(count >= 2, m2 / np.maximum(count - 1, 1.0), 1.0)
    return m2 / (count - 1) if count >= 2 else 1.0


class WelfordNorm(nn.Module):
    """Per-sample running mean and unbiased variance (Welford; variance 1 until two samples), applied
    as (x - mean) / sqrt(var + 1e-8) to the first `dim - keep` inputs; the last `keep` (a time
    feature) pass unchanged (mean 0, var 1). The observation normalisation of Elsayed et al. 2024.
    Float64 sums are kept beside the float32 `mean` and `var` (what exported policies hold); the
    forward is one fused x * scale + shift with scale = 1 / sqrt(var + 1e-8), shift = -mean * scale.

    For a population of K agents (`population`), each agent keeps its own statistics and count,
    shaped (K, dim) and (K,); inputs are (K, dim), or (K, B, dim) for the forward, and `update` may
    take some of the agents' observations only (an agent whose episode starts sees one more)."""

    def __init__(self, dim: int, keep: int = 0, population: int | None = None):
        super().__init__()
        self.dim, self.keep, self.population = dim, keep, population
        self.normalised = dim - keep
        lead = () if population is None else (population,)
        self.register_buffer("mean", torch.zeros(*lead, dim))
        self.register_buffer("var", torch.ones(*lead, dim))
        self.register_buffer("sum_mean", torch.zeros(*lead, self.normalised, dtype=torch.float64))
        self.register_buffer("sum_m2", torch.zeros(*lead, self.normalised, dtype=torch.float64))
        self.register_buffer("count", torch.zeros(lead, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(*lead, dim), persistent=False)
        self.register_buffer("shift", torch.zeros(*lead, dim), persistent=False)
        self._refresh()

    def single(self) -> WelfordNorm:
        """A fresh one-agent normaliser of the same kind (for an agent copied out of a population)."""
        return WelfordNorm(self.dim, self.keep)

    def _views(self) -> tuple[np.ndarray, ...]:
        """NumPy views of the buffers (CPU), made once: the update is a few NumPy operations. A
        population's count is viewed as (K, 1), to broadcast over each agent's values."""
        views = self.__dict__.get("_numpy")
        if views is None or views[0].ctypes.data != self.sum_mean.data_ptr():
            k = self.normalised
            count = self.count.numpy()
            views = (self.sum_mean.numpy(), self.sum_m2.numpy(),
                     count if self.population is None else count.reshape(-1, 1), self.mean.numpy()[..., :k],
                     self.var.numpy()[..., :k], self.scale.numpy()[..., :k], self.shift.numpy()[..., :k])
            self.__dict__["_numpy"] = views
        return views

    @torch.no_grad()
    def update(self, x, which: np.ndarray | None = None) -> None:
        """Add one observation (an array or tensor of `dim` values; a population's (K, dim)) to the
        statistics; `which`, a (K,) boolean array, adds only those agents' observations."""
        x = np.asarray(x, dtype=np.float64)[..., : self.normalised]
        if which is None:
            self._add(x, *self._views())
            return
        sums = self._views()
        before = [v.copy() for v in sums]
        self._add(x, *sums)
        skipped = ~np.asarray(which, dtype=bool)
        for view, old in zip(sums, before):  # the agents left out keep their statistics
            view[skipped] = old[skipped]

    def add(self, x: torch.Tensor) -> None:
        """`update` in tensor operations, for a compiled graph (sparserl.streaming.capture; one agent)."""
        k = self.normalised
        self._add(x[:k].double(), self.sum_mean, self.sum_m2, self.count, self.mean[:k], self.var[:k],
                  self.scale[:k], self.shift[:k])

    @staticmethod
    def _add(x, mean, m2, count, mean32, var32, scale, shift) -> None:
        """One observation into the statistics, in place, on NumPy views or tensors alike."""
        count += 1.0
        new_mean, new_m2 = welford_update(mean, m2, count, x)
        mean[...], m2[...] = new_mean, new_m2
        mean32[...] = mean
        var32[...] = welford_variance(m2, count)
        scale[...] = (var32 + 1e-8) ** -0.5
        shift[...] = -mean32 * scale

    def _refresh(self) -> None:
        """scale and shift from the float32 statistics, as `_add` computes them (a population resumed
        mid-episode acts on them before its next observation)."""
        _, _, _, mean32, var32, scale, shift = self._views()
        scale[...] = (var32 + 1e-8) ** -0.5
        shift[...] = -mean32 * scale

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.population is not None and x.dim() == 3:  # (K, B, dim): each agent's batch
            return torch.addcmul(self.shift.unsqueeze(-2), x, self.scale.unsqueeze(-2))
        return torch.addcmul(self.shift, x, self.scale)
