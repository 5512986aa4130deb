"""Conformance of every registered extension: each sparsity method (sparserl.sparsity.methods.METHODS),
algorithm (sparserl.algos.ALGORITHMS) and network body (sparserl.architecture.BODIES) is checked for
exact masks after every step, exact resume, export parity, sparse-kernel parity and sane accounting.

The parameter lists are read from the registries when this module is collected
(`pytest_generate_tests`), after conftest has imported the plugins named in SPARSERL_TEST_PLUGINS,
so a newly registered method, algorithm or body is covered with no edit here:

    SPARSERL_TEST_PLUGINS=my_method.py pytest tests/test_conformance.py The last tests check the
registries' own contract: messages list every registered name, and a user's method is accepted
(and trains) or refused with a message naming it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from sparserl import load_policy
from sparserl.algos import ALGORITHMS
from sparserl.architecture import BODIES
from sparserl.config import Config, NetworkSparsity
from sparserl.envs import EnvInfo
from sparserl.errors import ConfigError
from sparserl.export import export_actor
from sparserl.replay import FrameReplay, ReplayBuffer
from sparserl.runs.build import build_agent
from sparserl.sparsity import SparsityConfig, sparsity_report
from sparserl.sparsity.budget import kept_per_member
from sparserl.sparsity.methods import METHODS, Static, allowed, make_method, method_class, register_method
from sparserl.storage import STORAGES

INFO = EnvInfo("conformance", obs_dim=6, act_dim=2, max_episode_steps=None)
FRAME, STACK = (3, 16, 16), 2
"""A pixel algorithm's frames here: small enough for the encoder to reduce to one position."""
PIXEL_INFO = EnvInfo("conformance-pixels", obs_dim=STACK * 3 * 16 * 16, act_dim=2, max_episode_steps=None,
                     obs_shape=(STACK * 3, 16, 16))


def info_for(algo: str) -> EnvInfo:
    return PIXEL_INFO if ALGORITHMS.get(algo).pixels else INFO
UPDATES = 12
"""Gradient updates per run: with update_interval 3 every mask-changing method updates several times."""


# --- parameters, read from the registries at collection time ---------------------------------------
def method_string(name: str) -> str:
    """The complete method string of registered method `name` (its example, e.g. nm:2:4)."""
    return METHODS.get(name).example or name


def pytest_generate_tests(metafunc):
    axes = {"method": METHODS.names(), "algo": ALGORITHMS.names(), "network": BODIES.names()}
    for argument, names in axes.items():
        if argument in metafunc.fixturenames:
            metafunc.parametrize(argument, list(names), ids=list(names))


# --- building ---------------------------------------------------------------------------------
def sparsity_section(method: str, **changes) -> dict:
    """The sparsity section for registered method `method`: levels only where the method does not
    fix them (N:M does), and a schedule short enough that masks change within UPDATES updates."""
    cls = METHODS.get(method)
    string = method_string(method)
    section = {"method": string, "update_interval": 3, "gmp_start": 0.0, "gmp_end": 0.5}
    if cls.fixed_level(cls.parse(string)) is None:
        section.update(actor_sparsity=0.8, critic_sparsity=0.8)
    section.update(changes)
    return section


def make_config(method: str, algo: str = "td3", network: str = "mlp", **changes) -> Config:
    cls = ALGORITHMS.get(algo)
    values = dict(algo=algo, network=network, hidden=[32, 32], actor_width=16, critic_width=32, critic_blocks=1,
                  total_steps=60, seed=0, threads=1, sparsity=sparsity_section(method, **changes.pop("sparsity", {})))
    if not cls.streaming:  # a streaming algorithm has no replay settings
        values.update(batch_size=16, buffer_size=256, start_steps=0)
    if cls.pixels:
        values.update(pixel_size=FRAME[-1], frame_stack=STACK)
    values = {**cls.defaults, **values, **changes}  # the algorithm's defaults, as the resolution applies them
    return Config.from_dict(values).validate()


def build(config: Config, torch_seed: int | None = None):
    """(agent, sparsifier), networks initialised from the global torch seed (config.seed by default)."""
    torch.manual_seed(config.seed if torch_seed is None else torch_seed)
    agent, sparsifier = build_agent(config, info_for(config.algo))
    assert sparsifier is not None and set(sparsifier.groups) == set(agent.sparse_networks)
    return agent, sparsifier


