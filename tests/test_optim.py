"""LeanAdam is torch.optim.Adam: identical trajectories and interchangeable state."""

from __future__ import annotations

import io

import pytest
import torch

from sparserl.optim import LeanAdam


def params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(2, 8, 5, generator=g)), torch.nn.Parameter(torch.randn(3, generator=g))]


def run(optimizer, ps, steps=6):
    for k in range(steps):
        optimizer.zero_grad()
        loss = sum(((p - k) ** 2).sum() for p in ps)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.1, False), (0.01, True)])
def test_matches_torch_adam(weight_decay, decoupled):
    ours, ref = params(0), params(0)
    run(LeanAdam(ours, lr=0.05, weight_decay=weight_decay, decoupled_weight_decay=decoupled), ours)
    run(torch.optim.Adam(ref, lr=0.05, weight_decay=weight_decay, decoupled_weight_decay=decoupled, foreach=False),
        ref)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_state_dict_interchangeable_with_torch_adam():
    ours, ref = params(1), params(1)
    lean = LeanAdam(ours, lr=0.05)
    run(lean, ours, steps=3)
    buffer = io.BytesIO()
    torch.save(lean.state_dict(), buffer)
    buffer.seek(0)
    restored_params = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    stock = torch.optim.Adam(restored_params, lr=0.05, foreach=False)
    stock.load_state_dict(torch.load(buffer, weights_only=True))
    buffer.seek(0)
    resumed = LeanAdam(ref, lr=0.05)
    with torch.no_grad():
        for r, o in zip(ref, ours):
            r.copy_(o)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    run(stock, restored_params, steps=3)
    run(resumed, ref, steps=3)
    for a, b in zip(restored_params, ref):
        torch.testing.assert_close(a, b)
    assert resumed.state[ref[0]]["step"].item() == 6


def test_step_hooks_run_and_missing_grads_fall_back():
    ps = params(2)
    optimizer = LeanAdam(ps, lr=0.05)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    run(optimizer, ps, steps=2)
    assert calls == ["pre", "post", "pre", "post"]
    before = ps[1].detach().clone()
    optimizer.zero_grad()
    (ps[0] ** 2).sum().backward()  # ps[1] gets no gradient: the stock path handles it
    optimizer.step()
    assert torch.equal(ps[1], before) and calls[-2:] == ["pre", "post"]
