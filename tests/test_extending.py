"""The examples of docs/extending.md (examples/extending/, and the built-in DDPG as the algorithm
example): each plugin registers, trains from the command line, resumes in a fresh process from the
plugin path its run recorded, and exports; the registries refuse what the guide says they refuse.

Plugins are loaded in this process through the `plugins` fixture, which unregisters whatever they
registered afterwards, so other tests see the built-in registries only.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sparserl import load_policy, registry
from sparserl.algos import ALGORITHMS, DDPG, TD3, Agent, register_algorithm
from sparserl.architecture import BODIES, Architecture, BodySpec, MLPSpec, register_body
from sparserl.cli import main
from sparserl.config import Config, resolve_config
from sparserl.errors import ConfigError
from sparserl.export import export_actor
from sparserl.nets import DeterministicActor, QEnsemble
from sparserl.nets.layers import EnsembleLinear
from sparserl.policy_file import decode, read
from sparserl.sparsity import Sparsifier, SparsityConfig
from sparserl.sparsity.methods import METHODS, Method, Static, register_method

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "extending"
METHOD_FILE = str(EXAMPLES / "magnitude_static.py")
BODY_FILE = str(EXAMPLES / "tanh_mlp.py")
GUIDE = ROOT / "docs" / "extending.md"
METHOD, BODY = "magnitude-static", "tanh-mlp"
REGISTRIES = (METHODS, BODIES, ALGORITHMS)


def small_run(run_dir: Path, *flags: str, total_steps: int = 600) -> list[str]:
    """tests/conftest.py's small_config as `sparserl train` flags."""
    return ["train", "--env", "Pendulum-v1", "--total-steps", str(total_steps), "--start-steps", "200",
            "--batch-size", "32", "--buffer-size", "10000", "--hidden", "32", "32", "--eval-every", "200",
            "--eval-episodes", "2", "--checkpoint-every", "200", "--threads", "1", "--no-progress",
            "--no-tensorboard", *flags, "--run-dir", str(run_dir)]


BODY_FLAGS = ("--network", BODY, "--actor-width", "32", "--actor-blocks", "2", "--critic-width", "32",
              "--critic-blocks", "2")


@pytest.fixture
def plugins():
    """load_plugins for this test; everything registered meanwhile is unregistered afterwards."""
    before = {id(r): set(r.names()) for r in REGISTRIES}
    loaded = set(registry._LOADED)
    yield registry.load_plugins
    for r in REGISTRIES:
        for name in set(r.names()) - before[id(r)]:
            r.unregister(name)
    for plugin in set(registry._LOADED) - loaded:  # so a later load_plugins imports (and registers) it again
        sys.modules.pop(registry._LOADED.pop(plugin).__name__, None)


def fan_ins(weight: torch.Tensor) -> list[int]:
    """Kept inputs of each output unit of an (out, in) weight."""
    return (weight != 0).sum(1).tolist()


def metrics_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


# --- the sparsity method ----------------------------------------------------------------------------
def test_method_file_is_at_most_30_lines():
    assert len(Path(METHOD_FILE).read_text().splitlines()) <= 30


def test_method_keeps_each_units_largest_weights_with_balanced_fan_in(plugins):
    plugins([METHOD_FILE])
    assert METHODS.get(METHOD).name == METHOD
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), EnsembleLinear(24, 8, 3))
    initial = [model[0].weight.detach().clone().unsqueeze(0), model[2].weight_oi.detach().clone()]
    optimizer = torch.optim.Adam(model.parameters())
    config = SparsityConfig(method=METHOD, distribution="uniform", mask_init="random")  # mask_init is ignored
    group = Sparsifier(config, seed=0).attach("model", model, optimizer, sparsity=0.8)
    for index, (weights, w0) in enumerate(zip([model[0].weight.unsqueeze(0), model[2].weight_oi], initial)):
        kept = group.kept(index)
        for member, w in enumerate(weights.detach()):
            counts = fan_ins(w)
            assert sum(counts) == kept and max(counts) - min(counts) <= 1, counts
            for unit, count in enumerate(counts):  # each unit keeps the largest |w| of its own fan-in
                largest = w0[member, unit].abs().topk(count).indices
                assert set(w[unit].nonzero().flatten().tolist()) == set(largest.tolist())

    # the built-in static method with magnitude initialisation ranks the whole layer at once instead
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(16, 24))
    Sparsifier(SparsityConfig(method="static", distribution="uniform", mask_init="magnitude"), seed=0).attach(
        "model", other, torch.optim.Adam(other.parameters()), sparsity=0.8)
    counts = fan_ins(other[0].weight)
    assert max(counts) - min(counts) > 1


