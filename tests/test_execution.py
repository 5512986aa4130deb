"""Sparse execution in training: CSR forward and backward give the masked dense results (to float
rounding) for any mask, layer kind and method, and fall back to dense where a dense gradient is due."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparserl import native
from sparserl.config import Config, NetworkSparsity, coerce_fields
from sparserl.errors import ConfigError
from sparserl.nets import DeterministicActor, EnsembleLinear, QEnsemble
from sparserl.sparsity import Sparsifier, SparsityConfig
from sparserl.sparsity.execution import EXECUTIONS, LayerExecutor, sparse_linear
from sparserl.sparsity.layers import find_sparse_layers


@pytest.fixture(params=["native", "torch"])
def kernels(request):
    """Run a test with the native sparse kernels and again with PyTorch's."""
    if request.param == "native":
        assert native.available(), native.status()
        yield request.param
    else:
        with native.disabled():
            yield request.param


class FixedGroup:
    """What an executor reads from an engine group."""

    def __init__(self, mask):
        self.masks, self.mask_version, self.budgets, self.sparse = [mask], 0, [[0.5]], [0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.integers(1, 3), out=st.integers(1, 9), fan_in=st.integers(1, 9),
       batch=st.one_of(st.integers(1, 5), st.integers(60, 140)),  # the native kernel's 64-wide tiles and tails
       density=st.floats(0.0, 1.0), shared=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_csr_products_equal_masked_dense_forward_and_backward(kernels, members, out, fan_in, batch, density, shared,
                                                               seed):
    g = torch.Generator().manual_seed(seed)
    layer = EnsembleLinear(fan_in, out, members)
    mask = (torch.rand(layer.weight.shape, generator=g) < density).float()
    with torch.no_grad():
        layer.weight.mul_(mask)
        layer.bias.normal_(generator=g)
    x = torch.randn(batch, fan_in, generator=g) if shared else torch.randn(members, batch, fan_in, generator=g)
    x.requires_grad_()
    upstream = torch.randn(members, batch, out, generator=g)

    def run(sparse: bool):
        for p in (*layer.parameters(), x):
            p.grad = None
        if sparse:
            info = find_sparse_layers(layer)[0]
            executor = LayerExecutor(FixedGroup(mask), 0, info, "csr", batch)
            assert executor.active(layer.weight)
            y = executor(x, layer.weight, layer.bias.view(members, -1))
        else:
            y = layer(x)
        (y * upstream).sum().backward()
        return y.detach(), layer.weight.grad * mask, layer.bias.grad.clone(), x.grad.clone()

    for dense, sparse in zip(run(False), run(True)):
        torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def networks(method: str, **changes):
    torch.manual_seed(0)
    critic, actor = QEnsemble.mlp(11, 3, (48, 48)), DeterministicActor.mlp(11, 3, (48, 48))
    targets = copy.deepcopy(critic).requires_grad_(False), copy.deepcopy(actor).requires_grad_(False)
    optimizers = torch.optim.Adam(critic.parameters(), lr=1e-2), torch.optim.Adam(actor.parameters(), lr=1e-2)
    levels = {name: changes.pop(f"{name}_sparsity", None) for name in ("critic", "actor")}
    sparsifier = Sparsifier(SparsityConfig(method=method, **changes), seed=0)
    sparsifier.attach("critic", critic, optimizers[0], [targets[0]], sparsity=levels["critic"], total_steps=100)
    sparsifier.attach("actor", actor, optimizers[1], [targets[1]], sparsity=levels["actor"], total_steps=100)
    return critic, actor, targets, optimizers, sparsifier


def td3_like_step(critic, actor, targets, optimizers, obs, act):
    """One critic and one actor step that exercise every path: grad, detach, member, targets."""
    with torch.no_grad():
        target = targets[0](obs, targets[1](obs)).min(0).values
    loss = (critic(obs, act) - target).square().mean()
    optimizers[0].zero_grad()
    loss.backward()
    optimizers[0].step()
    actor_loss = -critic.first(obs, actor(obs), detach=True).mean()
    optimizers[1].zero_grad()
    actor_loss.backward()
    optimizers[1].step()
    return loss.detach(), actor_loss.detach()


@pytest.mark.parametrize("method, changes", [
    ("static", {"actor_sparsity": 0.9, "critic_sparsity": 0.9}),
    ("rigl", {"actor_sparsity": 0.8, "critic_sparsity": 0.8, "update_interval": 2}),
    ("set", {"actor_sparsity": 0.8, "critic_sparsity": 0.8, "update_interval": 2, "target_mask": "magnitude"}),
    ("nm:2:4", {"nm_gradient": "srste"}),
    ("nm:1:4", {"nm_gradient": "masked"}),
])
@pytest.mark.parametrize("execution", ["csr", "auto"])
def test_training_steps_under_sparse_kernels_match_masked_dense(kernels, method, changes, execution):
    """Five steps from the same state: losses, weights, masks and targets agree to rounding, mask
    updates included (RigL's growth step and SR-STE run their gradients densely)."""
    obs, act = torch.randn(64, 11), torch.rand(64, 3) * 2 - 1
    runs = []
    for mode in ("dense", execution):
        critic, actor, targets, optimizers, sparsifier = networks(method, **changes)
        set_layers = sparsifier.execute_sparse(mode, 64)
        assert set_layers == (0 if mode == "dense" else set_layers)
        losses = []
        for _ in range(5):
            losses.append(torch.stack(td3_like_step(critic, actor, targets, optimizers, obs, act)))
            with torch.no_grad():
                for t, o in ((targets[0], critic), (targets[1], actor)):
                    for pt, po in zip(t.parameters(), o.parameters()):
                        pt.lerp_(po, 0.5)
            sparsifier.after_target_update()
        state = [p.detach().clone() for net in (critic, actor, *targets) for p in net.parameters()]
        runs.append((torch.stack(losses), state, [m.clone() for g in sparsifier.groups.values() for m in g.masks]))
    (dense_losses, dense_state, dense_masks), (csr_losses, csr_state, csr_masks) = runs
    torch.testing.assert_close(csr_losses, dense_losses, atol=1e-4, rtol=1e-4)
    for a, b in zip(csr_state, dense_state):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(csr_masks, dense_masks))


