"""The paper presets: each builds the networks the paper describes (sparsities, model sizes), runs a
short real training, and is refused, with the alternatives named, for a task it has no settings for."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from sparserl.algos import make_agent
from sparserl.config import Config, list_presets, load_preset, preset_envs, preset_header, resolve_values
from sparserl.envs import env_info
from sparserl.errors import ConfigError
from sparserl.runs.api import train
from sparserl.runs.build import make_run_env
from sparserl.sparsity import Sparsifier, sparsity_report

PAPER_PRESETS = ["rnm-td3", "rlx2-td3", "rlx2-sac", "ds-td3"] + [
    f"rlx2-{algo}-{baseline}" for algo in ("td3", "sac") for baseline in ("dense", "ss", "rigl", "set", "tiny")]

# RLx2 Table 2, "Total size" (weight matrices of networks and targets, relative to dense), for the
# tasks whose observation sizes did not change from gym v3 to Gymnasium v5
RLX2_TOTAL_SIZE = {
    ("rlx2-td3", "HalfCheetah-v5"): 0.133, ("rlx2-td3", "Hopper-v5"): 0.040, ("rlx2-td3", "Walker2d-v5"): 0.043,
    ("rlx2-sac", "HalfCheetah-v5"): 0.180, ("rlx2-sac", "Hopper-v5"): 0.044, ("rlx2-sac", "Walker2d-v5"): 0.100,
}
# DS-TD3: overall sparsity of actor and critics from its lambdas (derived in the reference notes from
# the gym v3 sizes; Ant's and Humanoid's observations changed in v5)
DSTD3_SPARSITY = {"HalfCheetah-v5": 0.506, "Hopper-v5": 0.494, "Walker2d-v5": 0.506}


def built(config: Config):
    """The agent of `config` with its sparsity engine attached, and the sparsity report (or None)."""
    env = make_run_env(config)
    try:
        agent = make_agent(env_info(env), config)
    finally:
        env.close()
    if not config.sparsity.enabled:
        return agent, None
    sparsifier = Sparsifier(config.sparsity, seed=0)
    agent.attach_sparsity(sparsifier, config.total_steps)
    return agent, sparsity_report(sparsifier)


def weight_count(agent, names=("actor", "critic")) -> int:
    return sum(p.numel() for name in names for p in agent.networks[name].parameters() if p.dim() > 1)


def cases():
    for name in PAPER_PRESETS:
        for env in preset_envs(name) or [None]:
            yield pytest.param(name, env, id=f"{name}-{env or 'default'}")


def test_every_paper_preset_is_shipped_and_described():
    assert set(PAPER_PRESETS) <= set(list_presets())
    for name in PAPER_PRESETS:
        description, source = preset_header(name)
        assert description and source, name


@pytest.mark.parametrize("name,env", list(cases()))
def test_preset_builds_the_papers_networks(name, env):
    config = Config(**resolve_values(name, env=env)).validate()
    agent, report = built(config)
    s = config.sparsity
    if s.kind in ("rigl", "set", "static") and s.layer_lambdas is None:  # RLx2's per-network sparsities
        assert report.density["actor"] == pytest.approx(1 - s.actor_sparsity, abs=2e-3)
        assert report.density["critic"] == pytest.approx(1 - s.critic_sparsity, abs=2e-3)
        if (name, config.env) in RLX2_TOTAL_SIZE:  # RLx2 itself (its baselines share the sparsities)
            assert report.model_size == pytest.approx(RLX2_TOTAL_SIZE[(name, config.env)], abs=1.5e-3)
    elif name == "ds-td3":
        total = sum(line.total for line in report.layers)
        kept = sum(line.kept for line in report.layers)
        if config.env in DSTD3_SPARSITY:
            assert 1 - kept / total == pytest.approx(DSTD3_SPARSITY[config.env], abs=2e-3)
        outputs = report.layers[2::3]  # actor and critic layers 0, 1, 2: the output layers stay dense
        assert len(outputs) == 2 and all(line.kept == line.total for line in outputs)
    elif name == "rnm-td3":
        assert config.sparsity.method == "nm:2:4"
        assert report.density["actor"] == pytest.approx(0.5, abs=0.01)
        assert report.density["critic"] == pytest.approx(0.5, abs=0.01)
    elif name.endswith("-tiny"):  # as many weights as the sparse RLx2 networks
        sparse_config = Config(**resolve_values(name.replace("-tiny", ""), env=config.env))
        sparse_agent, sparse_report = built(sparse_config)
        target = sum(sparse_report.density[n] * weight_count(sparse_agent, [n]) for n in ("actor", "critic"))
        assert weight_count(agent) == pytest.approx(target, rel=0.03)
        assert report is None
    else:
        assert name.endswith("-dense") and report is None


# one short training run per distinct sparse recipe (every preset is built and checked above; dense
# runs train in most other tests): N:M, RLx2 with its extras under TD3 and SAC, SET (DS-TD3), static
TRAINED_PRESETS = ["rnm-td3", "rlx2-td3", "rlx2-sac", "ds-td3", "rlx2-td3-ss"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED_PRESETS)
def test_preset_trains_for_1800_steps(tmp_path, name):
    """300 updates at the preset's own sizes, reaching its multi-step targets and buffer checks."""
    config = Config(**resolve_values(name))
    short = dict(total_steps=1800, start_steps=1500, eval_every=900, eval_episodes=1, checkpoint_every=900,
                 tensorboard=False, progress=False, threads=1, run_dir=str(tmp_path / name))
    if config.nstep > 1:
        short["delay_nstep"] = 150  # reach the multi-step target within the run
    if config.dynamic_buffer:
        short.update(buffer_check_every=300, buffer_min_size=500)
    result = train(config.replace(**short))
    assert result.step == 1800 and math.isfinite(result.score)
    if config.sparsity.enabled:
        assert result.sparsity.density["actor"] < 1.0


