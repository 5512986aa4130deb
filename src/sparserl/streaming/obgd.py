"""ObGD, the overshooting-bounded gradient step of streaming RL (Elsayed, Vasan, Mahmood 2024,
"Streaming Deep RL Finally Works", Algorithm 3).

Per network (one parameter group), after the gradient g of the network's loss for one transition
(the loss is -V(s) for a critic and -log pi(a|s) for an actor, so g = -grad of the objective):

    z     <- gamma * lambda * z + g                     accumulating eligibility trace
    M     =  max(|delta|, 1) * ||z||_1 * lr * kappa      over every parameter of the group
    alpha =  lr / M  if M > 1  else  lr
    theta <- theta - alpha * delta * z                  (= theta + alpha * delta * grad objective)

and traces are set to zero at episode ends (`reset_traces`). Defaults: lr 1.0, gamma 0.99, lambda
0.8; kappa 2 for a value network, 3 for a policy. The bound is computed with tensor operations
(alpha = lr / max(M, 1)), so a step never waits on the host. Traces live in
``optimizer.state[p]["trace"]``, shaped like the parameter: the sparsity engine's hooks mask the
gradient before the trace takes it, and its moment reset clears the trace of a regrown weight.
"""

from __future__ import annotations

import torch


class ObGD(torch.optim.Optimizer):
    """Eligibility-trace SGD with ObGD's step-size bound; `step(delta)` takes the TD error."""

    def __init__(self, params, lr: float = 1.0, gamma: float = 0.99, lamda: float = 0.8, kappa: float = 2.0):
        for name, value, ok in (("lr", lr, lr > 0), ("gamma", gamma, 0 <= gamma <= 1),
                                ("lamda", lamda, 0 <= lamda <= 1), ("kappa", kappa, kappa > 0)):
            if not ok:
                raise ValueError(f"ObGD: {name} {value!r} is out of range (lr > 0, gamma and lamda in [0, 1], "
                                 f"kappa > 0)")
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["trace"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, delta: torch.Tensor | float, reset: bool = False) -> torch.Tensor:
        """Accumulate the traces, take the bounded step along -delta * z; returns the step size
        alpha of the last group (a tensor). `reset` zeroes the traces afterwards (episode end)."""
        delta = torch.as_tensor(delta, dtype=torch.float32)
        alpha = None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            traces = [self.state[p]["trace"] for p in params]
            torch._foreach_mul_(traces, group["gamma"] * group["lamda"])
            torch._foreach_add_(traces, [p.grad for p in params])
            norm = torch.stack(torch._foreach_norm(traces, 1)).sum()  # ||z||_1 over the group
            bound = delta.abs().clamp(min=1.0) * norm * (group["lr"] * group["kappa"])
            alpha = group["lr"] / bound.clamp(min=1.0)
            torch._foreach_add_(params, torch._foreach_mul(traces, -alpha * delta))
            if reset:
                torch._foreach_zero_(traces)
        return alpha if alpha is not None else torch.zeros(())

    def reset_traces(self) -> None:
        """Zero every trace (an episode ended)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["trace"].zero_()