def test_method_trains_from_the_cli_and_its_policy_has_the_expected_sparsity(plugins, tmp_path):
    run_dir = tmp_path / "run"
    assert main(small_run(run_dir, "--plugins", METHOD_FILE, "--sparsity", METHOD)) == 0
    header, tensors = read(run_dir / "policy.safetensors")
    assert header["source"]["sparsity"] == METHOD
    weights = {k: v for k, v in decode(header["architecture"], header["layers"], tensors).items()
               if k.endswith(".weight")}
    total = sum(w.numel() for w in weights.values())
    kept = sum(int((w != 0).sum()) for w in weights.values())
    assert abs(kept / total - 0.1) < 0.01  # the method's default level, 90 %, over the actor's weights
    assert header["sparsity"]["density"] == pytest.approx(kept / total)
    for w in weights.values():
        counts = fan_ins(w)
        assert max(counts) - min(counts) <= 1, counts
    assert metrics_steps(run_dir)[-1] == 600


# --- the network body ---------------------------------------------------------------------------------
def test_body_module_matches_its_description_and_exports(plugins, tmp_path):
    plugins([BODY_FILE])
    torch.manual_seed(0)
    arch = Architecture(BODY, 3, 2, width=16, blocks=2)
    actor = DeterministicActor(arch)
    assert [name for name, _ in actor.net.net.named_modules() if name.startswith("layers.")] == \
        [name for name, _, _ in arch.linears()]
    obs = torch.randn(5, 3)
    assert [tuple(h.shape) for h in actor.hidden(obs)] == [(5, 16), (5, 16)]
    assert torch.all(actor.hidden(obs)[0].abs() < 1)  # tanh units
    critic = QEnsemble(Architecture(BODY, 5, 1, width=16, blocks=2), members=2)
    action = torch.rand(5, 2)
    assert critic(obs, action).shape == (2, 5)
    torch.testing.assert_close(critic.first(obs, action, detach=True), critic(obs, action)[0])
    assert [tuple(h.shape) for h in critic.hidden(obs, action)] == [(2, 5, 16), (2, 5, 16)]

    path = tmp_path / "policy.safetensors"
    export_actor(actor, path, source={"env": "none"}, storage="dense")
    policy = load_policy(path, backend="dense")  # the loader runs the same description
    with torch.no_grad():
        np.testing.assert_allclose(policy.act(obs.numpy()), actor(obs).numpy(), rtol=1e-5, atol=1e-6)