def test_a_preset_without_settings_for_the_env_names_those_it_has():
    with pytest.raises(ConfigError, match=r"preset 'rlx2-td3' has no settings for Humanoid-v5; it has them for "
                                          r"HalfCheetah-v5, Hopper-v5, Walker2d-v5, Ant-v5"):
        load_preset("rlx2-td3", "Humanoid-v5")
    assert resolve_values("rlx2-td3-dense", env="Humanoid-v5")["sparsity"].method == "dense"  # dense runs anywhere


def test_presets_are_overridden_field_by_field():
    values = resolve_values("rlx2-td3", env="Ant-v5")
    config = Config(**values).replace(total_steps=50_000)
    assert (config.env, config.total_steps, config.sparsity.actor_sparsity) == ("Ant-v5", 50_000, 0.96)


def test_scaling_simba_builds_the_default_humanoid_networks_at_80_percent_of_all_parameters():
    config = Config(**resolve_values("scaling-simba")).validate()
    assert config.env == "dm_control/humanoid-run-v0" and config.action_repeat == 2 and config.critics == 1
    agent, report = built(config)
    pruned = {line.network: 0 for line in report.layers}
    for line in report.layers:
        pruned[line.network] += line.total - line.kept
    for name, expected in (("actor", 146_346), ("critic", 4_248_577)):
        assert sum(p.numel() for p in agent.networks[name].parameters()) == expected
        assert pruned[name] / expected == pytest.approx(0.8, abs=0.002), name  # norms and biases count too
    critic, target = agent.networks["critic"], agent.networks["critic_target"]
    for p, t in zip(critic.parameters(), target.parameters()):
        assert torch.equal(p == 0, t == 0) or p.dim() < 2  # the target shares the masks


MA_ET_AL_ER = {  # per-layer sparsity of the released code's ER allocation on humanoid shapes (all parameters)
    0.8: {"actor": {"embed": 0.641, "fc": 0.846, "head": 0.126}, "critic": {"embed": 0.0, "fc": 0.810, "head": 0.0}},
    0.9: {"actor": {"embed": 0.829, "fc": 0.927, "head": 0.584}, "critic": {"embed": 0.489, "fc": 0.906, "head": 0.0}},
}


