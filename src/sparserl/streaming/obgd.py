"""ObGD, the overshooting-bounded gradient step of streaming RL (Elsayed, Vasan, Mahmood 2024,
"Streaming Deep RL Finally Works", Algorithm 3).

Per network (one parameter group), after the gradient g of the network's loss for one transition
(the loss is -V(s) for a critic and -log pi(a|s) for an actor, so g = -grad of the objective):

    z     <- gamma * lambda * z + g                     accumulating eligibility trace
    M     =  max(|delta|, 1) * ||z||_1 * lr * kappa      over every parameter of the group
    alpha =  lr / M  if M > 1  else  lr
    theta <- theta - alpha * delta * z                  (= theta + alpha * delta * grad objective)

and traces are set to zero at episode ends (`reset_traces`). `AdaptiveObGD` (Elsayed et al.'s
appendix variant) divides delta * z by the RMS of its own running second moment before the bound.
Defaults: lr 1.0, gamma 0.99, lambda 0.8; kappa 2 for a value network, 3 for a policy.

Speed without a change of rule: a streaming step updates a small network once per transition, so
its cost is the number of tensor operations, not their size. Each group's parameters, gradients
and traces therefore live in one flat buffer apiece (``p.data``, ``p.grad`` and
``optimizer.state[p]["trace"]`` are views into them), and a step is a handful of whole-buffer
operations; the bound is computed with tensor operations (alpha = lr / max(M, 1)), so a step never
waits on the host. The rule itself (`rule`) takes tensors alone, so a compiled streaming step
(sparserl.streaming.capture) runs the same code inside its graph. The sparsity engine's hooks mask
``p.grad`` in place before the trace takes it, and its moment reset zeroes the trace of a regrown
weight in place. A gradient assigned as a new tensor (``p.grad = g``) is copied into the buffer at
the next step.

A population of K agents (`agents`) has every parameter lead with its K agents, so each
parameter's block of a flat buffer views as (K, n): each agent's trace norm, bound and step size are
its own (an operation per block where one agent takes one per buffer), delta is a (K,) vector, and
`step(reset=...)` takes a (K,) boolean tensor of the agents whose episode ended.
"""

from __future__ import annotations

import torch

from sparserl.optim import lean_step, run_post_hooks, run_pre_hooks


def _blocks(flat: dict, *tensors: torch.Tensor):
    """Each of a population's flat `tensors` as (K, n) views, one per parameter (its block)."""
    agents, sizes = flat["agents"], flat["blocks"]
    return zip(*([part.view(agents, -1) for part in t.split(sizes)] for t in tensors))


def agent_sums(flat: dict, values: torch.Tensor) -> torch.Tensor:
    """The sum of a group's flat `values`: one agent's (0-d), or each agent's of a population, (K,)."""
    if "blocks" not in flat:
        return values.sum()
    return torch.stack([block.sum(1) for (block,) in _blocks(flat, values)]).sum(0)


