"""Where an agent's random draws come from (exploration noise, TD3's target smoothing, SAC's
reparameterisation, a streaming policy's sample).

One agent draws from torch's global generator, which the run seeds and checkpoints. A population
of K agents keeps one generator per agent, seeded from that agent's seed, and draws each agent's
slice of a (K, ...) tensor from its own generator: an agent's noise is its own stream, the same
whichever agents it is trained beside (and the same as a one-agent `Draws` of that seed).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from sparserl.errors import ConfigWarning

NOISE_STREAM = 0x6E6F697365
"""Mixed into each agent's seed for its noise generator (so it differs from the seed's other uses)."""


def noise_seed(seed: int) -> int:
    """The seed of an agent's noise generator, from the agent's seed."""
    return int(np.random.SeedSequence([seed, NOISE_STREAM]).generate_state(1)[0])


class Draws:
    """Standard normal and uniform draws for one agent (global generator) or, given `seeds`, one
    generator per agent; `population` False keeps one seeded agent's shapes (no leading axis)."""

    def __init__(self, seeds: list[int] | None = None, population: bool = True, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = None if seeds is None else [torch.Generator(self.device).manual_seed(noise_seed(s))
                                                      for s in seeds]
        self.population = population and seeds is not None

    def _draw(self, sample, shape: tuple[int, ...]) -> torch.Tensor:
        if self.generators is None:
            return sample(shape, device=self.device)
        if not self.population:
            return sample(shape, generator=self.generators[0], device=self.device)
        if shape[0] != len(self.generators):
            raise ValueError(f"a population draw leads with its {len(self.generators)} agents, got shape {shape}")
        return torch.stack([sample(shape[1:], generator=g, device=self.device) for g in self.generators])

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal values of `shape` (for a population, shape[0] is the number of agents)."""
        return self._draw(torch.randn, tuple(shape))

    def uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Uniform values in [0, 1) of `shape`."""
        return self._draw(torch.rand, tuple(shape))

    def state_dict(self) -> list[torch.Tensor] | None:
        return None if self.generators is None else [g.get_state() for g in self.generators]

    def load_state_dict(self, state: list[torch.Tensor] | None) -> None:
        if (state is None) != (self.generators is None) or (state is not None and len(state) != len(self.generators)):
            raise ValueError("checkpoint and agent disagree on the agents' noise generators")
        for g, s in zip(self.generators or (), state or ()):
            try:
                g.set_state(s)
            except RuntimeError:  # a checkpoint from another kind of device: its streams cannot carry over
                warnings.warn("the checkpoint's noise generators are from another device; the agents' noise "
                              "streams restart from their seeds", ConfigWarning, stacklevel=2)
                return
