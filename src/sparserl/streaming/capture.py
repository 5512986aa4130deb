"""A streaming step compiled as one graph: the update from one transition and the next action.

A streaming agent's step is a few dozen tensor operations on networks of some ten thousand weights
at batch size 1, so eager PyTorch spends it dispatching operations and recording autograd's graph,
not computing. `CompiledStep` runs the agent's own functions, unchanged, as one graph compiled by
torch.compile (Inductor, with its C++ wrapper): the normalisation of the new observation, the
agent's `loss`, its gradient (torch.func.grad over the optimisers' flat parameter buffers), the
sparsity engine's gradient masks, each ObGD's `rule` and the next action's `sample`, in place on
the optimisers' flat buffers. The algorithm is written once (sparserl.streaming.agent); this only
changes how it runs. The new observation's statistics (the learner's `observe`) are taken inside
the graph too.

The steps a graph does not take run eagerly, through the same agent and optimisers: an episode's
last step (traces are reset, and the next observation comes from a reset) and any step the
sparsity engine does not call plain (a mask update: Method.plain). Both paths share every buffer,
so they interleave freely and checkpoints see no difference. The graph is compiled on the first
step (tens of seconds; Inductor caches it on disk for later runs of the same shapes) and called
with guard evaluation skipped, since nothing it depends on changes between steps.

`step_compile` decides (sparserl.config.streaming): `auto` compiles where it pays, runs of at least
AUTO_MIN_STEPS steps whose networks hold at most AUTO_MAX_PARAMETERS parameters, where a C++
compiler is found and the masked layers run densely, and never for a population; `on` insists
(refused where impossible); `off` runs every step eagerly. Wider networks make the step bound by
memory traffic instead of dispatch, and there the graph, which writes its results back into the
buffers it reads, is slower than the eager step (BENCHMARKS.md: 1.7x the eager step at width 256
on Hopper, 1.0x at 512, 0.7x at 1024).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import types

import numpy as np
import torch
from torch import nn

from sparserl.streaming.obgd import ObGD

AUTO_MIN_STEPS = 50_000
"""`step_compile auto` compiles runs of at least this many steps (the compile costs about as much
as 10 000 eager steps at width 128)."""
AUTO_MAX_PARAMETERS = 300_000
"""... and networks of at most this many parameters in all (Stream AC on Hopper: 2 x 128 holds
37 255, 2 x 256 140 039, 2 x 384 308 359, 2 x 512 542 215)."""


def compiler_problem(config) -> str | None:
    """Why this run's streaming step cannot be compiled, or None."""
    if not hasattr(torch, "compile"):
        return "this PyTorch has no torch.compile"
    if not any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if name):
        return "no C++ compiler was found for Inductor (install g++ or set CXX)"
    if config.execution != "dense":
        return f"execution {config.execution!r} runs its own sparse kernels; the compiled step needs execution dense"
    return None


def wants_compiled(config, parameters: int) -> bool:
    """Whether a streaming run whose networks hold `parameters` compiles its step (see the module
    docstring); `on` where impossible is refused by the configuration's checks before any work."""
    if config.step_compile == "off" or config.population > 1:  # (a population's: refused for on, config.scale)
        return False
    if config.step_compile == "on":
        return True
    return (config.total_steps >= AUTO_MIN_STEPS and parameters <= AUTO_MAX_PARAMETERS
            and compiler_problem(config) is None)


class _Calls(nn.Module):
    """The agent's networks under one module, so torch.func.functional_call can run any of the
    agent's functions on substituted parameters."""

    def __init__(self, agent):
        super().__init__()
        self.networks = nn.ModuleDict(agent.networks)
        self.agent = agent

    def forward(self, function: str, *args):
        return getattr(self.agent, function)(*args)