def agent_scaled(flat: dict, values: torch.Tensor, scale: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """`values` times each entry's agent's `scale` (0-d, or a population's (K,)), into `out` if given."""
    if "blocks" not in flat:
        return torch.mul(values, scale, out=out) if out is not None else values * scale
    out = torch.empty_like(values) if out is None else out
    for block, result in _blocks(flat, values, out):
        torch.mul(block, scale.unsqueeze(1), out=result)
    return out


def agent_step_(flat: dict, target: torch.Tensor, direction: torch.Tensor, scale: torch.Tensor) -> None:
    """target -= scale * direction, each entry with its agent's `scale`."""
    if "blocks" not in flat:
        target.addcmul_(direction, scale, value=-1.0)
        return
    for block, step in _blocks(flat, target, direction):
        block.addcmul_(step, scale.unsqueeze(1), value=-1.0)


class ObGD(torch.optim.Optimizer):
    """Eligibility-trace SGD with ObGD's step-size bound; `step(delta)` takes the TD error."""

    state_keys: tuple[str, ...] = ("trace",)
    """Per-parameter state kept in flat buffers (each shaped like the parameter)."""

    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 agents: int | None = None, **extra):
        for name, value, ok in (("lr", lr, lr > 0), ("gamma", gamma, 0 <= gamma <= 1),
                                ("lamda", lamda, 0 <= lamda <= 1), ("kappa", kappa, kappa > 0)):
            if not ok:
                raise ValueError(f"ObGD: {name} {value!r} is out of range (lr > 0, gamma and lamda in [0, 1], "
                                 f"kappa > 0)")
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa, **extra))
        self.agents = agents
        """K, the agents whose parameters lead each tensor (None: one agent, flat buffers)."""
        self._views: list[list[tuple[torch.nn.Parameter, torch.Tensor, dict[str, torch.Tensor]]]] = []
        """Per group, each parameter with its views of the flat gradient and state buffers."""
        self._flat = [self._flatten(group) for group in self.param_groups]

    # --- the flat buffers -------------------------------------------------------------------------
    @torch.no_grad()
    def _flatten(self, group: dict) -> dict[str, torch.Tensor]:
        """Move the group's parameters into one buffer and give each a gradient and state views (a
        population's: with its agents and each parameter's block size, ``flat["agents"]`` and
        ``flat["blocks"]``)."""
        params = group["params"]
        if len({(p.dtype, p.device) for p in params}) > 1:
            raise ValueError("ObGD: the parameters of a group must share one dtype and device")
        agents = self.agents
        if agents is not None and any(p.dim() == 0 or p.shape[0] != agents for p in params):
            raise ValueError(f"ObGD: every parameter of a population of {agents} agents must lead with them")
        total = sum(p.numel() for p in params)
        like = params[0]
        flat = {key: torch.zeros(total, dtype=like.dtype, device=like.device)
                for key in ("param", "grad", *self.state_keys)}
        if agents is not None:  # each parameter's block: (K, n), agent-major within it
            flat["agents"], flat["blocks"] = agents, [p.numel() for p in params]
        offset, views = 0, []
        for p in params:
            n = p.numel()
            view = flat["param"][offset:offset + n].view_as(p)
            view.copy_(p.detach())
            p.data = view
            p.grad = flat["grad"][offset:offset + n].view_as(p)
            state = {key: flat[key][offset:offset + n].view_as(p) for key in self.state_keys}
            self.state[p].update(state)
            views.append((p, p.grad, state))
            offset += n
        self._views.append(views)
        return flat

    def _gather_grads(self, index: int) -> None:
        """Make sure every p.grad is its view of the flat gradient (copying one assigned anew)."""
        for p, view, _ in self._views[index]:
            grad = p.grad
            if grad is not view:
                view.copy_(grad) if grad is not None else view.zero_()
                p.grad = view

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the flat gradients (they stay allocated: backward accumulates into the views)."""
        for index, flat in enumerate(self._flat):
            self._gather_grads(index)
            flat["grad"].zero_()

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        with torch.no_grad():  # loaded state arrives as new tensors: back into the flat buffers
            for views in self._views:
                for p, _, state in views:
                    for key, view in state.items():
                        view.copy_(self.state[p][key])
                        self.state[p][key] = view

    # --- the step -------------------------------------------------------------------------------
    def prepare(self, group: dict) -> tuple[float, ...]:
        """Host values the coming step's rule takes besides tensors (none; AdaptiveObGD: its bias
        correction), advancing the group's host counters. Called once per step, before `rule`."""
        return ()

    def _direction(self, group: dict, flat: dict, delta: torch.Tensor, *prepared) -> torch.Tensor:
        """The flat update direction u whose L1 norm the bound takes (ObGD: the trace itself)."""
        return flat["trace"]

    def rule(self, group: dict, flat: dict, grad: torch.Tensor, delta: torch.Tensor, *prepared) -> torch.Tensor:
        """One step of the group on tensors alone: the trace takes `grad`, the parameters move along
        -alpha * delta * u; returns alpha. `flat` holds the group's flat buffers (param, trace and any
        other state), `prepared` what `prepare` returned (floats, or 0-d tensors where the step is
        captured in a graph). No host sync and no branch on a tensor's value, so a compiled step
        (sparserl.streaming.capture) runs this same code."""
        trace, lr = flat["trace"], group["lr"]
        torch.add(grad, trace, alpha=group["gamma"] * group["lamda"], out=trace)  # one pass
        direction = self._direction(group, flat, delta, *prepared)
        l1 = agent_sums(flat, direction.abs())  # ||u||_1; linalg.vector_norm(u, 1) is 3x slower on the AMD EPYC
        bound = l1 * delta.abs().clamp(min=1.0) * (lr * group["kappa"])
        alpha = torch.div(lr, bound.clamp(min=1.0))
        agent_step_(flat, flat["param"], direction, alpha * delta)
        return alpha

    @lean_step
    def step(self, delta: torch.Tensor | float, reset: bool | torch.Tensor = False) -> torch.Tensor:
        """Accumulate the traces, take the bounded step along -delta * u; returns the step size
        alpha of the last group (a tensor; a population's (K,)). `reset` zeroes the traces afterwards
        (episode end; a population's: a (K,) boolean tensor, per agent). The step hooks (the
        sparsity engine's) run around it."""
        run_pre_hooks(self)
        with torch.no_grad():
            delta = delta if isinstance(delta, torch.Tensor) else torch.tensor(delta, dtype=torch.float32)
            alpha = None
            for index, (group, flat) in enumerate(zip(self.param_groups, self._flat)):
                self._gather_grads(index)
                alpha = self.rule(group, flat, flat["grad"], delta, *self.prepare(group))
                if isinstance(reset, torch.Tensor):
                    agent_scaled(flat, flat["trace"], (~reset).to(flat["trace"].dtype), out=flat["trace"])
                elif reset:
                    flat["trace"].zero_()
        run_post_hooks(self)
        return alpha

    def reset_traces(self) -> None:
        """Zero every trace (an episode ended)."""
        for flat in self._flat:
            flat["trace"].zero_()