def test_body_trains_with_td3_and_resumes_in_a_fresh_process(plugins, tmp_path):
    run_dir = tmp_path / "run"
    flags = ("--plugins", BODY_FILE, *BODY_FLAGS, "--diagnostics-every", "200", "--diagnostics-batch", "64")
    assert main(small_run(run_dir, *flags)) == 0
    assert metrics_steps(run_dir) == [0, 200, 400, 600]
    with open(run_dir / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["diag_actor_srank"]) > 0  # diagnostics ran through the body's hidden()

    # a fresh interpreter, elsewhere: the run's config.yaml names the plugin, which is imported again
    resumed = subprocess.run([sys.executable, "-m", "sparserl", "train", "--resume", str(run_dir),
                              "--total-steps", "800"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert metrics_steps(run_dir) == [0, 200, 400, 600, 800]
    evaluated = subprocess.run([sys.executable, "-m", "sparserl", "eval", str(run_dir), "--episodes", "1"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    # export imports the run's recorded plugins; a bare policy file needs them named with --plugins
    exported = subprocess.run([sys.executable, "-m", "sparserl", "export", str(run_dir), "--out", "p.safetensors"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    bare = [sys.executable, "-m", "sparserl", "eval", "--policy", "p.safetensors", "--episodes", "1"]
    refused = subprocess.run(bare, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and f"unknown network body {BODY!r}" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    named = subprocess.run([*bare, "--plugins", BODY_FILE], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert named.returncode == 0 and "Evaluation of p.safetensors" in named.stdout, named.stdout + named.stderr

    policy = load_policy(run_dir)  # this process has the plugin loaded (see docs/extending.md)
    assert policy.header["architecture"]["network"] == BODY and policy.header["source"]["step"] == 800
    assert list(policy.backends) == ["layers.0", "layers.1", "layers.2"]
    assert np.isfinite(policy.act(np.zeros(3, dtype=np.float32))).all()


def test_the_conformance_suites_collect_the_entries_of_plugins_named_in_the_environment():
    """SPARSERL_TEST_PLUGINS (tests/conftest.py) puts a user's method under every conformance test."""
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/test_conformance.py", "-k", METHOD], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "SPARSERL_TEST_PLUGINS": METHOD_FILE}, timeout=300)
    cases = [line for line in collected.stdout.splitlines() if METHOD in line]
    assert collected.returncode == 0 and len(cases) >= 5, collected.stdout + collected.stderr
    assert any("test_masks_are_exact_after_every_update" in c for c in cases)
    assert any("test_resume_from_state_dicts_continues_exactly" in c for c in cases)


def test_body_trains_with_sac_under_the_plugin_method(plugins, tmp_path):
    run_dir = tmp_path / "run"
    flags = ("--algo", "sac", "--plugins", BODY_FILE, METHOD_FILE, *BODY_FLAGS, "--sparsity", METHOD)
    assert main(small_run(run_dir, *flags, total_steps=400)) == 0
    assert metrics_steps(run_dir) == [0, 200, 400]
    header, tensors = read(run_dir)
    assert header["architecture"]["network"] == BODY and header["kind"] == "gaussian"
    for name in ("layers.0", "layers.1"):  # the head keeps only its mean rows in the file
        counts = fan_ins(decode(header["architecture"], header["layers"], tensors)[f"{name}.weight"])
        assert max(counts) - min(counts) <= 1


# --- the algorithm ------------------------------------------------------------------------------------
def test_ddpg_is_a_registered_algorithm_of_at_most_40_lines():
    path = ROOT / "src" / "sparserl" / "algos" / "ddpg.py"
    assert len(path.read_text().splitlines()) <= 40
    assert ALGORITHMS.get("ddpg") is DDPG and issubclass(DDPG, TD3)
    assert DDPG.critic_members(Config()) == 1


def python_block(text: str, containing: str) -> str:
    """The ```python block of `text` that contains `containing`."""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_guide_shows_the_example_files_as_they_are():
    guide = GUIDE.read_text()
    assert python_block(guide, 'name = "magnitude-static"') == Path(METHOD_FILE).read_text()
    assert python_block(guide, "class TanhMLPSpec(BodySpec)") in Path(BODY_FILE).read_text()


def test_the_guides_algorithm_plugin_trains(plugins, tmp_path):
    plugin = tmp_path / "quiet_ddpg.py"
    plugin.write_text(python_block(GUIDE.read_text(), 'name = "ddpg-quiet"'))
    run_dir = tmp_path / "run"
    assert main(small_run(run_dir, "--plugins", str(plugin), "--algo", "ddpg-quiet", total_steps=400)) == 0
    agent_class = ALGORITHMS.get("ddpg-quiet")
    assert issubclass(agent_class, DDPG) and metrics_steps(run_dir) == [0, 200, 400]
    assert read(run_dir)[0]["source"]["algo"] == "ddpg-quiet"


# --- YAML and Python ----------------------------------------------------------------------------------
def test_plugins_from_yaml_and_from_python(plugins, tmp_path):
    assert METHOD not in METHODS
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"env: Pendulum-v1\nplugins: [{METHOD_FILE}]\nsparsity: {METHOD}\n")
    config = resolve_config(config_file=config_file)  # validating imports the plugin
    assert METHOD in METHODS and config.plugins == (METHOD_FILE,) and config.sparsity.method == METHOD

    plugins([METHOD_FILE])  # importing the same path again is a no-op, so the two routes mix
    config = Config.from_dict({"env": "Pendulum-v1", "plugins": [METHOD_FILE], "sparsity": METHOD}).validate()
    assert config.sparsity.level("actor") == 0.9


# --- what the registries refuse -----------------------------------------------------------------------
def test_the_registries_refuse_what_the_guide_says():
    class NoDoc(Method):
        name = "test-extending-nodoc"
        defaults = {"sparsity": 0.5}

    class NoDefaults(Static):
        """Inherits its defaults."""

        name = "test-extending-nodefaults"

    class BadLevel(Method):
        """A level of 1."""

        name = "test-extending-badlevel"
        defaults = {"sparsity": 1.0}

    class BadSetting(Method):
        """An unknown setting."""

        name = "test-extending-badsetting"
        defaults = {"sparsity": 0.5, "no_such_setting": 1}

    class Clash(Method):
        """Takes a built-in's name."""

        name = "static"
        defaults = {}

    for cls, says in [(NoDoc, "docstring"), (NoDefaults, "give it `defaults`"), (BadLevel, "default sparsity"),
                      (BadSetting, "unknown settings"), (Clash, "taken")]:
        with pytest.raises(ConfigError, match=says):
            register_method(cls)
        assert METHODS.get(cls.name) is Static if cls is Clash else cls.name not in METHODS

    class Undocumented(TD3):
        name = "test-extending-undocumented"

    class Unfinished(Agent):
        """Implements nothing."""

        name = "test-extending-unfinished"

    for cls, says in [(Undocumented, "docstring"), (Unfinished, "implement")]:
        with pytest.raises(ConfigError, match=says):
            register_algorithm(cls)
        assert cls.name not in ALGORITHMS

    class Nameless(BodySpec):
        pass

    class SkipsALayer(MLPSpec):  # declares layers.0 and layers.1 (one hidden layer) but runs only the last
        name = "test-extending-skips"

        def forward(self, arch, x, linear, norm, relu, record, point):
            return linear(arch.linear_names[-1], torch.zeros(x.shape[0], arch.hidden[-1]))

    class WrongOutput(MLPSpec):  # its last layer does not give out_dim outputs
        name = "test-extending-wrong-output"

        def linears(self, arch):
            return [("layers.0", arch.in_dim, arch.out_dim + 1)]

    class Broken(MLPSpec):  # names a layer it never declared
        name = "test-extending-broken"

        def forward(self, arch, x, linear, norm, relu, record, point):
            return linear("layers.9", x)

    for spec, says in [(Nameless(), "a name is letters"), (MLPSpec(), "taken"),
                       (SkipsALayer(), "must use every declared layer"), (WrongOutput(), "the last give out_dim"),
                       (Broken(), "forward\\(\\) failed on a probe")]:
        with pytest.raises(ConfigError, match=says) as caught:
            register_body(spec)
        assert spec.name == "" or repr(spec.name) in str(caught.value)
        assert spec.name == "mlp" or spec.name not in BODIES
    assert "" not in BODIES and isinstance(BODIES.get("mlp"), MLPSpec)
