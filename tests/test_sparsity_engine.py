"""SPEC §3.4 invariants of the sparsity engine, checked after every optimiser step and Polyak update
over random networks, methods and settings (hypothesis)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparserl.errors import ConfigError
from sparserl.nets import MLP, QEnsemble
from sparserl.optim import LeanAdam
from sparserl.sparsity import Sparsifier, SparsityConfig
from sparserl.sparsity.masks import nm_mask
from sparserl.sparsity.methods import NM


class ConvNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.head = nn.Linear(width * 4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def build(kind: str, width: int, seed: int):
    torch.manual_seed(seed)
    if kind == "mlp":
        net = MLP(7, 3, (width, width))
        return net, lambda n: (n(torch.randn(16, 7)) ** 2).mean()
    if kind == "ensemble":
        net = QEnsemble.mlp(5, 2, (width,), members=2)
        return net, lambda n: (n(torch.randn(16, 5), torch.randn(16, 2)) ** 2).mean()
    net = ConvNet(width)
    return net, lambda n: (n(torch.randn(4, 3, 4, 4)) ** 2).mean()


def make_optimizer(kind: str, params):
    if kind == "lean":
        return LeanAdam(params, lr=1e-2)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    return torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3)


methods = st.one_of(
    st.sampled_from(["static", "rigl", "set", "gmp"]).map(lambda m: {"method": m}),
    st.tuples(st.sampled_from([(2, 4), (1, 4), (1, 8), (1, 2), (3, 5)]),
              st.sampled_from(["masked", "ste", "srste", "shadow"])).map(
        lambda t: {"method": f"nm:{t[0][0]}:{t[0][1]}", "nm_gradient": t[1]}),
)


@settings(max_examples=60, deadline=None)
@given(net_kind=st.sampled_from(["mlp", "ensemble", "conv"]), width=st.integers(8, 24), seed=st.integers(0, 50),
       opt_kind=st.sampled_from(["lean", "adam", "adamw"]), chosen=methods, sparsity=st.floats(0.3, 0.95),
       distribution=st.sampled_from(["uniform", "er"]), init=st.sampled_from(["random", "magnitude"]),
       reset=st.booleans(), skip=st.booleans(), interval=st.integers(1, 3))
def test_invariants_after_every_step_and_polyak_update(net_kind, width, seed, opt_kind, chosen, sparsity,
                                                        distribution, init, reset, skip, interval):
    net, loss_fn = build(net_kind, width, seed)
    target = copy.deepcopy(net).requires_grad_(False)
    optimizer = make_optimizer(opt_kind, net.parameters())
    nm = chosen["method"].startswith("nm")
    config = SparsityConfig(**chosen, distribution=distribution, mask_init=init, reset_moments=reset,
                            skip_step_on_update=skip, update_interval=interval, gmp_start=0.1, gmp_end=0.6)
    sparsifier = Sparsifier(config, seed=seed)
    try:
        group = sparsifier.attach("actor", net, optimizer, targets=[target], sparsity=None if nm else sparsity,
                                  total_steps=12)
    except ConfigError as exc:  # tiny layers can make a budget impossible; that must be the reason
        assert "would keep no weight" in str(exc) or "leaves no layer sparse" in str(exc)
        return
    latent = nm and chosen["nm_gradient"] != "masked"
    counts = [mask.reshape(layer.shape.members, -1).sum(1).clone() for layer, mask in
              zip(group.sparse_layers, group.masks)]

    def check(after: str) -> None:
        for layer, mask, tweight in zip(group.sparse_layers, group.masks, group.target_weights[0]):
            pruned = mask == 0
            assert (layer.param[pruned] == 0).all(), f"online weight off-mask after {after}"
            assert (tweight[pruned] == 0).all(), f"target weight off-mask after {after}"
            if nm:  # exactly N per full group in the mask, at most N non-zeros in the weight
                n, m = NM.parse(config.method)
                view = layer.view(mask)
                full = view.shape[-1] // m * m
                if full:
                    assert (view[..., :full].reshape(*view.shape[:-1], -1, m).sum(-1) == n).all()
                    nonzero = (layer.view(layer.param)[..., :full] != 0).float()
                    assert (nonzero.reshape(*view.shape[:-1], -1, m).sum(-1) <= n).all()
            if not latent and reset:  # Adam's state holds nothing that could move a pruned weight
                for value in optimizer.state.get(layer.param, {}).values():
                    if torch.is_tensor(value) and value.shape == mask.shape:
                        assert (value[pruned] == 0).all(), f"optimiser state off-mask after {after}"
        if config.kind in ("rigl", "set", "static"):  # topology updates keep each layer's active count
            for layer, mask, count in zip(group.sparse_layers, group.masks, counts):
                assert torch.equal(mask.reshape(layer.shape.members, -1).sum(1), count)

    check("attach")
    initial = [mask.clone() for mask in group.masks]
    for step in range(12):
        optimizer.zero_grad()
        loss_fn(net).backward()
        optimizer.step()
        check(f"optimiser step {step}")
        if step % 2:
            with torch.no_grad():
                torch._foreach_lerp_(list(target.parameters()), list(net.parameters()), 0.3)
            sparsifier.after_target_update()
            check(f"Polyak update {step}")
    if config.kind == "rigl":  # zeta starts at 0.5: the topology did change
        assert any(not torch.equal(mask, first) for mask, first in zip(group.masks, initial))


def test_masked_weights_never_move_without_remasking():
    """Gradient masking alone (no pass over the weights after the step) keeps pruned weights at 0."""
    torch.manual_seed(0)
    net = MLP(8, 4, (32,))
    optimizer = LeanAdam(net.parameters(), lr=0.1, weight_decay=0.01)
    sparsifier = Sparsifier(SparsityConfig(method="static"), seed=0)
    group = sparsifier.attach("actor", net, optimizer, sparsity=0.8)
    for _ in range(50):
        optimizer.zero_grad()
        (net(torch.randn(8, 8)) ** 2).sum().backward()
        optimizer.step()
    for layer, mask in zip(group.sparse_layers, group.masks):
        assert (layer.param[mask == 0] == 0).all() and (layer.param[mask == 1] != 0).all()


def test_gmp_reaches_final_sparsity_on_schedule():
    torch.manual_seed(0)
    net = MLP(16, 4, (64, 64))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    sparsifier = Sparsifier(SparsityConfig(method="gmp", update_interval=10), seed=0)
    group = sparsifier.attach("actor", net, optimizer, sparsity=0.9, total_steps=1000)
    densities = []
    for _ in range(1000):
        optimizer.zero_grad()
        (net(torch.randn(8, 16)) ** 2).mean().backward()
        optimizer.step()
        densities.append(sparsifier.density(group))
    assert densities[198] == 1.0  # dense until 20 %
    assert densities[250] < 1.0  # pruning under way
    assert all(a >= b for a, b in zip(densities, densities[1:]))  # monotone
    assert densities[799] == pytest.approx(0.1, abs=2e-3) and densities[-1] == densities[799]
    # the cubic schedule: at p = 1/2 the sparsity is s_F (1 - 1/8)
    assert 1 - densities[499] == pytest.approx(0.9 * (1 - 0.5 ** 3), abs=0.02)


def test_skip_step_on_update_leaves_weights_and_moments_untouched():
    torch.manual_seed(0)
    net = MLP(6, 2, (16,))
    optimizer = LeanAdam(net.parameters(), lr=1e-2)
    sparsifier = Sparsifier(SparsityConfig(method="rigl", update_interval=3,
                                           skip_step_on_update=True, reset_moments=False), seed=0)
    group = sparsifier.attach("actor", net, optimizer, sparsity=0.5, total_steps=100)
    for step in range(3):
        optimizer.zero_grad()
        (net(torch.randn(4, 6)) ** 2).mean().backward()
        if step == 2:
            before = [p.detach().clone() for p in net.parameters()]
            moments = [optimizer.state[p]["exp_avg"].clone() for p in net.parameters()]
            old_masks = [m.clone() for m in group.masks]
        optimizer.step()
    for p, b, m in zip(net.parameters(), before, moments):
        if not any(p is layer.param for layer in group.sparse_layers):
            assert torch.equal(p, b) and torch.equal(optimizer.state[p]["exp_avg"], m)
    for layer, old, new, b in zip(group.sparse_layers, old_masks, group.masks, before[::2]):
        kept = (old == 1) & (new == 1)
        assert torch.equal(layer.param[kept], b[kept])  # surviving weights did not take a step
        assert (layer.param[(old == 0) & (new == 1)] == 0).all()  # grown ones start at zero


@pytest.mark.parametrize("method,options", [("nm:2:4", {"nm_gradient": "srste", "update_interval": 1}),
                                            ("nm:1:4", {"nm_gradient": "ste", "update_interval": 2}),
                                            ("rigl", {"update_interval": 3})])
def test_sad_counts_the_entries_flipped_by_the_latest_update(method, options):
    torch.manual_seed(1)
    net = QEnsemble.mlp(6, 2, (16,), members=2)
    optimizer = LeanAdam(net.parameters(), lr=0.05)
    sparsifier = Sparsifier(SparsityConfig(method=method, **options), seed=0)
    group = sparsifier.attach("actor", net, optimizer, sparsity=0.7, total_steps=30)
    seen = 0.0
    for step in range(12):
        before = [m.clone() for m in group.masks]
        optimizer.zero_grad()
        (net(torch.randn(8, 6), torch.randn(8, 2)) ** 2).mean().backward()
        optimizer.step()
        if (step + 1) % options["update_interval"] == 0:  # this step re-projected or evolved the masks
            expected = torch.stack([(new != old).sum() for new, old in zip(group.masks, before)]).float()
        if step in (8, 11):
            stats = sparsifier.pop_stats()
            got = torch.tensor([stats[f"sad_actor_{i}"] for i in range(len(group.sparse))])
            assert torch.equal(got, expected)
            seen += float(expected.sum())
    assert seen > 0
    assert all(v == 0 for k, v in sparsifier.pop_stats().items() if k.startswith("sad"))  # no update since


def test_rigl_update_grows_by_this_steps_dense_gradient_and_drops_smallest_weights():
    torch.manual_seed(3)
    layer = nn.Linear(8, 6)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.0)  # the step leaves weights as they are
    sparsifier = Sparsifier(SparsityConfig(method="rigl", distribution="uniform",
                                           update_interval=1, drop_schedule="constant", drop_fraction=0.25),
                            seed=0)
    group = sparsifier.attach("actor", layer, optimizer, sparsity=0.5, total_steps=10)
    mask = group.masks[0].clone()
    weight = layer.weight.detach().clone()
    x = torch.randn(32, 8)
    optimizer.zero_grad()
    layer(x).pow(2).sum().backward()
    dense_grad = layer.weight.grad.clone()  # before the engine masks it
    optimizer.step()
    new = group.masks[0]
    k = int(0.25 * mask.sum())  # 24 active -> 6 dropped and regrown
    active = mask.flatten() > 0
    keep = torch.zeros(48, dtype=torch.bool)
    keep[torch.where(active, weight.abs().flatten(), -1.0).topk(int(active.sum()) - k).indices] = True
    grow_scores = torch.where(keep, -1.0, dense_grad.abs().flatten())
    grown = torch.zeros(48, dtype=torch.bool)
    grown[grow_scores.topk(k).indices] = True
    assert torch.equal(new.flatten() > 0, keep | grown)
    assert new.sum() == mask.sum()
    newly_on = (new > 0) & (mask == 0)
    assert (layer.weight[newly_on] == 0).all()  # grown weights start at zero


@pytest.mark.parametrize("interval", [1, 4])
def test_nm_shadow_mode_rechooses_its_mask_every_interval_from_the_shadows_magnitudes(interval):
    """nm:2:4 with masked gradients on a dense shadow: between re-projections the mask stays, only
    kept weights move (pruned ones wait in the shadow at their values, off the network), and every
    ΔT steps the mask becomes the top 2 of 4 of the shadow's magnitudes, which changes it here."""
    torch.manual_seed(3)
    net = MLP(8, 4, (16,))
    optimizer = LeanAdam(net.parameters(), lr=0.2)
    sparsifier = Sparsifier(SparsityConfig(method="nm:2:4", nm_gradient="shadow", update_interval=interval), seed=0)
    group = sparsifier.attach("actor", net, optimizer, total_steps=100)
    shadow = group.state.latent
    changes = 0
    for step in range(1, 25):
        masks, latents = [m.clone() for m in group.masks], [w.clone() for w in shadow]
        optimizer.zero_grad()
        (net(torch.randn(16, 8)) ** 2).mean().backward()
        optimizer.step()
        for layer, mask, old_mask, latent, old in zip(group.sparse_layers, group.masks, masks, shadow, latents):
            pruned = old_mask == 0
            assert torch.equal(latent[pruned], old[pruned])  # pruned weights did not learn
            assert (layer.param[mask == 0] == 0).all() and torch.equal(layer.param[mask == 1], latent[mask == 1])
            if step % interval:
                assert torch.equal(mask, old_mask)
            else:  # re-chosen: the 2 largest |W| of every 4 of the shadow
                assert torch.equal(mask, nm_mask(latent.detach(), 2, 4, dim=-1).view_as(mask))
                changes += int(not torch.equal(mask, old_mask))
    assert changes > 0
