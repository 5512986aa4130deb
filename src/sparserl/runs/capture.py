"""A replay agent's update compiled as one graph per kind of update: the same algorithm, run by
torch.compile.

`CompiledUpdate(agent)(batch)` runs `agent.update(batch)`, the algorithm's own method, unchanged,
under torch.compile (Inductor). Two things eager PyTorch does outside the tensor program come into
the graph while it is traced: each `optimize(optimizer, loss)` becomes the loss's gradient
(torch.autograd.grad, traced), the sparsity engine's gradient masks and Adam's step in foreach
operations (torch.optim.Adam's and AdamW's rule, to float rounding of the fused kernel); and the
update's bookkeeping (its counter, the statistics' counts, the sparsity engine's step counts) is
logged in the graph and replayed after it. The forward and backward products, the element-wise
work between them, the optimiser steps, Polyak averaging and the statistics become one program per
kind of update (TD3: the critic's update, and every policy_delay-th the critic's, the actor's and
the targets'); Inductor fuses the element-wise work and drops the per-operation dispatch.

An update the graph cannot take runs eagerly through the same agent and optimisers, which share
every tensor with the graph: any update where a network's optimiser step is not plain (a
topology update or N:M re-projection: Method.plain), and every update after a failed compile.

`step_compile` decides (sparserl.config.scale): `auto` compiles single-agent runs on the CPU whose
learning takes at least AUTO_MIN_UPDATES updates, with dense execution, state observations and a
C++ compiler; `on` insists (refused where impossible); `off` keeps every update eager. Populations
stay eager: each agent draws from its own generator, which a graph cannot hold, and with the draws
kept outside the graph a compiled K = 5 bf16 population's update measured 1.01x the eager one on a
Zen 4 core (its batched products already share the per-operation overhead).
"""

from __future__ import annotations

import sys
import types

import torch

from sparserl.optim import LeanAdam

AUTO_MIN_UPDATES = 50_000
"""`step_compile auto` compiles runs of at least this many updates (the compile, tens of seconds,
costs a few thousand eager updates)."""


def update_compiler_problem(config) -> str | None:
    """Why this replay run's update cannot be compiled, or None."""
    from sparserl.streaming.capture import compiler_problem

    problem = compiler_problem(config)
    if problem is not None:
        return problem
    if config.population > 1:
        return "a population's updates run eagerly (each agent draws from its own generator)"
    if config.pixels:
        return "a pixel agent's update runs eagerly"
    return None


def wants_compiled_update(config, device: torch.device) -> bool:
    """Whether a replay run compiles its update (see the module docstring)."""
    if config.step_compile == "off":
        return False
    if config.step_compile == "on":
        return True  # (impossible cases are refused by the configuration's checks)
    return device.type == "cpu" and config.learning_updates >= AUTO_MIN_UPDATES and \
        update_compiler_problem(config) is None


