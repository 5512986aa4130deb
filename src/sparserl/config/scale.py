"""The section of the run configuration that says how a run uses the machine: how many agents one
process trains in lockstep (a population, each agent with its own seed and run directory), and the
precision of the updates' products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sparserl.config import checks
from sparserl.config.checks import require
from sparserl.config.sparsity import LEVELS


@dataclass
class Scale:
    """Populations: K independent agents trained together, every network batched over the agents."""

    population: int = 1
    """Agents trained in lockstep in this one process, each with its own seed, networks, masks,
    replay, noise and environments, and its own run directory; their networks are one ensemble, so
    one batched product per layer serves every agent."""
    seeds: tuple[int, ...] = ()
    """The population's seeds, one per agent; empty means seed, seed + 1, ..."""
    device: Literal["cpu", "cuda", "auto"] = "auto"
    """Where networks, optimisers and replay live: cpu, cuda, or auto (CUDA where a GPU is visible;
    the CPU for streaming learners). Environments always step on the CPU; checkpoints load on any device."""
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """Products of the replay updates: fp32; bf16 (autocast: bfloat16 products, with float32
    weights, gradients, optimiser state and TD-target sums); or auto, bf16 where the CPU (AMX,
    AVX512-BF16) or GPU has bfloat16 matrix units, else fp32 (the choice is printed at start)."""

    step_compile: Literal["auto", "on", "off"] = "auto"
    """Run each step's learning as a graph compiled by torch.compile (the same computation, after a
    compile of tens of seconds at the start): on, off, or auto. Streaming learners
    (sparserl.streaming.capture) compile the update and next action, auto for runs of at least
    50 000 steps whose networks hold at most 300 000 parameters (2.6x the eager step at width 128;
    wider networks are memory-bound and gain nothing). Replay learners (sparserl.runs.capture)
    compile the update, auto for single-agent CPU runs of at least 50 000 updates on state
    observations. Both need a C++ compiler and dense execution."""

    def problems(self) -> list[str]:
        out = require(self, ("population",), checks.positive_int, "an integer >= 1")
        out += [f"seeds must be integers in [0, 2**32), got {s!r}" for s in self.seeds if not checks.seed(s)]
        out += self._precision_problems()
        if self.seeds and checks.positive_int(self.population) and len(self.seeds) != self.population:
            out.append(f"seeds lists {len(self.seeds)} seeds for a population of {self.population}; give one "
                       f"per agent (or none: seed, seed + 1, ...)")
        out += self._level_problems()
        out += self._compile_problems()
        if len(set(self.seeds)) != len(self.seeds) and not self.sparsity.per_agent:
            out.append(f"seeds must differ from one another, got {list(self.seeds)}")
        if checks.positive_int(self.population) and self.population > 1:
            out += [f"population {self.population}: {what}" for what in self._unbatched()]
        return out

    def _unbatched(self) -> list[str]:
        """The settings a population cannot batch (yet), each with its reason."""
        from sparserl.algos import ALGORITHMS

        out = []
        if self.pixels:
            out.append("pixels: a pixel run trains one agent (its frame replay and encoder are not batched)")
        if self.algo in ALGORITHMS and ALGORITHMS.get(self.algo).streaming and self.step_compile == "on":
            out.append("step_compile on: a population's streaming step runs eagerly (its batched products "
                       "already share the per-step overhead); use step_compile auto or off")
        if self.execution != "dense":
            out.append(f"execution {self.execution}: a population runs masked dense products; use execution dense")
        return out

    def _level_problems(self) -> list[str]:
        """Per-agent sparsity levels: one per agent of a population, and no two agents alike."""
        out = []
        for network in LEVELS:
            levels = getattr(self.sparsity, f"{network}_levels")
            if levels and checks.positive_int(self.population) and len(levels) != self.population:
                out.append(f"{network}_levels lists {len(levels)} levels for a population of {self.population}; "
                           f"give one per agent")
        if self.sparsity.per_agent and not out and checks.positive_int(self.population) and \
                len(set(self.agent_names)) != self.population:
            out.append(f"two agents of the population would be alike (seed and levels): {self.agent_names}")
        return out

    def _compile_problems(self) -> list[str]:
        from sparserl.algos import ALGORITHMS
        from sparserl.runs.capture import update_compiler_problem
        from sparserl.streaming.capture import compiler_problem

        if self.step_compile != "on" or self.algo not in ALGORITHMS:
            return []
        streaming = ALGORITHMS.get(self.algo).streaming
        if streaming and checks.positive_int(self.population) and self.population > 1:
            return []  # (said among the settings a population cannot batch)
        problem = compiler_problem(self) if streaming else update_compiler_problem(self)
        return [] if problem is None else [f"step_compile on: {problem}"]

    def _precision_problems(self) -> list[str]:
        from sparserl.algos import ALGORITHMS

        if self.precision == "bf16" and self.algo in ALGORITHMS and ALGORITHMS.get(self.algo).streaming:
            return [f"precision bf16: {self.algo} updates one transition at a time, where the cost is the "
                    f"number of operations, not their size; bf16 brings nothing there (use fp32 or auto)"]
        return []

    @property
    def agent_names(self) -> list[str]:
        """Each agent's name (its run directory inside the population's): seed-<s>, with its levels
        where the agents have levels of their own (seed-0_actor-0.5_critic-0.9)."""
        names = []
        for k, seed in enumerate(self.agent_seeds):
            parts = [f"seed-{seed}"] + [f"{network}-{getattr(self.sparsity, f'{network}_levels')[k]:g}"
                                        for network in LEVELS
                                        if getattr(self.sparsity, f"{network}_levels")]
            names.append("_".join(parts))
        return names

    @property
    def agent_seeds(self) -> list[int]:
        """Each agent's seed: `seeds`, or seed, seed + 1, ... for the population's size."""
        return list(self.seeds) if self.seeds else [self.seed + k for k in range(self.population)]

    def agent_config(self, k: int, run_dir):
        """The configuration of the one-agent run that agent k of this population is equivalent to."""
        from dataclasses import replace

        s = self.sparsity
        levels = {f"{network}_sparsity": s.agent_level(network, k) for network in LEVELS
                  if getattr(s, f"{network}_levels")}
        sparsity = replace(s, **{f"{network}_levels": () for network in LEVELS}, **levels)
        return self.replace(population=1, seeds=(), seed=self.agent_seeds[k], sparsity=sparsity, run_dir=str(run_dir))