def test_the_sparse_path_is_taken_and_skipped_when_a_dense_gradient_is_due():
    critic, actor, targets, optimizers, sparsifier = networks("rigl", actor_sparsity=0.8, critic_sparsity=0.8,
                                                              update_interval=3)
    assert sparsifier.execute_sparse("csr", 8) > 0
    executor = critic.body.layers[1].executor
    group = sparsifier.groups["critic"]
    group.step = 0  # the coming step (1) is no update step
    assert executor.active(critic.body.layers[1].weight)
    group.step = 2  # the coming step (3) is one: its gradient must be dense
    assert not executor.active(critic.body.layers[1].weight)
    with torch.no_grad():
        assert executor.active(critic.body.layers[1].weight)  # no gradient, no need
    assert targets[0].body.layers[1].executor.active(targets[0].body.layers[1].weight)  # targets never need one


def test_structures_follow_mask_changes():
    critic, actor, targets, optimizers, sparsifier = networks("set", actor_sparsity=0.8, critic_sparsity=0.8,
                                                              update_interval=1)
    sparsifier.execute_sparse("csr", 8)
    executor = critic.body.layers[1].executor
    obs, act = torch.randn(8, 11), torch.rand(8, 3)
    critic(obs, act)
    kept = executor.structures[0].col.clone()
    td3_like_step(critic, actor, targets, optimizers, obs, act)  # SET changes the masks every step
    critic(obs, act)
    assert executor.version == sparsifier.groups["critic"].mask_version > 0
    assert not torch.equal(executor.structures[0].col, kept)


def test_gradient_memory_is_reused_only_while_no_one_holds_it():
    """Training steps (gradients released to None in between) write each step's weight gradient into
    the same memory, exact at kept positions and exactly zero at pruned ones; a gradient a caller
    still holds is never overwritten by a later backward."""
    g = torch.Generator().manual_seed(3)
    layer = EnsembleLinear(6, 5, 2)
    mask = (torch.rand(layer.weight.shape, generator=g) < 0.5).float()
    with torch.no_grad():
        layer.weight.mul_(mask)
    executor = LayerExecutor(FixedGroup(mask), 0, find_sparse_layers(layer)[0], "csr", 4)
    assert executor.active(layer.weight)

    def step(x):
        y = executor(x, layer.weight, layer.bias.view(2, -1))
        return (y * y).sum()

    pointers = []
    for _ in range(3):
        x = torch.randn(4, 6, generator=g)
        layer.weight.grad = None
        step(x).backward()
        expected = torch.autograd.grad((layer(x) ** 2).sum(), layer.weight)[0] * mask
        torch.testing.assert_close(layer.weight.grad, expected, atol=1e-5, rtol=1e-5)
        assert torch.all(layer.weight.grad[mask == 0] == 0)
        pointers.append(layer.weight.grad.data_ptr())
    assert pointers[1] == pointers[2]  # reused once the first step's gradient was released

    layer.weight.grad = None
    held = torch.autograd.grad(step(torch.randn(4, 6, generator=g)), layer.weight)[0]
    snapshot = held.clone()
    again = torch.autograd.grad(step(torch.randn(4, 6, generator=g)), layer.weight)[0]
    assert torch.equal(held, snapshot) and again.data_ptr() != held.data_ptr()


def test_unknown_execution_is_refused():
    *_, sparsifier = networks("static", actor_sparsity=0.5, critic_sparsity=0.5)
    with pytest.raises(ConfigError, match="unknown execution 'gpu'"):
        sparsifier.execute_sparse("gpu")
    with pytest.raises(ConfigError, match=f"execution must be one of {', '.join(EXECUTIONS)}; got 'gpu'"):
        coerce_fields({"execution": "gpu"}, "study.yaml", Config)


def test_a_single_layer_without_bias_or_ensemble():
    weight = torch.randn(5, 7) * (torch.rand(5, 7) < 0.5)
    weight.requires_grad_()
    from sparserl.sparsity.structure import Structure

    structure = Structure.build(weight.detach() != 0, torch.arange(35).view(5, 7))
    x = torch.randn(3, 7)
    y = sparse_linear(x, weight, None, [structure])[0]
    torch.testing.assert_close(y, x @ weight.detach().t())


def test_a_simba_run_trains_through_the_sparse_path(make_config):
    from sparserl.runs.trainer import Trainer

    config = make_config(algo="sac", network="simba", actor_width=16, critic_width=32, critic_blocks=1,
                         total_steps=300, start_steps=100, eval_every=300, eval_episodes=1, execution="csr",
                         diagnostics_every=300,
                         sparsity=NetworkSparsity(method="static", actor_sparsity=0.8, critic_sparsity=0.8))
    trainer = Trainer(config, config.run_dir)
    result = trainer.run()
    assert result.final_eval is not None
    from sparserl.runs.metrics import read_metrics

    last = read_metrics(trainer.run_dir / "metrics.csv")[-1]  # diagnostics work through the sparse path too
    assert float(last["diag_actor_grad_norm"]) > 0 and -1 <= float(last["diag_actor_interference"]) <= 1
    executors = [m.executor for m in trainer.agent.networks["critic"].modules()
                 if getattr(m, "executor", None) is not None]
    assert executors and all(e.version == 0 and e.structures for e in executors)  # built and used