def empty_buffer(algo: str = "td3", seed: int = 0) -> ReplayBuffer | FrameReplay:
    if ALGORITHMS.get(algo).pixels:
        return FrameReplay(FRAME, STACK, PIXEL_INFO.act_dim, 256, seed=seed)
    return ReplayBuffer(INFO.obs_dim, INFO.act_dim, 256, seed=seed)


def filled_buffer(algo: str = "td3", seed: int = 0, transitions: int = 64) -> ReplayBuffer | FrameReplay:
    rng = np.random.default_rng(seed)
    buffer = empty_buffer(algo, seed)
    for i in range(transitions):
        action = rng.uniform(-1, 1, INFO.act_dim).astype(np.float32)
        obs, next_obs = observations(algo, 2, rng)
        buffer.add(obs, action, float(rng.standard_normal()), next_obs, i % 17 == 16, i % 23 == 22, action)
    return buffer


def observations(algo: str = "td3", count: int = 5, seed: int | np.random.Generator = 1) -> np.ndarray:
    """`count` observations the algorithm's agent takes: state vectors, or uint8 frame stacks."""
    rng = np.random.default_rng(seed)
    if ALGORITHMS.get(algo).pixels:
        return rng.integers(0, 256, (count, *PIXEL_INFO.obs_shape), dtype=np.uint8)
    return rng.standard_normal((count, INFO.obs_dim)).astype(np.float32)


def update(agent, buffer: ReplayBuffer):
    """One update of `agent` on data from `buffer`: a batch of 16 for a replay agent; for a streaming
    agent one transition, acted on and learned from; returns what was drawn."""
    if not agent.streaming:
        batch = buffer.sample(16, agent.horizon)
        agent.update(batch)
        return batch
    t = buffer.sample(1)
    agent.act(t.obs[0].numpy())
    agent.learn(float(t.reward[0]), t.next_obs[0].numpy(), bool(t.terminated[0]),
                bool(t.terminated[0] or t.truncated[0]))
    return t


def train(agent, buffer: ReplayBuffer, updates: int, check=None) -> list[dict]:
    """`updates` updates on data from `buffer`; `check()` after each; the stats of each update."""
    stats = []
    for _ in range(updates):
        update(agent, buffer)
        stats.append(agent.pop_stats())
        if check is not None:
            check()
    return stats


def member_counts(layer, mask: torch.Tensor) -> list[int]:
    """Kept entries of each ensemble member of a sparse layer's mask."""
    return [int(c) for c in layer.view(mask).sum(dim=(1, 2)).tolist()]


def network_weights(agent, name: str, group) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """The sparse layers' weights as the agent's own networks hold them (online, then each target)."""
    online = dict(agent.networks[name].named_parameters())
    targets = [dict(agent.networks[f"{name}_target"].named_parameters())] if f"{name}_target" in agent.networks \
        else []
    names = [layer.name for layer in group.sparse_layers]
    return [online[n] for n in names], [[t[n] for n in names] for t in targets]