class CompiledStep:
    """A StreamingAgent's learn-then-act as one compiled graph; see the module docstring.

    `__call__(reward, next_obs)` is the agent's `observe(next_obs)` and `learn` for a step that
    neither ends the episode nor is terminal, followed by its `act` at `next_obs`; it returns the
    environment's action, or None, having done nothing, when this step must run eagerly (then the
    caller observes, learns and, later, acts itself)."""

    def __init__(self, agent):
        self.agent = agent
        self.optimizers = list(agent.optimizers.items())
        for name, optimizer in self.optimizers:
            if not isinstance(optimizer, ObGD) or len(optimizer.param_groups) != 1:
                raise TypeError(f"CompiledStep: optimiser {name!r} must be an ObGD of one parameter group")
        self.calls = _Calls(agent)
        names = {id(p): name for name, p in self.calls.named_parameters()}
        self.layout = []
        """Per optimiser: (parameter name, offset, shape) of each parameter in its flat buffer."""
        for _, optimizer in self.optimizers:
            offset, entries = 0, []
            for p, _, _ in optimizer._views[0]:
                entries.append((names[id(p)], offset, p.shape))
                offset += p.numel()
            self.layout.append(entries)
        self.groups = [{k: v for k, v in optimizer.param_groups[0].items() if k not in ("params", "steps")}
                       for _, optimizer in self.optimizers]
        """The groups' settings, fixed for the run (the graph holds them as constants)."""
        self.reward = torch.zeros(())
        self.next_obs = torch.zeros(agent.info.obs_dim)
        self._host = (self.reward.numpy(), self.next_obs.numpy())  # written without a torch call
        self.prepared: list[torch.Tensor] | None = None
        self.slots: list[dict[int, int]] = [{} for _ in self.optimizers]
        """Per optimiser: position in its parameters of each masked weight (by id)."""
        self.keys = [tuple(k for k in optimizer._flat[0] if k != "grad") for _, optimizer in self.optimizers]
        """Per optimiser, the flat buffers the rule reads (all but the gradient's)."""
        self.x = self.action = None  # the graph's observation and action buffers (made at the first step)
        self._args: list = []
        self._key: list | None = None
        self.masked: list[tuple[bool, ...]] | None = None
        """Per optimiser, which of its parameters carry a mask (fixed at the first step)."""
        # a code object of its own, so that this step's compiled graph is the only entry of its cache
        # (guard evaluation is skipped on calls) and goes with it
        graph = types.FunctionType(CompiledStep._graph.__code__.replace(), CompiledStep._graph.__globals__)
        self.graph = torch.compile(types.MethodType(graph, self), fullgraph=True, dynamic=False,
                                   options={"cpp_wrapper": True})
        self.compiled = False
        """Whether the graph has been compiled (at the first step it takes)."""
        self.steps = 0
        """Steps taken in the graph."""
        self.failed: str | None = None
        """Why compiling failed (every step then runs eagerly), or None."""

    # --- the graph --------------------------------------------------------------------------------
    def _named(self, buffers) -> dict[str, torch.Tensor]:
        return {name: flat[offset:offset + shape.numel()].view(shape)
                for flat, entries in zip(buffers, self.layout) for name, offset, shape in entries}

    def _masked(self, index: int, grad: torch.Tensor, masks: list) -> torch.Tensor:
        if not any(m is not None for m in masks):
            return grad
        parts = []
        for (_, offset, shape), mask in zip(self.layout[index], masks):
            part = grad[offset:offset + shape.numel()]
            parts.append(part if mask is None else part * mask.reshape(-1))
        return torch.cat(parts)

    def _graph(self, tensors: list[torch.Tensor]) -> None:
        """The step on one flat list of tensors (see `_inputs` for its order), in place: the
        buffers `x` and `action` become the next observation (normalised) and the next action, and
        the statistics row is added to the agent's sums."""
        agent, calls = self.agent, self.calls
        it = iter(tensors)
        flats = [{key: next(it) for key in keys} for keys in self.keys]
        prepared = [next(it) for _ in flats]
        masks = [[next(it) if masked else None for masked in slots] for slots in self.masked]
        x, action, next_obs, reward, noise, stat_sums = it
        if agent.obs_norm is not None:
            agent.obs_norm.add(next_obs)  # the learner's `observe`, taken into the graph
        x_next = agent.normalise(next_obs)

        def loss_of(*params):
            loss, delta, stats = torch.func.functional_call(
                calls, self._named(params), ("loss", x, action, reward, agent.config.gamma, x_next))
            return loss, (delta, stats)

        params = [flat["param"] for flat in flats]
        grads, (delta, stats) = torch.func.grad(loss_of, argnums=tuple(range(len(params))), has_aux=True)(*params)
        alphas = []
        for index, (_, optimizer) in enumerate(self.optimizers):
            grad = self._masked(index, grads[index], masks[index])
            alphas.append(optimizer.rule(self.groups[index], flats[index], grad, delta, *prepared[index].unbind()))
        stat_sums.add_(torch.cat((stats, torch.stack(alphas))))
        action.copy_(torch.func.functional_call(calls, self._named(params), ("sample", x_next, noise)))
        x.copy_(x_next)

    # --- a step -----------------------------------------------------------------------------------
    def _masks(self) -> list[list[torch.Tensor | None]] | None:
        """Per optimiser, the mask of each of its parameters (None: dense), or None if a network's
        step is not plain."""
        sparsifier = self.agent.sparsifier
        out = []
        for index, (name, optimizer) in enumerate(self.optimizers):
            pairs = [] if sparsifier is None else sparsifier.plain_masks(name)
            if pairs is None:
                return None
            slots = self.slots[index]
            if len(slots) != len(pairs):
                positions = {id(p): i for i, (p, _, _) in enumerate(optimizer._views[0])}
                slots.clear()
                slots.update({id(p): positions[id(p)] for p, _ in pairs})
            masks = [None] * len(self.layout[index])
            for p, mask in pairs:
                masks[slots[id(p)]] = mask
            out.append(masks)
        return out

    def _prepare(self) -> list[torch.Tensor]:
        values = [optimizer.prepare(optimizer.param_groups[0]) for _, optimizer in self.optimizers]
        if self.prepared is None:
            self.prepared = [torch.tensor(v, dtype=torch.float32) for v in values]
            self._prepared_host = [t.numpy() for t in self.prepared]
        for host, v in zip(self._prepared_host, values):
            host[:] = v
        return self.prepared

    def _inputs(self, masks) -> list[torch.Tensor]:
        """The graph's tensors: each optimiser's flat buffers (`keys`), each one's prepared values,
        the masks there are, then x, action, next observation, reward, noise and the statistics'
        sums. The list is kept while the masks stay the same tensors; the noise is drawn anew."""
        agent = self.agent
        x, action = agent._pending
        if self.x is None:
            self.x, self.action = torch.empty_like(x), torch.empty_like(action)
        if x is not self.x:  # the eager `act` chose this action (an episode's first step)
            self.x.copy_(x)
            self.action.copy_(action)
        prepared = self._prepare()
        present = [m for per in masks for m in per if m is not None]
        key = [id(m) for m in present]
        if key != self._key:
            tensors = [optimizer._flat[0][k] for (_, optimizer), keys in zip(self.optimizers, self.keys) for k in keys]
            self._args = tensors + prepared + present + [self.x, self.action, self.next_obs, self.reward, None,
                                                         agent._stat_sums]
            self._key = key
        self._args[-2] = agent.noise()
        return self._args

    def __call__(self, reward: float, next_obs: np.ndarray) -> np.ndarray | None:
        agent = self.agent
        if self.failed is not None or agent._pending is None:
            return None
        masks = self._masks()
        if masks is None:
            return None
        self._host[0][...] = reward
        self._host[1][:] = next_obs
        if self.compiled:
            with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                self.graph(self._inputs(masks))
        elif not self._compile(masks):
            return None
        sparsifier = agent.sparsifier
        if sparsifier is not None:
            for name, _ in self.optimizers:
                sparsifier.count_plain_step(name)
        agent.updates += 1
        self.steps += 1
        agent.count_recorded(0, len(agent.stat_names))
        agent._pending = (self.x, self.action)
        return agent.env_action(self.action)

    def _compile(self, masks):
        """The first step: compile and run it. On failure every step runs eagerly, this one included
        (buffers, counters, statistics and the random draw are put back for the eager `learn` and
        `act`)."""
        print("sparserl: compiling the streaming step (once; tens of seconds) ...", file=sys.stderr, flush=True)
        self.masked = [tuple(m is not None for m in per) for per in masks]
        agent = self.agent
        saved = [{key: t.clone() for key, t in optimizer._flat[0].items()} for _, optimizer in self.optimizers]
        groups = [dict(optimizer.param_groups[0]) for _, optimizer in self.optimizers]
        pending, sums, rng = agent._pending, agent._stat_sums.clone(), torch.get_rng_state()
        statistics = None if agent.obs_norm is None else copy.deepcopy(agent.obs_norm.state_dict())
        try:
            self.graph(self._inputs(masks))
        except Exception as exc:  # noqa: BLE001 (any compiler failure leaves the run on the eager path)
            for (_, optimizer), copies, group in zip(self.optimizers, saved, groups):
                for key, t in copies.items():
                    optimizer._flat[0][key].copy_(t)
                optimizer.param_groups[0].update(group)
            agent._stat_sums.copy_(sums)
            agent._pending = pending
            if statistics is not None:
                agent.obs_norm.load_state_dict(statistics)
            torch.set_rng_state(rng)
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"sparserl: the streaming step could not be compiled ({self.failed}); running eagerly",
                  file=sys.stderr, flush=True)
            return False
        self.compiled = True
        return True