@pytest.mark.parametrize("level", list(MA_ET_AL_ER))
def test_scaling_simba_layers_get_ma_et_als_er_sparsities(level):
    """SimBa's SAC actor has a mean and a log-std head of its own (Lee et al. 2025, Ma et al. 2025), so ER
    scores each head as a (128, 21) tensor: 0.126 at 80 %, where one fused (128, 42) head got 0.46."""
    values = resolve_values("scaling-simba")
    values["sparsity"] = replace(values["sparsity"], actor_sparsity=level, critic_sparsity=level)
    _, report = built(Config(**values).validate())
    heads = [line for line in report.layers if line.network == "actor" and ".head." in line.layer]
    assert [line.shape for line in heads] == ["21x128", "21x128"]
    for line in report.layers:
        kind = "embed" if ".embed." in line.layer else "head" if ".head" in line.layer else "fc"
        expected = MA_ET_AL_ER[level][line.network][kind]
        assert 1 - line.kept / line.total == pytest.approx(expected, abs=0.002), f"{line.network} {line.layer}"


@pytest.mark.parametrize("name", ["stream-ac", "stream-ac-dense", "stream-ac-static"])
def test_the_streaming_presets_build_elsayed_et_als_networks_with_and_without_zeros(name):
    """Two 128-wide LayerNorm layers each; SparseInit: exactly ceil(0.9 fan_in) zeros per unit (free to
    regrow: no mask); dense: no zeros; static: 90 % of every layer masked, on the dense init."""
    config = Config(**resolve_values(name)).validate()
    assert (config.algo, config.env, config.hidden, config.total_steps) == ("stream-ac", "HalfCheetah-v5",
                                                                            (128, 128), 2_000_000)
    agent, report = built(config)
    for network in ("actor", "critic"):
        weights = [p for p in agent.networks[network].parameters() if p.dim() == 2]
        assert [w.shape[1] for w in weights] == [18, 128, 128]  # 17 observations and the time feature
        for w in weights:
            zeros = (w == 0).sum(dim=1)
            if name == "stream-ac":
                assert zeros.tolist() == [math.ceil(0.9 * w.shape[1])] * w.shape[0]
            elif name == "stream-ac-dense":
                assert int(zeros.sum()) == 0
        if name == "stream-ac-static":
            assert all(line.kept == round(0.1 * line.total) for line in report.layers if line.network == network)
    assert (report is None) == (name != "stream-ac-static")


def test_the_readme_presets_table_names_every_preset():
    import re
    from pathlib import Path

    from sparserl.config import list_presets

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| preset | what it is |"):]
    table = table[:table.index("\n\n")]
    named = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.M):
        for name in re.findall(r"`([^`]+)`", cell):
            if match := re.fullmatch(r"(.*)\{(.*)\}-\{(.*)\}", name):  # rlx2-{td3,sac}-{dense,...}
                named |= {f"{match[1]}{a}-{b}" for a in match[2].split(",") for b in match[3].split(",")}
            else:
                named.add(name)
    assert set(list_presets()) <= named, sorted(set(list_presets()) - named)


def test_the_sparse_drqv2_preset_prunes_every_module_to_its_level():
    """Encoder convolutions, trunks (39 200 -> 50 at 84 x 84) and heads each at 10 % density, the
    first convolution (81 inputs per unit) denser under ERK than the 288-input ones."""
    from sparserl.envs import EnvInfo

    config = Config(**resolve_values("drqv2-sparse")).validate()
    info = EnvInfo(config.env, 9 * 84 * 84, 4, 1000, obs_shape=(9, 84, 84))
    agent = make_agent(info, config)
    sparsifier = Sparsifier(config.sparsity, seed=0)
    agent.attach_sparsity(sparsifier, 1000)
    report = sparsity_report(sparsifier)
    assert {n: round(d, 3) for n, d in report.density.items()} == {"encoder": 0.1, "actor": 0.1, "critic": 0.1}
    lines = {(line.network, line.layer): line for line in report.layers}
    assert lines["actor", "trunk.linear.weight"].shape == "50x39200"
    first, second = lines["encoder", "convs.0.weight"], lines["encoder", "convs.2.weight"]
    assert first.kept / first.total > 2 * second.kept / second.total