def assert_state_equal(a, b, where: str = "") -> None:
    """Nested state (dicts, lists, tensors, numbers) equal exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_state_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_equal(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


# --- 1. exact masks after every step ------------------------------------------------------------
def test_masks_are_exact_after_every_update(method, algo, network):
    """After every update, for every network and sparse layer: masks are 0/1, pruned weights are
    exactly 0 in the network and in every target (the agent's own modules and the engine's
    references), and each member keeps exactly round(density * numel) weights of its current target
    density; methods without a dense start keep the budget they started with."""
    config = make_config(method, algo, network)
    agent, sparsifier = build(config)
    groups = sparsifier.groups
    start = {name: list(g.budgets[0]) for name, g in groups.items()}
    dense_start = {name: all(g.budgets[0][i] >= 1.0 for i in g.sparse) for name, g in groups.items()}
    assert all(g.sparse for g in groups.values()), "every network under the engine has a sparse layer"
    checked = []

    def check():
        for name, group in groups.items():
            online, targets = network_weights(agent, name, group)
            assert len(group.target_weights) == len(targets)
            for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
                where = f"{name} {layer.name} after update {agent.updates}"
                assert mask.shape == layer.param.shape and mask.dtype == torch.float32, where
                assert bool(((mask == 0) | (mask == 1)).all()), f"{where}: mask not 0/1"
                off = 1.0 - mask
                for weight in (layer.param, online[i], *(w[i] for w in group.target_weights),
                               *(t[i] for t in targets)):
                    assert not bool((weight.detach() * off).ne(0).any()), f"{where}: weight off the mask"
                counts = member_counts(layer, mask)
                assert counts == [group.kept(i)] * layer.shape.members, f"{where}: kept {counts}"
                if not dense_start[name]:  # the budget never changes
                    density = start[name][group.sparse[i]]
                    assert group.budgets[0][group.sparse[i]] == density, where
                    assert counts == [kept_per_member(layer.shape, density)] * layer.shape.members, where
        checked.append(agent.updates)

    check()
    train(agent, filled_buffer(algo), UPDATES, check)
    assert checked == list(range(UPDATES + 1))
    for name, group in groups.items():
        if dense_start[name]:  # a method that starts dense (GMP) has pruned on this schedule
            assert sparsifier.density(group) < 1.0, f"{name}: {method} never pruned"
    if METHODS.get(method).changes_masks:  # the schedule exercised mask updates
        assert any(g.mask_version > 0 for g in groups.values()), f"{method} made no mask update"


# --- 2. resume equality --------------------------------------------------------------------------
def test_resume_from_state_dicts_continues_exactly(method, algo, network):
    """States taken after a few updates (agent, sparsity engine, torch RNG, replay) and loaded into a
    freshly built agent give the next update's statistics, weights, masks and engine state exactly."""
    check_resume(make_config(method, algo, network))


def test_nm_shadow_mode_resumes_exactly():
    """N:M's shadow mode keeps the pruned weights aside, in the engine's state: a resume carries them."""
    check_resume(make_config("nm", sparsity={"nm_gradient": "shadow"}))


def check_resume(config: Config) -> None:
    agent, sparsifier = build(config)
    buffer = filled_buffer(config.algo)
    train(agent, buffer, 5)  # the next (6th) update is a mask update at update_interval 3
    saved = copy.deepcopy({"agent": agent.state_dict(), "sparsity": sparsifier.state_dict(),
                           "rng": torch.get_rng_state(), "replay": buffer.state_dict()})

    resumed, resumed_sparsifier = build(config, torch_seed=config.seed + 1)  # other initial weights
    resumed_buffer = empty_buffer(config.algo, seed=config.seed + 1)
    resumed.load_state_dict(copy.deepcopy(saved["agent"]))  # the trainer's order: learner, then engine
    resumed_sparsifier.load_state_dict(copy.deepcopy(saved["sparsity"]))
    resumed_buffer.load_state_dict(copy.deepcopy(saved["replay"]))

    runs = []
    for run_agent, run_sparsifier, run_buffer in ((agent, sparsifier, buffer),
                                                  (resumed, resumed_sparsifier, resumed_buffer)):
        torch.set_rng_state(saved["rng"])
        batch = update(run_agent, run_buffer)
        runs.append({"batch": list(batch), "stats": run_agent.pop_stats(), "engine": run_sparsifier.pop_stats(),
                     "networks": {k: m.state_dict() for k, m in run_agent.networks.items()},
                     "optimizers": {k: o.state_dict()["state"] for k, o in run_agent.optimizers.items()},
                     "masks": {k: list(g.masks) for k, g in run_sparsifier.groups.items()},
                     "sparsity": run_sparsifier.state_dict(), "rng": torch.get_rng_state(),
                     "action": run_agent.policy(torch.as_tensor(observations(config.algo))).detach()})
    (first, second) = runs
    assert first["stats"] and first["stats"].keys() == second["stats"].keys()
    for key in first:
        assert_state_equal(first[key], second[key], key)


