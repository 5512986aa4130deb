"""Config validation, YAML files and presets: bad input is refused with a message naming the value."""

from __future__ import annotations

import pytest

from sparserl.config import Config, list_presets, load_preset, load_yaml, resolve_config, resolve_values
from sparserl.errors import ConfigError


def test_defaults_are_the_papers():
    c = Config()
    assert (c.actor_lr, c.critic_lr, c.batch_size, c.gamma, c.tau) == (3e-4, 3e-4, 256, 0.99, 0.005)
    assert (c.policy_noise, c.noise_clip, c.policy_delay, c.exploration_noise) == (0.2, 0.5, 2, 0.1)
    assert (c.start_steps, c.buffer_size, c.hidden, c.updates_per_step) == (25_000, 1_000_000, (256, 256), 1)
    assert (c.eval_every, c.eval_episodes, c.init_alpha, c.target_entropy) == (5_000, 10, 1.0, None)
    c.validate()


@pytest.mark.parametrize("field", ["total_steps", "eval_every", "checkpoint_every", "batch_size",
                                   "buffer_size", "updates_per_step", "policy_delay"])
@pytest.mark.parametrize("value", [0, -5])
def test_non_positive_counts_are_refused(field, value):
    with pytest.raises(ConfigError, match=f"{field} must be a positive integer, got {value}"):
        Config(**{field: value}).validate()


def test_eval_episodes_may_be_zero_and_the_score_then_uses_training_returns():
    with pytest.raises(ConfigError, match=r"eval_episodes must be an integer >= 0 \(0: none\), got -5"):
        Config(eval_episodes=-5).validate()
    config = Config(eval_episodes=0).validate()
    assert (config.measure, config.reevaluation_episodes) == ("train_return", 10)
    assert (Config().measure, Config(eval_episodes=3).reevaluation_episodes) == ("eval_return", 3)


def test_batch_larger_than_buffer_is_refused():
    with pytest.raises(ConfigError, match=r"batch_size \(512\) must not exceed buffer_size \(100\)"):
        Config(batch_size=512, buffer_size=100).validate()


def test_all_problems_reported_together():
    with pytest.raises(ConfigError) as info:
        Config(total_steps=0, gamma=1.5, tau=0.0).validate()
    text = str(info.value)
    assert "total_steps" in text and "gamma must be in (0, 1], got 1.5" in text and "tau" in text


def test_unknown_algo_is_refused():
    from sparserl.algos import ALGORITHMS

    with pytest.raises(ConfigError, match=f"algo must be one of {', '.join(ALGORITHMS)}; got 'ppo'"):
        Config.from_dict({"algo": "ppo"}).validate()


def test_unknown_key_suggests_close_name():
    with pytest.raises(ConfigError, match="unknown config key 'total_step'; did you mean total_steps"):
        Config.from_dict({"total_step": 10})


def test_wrong_type_names_field_and_value():
    with pytest.raises(ConfigError, match="batch_size must be an integer, got 'big'"):
        Config.from_dict({"batch_size": "big"})
    with pytest.raises(ConfigError, match="batch_size must be an integer, got 2.5"):
        Config.from_dict({"batch_size": 2.5})


def test_yaml_numbers_and_lists_are_coerced(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("total_steps: 1e5\nhidden: [64, 64]\ntarget_entropy: null\ncritic_lr: 1e-3\n")
    values = load_yaml(path)
    assert values == {"total_steps": 100_000, "hidden": (64, 64), "target_entropy": None, "critic_lr": 1e-3}


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("env: Hopper-v5\nalgo: [td3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml' is not valid YAML at line \d+, column \d+"):
        load_yaml(path)


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping of config keys, got list"):
        load_yaml(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml("/nonexistent/c.yaml")


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError, match="unknown preset 'quickstrt'. Did you mean quickstart"):
        load_preset("quickstrt")


def test_every_preset_is_valid():
    assert {"quickstart", "td3", "sac"} <= set(list_presets())
    for name in list_presets():
        Config(**resolve_values(name)).validate()


def test_precedence_defaults_preset_file_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("total_steps: 7000\nseed: 3\n")
    c = resolve_config(preset="quickstart", config_file=path, seed=5)
    assert c.env == "Pendulum-v1"  # from the preset
    assert c.total_steps == 7000  # file over preset
    assert c.seed == 5  # override over file
    assert c.batch_size == 256  # default


def test_round_trip_through_dict():
    c = Config(hidden=(64, 32), target_entropy=-2.0)
    assert Config.from_dict(c.to_dict()) == c
