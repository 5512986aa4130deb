"""Sparsity per module of a pixel agent: the encoder at a level of its own (0 keeps it dense), any
layer kept dense by NETWORK.WEIGHT pattern under any method, and the mistakes refused by name."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.config import Config
from sparserl.errors import ConfigError
from sparserl.runs.build import build_agent
from tests.test_drqv2 import INFO, SIZE, STACK, agent_and_replay


def pixel_agent(**sparsity):
    config = Config(algo="drqv2", pixels=True, pixel_size=SIZE, frame_stack=STACK, hidden=(32, 32), feature_dim=8,
                    diagnostics_every=0, sparsity=sparsity).validate()
    torch.manual_seed(0)
    return build_agent(config, INFO)[0]


def layer_weights(agent) -> dict[str, torch.Tensor]:
    """Every sparsifiable weight by its NETWORK.WEIGHT name."""
    return {f"{group.name}.{layer.name}": layer.param.detach()
            for group in agent.sparsifier.groups.values() for layer in group.layers}


def zero_fraction(weights: dict[str, torch.Tensor], prefix: str) -> float:
    chosen = [w for name, w in weights.items() if name.startswith(prefix)]
    return sum(int((w == 0).sum()) for w in chosen) / sum(w.numel() for w in chosen)


LAYER_NAMES = sorted(layer_weights(pixel_agent(method="nm:2:4")))


def test_a_dense_encoder_under_sparse_heads_stays_dense_while_training():
    agent, replay = agent_and_replay(sparsity={"method": "rigl", "encoder_sparsity": 0.0, "update_interval": 1})
    from sparserl.sparsity import Sparsifier

    sparsifier = Sparsifier(agent.config.sparsity, seed=0)
    agent.attach_sparsity(sparsifier, 10)
    for _ in range(3):
        agent.update(replay.sample(16, 3))
    assert zero_fraction(layer_weights(agent), "encoder.") == 0.0
    stats = sparsifier.pop_stats()  # from the masks (RigL grows connections at 0)
    assert stats["density_encoder"] == 1.0 and not any(name.startswith("sad_encoder") for name in stats)
    assert stats["density_actor"] == pytest.approx(0.1, abs=0.01)
    assert stats["density_critic"] == pytest.approx(0.1, abs=0.01)
    assert any(stats[f"sad_critic_{i}"] > 0 for i in range(4))  # the heads' topology did change


def test_the_encoder_takes_its_own_level():
    weights = layer_weights(pixel_agent(method="static", encoder_sparsity=0.5, actor_sparsity=0.8, critic_sparsity=0.8,
                                        distribution="uniform"))
    assert zero_fraction(weights, "encoder.") == pytest.approx(0.5, abs=0.01)
    assert zero_fraction(weights, "actor.") == pytest.approx(0.8, abs=0.01)


@settings(max_examples=12, deadline=None)
@given(st.sets(st.sampled_from(LAYER_NAMES)))
def test_exactly_the_named_layers_stay_dense_under_nm(dense):
    """N:M fixes its level, so patterns are how a module stays dense under it: a layer holds no zero
    weight exactly when a pattern names it."""
    weights = layer_weights(pixel_agent(method="nm:2:4", dense_layers=tuple(sorted(dense))))
    assert {name for name, w in weights.items() if not (w == 0).any()} == dense


def test_a_network_whose_layers_are_all_named_dense_is_dense_at_any_level():
    weights = layer_weights(pixel_agent(method="static", dense_layers=("encoder.*",)))
    assert zero_fraction(weights, "encoder.") == 0.0 and zero_fraction(weights, "critic.") > 0.85


def test_a_pattern_keeps_every_layer_it_matches_dense():
    weights = layer_weights(pixel_agent(method="static", dense_layers=("*.trunk.*",), actor_sparsity=0.5,
                                        critic_sparsity=0.5, encoder_sparsity=0.5, distribution="erk"))
    trunks = [name for name in weights if ".trunk." in name]
    assert trunks == ["actor.trunk.linear.weight", "critic.trunk.linear.weight"]
    assert all(not (weights[name] == 0).any() for name in trunks)
    assert zero_fraction(weights, "actor.head.") > 0.5  # the heads carry the actor's budget


def test_a_pattern_matching_no_layer_is_refused_naming_the_layers():
    with pytest.raises(ConfigError, match=r"dense_layers: 'encoder\.conv\.\*' matches no layer; the sparsifiable "
                                          r"layers are encoder\.convs\.0\.weight, "):
        pixel_agent(method="static", dense_layers=("encoder.conv.*",))


def test_an_encoder_level_on_a_state_run_is_refused():
    with pytest.raises(ConfigError, match=r"encoder_sparsity applies to a network td3 does not have \(its networks: "
                                          r"actor, critic; algorithms with one: drqv2\)"):
        Config(algo="td3", sparsity={"method": "static", "encoder_sparsity": 0.5}).validate()
    with pytest.raises(ConfigError, match=r"dense_layers must be patterns"):
        Config(sparsity={"method": "static", "dense_layers": ("",)}).validate()