# --- 3. export parity --------------------------------------------------------------------------
def test_exported_policy_acts_as_the_trained_actor(method, algo, network, tmp_path):
    """The policy file, in every storage the method allows, acts as the trained actor does (dense and
    automatically chosen kernels), and stores no weight the actor's masks do not keep."""
    config = make_config(method, algo, network)
    agent, sparsifier = build(config)
    train(agent, filled_buffer(algo), 6)
    obs = observations(algo, 7)
    with torch.no_grad():
        expected = agent.policy(torch.as_tensor(obs)).numpy()
    kept = 0
    for group in (sparsifier.groups[name] for name in agent.policy_networks):
        kept += sum(int(m.sum()) for m in group.masks) + sum(layer.shape.numel for i, layer in enumerate(group.layers)
                                                             if i not in group.sparse)
    pattern = sparsifier.method.pattern()
    for storage in ("auto", *STORAGES.names()):  # a storage that cannot hold a layer falls back
        path = tmp_path / f"{storage}.safetensors"
        header = export_actor(agent.policy, path, source={"algo": algo}, storage=storage, nm=pattern)
        assert sum(entry["kept"] for entry in header["layers"].values()) <= kept
        if storage == "nm" and pattern:  # the N:M layers can be and are stored packed
            assert any(entry["storage"] == "nm" for entry in header["layers"].values())
        for backend in ("dense", "auto"):
            policy = load_policy(path, backend=backend)
            where = f"storage {storage}, backend {backend}"
            np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-5, atol=1e-5, err_msg=where)
            np.testing.assert_allclose(policy.act(obs[0]), expected[0], rtol=1e-5, atol=1e-5, err_msg=where)


