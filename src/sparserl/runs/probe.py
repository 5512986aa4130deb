"""When and on what a run measures its plasticity diagnostics (sparserl.diagnostics), for one agent
or each agent of a population.

Each agent draws its diagnostics batch from its own replay with a generator of its own, seeded
(agent seed + DIAGNOSTICS_SEED_OFFSET), so measuring never moves the training's random streams. A
population's agent k is measured as its one-agent run would be: its networks (and targets and
temperature) are copied into a one-agent twin built once, its masks are viewed in the twin's
layout, and its batch comes from its own ring, drawn as a one-agent buffer draws it.
"""

from __future__ import annotations

import torch

from sparserl.diagnostics import Diagnostics
from sparserl.hardware import rng_untouched

DIAGNOSTICS_SEED_OFFSET = 7919
"""Diagnostics draw their replay batches from a generator of their own, seeded seed + this."""


class _MemberMasks:
    """Agent k's masks, keyed by the twin's parameters (what Diagnostics asks a sparsifier for)."""

    def __init__(self, sparsifier, population, twin, agents: int):
        self.sparsifier, self.population, self.twin, self.agents, self.k = sparsifier, population, twin, agents, 0

    def masks_by_param(self, name: str) -> dict:
        from sparserl.population.members import member_view

        masks = self.sparsifier.masks_by_param(name)
        twin = dict(self.twin.networks[name].named_parameters())
        out = {}
        for pname, param in self.population.networks[name].named_parameters():
            if param in masks:
                out[twin[pname]] = member_view(masks[param], twin[pname].shape, self.k, self.agents)
        return out


class DiagnosticsProbe:
    """The diagnostics of every agent of a run, measured on demand (see the module docstring)."""

    def __init__(self, config, info, agent, sparsifier):
        self.agent, self.agents = agent, agent.population
        seeds = config.agent_seeds if self.agents else [config.seed]
        self.generators = [torch.Generator().manual_seed(s + DIAGNOSTICS_SEED_OFFSET) for s in seeds]
        self.twin = self.masks = None
        if self.agents is None:
            self.diagnostics = Diagnostics(agent, sparsifier, config.dormant_point, config.interference_samples)
            return
        from sparserl.algos import make_agent

        with rng_untouched(agent.device):  # the twin's initialisation draws nothing from training's streams
            self.twin = make_agent(info, config.agent_config(0, config.run_dir))
        if sparsifier is not None:
            self.masks = _MemberMasks(sparsifier, agent, self.twin, self.agents)
        self.diagnostics = Diagnostics(self.twin, self.masks, config.dormant_point, config.interference_samples)

    @property
    def names(self) -> tuple[str, ...]:
        return self.diagnostics.names

    def measure(self, learner, size: int) -> list[dict[str, float]] | None:
        """Each agent's diagnostics on `size` of its transitions, or None while the replay holds fewer."""
        out = []
        for k, generator in enumerate(self.generators):
            batch = learner.sample_for_diagnostics(size, generator, agent=None if self.agents is None else k)
            if batch is None:
                return None
            if self.twin is not None:
                self._load_member(k)
            out.append(self.diagnostics.compute(batch))
        return out

    def _load_member(self, k: int) -> None:
        from sparserl.population.members import copy_member

        for name, module in self.twin.networks.items():
            copy_member(self.agent.networks[name], module, k, self.agents)
        if self.masks is not None:
            self.masks.k = k

    def state_dict(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.generators]

    def load_state_dict(self, state) -> None:
        states = [state] if isinstance(state, torch.Tensor) else state  # (a single tensor before populations)
        for generator, saved in zip(self.generators, states, strict=True):
            generator.set_state(saved)