class CompiledUpdate:
    """`agent.update` as compiled graphs; see the module docstring. Calling it takes one update."""

    def __init__(self, agent):
        self.agent = agent
        self.optimizers = list(agent.optimizers.items())
        for name, optimizer in self.optimizers:
            if not isinstance(optimizer, LeanAdam) or len(optimizer.param_groups) != 1:
                raise TypeError(f"CompiledUpdate: optimiser {name!r} must be a LeanAdam of one parameter group")
        self._optimize = self._graph_optimize  # one bound method each, so the graph's guards hold
        self._count = self._graph_count
        self._log: list = []
        self._masks: list = []
        # a code object of its own, so that this agent's graphs alone count towards its recompile limit
        graph = types.FunctionType(CompiledUpdate._graph.__code__.replace(), CompiledUpdate._graph.__globals__)
        self.graph = torch.compile(types.MethodType(graph, self), fullgraph=True)  # a graph break: eager
        self.compiled = False
        self.failed: str | None = None
        """Why compiling failed (every update then runs eagerly), or None."""
        self.graph_updates = 0
        """Updates taken in the graph."""

    # --- inside the graph ---------------------------------------------------------------------------
    def _graph(self, batch, updates: int, log: list, masks: list) -> None:
        self.agent.updates = updates
        self._log, self._masks = log, masks
        self.agent.update(batch)

    def _graph_count(self, first: int, count: int) -> None:
        self._log.append(("stat", first, count))

    def _graph_optimize(self, optimizer, loss: torch.Tensor) -> None:
        """One Adam step of `optimizer` on `loss`, in the graph (the stock step's hooks do not run:
        the step is plain, its gradient masks are applied here)."""
        index = name = None
        for i, (n, candidate) in enumerate(self.optimizers):
            if candidate is optimizer:
                index, name = i, n
        params, exp_avgs, exp_avg_sqs, steps = optimizer._lists[0]
        grads = list(torch.autograd.grad(loss if loss.dim() == 0 else loss.sum(), params))
        grads = [g if mask is None else g * mask for g, mask in zip(grads, self._masks[index])]
        group = optimizer.param_groups[0]
        lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        with torch.no_grad():
            if decay and group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1.0 - lr * decay)
            elif decay:
                grads = torch._foreach_add(grads, params, alpha=decay)
            torch._foreach_add_(steps, 1)
            torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - beta2)
            step = steps[0]  # every parameter of the group steps together
            step_size = lr / (1.0 - beta1 ** step)
            denom = torch._foreach_div(torch._foreach_sqrt(exp_avg_sqs), torch.sqrt(1.0 - beta2 ** step))
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, torch._foreach_mul(exp_avgs, -step_size), denom)
        self._log.append(("step", name))

    # --- an update ------------------------------------------------------------------------------------
    def _plain_masks(self) -> list[list[torch.Tensor | None]] | None:
        """Per optimiser, the mask of each of its parameters (None: dense), or None when a step of
        this update is not plain."""
        sparsifier = self.agent.sparsifier
        out = []
        for name, optimizer in self.optimizers:
            pairs = [] if sparsifier is None else sparsifier.plain_masks(name)
            if pairs is None:
                return None
            by_param = {id(p): mask for p, mask in pairs}
            out.append([by_param.get(id(p)) for p in optimizer._lists[0][0]])
        return out

    def __call__(self, batch) -> None:
        agent = self.agent
        masks = None if self.failed is not None else self._plain_masks()
        if masks is None:
            agent.update(batch)
            return
        if not self.compiled:
            print("sparserl: compiling the update step (once per kind of update; tens of seconds) ...",
                  file=sys.stderr, flush=True)
        log: list = []
        agent.optimize, agent.count_recorded = self._optimize, self._count
        try:
            with _tracing_gradients():
                self.graph(batch, agent.updates, log, masks)
        except Exception as exc:  # noqa: BLE001 (a compiler failure leaves the run eager; nothing ran)
            if self.compiled and not isinstance(exc, compile_failures()):  # (a later kind of update compiles later)
                raise
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"sparserl: the update step could not be compiled ({self.failed}); running eagerly",
                  file=sys.stderr, flush=True)
            del agent.optimize, agent.count_recorded
            agent.update(batch)
            return
        del agent.optimize, agent.count_recorded
        self.compiled = True
        self.graph_updates += 1
        for entry in log:
            if entry[0] == "stat":
                agent.count_recorded(entry[1], entry[2])
            elif agent.sparsifier is not None:
                agent.sparsifier.count_plain_step(entry[1])


def compile_failures() -> tuple[type[Exception], ...]:
    """What torch.compile raises when it cannot compile a graph (before running any of it). Imported
    here, not with the module: torch's compiler stack adds about a second to every process's start."""
    import torch._dynamo.exc

    return torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit


class _tracing_gradients:
    """torch.autograd.grad traced into the graph, and random draws through ATen's generator (the
    eager stream: a compiled update draws what the eager one would)."""

    def __enter__(self):
        import torch._dynamo
        import torch._inductor.config

        self._saved = torch._dynamo.config.trace_autograd_ops, torch._inductor.config.fallback_random
        torch._dynamo.config.trace_autograd_ops = True
        torch._inductor.config.fallback_random = True

    def __exit__(self, *exc):
        torch._dynamo.config.trace_autograd_ops, torch._inductor.config.fallback_random = self._saved