# --- 4. sparse kernels -------------------------------------------------------------------------
def test_csr_execution_trains_as_dense(method, network):
    """TD3 from the same seed on the same batches: masked dense and CSR execution agree to rounding
    in losses, weights, masks and targets."""
    config = make_config(method, "td3", network)
    buffer = filled_buffer()
    batches = [buffer.sample(16) for _ in range(6)]
    runs = []
    for mode in ("dense", "csr"):
        agent, sparsifier = build(config)
        count = sparsifier.execute_sparse(mode, 16)
        if mode == "csr":
            if not any(hasattr(m, "executor") for net in agent.networks.values() for m in net.modules()):
                pytest.skip(f"{network} layers do not declare sparse execution")
            assert count > 0
        torch.manual_seed(123)  # the same exploration and smoothing noise in both runs
        losses = []
        for batch in batches:
            agent.update(batch)
            losses.append(agent.pop_stats())
        params = {f"{k}.{n}": p.detach().clone() for k, m in agent.networks.items() for n, p in m.named_parameters()}
        masks = [m.clone() for g in sparsifier.groups.values() for m in g.masks]
        runs.append((losses, params, masks))
    (dense_losses, dense_params, dense_masks), (csr_losses, csr_params, csr_masks) = runs
    for dense, csr in zip(dense_losses, csr_losses):
        assert dense.keys() == csr.keys()
        for key in dense:
            assert csr[key] == pytest.approx(dense[key], rel=1e-4, abs=1e-5), key
    for name, value in dense_params.items():
        torch.testing.assert_close(csr_params[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert all(torch.equal(a, b) for a, b in zip(csr_masks, dense_masks))


# --- 5. accounting ------------------------------------------------------------------------------
def test_accounting_is_sane_and_matches_the_masks(method, algo):
    config = make_config(method, algo)
    agent, sparsifier = build(config)
    train(agent, filled_buffer(algo), 6)
    report = sparsity_report(sparsifier, inference=agent.policy_networks)
    assert 0.0 < report.model_size <= 1.0
    assert 0.0 < report.inference_flops <= 1.0
    assert 0.0 < report.training_flops <= 1.1  # N:M's dense STE weight gradient costs more than its density
    size_kept = size_total = 0
    for name, group in sparsifier.groups.items():
        totals = [layer.shape.numel for layer in group.layers]
        kept = list(totals)
        for index, mask in zip(group.sparse, group.masks):
            kept[index] = int(mask.sum())
        assert report.density[name] == pytest.approx(sum(kept) / sum(totals), abs=1e-12)
        assert report.density[name] == pytest.approx(sparsifier.density(group), abs=1e-12)
        lines = [line for line in report.layers if line.network == name]
        assert [line.kept for line in lines] == kept and [line.total for line in lines] == totals
        copies = 1 + len(group.targets)
        size_kept, size_total = size_kept + copies * sum(kept), size_total + copies * sum(totals)
        # no weight outside the masks: the actual non-zeros are at most what the report counts
        online, targets = network_weights(agent, name, group)
        for i, weight in enumerate(online):
            assert int(weight.count_nonzero()) <= kept[group.sparse[i]]
    assert report.model_size == pytest.approx(size_kept / size_total, abs=1e-12)
    positions = output_positions(agent.policy, observations(algo, 1))
    macs = []
    for name in agent.policy_networks:
        lines = [line for line in report.layers if line.network == name]
        for layer, line in zip(sparsifier.groups[name].layers, lines):
            uses = positions.get(id(layer.param), 1)
            macs.append((line.kept * uses, line.total * uses))
    assert report.inference_flops == pytest.approx(sum(k for k, _ in macs) / sum(t for _, t in macs), abs=1e-12)


def output_positions(policy: torch.nn.Module, obs: np.ndarray) -> dict[int, int]:
    """Per convolution weight (by id): its output's height x width for one observation, measured by
    running the policy (every other layer applies its weights once per sample)."""
    found, hooks = {}, []
    for module in policy.modules():
        if isinstance(module, torch.nn.Conv2d):
            def record(m, _inputs, out):
                found[id(m.weight)] = out.shape[-2] * out.shape[-1]
            hooks.append(module.register_forward_hook(record))
    with torch.no_grad():
        policy(torch.as_tensor(obs))
    for hook in hooks:
        hook.remove()
    return found


def test_a_step_called_plain_is_a_masked_gradient_step_and_nothing_else(method):
    """Where the engine calls a step plain (Method.plain; a compiled streaming step then takes it
    outside the optimiser's hooks), the hooked step must equal SGD on the masked gradient, with the
    masks unchanged; over a schedule with mask updates, the others are left to the hooks."""
    from sparserl.sparsity import Sparsifier

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    section = sparsity_section(method)
    section.pop("actor_sparsity", None)
    level = section.pop("critic_sparsity", None)
    section.update(distribution="uniform", gmp_end=0.3)
    sparsifier = Sparsifier(SparsityConfig(**section), seed=0)
    sparsifier.attach("net", net, optimizer, sparsity=level, total_steps=30)
    group, plain_steps = sparsifier.groups["net"], 0
    for _ in range(30):
        pairs = sparsifier.plain_masks("net")
        before = [p.detach().clone() for p in net.parameters()]
        masks = None if pairs is None else {id(p): m.clone() for p, m in pairs}
        optimizer.zero_grad()
        net(torch.randn(5, 8)).square().mean().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        optimizer.step()
        if masks is None:
            continue
        plain_steps += 1
        for p, b, g in zip(net.parameters(), before, grads):
            mask = masks.get(id(p), torch.ones_like(p))
            torch.testing.assert_close(p.detach(), b - 0.05 * g * mask, rtol=1e-6, atol=1e-7)
        assert all(torch.equal(m, masks[id(p)]) for p, m in zip(group.params, group.masks))
    if not METHODS.get(method).changes_masks:
        assert plain_steps == 30  # a mask that never changes: every step is plain


def test_method_defaults_are_what_unset_settings_give(method):
    """Every entry of a method's `defaults` is what the engine and the RL config use when the setting
    is left unset (a default that no code path reads would be silently ignored)."""
    cls = METHODS.get(method)
    string = method_string(method)
    fixed = cls.fixed_level(cls.parse(string))
    section = NetworkSparsity(method=string)
    instance = make_method(SparsityConfig(method=string), torch.Generator())
    for key, value in cls.defaults.items():
        if key == "sparsity":
            continue
        assert instance.setting(key) == value, key
        assert section.setting(key) == value, key
    level = fixed if fixed is not None else float(cls.defaults.get("sparsity", 0.0))
    assert instance.level(None) == level
    assert section.level("actor") == section.level("critic") == level


# --- 6. registry-derived messages ---------------------------------------------------------------
def _lists(message: str, entries) -> list[str]:
    """The entries a message does not name as a whole word."""
    return [e for e in entries if not re.search(rf"(?<![\w:-]){re.escape(e)}(?![\w:-])", message)]


def test_unknown_names_are_refused_listing_every_registered_one():
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"sparsity": {"method": "no-such-method"}}).validate()
    entries = ["dense", *(cls.usage or name for name, cls in METHODS.items())]
    assert "no-such-method" in str(caught.value)
    assert _lists(str(caught.value), entries) == []
    assert _lists(allowed(), entries) == []
    with pytest.raises(ConfigError) as caught:
        method_class("no-such-method")
    assert _lists(str(caught.value), entries) == []

    with pytest.raises(ConfigError) as caught:
        Config(algo="no-such-algo").validate()
    assert "no-such-algo" in str(caught.value) and _lists(str(caught.value), ALGORITHMS.names()) == []
    with pytest.raises(ConfigError) as caught:
        ALGORITHMS.get("no-such-algo")
    assert _lists(str(caught.value), ALGORITHMS.names()) == []

    with pytest.raises(ConfigError) as caught:
        Config(network="no-such-body").validate()
    assert "no-such-body" in str(caught.value) and _lists(str(caught.value), BODIES.names()) == []


