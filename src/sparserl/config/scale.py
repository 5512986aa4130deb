"""The section of the run configuration that says how a run uses the machine: how many agents one
process trains in lockstep (a population, each agent with its own seed and run directory)."""

from __future__ import annotations

from dataclasses import dataclass

from sparserl.config import checks
from sparserl.config.checks import require


@dataclass
class Scale:
    """Populations: K independent agents trained together, every network batched over the agents."""

    population: int = 1
    """Agents trained in lockstep in this one process, each with its own seed, networks, masks,
    replay, noise and environments, and its own run directory; their networks are one ensemble, so
    one batched product per layer serves every agent."""
    seeds: tuple[int, ...] = ()
    """The population's seeds, one per agent; empty means seed, seed + 1, ..."""

    def problems(self) -> list[str]:
        out = require(self, ("population",), checks.positive_int, "an integer >= 1")
        out += [f"seeds must be integers in [0, 2**32), got {s!r}" for s in self.seeds if not checks.seed(s)]
        if self.seeds and checks.positive_int(self.population) and len(self.seeds) != self.population:
            out.append(f"seeds lists {len(self.seeds)} seeds for a population of {self.population}; give one "
                       f"per agent (or none: seed, seed + 1, ...)")
        if len(set(self.seeds)) != len(self.seeds):
            out.append(f"seeds must differ from one another, got {list(self.seeds)}")
        return out

    @property
    def agent_seeds(self) -> list[int]:
        """Each agent's seed: `seeds`, or seed, seed + 1, ... for the population's size."""
        return list(self.seeds) if self.seeds else [self.seed + k for k in range(self.population)]
