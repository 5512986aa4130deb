"""Layer budgets (Evci et al. 2020; Tan et al. 2023, RLx2): ER/uniform/ERK hit the global target
within one weight per layer."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sparserl.errors import ConfigError
from sparserl.sparsity.budget import LayerShape, kept_per_member, layer_densities

shapes = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300), st.integers(1, 3)), min_size=1, max_size=5)


def make_layers(spec) -> list[LayerShape]:
    return [LayerShape(f"l{i}", fan_in, fan_out, members) for i, (fan_in, fan_out, members) in enumerate(spec)]


@settings(max_examples=300, deadline=None)
@given(spec=shapes, sparsity=st.floats(0.0, 0.98), distribution=st.sampled_from(["uniform", "er", "erk"]),
       first=st.booleans(), last=st.booleans(), extra=st.integers(0, 2000))
def test_budget_hits_target_within_one_weight_per_layer(spec, sparsity, distribution, first, last, extra):
    layers = make_layers(spec)
    dense = frozenset(({0} if first else set()) | ({len(layers) - 1} if last else set()))
    total = sum(layer.numel for layer in layers) + extra
    try:
        densities = layer_densities(layers, sparsity, distribution, dense, extra)
    except ConfigError as exc:  # only for budgets that truly cannot be met, or a layer left empty
        if "cannot be met" in str(exc):
            assert sum(layers[i].numel for i in dense) + extra > (1 - sparsity) * total
        else:
            assert "would keep no weight" in str(exc)
        assume(False)
    assert all(0.0 < d <= 1.0 for d in densities)
    assert all(densities[i] == 1.0 for i in dense)
    kept = sum(kept_per_member(layer, d) * layer.members for layer, d in zip(layers, densities))
    member_layers = sum(layer.members for layer in layers)
    assert abs(kept + extra - (1 - sparsity) * total) <= member_layers * 0.5 + 1e-6
    if distribution in ("er", "erk"):  # non-clamped layers share one epsilon: density / raw is constant
        ratios = {round(d / layer.raw(distribution == "erk"), 9) for layer, d, i in
                  zip(layers, densities, range(len(layers))) if d < 1.0 and i not in dense}
        assert len(ratios) <= 1


def test_er_clamps_overfull_layers_dense_and_resolves():
    # a TD3 critic (Hopper: 14 -> 256 -> 256 -> 1) at 90 %: the output layer becomes dense
    layers = make_layers([(14, 256, 1), (256, 256, 1), (256, 1, 1)])
    densities = layer_densities(layers, 0.9, "er")
    assert densities[2] == 1.0
    assert densities[0] / layers[0].raw(False) == pytest.approx(densities[1] / layers[1].raw(False))
    kept = sum(kept_per_member(layer, d) for layer, d in zip(layers, densities))
    assert abs(kept - 0.1 * sum(layer.numel for layer in layers)) <= 1.5


def test_all_parameter_scope_makes_weights_sparser():
    layers = make_layers([(64, 64, 1), (64, 64, 1)])
    weights_only = layer_densities(layers, 0.8, "uniform")
    all_params = layer_densities(layers, 0.8, "uniform", extra_dense_params=128)
    assert all_params[0] < weights_only[0] == pytest.approx(0.2)


def test_budget_that_cannot_be_met_names_the_reason():
    layers = make_layers([(10, 10, 1), (100, 100, 1), (100, 10, 1)])
    with pytest.raises(ConfigError, match="cannot be met: the parts kept dense alone hold"):
        layer_densities(layers, 0.99, "er", dense=frozenset({1}))


def test_layer_left_without_weights_is_refused():
    layers = make_layers([(3, 2, 1), (1000, 1000, 1)])
    with pytest.raises(ConfigError, match=r"layer l0 \(2x3\) would keep no weight"):
        layer_densities(layers, 0.9999, "uniform")


def test_explicit_lambdas_ds_td3():
    # DS-TD3: lambda 64 makes a 256x256 layer exactly 50 % dense
    layers = make_layers([(17, 256, 1), (256, 256, 1), (256, 6, 1)])
    densities = layer_densities(layers, 0.0, "er", dense=frozenset({2}), lambdas=(7.0, 64.0))
    assert densities[1] == pytest.approx(0.5) and densities[2] == 1.0
    assert densities[0] == pytest.approx(7 * (17 + 256) / (17 * 256))
    with pytest.raises(ConfigError, match="2 layer_lambdas given for 3 sparse layers"):
        layer_densities(layers, 0.0, "er", lambdas=(7.0, 64.0))