# --- 7. a user's method -------------------------------------------------------------------------
def test_a_registered_user_method_works_everywhere_and_leaves_no_trace():
    class Quarter(Static):
        """A user's fixed mask at 75 % (conformance test)."""

        name = "conformance_quarter"
        defaults = {"sparsity": 0.75}

    register_method(Quarter)
    try:
        assert METHODS.get("conformance_quarter") is Quarter
        assert "conformance_quarter" in allowed().split(", ")
        config = Config.from_dict(dict(algo="td3", hidden=[32, 32], batch_size=16, total_steps=40, start_steps=0,
                                       sparsity={"method": "conformance_quarter"})).validate()
        agent, sparsifier = build(config)
        assert type(sparsifier.method) is Quarter
        assert all(g.levels == (0.75,) for g in sparsifier.groups.values())  # its default level
        before = [p.detach().clone() for p in agent.policy.parameters()]
        train(agent, filled_buffer(), 4)
        assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
        for group in sparsifier.groups.values():
            for i, (layer, mask) in enumerate(zip(group.sparse_layers, group.masks)):
                assert not bool((layer.param.detach() * (1 - mask)).ne(0).any())
                assert member_counts(layer, mask) == [group.kept(i)] * layer.shape.members
    finally:
        METHODS.unregister("conformance_quarter")
    assert "conformance_quarter" not in METHODS and "conformance_quarter" not in allowed()


@dataclass
class Refusal:
    make: object
    says: str


def _clash():
    class Clash(Static):
        """Takes a built-in's name."""

        name = "rigl"
        defaults = {}

    return Clash


def _no_defaults():
    class NoDefaults(Static):
        """Forgets its defaults."""

        name = "conformance_no_defaults"

    return NoDefaults


def _unknown_setting():
    class UnknownSetting(Static):
        """Defaults a setting that does not exist."""

        name = "conformance_unknown_setting"
        defaults = {"sparsity": 0.5, "not_a_setting": 1}

    return UnknownSetting


def _negative_flops():
    class NegativeFlops(Static):
        """Claims a negative training cost."""

        name = "conformance_negative_flops"
        defaults = {"sparsity": 0.5}

        def training_flops(self, group, dense, sparse):
            return -1.0

    return NegativeFlops


def _no_docstring():
    class NoDocstring(Static):
        name = "conformance_no_docstring"
        defaults = {}

    return NoDocstring


REFUSALS = {"clashing-name": Refusal(_clash, "that name is taken"),
            "missing-defaults": Refusal(_no_defaults, "defaults"),
            "unknown-setting": Refusal(_unknown_setting, "not_a_setting"),
            "negative-flops": Refusal(_negative_flops, "training_flops"),
            "no-docstring": Refusal(_no_docstring, "docstring")}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_a_faulty_user_method_is_refused_naming_it(case):
    refusal = REFUSALS[case]
    cls = refusal.make()
    before = METHODS.items()
    try:
        with pytest.raises(ConfigError) as caught:
            register_method(cls)
        message = str(caught.value)
        assert repr(cls.name) in message, message
        assert refusal.says in message, message
        assert METHODS.items() == before  # nothing registered, nothing replaced
    finally:
        if cls.name in METHODS and METHODS.get(cls.name) is cls:
            METHODS.unregister(cls.name)
