"""ObGD (Elsayed, Vasan, Mahmood 2024) against an independent computation of its rule, and SparseInit's
exact zeros; under the sparsity engine's static mask the zeros stay zero through ObGD steps, under
SparseInit alone they do not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.sparsity import Sparsifier, SparsityConfig
from sparserl.streaming import AdaptiveObGD, ObGD, sparse_init_


def reference_obgd(theta, grads, deltas, resets, lr, gamma, lamda, kappa):
    """ObGD written out with NumPy in float64, one transition at a time."""
    theta = [t.astype(np.float64).copy() for t in theta]
    z = [np.zeros_like(t) for t in theta]
    alphas = []
    for g, delta, reset in zip(grads, deltas, resets):
        z = [gamma * lamda * zi + gi for zi, gi in zip(z, g)]
        bound = max(abs(delta), 1.0) * sum(np.abs(zi).sum() for zi in z) * lr * kappa
        alpha = lr / bound if bound > 1.0 else lr
        theta = [t - alpha * delta * zi for t, zi in zip(theta, z)]
        alphas.append(alpha)
        if reset:
            z = [np.zeros_like(zi) for zi in z]
    return theta, alphas


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 12), scale=st.sampled_from([1e-3, 0.05, 1.0, 30.0]),
       lr=st.sampled_from([1.0, 0.1]), kappa=st.sampled_from([2.0, 3.0]), lamda=st.sampled_from([0.0, 0.8, 1.0]))
def test_obgd_equals_an_independent_computation_of_its_rule(seed, steps, scale, lr, kappa, lamda):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (3,)]
    theta = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[(rng.normal(size=s) * scale).astype(np.float32) for s in shapes] for _ in range(steps)]
    deltas = (rng.normal(size=steps) * rng.choice([0.1, 5.0], size=steps)).tolist()
    resets = (rng.random(steps) < 0.3).tolist()
    params = [torch.nn.Parameter(torch.from_numpy(t.copy())) for t in theta]
    opt = ObGD(params, lr=lr, gamma=0.99, lamda=lamda, kappa=kappa)
    alphas = []
    for g, delta, reset in zip(grads, deltas, resets):
        for p, gi in zip(params, g):
            p.grad = torch.from_numpy(gi.copy())
        alphas.append(float(opt.step(delta, reset=reset)))
    expected, expected_alphas = reference_obgd(theta, grads, deltas, resets, lr, 0.99, lamda, kappa)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(alphas, expected_alphas, rtol=2e-5)
    if resets[-1]:
        assert all(float(opt.state[p]["trace"].abs().sum()) == 0 for p in params)


def test_the_bound_is_active_only_when_a_step_would_overshoot():
    p = torch.nn.Parameter(torch.zeros(4))
    opt = ObGD([p], lr=1.0, lamda=0.0, kappa=2.0)
    p.grad = torch.full((4,), 0.01)  # M = max(0.5, 1) * 0.04 * 1 * 2 = 0.08 <= 1: the full step
    assert float(opt.step(0.5)) == 1.0
    torch.testing.assert_close(p.detach(), torch.full((4,), -0.005))
    p.grad = torch.full((4,), 1.0)  # M = 3 * 4 * 2 = 24 > 1: alpha = 1 / 24
    assert float(opt.step(-3.0)) == pytest.approx(1 / 24)
    torch.testing.assert_close(p.detach(), torch.full((4,), -0.005 + 3.0 / 24))


def test_out_of_range_settings_are_refused():
    for bad in (dict(lr=0.0), dict(kappa=-1.0), dict(lamda=1.5), dict(gamma=-0.1)):
        with pytest.raises(ValueError, match="out of range"):
            ObGD([torch.nn.Parameter(torch.zeros(1))], **bad)


@settings(max_examples=40, deadline=None)
@given(out=st.integers(1, 20), fan_in=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_sparse_init_zeroes_exactly_ceil_ninety_percent_of_each_units_inputs(out, fan_in, seed):
    layer = torch.nn.Linear(fan_in, out)
    sparse_init_(layer.weight, layer.bias, generator=torch.Generator().manual_seed(seed))
    zeros = (layer.weight == 0).sum(1)
    assert zeros.tolist() == [math.ceil(0.9 * fan_in)] * out
    assert float(layer.weight.detach().abs().max()) <= math.sqrt(1 / fan_in)
    assert not layer.bias.any()


def _train(static: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(zeros at the start, weight after 20 ObGD steps, the engine's mask or None) of a SparseInit
    layer, with or without a static 90 % mask from the sparsity engine."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 8)
    sparse_init_(layer.weight, layer.bias)
    opt = ObGD(layer.parameters(), lr=1.0, kappa=2.0)
    mask = None
    if static:
        engine = Sparsifier(SparsityConfig(method="static", distribution="uniform"), seed=0)
        mask = engine.attach("value", layer, opt, sparsity=0.9).masks[0].reshape(8, 20).clone()
    start_zeros = layer.weight == 0
    for _ in range(20):
        x = torch.randn(1, 20)
        opt.zero_grad()
        (-layer(x).sum()).backward()
        opt.step(torch.randn(()))
    return start_zeros, layer.weight.detach(), mask


def test_static_masks_keep_the_zeros_sparse_init_does_not():
    start, free, _ = _train(static=False)
    assert bool((free[start] != 0).any())  # SparseInit's zeros are free to grow
    _, masked, mask = _train(static=True)
    assert int(mask.sum()) == 16  # 10 % of 160 weights kept
    assert not bool(masked[mask == 0].any())  # pruned weights stay zero through ObGD's steps
    assert bool(masked[mask != 0].ne(0).all())  # and the kept ones train


def reference_adaptive(theta, grads, deltas, lr, gamma, lamda, kappa, beta2=0.999, eps=1e-8):
    """AdaptiveObGD written out with NumPy in float64 (no resets)."""
    theta = [t.astype(np.float64).copy() for t in theta]
    z = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    for t, (g, delta) in enumerate(zip(grads, deltas), start=1):
        z = [gamma * lamda * zi + gi for zi, gi in zip(z, g)]
        v = [beta2 * vi + (1 - beta2) * (delta * zi) ** 2 for vi, zi in zip(v, z)]
        u = [zi / np.sqrt(vi / (1 - beta2 ** t) + eps) for zi, vi in zip(z, v)]
        bound = max(abs(delta), 1.0) * sum(np.abs(ui).sum() for ui in u) * lr * kappa
        alpha = lr / bound if bound > 1.0 else lr
        theta = [th - alpha * delta * ui for th, ui in zip(theta, u)]
    return theta


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 10), scale=st.sampled_from([1e-3, 0.1, 10.0]))
def test_adaptive_obgd_equals_an_independent_computation_of_its_rule(seed, steps, scale):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (4,)]
    theta = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[(rng.normal(size=s) * scale).astype(np.float32) for s in shapes] for _ in range(steps)]
    deltas = (rng.normal(size=steps) * 3).tolist()
    params = [torch.nn.Parameter(torch.from_numpy(t.copy())) for t in theta]
    opt = AdaptiveObGD(params, lr=1.0, gamma=0.99, lamda=0.8, kappa=2.0)
    for g, delta in zip(grads, deltas):
        for p, gi in zip(params, g):
            p.grad = torch.from_numpy(gi.copy())  # assigned anew: copied into the flat buffer
        opt.step(delta)
    for p, e in zip(params, reference_adaptive(theta, grads, deltas, 1.0, 0.99, 0.8, 2.0)):
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [ObGD, AdaptiveObGD])
def test_a_loaded_optimiser_continues_exactly_with_its_traces_in_the_flat_buffers(cls):
    def make(seed):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
        return net, cls(net.parameters(), kappa=2.0)

    def steps(net, opt, n, seed):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n):
            opt.zero_grad()
            (-net(torch.randn(1, 3, generator=g)).sum()).backward()
            opt.step(torch.randn((), generator=g))

    net, opt = make(0)
    steps(net, opt, 4, seed=1)
    other, other_opt = make(5)
    other.load_state_dict(net.state_dict())
    other_opt.load_state_dict(opt.state_dict())
    for p in other.parameters():  # the trace is a view of the optimiser's flat trace again
        assert other_opt.state[p]["trace"].untyped_storage().data_ptr() == \
            other_opt._flat[0]["trace"].untyped_storage().data_ptr()
    steps(net, opt, 3, seed=2)
    steps(other, other_opt, 3, seed=2)
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)
