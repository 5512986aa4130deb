"""Deployable policies: exported actors act like the trained ones under every kernel, files are
compact, and bad files or observations give clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl import kernels
from sparserl import policy_file as pf
from sparserl import storage as storages
from sparserl.deploy import load_policy
from sparserl.errors import PolicyError
from sparserl.export import export_actor, export_run
from sparserl.nets import DeterministicActor
from sparserl.runs.trainer import Trainer

BACKENDS = ("dense", "csr", "nm", "auto")


def trained(make_config, **changes) -> Trainer:
    settings = dict(total_steps=300, start_steps=100, eval_every=300, eval_episodes=1, checkpoint_every=300)
    trainer = Trainer(config := make_config(**{**settings, **changes}), config.run_dir)
    trainer.run()
    return trainer


def actions_match(trainer: Trainer, path, backends=BACKENDS) -> None:
    actor = trainer.agent.policy
    obs = np.random.default_rng(0).normal(size=(6, trainer.info.obs_dim)).astype(np.float32)
    with torch.no_grad():
        expected = actor(torch.as_tensor(obs)).numpy()
    for backend in backends:
        policy = load_policy(path, backend=backend)
        assert np.abs(policy.act(obs) - expected).max() <= 1e-5, backend
        assert np.abs(policy.act(obs[0]) - expected[0]).max() <= 1e-5, backend  # batch 1 takes other kernels


@pytest.mark.parametrize("algo, sparsity", [
    ("td3", {}), ("td3", {"method": "static", "actor_sparsity": 0.9, "critic_sparsity": 0.9}),
    ("sac", {"method": "rigl", "actor_sparsity": 0.8, "critic_sparsity": 0.8, "update_interval": 20}),
    ("td3", {"method": "set", "actor_sparsity": 0.8, "critic_sparsity": 0.8, "update_interval": 20}),
    ("sac", {"method": "gmp", "actor_sparsity": 0.9, "critic_sparsity": 0.9}),
    ("td3", {"method": "nm:2:4", "nm_gradient": "srste"}), ("sac", {"method": "nm:1:8", "nm_gradient": "masked"}),
])
def test_exported_policy_acts_like_the_training_actor_for_every_method(make_config, algo, sparsity):
    from sparserl.config import NetworkSparsity

    trainer = trained(make_config, algo=algo, sparsity=NetworkSparsity(**sparsity))
    run_policy = trainer.run_dir / pf.POLICY_FILE  # written with the checkpoint, compact already
    actions_match(trainer, run_policy)
    header, _ = pf.read(run_policy)
    storages = {e["storage"] for e in header["layers"].values()}
    method = sparsity.get("method", "dense")
    if method.startswith("nm"):
        assert "nm" in storages and all("nm" in e for e in header["layers"].values() if e["storage"] == "nm")
    elif method == "dense":
        assert storages == {"dense"}
    for storage in ("dense", "csr", "nm"):  # every storage decodes to the same actor
        out = trainer.run_dir / f"{storage}.safetensors"
        export_run(trainer.run_dir, out, storage)
        actions_match(trainer, out, ("auto",))


def test_simba_policy_with_observation_statistics_exports_exactly(make_config):
    from sparserl.config import NetworkSparsity

    trainer = trained(make_config, algo="sac", network="simba", actor_width=16, actor_blocks=2, critic_width=32,
                      critic_blocks=1, obs_norm=True, sparsity=NetworkSparsity(method="static", actor_sparsity=0.8,
                                                                              critic_sparsity=0.8))
    actions_match(trainer, trainer.run_dir / pf.POLICY_FILE)


def test_a_one_in_eight_export_is_under_a_quarter_of_the_dense_bytes(make_config):
    from sparserl.config import NetworkSparsity

    trainer = trained(make_config, hidden=(128, 128), sparsity=NetworkSparsity(method="nm:1:8", nm_gradient="masked"))
    sparse, dense = trainer.run_dir / "nm.safetensors", trainer.run_dir / "dense.safetensors"
    export_run(trainer.run_dir, sparse, "auto")
    export_run(trainer.run_dir, dense, "dense")
    assert sparse.stat().st_size <= 0.25 * dense.stat().st_size


# --- storage and kernels (independent of training) ------------------------------------------------
@st.composite
def nm_weights(draw):
    m = draw(st.sampled_from([2, 4, 8]))
    n = draw(st.integers(1, m - 1))
    out, fan_in = draw(st.integers(1, 12)), draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, fan_in, generator=g)
    groups = storages._groups(weight, m)
    keep = torch.rand(groups.shape, generator=g).argsort(-1) < torch.randint(0, n + 1, (out, groups.shape[1], 1),
                                                                              generator=g)
    return (groups * keep).flatten(1)[:, :fan_in].contiguous(), n, m


@settings(max_examples=60, deadline=None)
@given(nm_weights())
def test_packed_nm_round_trips_exactly_and_every_kernel_agrees(case):
    weight, n, m = case
    assert storages.fits_nm(weight, n, m)
    for storage in ("dense", "csr", "nm"):
        tensors, entry = storages.encode_layer("w", weight, storage, (n, m))
        assert entry["storage"] == storage
        assert torch.equal(storages.decode_dense("w", entry, tensors), weight)  # lossless
    values, offsets = storages.pack_nm(weight, n, m)
    bias = torch.randn(weight.shape[0])
    x = torch.randn(3, weight.shape[1])
    expected = torch.nn.functional.linear(x, weight, bias)
    for kernel in (kernels.CSRKernel(kernels.csr_from_dense(weight), bias),
                   kernels.NMKernel(values.flatten(1), storages.nm_index(offsets, m), bias)):
        torch.testing.assert_close(kernel(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(kernel(x[:1]), expected[:1], atol=1e-5, rtol=1e-5)


def test_a_weight_with_too_many_kept_per_group_is_not_stored_as_nm():
    weight = torch.ones(2, 8)
    assert not storages.fits_nm(weight, 2, 4)
    _, entry = storages.encode_layer("w", weight, "nm", (2, 4))
    assert entry["storage"] == "dense"  # falls back to the smallest storage that holds it


def test_auto_never_changes_actions_beyond_rounding(tmp_path):
    """Wide and very sparse layers, where CSR can win: whichever kernel auto measures fastest, the
    actions equal the dense ones to float rounding, and the choice is cached."""
    torch.manual_seed(0)
    actor = DeterministicActor.mlp(24, 4, (512, 512))
    with torch.no_grad():
        for layer in actor.net.net.layers:
            layer.weight.mul_((torch.rand_like(layer.weight) < 0.05).float())
    path = tmp_path / "p.safetensors"
    export_actor(actor, path, {"env": "none"})
    obs = torch.randn(4, 24)
    expected = actor(obs).detach().numpy()
    kernels.clear_choices()
    chosen = load_policy(path, backend="auto")
    assert len(kernels._CHOICES) >= 1
    for backend in BACKENDS:
        np.testing.assert_allclose(load_policy(path, backend=backend).act(obs.numpy()), expected, atol=1e-5)
    assert load_policy(path, backend="auto").backends == chosen.backends  # from the cache


# --- bad input --------------------------------------------------------------------------------
@pytest.fixture
def policy_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "policy.safetensors"
    export_actor(DeterministicActor.mlp(5, 2, (16,)), path, {"env": "Pendulum-v1"})
    return path


def test_corrupt_truncated_and_foreign_files_give_clear_errors(policy_file, tmp_path):
    blob = policy_file.read_bytes()
    cases = {"truncated": (blob[: len(blob) // 2], "corrupt or truncated"),
             "garbage": (b"\x00" * 64, "not a readable policy file"),
             "empty": (b"", "not a readable policy file")}
    for name, (data, message) in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        with pytest.raises(PolicyError, match=message):
            load_policy(bad)
    with pytest.raises(PolicyError, match="no policy file"):
        load_policy(tmp_path / "missing.safetensors")


def rewritten(policy_file, tmp_path, change_header=None, drop=None, metadata=None):
    from safetensors.torch import save

    header, tensors = pf.read(policy_file)
    if change_header:
        change_header(header)
    tensors = {k: v for k, v in tensors.items() if k != drop}
    path = tmp_path / "changed.safetensors"
    path.write_bytes(save(tensors, metadata=metadata or {pf.META_KEY: json.dumps(header)}))
    return path


def test_other_versions_and_incomplete_files_are_refused(policy_file, tmp_path):
    def future(h):
        h["format"] = pf.FORMAT + 1

    with pytest.raises(PolicyError, match=f"format {pf.FORMAT + 1}.*reads format {pf.FORMAT}"):
        load_policy(rewritten(policy_file, tmp_path, future))
    with pytest.raises(PolicyError, match="written by an older sparserl"):
        load_policy(rewritten(policy_file, tmp_path, metadata={"sparserl": "{}"}))
    with pytest.raises(PolicyError, match="lacks tensors layers.1.weight"):
        load_policy(rewritten(policy_file, tmp_path, drop="layers.1.weight"))
    with pytest.raises(PolicyError, match="header is incomplete"):
        load_policy(rewritten(policy_file, tmp_path, lambda h: h.pop("architecture")))
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy(rewritten(policy_file, tmp_path, metadata={pf.META_KEY: "{nope"}))


@pytest.mark.parametrize("obs, message", [
    (np.zeros(4, np.float32), r"shape \(5,\) or \(batch, 5\), got \(4,\)"),
    (np.zeros((2, 3, 5), np.float32), r"got \(2, 3, 5\)"),
    (np.array(["a"] * 5), "real numbers"),
    (np.zeros(5, np.complex64), "real numbers"),
    (torch.zeros(5, dtype=torch.bool), "real numbers"),
    ([[1.0, 2.0], [3.0]], "could not be read"),
])
def test_malformed_observations_give_clear_errors(policy_file, obs, message):
    policy = load_policy(policy_file)
    with pytest.raises(PolicyError, match=message):
        policy.act(obs)


def test_act_takes_lists_ints_float64_and_tensors(policy_file):
    policy = load_policy(policy_file)
    reference = policy.act(np.arange(5, dtype=np.float32))
    for obs in (list(range(5)), np.arange(5), np.arange(5, dtype=np.float64), torch.arange(5.0)):
        np.testing.assert_array_equal(policy.act(obs), reference)
    assert policy.act(np.zeros((3, 5))).shape == (3, 2)


def test_unknown_backend_and_missing_gpu_are_clear(policy_file):
    with pytest.raises(PolicyError, match="unknown backend 'fast'"):
        load_policy(policy_file, backend="fast")
    if not torch.cuda.is_available():
        with pytest.raises(PolicyError, match="needs a CUDA GPU"):
            load_policy(policy_file, backend="semi_structured")


def test_the_loader_imports_no_training_code(policy_file):
    code = ("import sys; from sparserl import load_policy; p = load_policy(sys.argv[1]); p.act([0.0] * 5); "
            "bad = [m for m in sys.modules if m.startswith(('gymnasium', 'sparserl.runs', 'sparserl.algos', "
            "'sparserl.nets', 'sparserl.sparsity', 'sparserl.config', 'mujoco', 'tyro'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code, str(policy_file)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_export_and_eval_from_the_command_line(make_config, tmp_path, capsys):
    from sparserl.cli import main
    from sparserl.config import NetworkSparsity

    trainer = trained(make_config, sparsity=NetworkSparsity(method="nm:2:4"))
    out = tmp_path / "exported.safetensors"
    assert main(["export", str(trainer.run_dir), "--out", str(out)]) == 0
    assert "layers.1 nm" in capsys.readouterr().out
    assert main(["eval", "--policy", str(out), "--episodes", "1"]) == 0
    assert "trained on Pendulum-v1, step 300" in capsys.readouterr().out
    assert main(["eval", "--policy", str(out), "--episodes", "0"]) == 2
    assert "episodes must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["eval", str(trainer.run_dir), "--policy", str(out)]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["export", str(trainer.run_dir), "--out", str(trainer.run_dir / pf.POLICY_FILE)]) == 2
    assert "run's own policy file" in capsys.readouterr().err
    assert main(["eval", "--policy", str(out), "--env", "Hopper-v5"]) == 2
    assert "maps observations of shape (3,) to 1 actions" in " ".join(capsys.readouterr().err.split())


def test_a_run_policy_records_spaces_and_maps_actions_to_the_environment_bounds(make_config):
    trainer = trained(make_config)
    policy = load_policy(trainer.run_dir)
    assert policy.spaces["observation"]["shape"] == [3]
    assert policy.spaces["action"] == {"shape": [1], "low": [-2.0], "high": [2.0]}  # Pendulum's torque
    np.testing.assert_allclose(policy.env_action(np.array([-1.0])), [-2.0])
    np.testing.assert_allclose(policy.env_action(np.array([0.5])), [1.0])
    assert policy.meta["env"] == "Pendulum-v1" and policy.meta["step"] == 300


def test_env_action_needs_recorded_bounds(policy_file):
    with pytest.raises(PolicyError, match="does not record the environment's action bounds"):
        load_policy(policy_file).env_action(np.zeros(2))


def test_tensors_that_disagree_with_the_header_are_refused(policy_file, tmp_path):
    from safetensors.torch import save

    header, tensors = pf.read(policy_file)
    tensors["layers.0.weight"] = tensors["layers.0.weight"][:, :3].contiguous()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(save(tensors, metadata={pf.META_KEY: json.dumps(header)}))
    with pytest.raises(PolicyError, match=r"layers.0.weight has shape \(16, 3\), its header implies \(16, 5\)"):
        load_policy(bad)

    def wrong_obs(h):
        h["obs_dim"] = 7

    with pytest.raises(PolicyError, match="do not fit obs_dim 7"):
        load_policy(rewritten(policy_file, tmp_path, wrong_obs))


def test_the_nm_kernel_slices_large_batches_and_gives_the_same_products(monkeypatch):
    weight = torch.randn(6, 16) * (torch.arange(16) % 8 < 4)  # 4:8, the first half of each group
    values, offsets = storages.pack_nm(weight, 4, 8)
    kernel = kernels.NMKernel(values.flatten(1), storages.nm_index(offsets, 8), torch.zeros(6))
    x = torch.randn(50, 16)
    expected = x @ weight.t()
    torch.testing.assert_close(kernel(x), expected)
    monkeypatch.setattr(kernels.NMKernel, "CHUNK", 6 * 4 * 7)  # 7 rows at a time
    torch.testing.assert_close(kernel(x), expected)


def test_forced_backends_apply_where_the_storage_allows(tmp_path):
    torch.manual_seed(0)
    actor = DeterministicActor.mlp(8, 2, (16,))
    with torch.no_grad():  # layer 0 is 1:4 (one kept per group of 4), layer 1 stays dense
        actor.net.net.layers[0].weight.mul_((torch.arange(8) % 4 == 0).float())
    path = tmp_path / "p.safetensors"
    header = export_actor(actor, path, {}, "auto", (1, 4))
    assert [e["storage"] for e in header["layers"].values()] == ["nm", "dense"]
    expected = {"dense": ["dense", "dense"], "csr": ["csr", "dense"], "nm": ["nm", "dense"]}
    for backend, kinds in expected.items():
        assert list(load_policy(path, backend=backend).backends.values()) == kinds


def test_the_header_describes_sparsity_and_observation_statistics(tmp_path):
    torch.manual_seed(0)
    actor = DeterministicActor.mlp(4, 2, (8,), obs_norm=True)
    with torch.no_grad():
        actor.obs_norm.mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        actor.net.net.layers[0].weight[:, :2] = 0.0  # half the first layer's weights pruned
    header = export_actor(actor, tmp_path / "p.safetensors", {})
    assert header["observation_normalisation"]["mean"] == [0.5, -1.0, 2.0, 0.0]
    assert header["sparsity"] == {"density": (16 + 16) / (32 + 16), "weights": 48}
    assert pf.read(tmp_path / "p.safetensors")[0]["sparsity"] == header["sparsity"]


def test_a_run_and_its_policy_file_are_evaluated_alike_by_default(make_config):
    """One default protocol: `eval RUN` and `eval --policy RUN/policy.safetensors` use the run's own
    evaluation seed and episode count, so they give one score."""
    from sparserl.runs.api import train
    from sparserl.runs.eval_run import evaluate_policy_file, evaluate_run

    run_dir = train(make_config(total_steps=300, start_steps=100, eval_every=300, eval_episodes=3, seed=4)).run_dir
    by_run, _ = evaluate_run(run_dir, backend="dense")
    by_file, source = evaluate_policy_file(run_dir / pf.POLICY_FILE, backend="dense")
    assert (source["eval_seed"], source["eval_episodes"]) == (104, 3)
    assert by_file.returns == by_run.returns and len(by_run.returns) == 3
