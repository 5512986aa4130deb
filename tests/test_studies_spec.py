"""Sweep specs: the cartesian product of the axes, stable run ids, and clear errors for bad specs."""

from __future__ import annotations

import pytest

from sparserl.errors import ConfigError, SparserlError
from sparserl.studies import expand, load_spec, parse_axis, spec_from_dict


def test_product_ids_and_values(tmp_path):
    spec = spec_from_dict({"name": "s", "preset": "quickstart", "base": {"total_steps": 1000},
                           "axes": {"env": ["Pendulum-v1", "InvertedPendulum-v5"], "sparsity": ["dense", "nm:1:4"],
                                    "seed": [0, 1, 2], "hidden": [[64, 64]]},
                           "output": str(tmp_path / "out")})
    plans = expand(spec)
    assert len(plans) == 2 * 2 * 3 * 1
    ids = [p.run_id for p in plans]
    assert len(set(ids)) == len(ids)
    first = plans[0]
    assert first.run_id == "env=Pendulum-v1_sparsity=dense_seed=0_hidden=64x64"
    assert first.run_dir == tmp_path / "out" / "runs" / first.run_id
    nm = [p for p in plans if p.values["sparsity"] == "nm:1:4"][0].config
    assert nm.sparsity.method == "nm:1:4" and nm.sparsity.keep_first_dense  # the preset's option survives
    assert nm.total_steps == 1000 and nm.hidden == (64, 64) and nm.threads == 1
    assert [p.run_id for p in expand(spec)] == ids  # stable


def test_sparsity_keys_as_axes():
    plans = expand(spec_from_dict({"axes": {"sparsity": ["rigl"], "actor_sparsity": [0.8, 0.95]}}))
    assert [p.config.sparsity.actor_sparsity for p in plans] == [0.8, 0.95]
    assert all(p.config.sparsity.method == "rigl" for p in plans)


def test_a_sparsity_axis_value_may_be_a_whole_section():
    spec = spec_from_dict({"base": {"sparsity": {"keep_first_dense": True}},
                           "axes": {"sparsity": ["dense", {"method": "rigl", "actor_sparsity": 0.5,
                                                           "critic_sparsity": 0.5, "update_interval": 1000}]}})
    dense, rigl = expand(spec)
    assert dense.config.sparsity.method == "dense"
    assert (rigl.config.sparsity.method, rigl.config.sparsity.actor_sparsity) == ("rigl", 0.5)
    assert rigl.config.sparsity.update_interval == 1000 and rigl.config.sparsity.keep_first_dense
    assert rigl.run_id == "sparsity=rigl-0.5-0.5-1000"


@pytest.mark.parametrize("data,pattern", [
    ({"axes": {"sed": [0, 1]}}, r"unknown axis 'sed'; did you mean seed"),
    ({"axes": {"seed": []}}, r"axis 'seed' has no values, so the sweep would have no runs"),
    ({"axes": {"sparsity": ["dense", "magic"]}}, r"(?s)run sparsity=magic: .*unknown sparsity method 'magic'"),
    ({"axes": {"env": ["Pendulum-v1", "Hoper-v5"]}}, r"unknown environment id 'Hoper-v5'. Did you mean: .*Hopper-v5"),
    ({"axes": {"batch_size": [64, "big"]}}, r"batch_size must be an integer, got 'big'"),
    ({"axes": {"seed": [0]}, "axis": {}}, r"unknown key 'axis'; did you mean 'axes'"),
    ({"axes": {"env": ["Pendulum-v1", "Pendulum v1"]}, "threads": 0}, r"threads must be a positive integer"),
    ({"axes": ["seed"]}, r"axes must map config keys to lists of values"),
])
def test_bad_specs_are_refused(data, pattern):
    with pytest.raises(SparserlError, match=pattern):
        spec_from_dict(data)


def test_spec_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("axes: {seed: [0, 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml' is not valid YAML at line"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_cli_axis_parsing():
    assert parse_axis("seed=0,1,2") == ("seed", [0, 1, 2])
    assert parse_axis("hidden=[64,64],[256,256]") == ("hidden", [[64, 64], [256, 256]])
    assert parse_axis("sparsity=dense,nm:2:4") == ("sparsity", ["dense", "nm:2:4"])
    with pytest.raises(ConfigError, match="--axis must look like KEY=VALUE1,VALUE2"):
        parse_axis("seed")
