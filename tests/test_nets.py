"""Networks: the batched critic ensemble is exactly E separate MLPs; the SAC log-probability."""

from __future__ import annotations

import math

import torch
from torch import nn

from sparserl.nets import EnsembleLinear, GaussianActor, QEnsemble


def member_as_sequential(critic: QEnsemble, k: int) -> nn.Sequential:
    layers = []
    for i, layer in enumerate(critic.body.layers):
        linear = nn.Linear(layer.in_features, layer.out_features)
        linear.weight.data.copy_(layer.weight_oi[k])
        linear.bias.data.copy_(layer.bias[k, 0])
        layers.append(linear)
        if i < len(critic.body.layers) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_ensemble_equals_separate_mlps_forward_and_backward():
    torch.manual_seed(0)
    critic = QEnsemble.mlp(5, 2, (16, 8), members=3)
    obs, act = torch.randn(7, 5), torch.randn(7, 2)
    q = critic(obs, act)
    assert q.shape == (3, 7)
    q.sum().backward()
    for k in range(3):
        ref = member_as_sequential(critic, k)
        ref_q = ref(torch.cat([obs, act], 1)).squeeze(-1)
        torch.testing.assert_close(q[k], ref_q)
        ref_q.sum().backward()
        for layer, linear in zip(critic.body.layers, [m for m in ref if isinstance(m, nn.Linear)]):
            torch.testing.assert_close(layer.weight.grad.transpose(1, 2)[k], linear.weight.grad)
            torch.testing.assert_close(layer.bias.grad[k, 0], linear.bias.grad)


def test_member_and_detach_options():
    torch.manual_seed(0)
    critic = QEnsemble.mlp(3, 1, (8,), members=2)
    obs, act = torch.randn(4, 3), torch.randn(4, 1, requires_grad=True)
    torch.testing.assert_close(critic.first(obs, act), critic(obs, act)[0])
    x = torch.cat((obs, act), -1)
    torch.testing.assert_close(critic.body(x, members=slice(1, 2))[0, :, 0], critic(obs, act)[1])
    critic.first(obs, act, detach=True).sum().backward()
    assert act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_ensemble_init_matches_nn_linear_bounds():
    torch.manual_seed(0)
    layer = EnsembleLinear(64, 32, 2)
    bound = 1 / math.sqrt(64)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert layer.weight.std() > 0.5 * bound / math.sqrt(3)  # uniform(-b, b) has std b / sqrt(3)
    assert not torch.equal(layer.weight[0], layer.weight[1])
    assert layer.weight.shape == (2, 64, 32) and layer.weight_oi.shape == (2, 32, 64)


def test_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = GaussianActor.mlp(4, 3, (16,))
    obs = torch.randn(64, 4)
    torch.manual_seed(1)
    action, log_prob = actor.sample(obs)
    torch.manual_seed(1)
    mean, log_std = actor.net(obs).chunk(2, -1)
    log_std = log_std.clamp(-20, 2)
    u = mean + log_std.exp() * torch.randn_like(mean)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()])
    torch.testing.assert_close(action, torch.tanh(u))
    torch.testing.assert_close(log_prob, dist.log_prob(torch.tanh(u).clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1),
                               atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(actor(obs), torch.tanh(mean))


def test_features_major_orientation_computes_the_same_values_and_gradients():
    """Next to sparse-executed layers, dense layers compute yᵀ = W xᵀ + b on features-major storage;
    values and every gradient equal the ordinary orientation's, and the output is features-major."""
    torch.manual_seed(0)
    layer = EnsembleLinear(6, 5, 2)
    x = torch.randn(2, 4, 6)
    upstream = torch.randn(2, 4, 5)
    results = []
    for variant in ("plain", "asked", "fed"):
        layer.zero_grad(set_to_none=True)
        xi = (x.transpose(1, 2).contiguous().transpose(1, 2) if variant == "fed" else x.clone()).requires_grad_()
        y = layer(xi, features_major=variant == "asked")
        assert y.is_contiguous() == (variant == "plain")
        (y * upstream).sum().backward()
        results.append((y.detach(), xi.grad, layer.weight.grad, layer.bias.grad))
        assert layer.weight.grad.is_contiguous() and layer.bias.grad.is_contiguous()
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            torch.testing.assert_close(a, b)
    shared = torch.randn(4, 6)
    second = slice(1, 2)
    torch.testing.assert_close(layer(shared, members=second, features_major=True), layer(shared, members=second))
