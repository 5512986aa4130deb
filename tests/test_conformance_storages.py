"""Conformance of every registered policy storage (sparserl.storage.STORAGES): a weight it can hold
round-trips exactly, its tensors have the shapes its header entry implies, and every kernel form it
offers computes the dense product. The storage list is read from the registry at collection time,
so a registered storage is covered with no edit here; a user's storage works through export and
the loader, and a faulty one is refused at registration with a message naming it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl import load_policy, policy_file
from sparserl.errors import ConfigError, PolicyError
from sparserl.export import export_actor
from sparserl.nets.actors import DeterministicActor
from sparserl.storage import STORAGES, Storage, decode_dense, encode_layer, register_storage, storage_bytes


def pytest_generate_tests(metafunc):
    if "storage" in metafunc.fixturenames:
        metafunc.parametrize("storage", list(STORAGES.names()), ids=list(STORAGES.names()))


@st.composite
def sparse_weights(draw):
    """(weight, nm): a random weight whose kept entries respect N:M in every group of M inputs."""
    n, m = draw(st.sampled_from([(1, 2), (2, 4), (1, 8), (3, 4)]))
    out, fan_in = draw(st.integers(1, 10)), draw(st.integers(1, 20))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    weight = torch.randn(out, fan_in, generator=g)
    keep = torch.zeros(out, fan_in, dtype=torch.bool)
    for start in range(0, fan_in, m):
        width = min(m, fan_in - start)
        order = torch.rand(out, width, generator=g).argsort(-1)
        keep[:, start:start + width] = order < torch.randint(0, n + 1, (out, 1), generator=g)
    return weight * keep, (n, m)


@settings(max_examples=40, deadline=None)
@given(case=sparse_weights())
def test_a_storage_round_trips_exactly_and_every_form_computes_the_dense_product(storage, case):
    weight, nm = case
    tensors, entry = encode_layer("w", weight, storage, nm)
    held = storage in storage_bytes(weight, nm, int((weight != 0).sum()))
    assert (entry["storage"] == storage) == held  # a storage that cannot hold the weight is not used
    chosen = STORAGES.get(entry["storage"])
    assert torch.equal(decode_dense("w", entry, tensors), weight)
    assert set(tensors) == {f"w.{part}" for part in chosen.parts}
    for key, shape in chosen.shapes("w", entry, tensors).items():
        assert tuple(tensors[key].shape) == shape, key
    bias = torch.randn(weight.shape[0])
    x = torch.randn(3, weight.shape[1])
    expected = F.linear(x, weight, bias)
    forms = chosen.forms("w", entry, tensors, bias)
    assert "dense" in forms and ("csr" in forms) == chosen.sparse
    for form, build in forms.items():
        kernel = build()
        torch.testing.assert_close(kernel(x), expected, atol=1e-5, rtol=1e-5, msg=form)
        torch.testing.assert_close(kernel(x[:1]), expected[:1], atol=1e-5, rtol=1e-5, msg=form)


class Rows(Storage):
    """A user's storage: the kept values in row order and their flat positions (int32)."""

    name, parts = "conformance_rows", ("flat", "values")

    def size(self, weight, nm, kept):
        return kept * 8 + 1  # never the smallest, so only an explicit choice takes it

    def encode(self, name, weight, nm):
        flat = weight.flatten().nonzero().flatten()
        return {f"{name}.flat": flat.to(torch.int32), f"{name}.values": weight.flatten()[flat]}, {}

    def decode(self, name, entry, tensors):
        out, fan_in = entry["shape"]
        dense = torch.zeros(out * fan_in)
        dense[tensors[f"{name}.flat"].long()] = tensors[f"{name}.values"]
        return dense.view(out, fan_in)

    def shapes(self, name, entry, tensors):
        return {f"{name}.flat": (entry["kept"],), f"{name}.values": (entry["kept"],)}


def test_a_registered_user_storage_exports_and_loads_and_leaves_no_trace(tmp_path):
    torch.manual_seed(0)
    actor = DeterministicActor.mlp(5, 2, (16, 16))
    with torch.no_grad():
        for layer in actor.net.net.layers:
            layer.weight.mul_((torch.rand_like(layer.weight) < 0.3).float())
    obs = torch.randn(4, 5)
    with torch.no_grad():
        expected = actor(obs).numpy()
    register_storage(Rows())
    try:
        assert "conformance_rows" in policy_file.storage_choices()
        header = export_actor(actor, tmp_path / "p.safetensors", {"env": "none"}, storage="conformance_rows")
        assert {e["storage"] for e in header["layers"].values()} == {"conformance_rows"}
        for backend in ("dense", "csr", "auto"):
            policy = load_policy(tmp_path / "p.safetensors", backend=backend)
            torch.testing.assert_close(torch.as_tensor(policy.act(obs.numpy())), torch.as_tensor(expected),
                                       atol=1e-5, rtol=1e-5)
    finally:
        STORAGES.unregister("conformance_rows")
    with pytest.raises(PolicyError, match="unknown storage 'conformance_rows'"):
        export_actor(actor, tmp_path / "q.safetensors", {"env": "none"}, storage="conformance_rows")
    with pytest.raises(PolicyError, match="malformed"):  # a file in a storage this process does not know
        load_policy(tmp_path / "p.safetensors")


class NoDecode(Storage):
    name, parts = "conformance_no_decode", ("values",)

    def size(self, weight, nm, kept):
        return 0

    def encode(self, name, weight, nm):
        return {}, {}

    def shapes(self, name, entry, tensors):
        return {}


class Misnamed(Rows):
    name = "conformance_misnamed"


class Clash(Rows):
    name = "csr"


@pytest.mark.parametrize("make, name, says", [
    (Clash, "csr", "that name is taken"),
    (NoDecode, "conformance_no_decode", "does not implement decode"),
])
def test_a_faulty_user_storage_is_refused_naming_it(make, name, says):
    before = STORAGES.items()
    with pytest.raises(ConfigError) as caught:
        register_storage(make())
    assert repr(name) in str(caught.value) and says in str(caught.value), str(caught.value)
    assert STORAGES.items() == before


def test_a_storage_registered_under_another_name_is_refused():
    with pytest.raises(ConfigError, match="'other'.*whose name is 'other'"):
        STORAGES.register("other", Misnamed())
    assert "other" not in STORAGES
