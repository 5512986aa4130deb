"""Policy files detect damage: a flipped byte anywhere in the weights is refused by the checksum, a
NaN weight is refused at export (nothing written) and at load, and a file without a checksum (an
older sparserl's) loads with a warning."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl import load_policy
from sparserl import policy_file as pf
from sparserl.cli import main
from sparserl.errors import PolicyError, PolicyWarning
from sparserl.export import export_actor
from sparserl.nets.actors import DeterministicActor


def exported(path, poison: bool = False):
    torch.manual_seed(0)
    actor = DeterministicActor.mlp(5, 2, (16, 16))
    if poison:
        with torch.no_grad():
            actor.net.net.layers[1].weight[3, 4] = float("nan")
    return export_actor(actor, path, {"env": "Pendulum-v1"})


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "p.safetensors"
    exported(path)
    return path


def data_start(blob: bytes) -> int:
    """Where the tensor bytes begin: after safetensors' 8-byte length and its JSON header."""
    return 8 + struct.unpack("<Q", blob[:8])[0]


@settings(max_examples=25, deadline=None)
@given(where=st.floats(0.0, 1.0, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_in_the_tensors_is_refused(good, tmp_path_factory, where, bit):
    blob = bytearray(good.read_bytes())
    start = data_start(blob)
    index = start + int(where * (len(blob) - start))
    blob[index] ^= 1 << bit
    damaged = tmp_path_factory.mktemp("damaged") / "p.safetensors"
    damaged.write_bytes(bytes(blob))
    with pytest.raises(PolicyError, match="is damaged: its contents do not match the checksum"):
        load_policy(damaged)


def test_an_edited_header_value_is_refused(good, tmp_path):
    from safetensors.torch import save

    header, tensors = pf.read(good)
    header["source"]["env"] = "Hopper-v5"  # still a well-formed header: only the checksum can tell
    edited = tmp_path / "edited.safetensors"
    edited.write_bytes(save(tensors, metadata={pf.META_KEY: json.dumps(header)}))
    with pytest.raises(PolicyError, match="is damaged"):
        load_policy(edited)


def test_nan_weights_are_refused_at_export_and_at_load(tmp_path, capsys):
    path = tmp_path / "nan.safetensors"
    with pytest.raises(PolicyError, match="NaN or infinite values in layers.1.weight; nothing was written"):
        exported(path, poison=True)
    assert not path.exists()

    from safetensors.torch import save

    exported(tmp_path / "ok.safetensors")
    header, tensors = pf.read(tmp_path / "ok.safetensors")
    tensors["layers.1.weight"][0, 0] = float("nan")
    header["checksum"] = pf.checksum(header, tensors)  # a consistent file of a diverged actor
    path.write_bytes(save(tensors, metadata={pf.META_KEY: json.dumps(header)}))
    with pytest.raises(PolicyError, match="NaN or infinite values in layers.1.weight"):
        load_policy(path)
    assert main(["eval", "--policy", str(path), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite values" in err and "Traceback" not in err


def test_a_file_without_a_checksum_loads_with_a_warning(good, tmp_path):
    from safetensors.torch import save

    header, tensors = pf.read(good)
    del header["checksum"]
    old = tmp_path / "old.safetensors"
    old.write_bytes(save(tensors, metadata={pf.META_KEY: json.dumps(header)}))
    with pytest.warns(PolicyWarning, match="has no checksum"):
        policy = load_policy(old)
    x = torch.randn(3, 5)
    assert torch.equal(torch.as_tensor(policy.act(x.numpy())), torch.as_tensor(load_policy(good).act(x.numpy())))
