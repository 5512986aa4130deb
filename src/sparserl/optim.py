"""Adam with a lean step for the training hot path.

`LeanAdam` is `torch.optim.Adam` (same hyper-parameters, same state layout, same `state_dict`, same
step hooks), with its state created up front and its tensor lists built once, so each step is two
ops: the step-count increment and PyTorch's fused Adam kernel. The stock `Optimizer.step` spends
more time in Python (a profiler record per call, per-step state grouping) than the kernel takes at
RL sizes. Anything unusual (a parameter without a gradient, a missing kernel) falls back to the
stock implementation.
"""

from __future__ import annotations

import inspect
from itertools import chain

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks


def run_pre_hooks(optimizer: torch.optim.Optimizer) -> None:
    """The step pre-hooks (global, then the optimiser's), as the stock `Optimizer.step` wrapper runs them."""
    for hook in chain(_global_optimizer_pre_hooks.values(), optimizer._optimizer_step_pre_hooks.values()):
        hook(optimizer, (optimizer,), {})


def run_post_hooks(optimizer: torch.optim.Optimizer) -> None:
    """The step post-hooks (the optimiser's, then the global ones)."""
    for hook in chain(optimizer._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()):
        hook(optimizer, (optimizer,), {})


def lean_step(step):
    """Mark an optimiser class's `step`, which runs the hooks itself (run_pre_hooks, run_post_hooks),
    so the stock Optimizer does not wrap it in a profiler record at construction."""
    step.hooked = True
    return step


class LeanAdam(torch.optim.Adam):
    """Adam / AdamW (``decoupled_weight_decay=True``) stepping with one fused kernel call per group."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True,
                         decoupled_weight_decay=decoupled_weight_decay)
        for group in self.param_groups:
            for p in group["params"]:
                if not self.state[p]:
                    self.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        self._build_lists()

    def _build_lists(self) -> None:
        self._lists = []
        for group in self.param_groups:
            states = [self.state[p] for p in group["params"]]
            self._lists.append((group["params"], [s["exp_avg"] for s in states],
                                [s["exp_avg_sq"] for s in states], [s["step"] for s in states]))
        self._kernel = {False: getattr(torch, "_fused_adam_", None), True: getattr(torch, "_fused_adamw_", None)}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._build_lists()

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for params, *_ in self._lists:
            for p in params:
                p.grad = None

    @lean_step
    def step(self, closure=None):
        if closure is not None:
            return super().step(closure)  # the stock path (runs the hooks itself)
        run_pre_hooks(self)
        with torch.no_grad():
            work = self._fused_work()  # after the pre-hooks, which may change gradients or parameters
            if work is None:
                inspect.unwrap(torch.optim.Adam.step)(self)  # the stock update, without running hooks twice
            for kernel, group, params, grads, exp_avgs, exp_avg_sqs, steps in work or ():
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)
                kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                       beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                       maximize=False, grad_scale=None, found_inf=None)
        run_post_hooks(self)
        return None

    def _fused_work(self) -> list | None:
        """Per group: the fused kernel and its tensor lists; None if a group needs the stock path."""
        work = []
        for group, (params, exp_avgs, exp_avg_sqs, steps) in zip(self.param_groups, self._lists):
            grads = [p.grad for p in params]
            kernel = self._kernel[group["decoupled_weight_decay"]]
            if kernel is None or any(g is None for g in grads) or group["amsgrad"] or group["maximize"]:
                return None
            work.append((kernel, group, params, grads, exp_avgs, exp_avg_sqs, steps))
        return work