class AdaptiveObGD(ObGD):
    """ObGD on RMS-normalised steps (Elsayed et al. 2024, AdaptiveObGD), per parameter:

        v     <- beta2 * v + (1 - beta2) * (delta * z)^2,   v_hat = v / (1 - beta2^t)
        u     =  z / sqrt(v_hat + eps)
        M     =  max(|delta|, 1) * ||u||_1 * lr * kappa,    alpha = lr / max(M, 1)
        theta <- theta - alpha * delta * u

    with t the group's step count, ``group["steps"]`` (beta2 0.999, eps 1e-8). The second moment is
    kept in ``state[p]["second_moment"]`` beside the trace (both shaped like p)."""

    state_keys = ("trace", "second_moment")

    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0,
                 beta2: float = 0.999, eps: float = 1e-8, agents: int | None = None):
        if not 0.0 < beta2 < 1.0:
            raise ValueError(f"AdaptiveObGD: beta2 {beta2!r} must be in (0, 1)")
        # steps: a host counter, checkpointed with the group's settings (a population's agents step together)
        super().__init__(params, lr, gamma, lamda, kappa, agents, beta2=beta2, eps=eps, steps=0)

    def prepare(self, group: dict) -> tuple[float, ...]:
        group["steps"] += 1
        return (1.0 - group["beta2"] ** group["steps"],)

    def _direction(self, group: dict, flat: dict, delta: torch.Tensor, correction=1.0) -> torch.Tensor:
        beta2, moment = group["beta2"], flat["second_moment"]
        scaled = agent_scaled(flat, flat["trace"], delta)
        moment.mul_(beta2).addcmul_(scaled, scaled, value=1.0 - beta2)
        rms = (moment / correction).add_(group["eps"]).sqrt_()
        return flat["trace"] / rms
