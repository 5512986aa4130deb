"""Agent k of a population, as a tensor of a single agent: where each of its tensors lives in the
population's (sparserl.algos.base.Agent with config.population = K).

A population holds its K agents as ensemble members, so every tensor of a single agent has its
place in a population tensor. Six layouts cover every network, optimiser state and mask tensor:

    single shape        population shape       agent k's view
    s                   s                      the same tensor (shared: RunningNorm's count)
    (E, *rest)          (E K, *rest)           view(E, K, *rest)[:, k]  (ensembles, critic-major)
    (out, in)           (K, in, out)           [k].T                    (a Linear layer's weight)
    (out,)              (K, 1, out)            [k, 0]                   (its bias; RunningNorm's statistics)
    (d,)                (K, d)                 [k]                      (WelfordNorm's statistics)
    ()                  (K,)                   [k]                      (SAC's temperature)

The views write through, so a single agent's tensors can be copied out of a population or into it.
"""

from __future__ import annotations

import torch
from torch import nn


def member_view(tensor: torch.Tensor, shape: tuple[int, ...] | torch.Size, k: int, agents: int) -> torch.Tensor:
    """Agent k's part of a population tensor, as a view shaped like the single agent's `shape`."""
    shape, have = tuple(shape), tuple(tensor.shape)
    if have == shape:
        return tensor
    if len(have) == len(shape) and shape and have[0] == agents * shape[0] and have[1:] == shape[1:]:
        return tensor.view(shape[0], agents, *shape[1:])[:, k]
    if len(shape) == 2 and have == (agents, shape[1], shape[0]):
        return tensor[k].T
    if len(shape) == 1 and have == (agents, 1, shape[0]):
        return tensor[k, 0]
    if len(shape) == 1 and have == (agents, shape[0]):
        return tensor[k]
    if not shape and have == (agents,):
        return tensor[k]
    raise ValueError(f"no agent-{k} view of a population tensor of shape {have} as a single agent's {shape} "
                     f"({agents} agents)")


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.state_dict(keep_vars=True))


@torch.no_grad()
def copy_member(population: nn.Module, single: nn.Module, k: int, agents: int, into_population: bool = False) -> None:
    """Copy agent k of `population` into the single-agent module `single` (the same architecture
    without the population), or, with `into_population`, `single` into agent k."""
    source = _tensors(population)
    target, state = (population, dict(source)) if into_population else (single, {})
    for name, tensor in _tensors(single).items():
        view = member_view(source[name], tensor.shape, k, agents)
        if into_population:
            view.copy_(tensor)
        else:
            state[name] = view
    target.load_state_dict(state)  # in place; modules with derived buffers (WelfordNorm) refresh them


def member_state(state, k: int, agents: int, single):
    """Agent k's part of a population's nested state (dicts, lists, tensors, numbers), shaped like
    the single agent's `single` state: tensors by `member_view`, everything else as it is."""
    if isinstance(single, torch.Tensor):
        return member_view(state, single.shape, k, agents).clone()
    if isinstance(single, dict):
        return {key: member_state(state[key], k, agents, value) for key, value in single.items()}
    if isinstance(single, (list, tuple)):
        return type(single)(member_state(s, k, agents, v) for s, v in zip(state, single))
    return state
