"""Reproductions are sweep specs: the comparison, the tasks and seeds of a budget, and every run's
schedule compressed into the budget's steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparserl.config import Config, resolve_values
from sparserl.errors import ConfigError
from sparserl.studies.budget import compress_schedule
from sparserl.studies.reproduce import reproduction_spec
from sparserl.studies.spec import expand


def test_rlx2_small_is_dense_rlx2_and_ss_on_hopper_with_three_seeds_and_a_compressed_schedule():
    plans = expand(reproduction_spec("rlx2-td3", "small"))
    assert len(plans) == 9
    by_preset = {p.values["preset"]: p.config for p in plans if p.values["seed"] == 0}
    assert set(by_preset) == {"rlx2-td3-dense", "rlx2-td3", "rlx2-td3-ss"}
    rlx2 = by_preset["rlx2-td3"]
    assert (rlx2.env, rlx2.total_steps, rlx2.start_steps, rlx2.threads) == ("Hopper-v5", 20_000, 5_000, 1)
    assert (rlx2.sparsity.actor_sparsity, rlx2.sparsity.critic_sparsity) == (0.98, 0.95)
    learning = 15_000 / 2_975_000  # the paper's 3M steps with 25k random ones, into 20k with 5k
    assert rlx2.delay_nstep == round(300_000 * learning) and rlx2.sparsity.update_interval == round(10_000 * learning)
    assert rlx2.buffer_check_every == round(10_000 * 20_000 / 3_000_000)
    assert rlx2.buffer_min_size == round(100_000 * 20_000 / 3_000_000)
    assert by_preset["rlx2-td3-dense"].sparsity.method == "dense" and by_preset["rlx2-td3-dense"].nstep == 1


def test_rnm_small_compares_dense_with_three_nm_ratios():
    plans = expand(reproduction_spec("rnm-td3", "small", seeds=2))
    assert sorted({p.config.sparsity.method for p in plans}) == ["dense", "nm:1:4", "nm:1:8", "nm:2:4"]
    assert len(plans) == 8 and {p.config.env for p in plans} == {"HalfCheetah-v5"}
    assert all(p.config.sparsity.update_interval == 1 for p in plans if p.config.sparsity.kind == "nm")


def test_the_ablations_vary_their_one_setting_at_the_medium_budget():
    """RNM-TD3's interval ablation: 2:4 at four intervals, SR-STE and shadow, on HalfCheetah; RLx2's
    n-step ablation: n = 1 and 3, all else RLx2-TD3, on Hopper; the scaling study with diagnostics,
    dense, 80 % and 90 %, 5 seeds."""
    plans = expand(reproduction_spec("rnm-td3-interval", "medium"))
    assert len(plans) == 4 * 2 * 5 and {p.config.env for p in plans} == {"HalfCheetah-v5"}
    assert {p.config.sparsity.nm_gradient for p in plans} == {"srste", "shadow"}
    # the intervals shrink with the schedule (1M steps into 150k), as every schedule of a budget does
    one, small, mid, large = sorted({p.config.sparsity.update_interval for p in plans})
    assert one == 1 and mid / small == pytest.approx(10, rel=0.02) and large / mid == pytest.approx(10, rel=0.02)
    assert {p.config.sparsity.method for p in plans} == {"nm:2:4"}
    assert {p.config.total_steps for p in plans} == {150_000}
    nstep = expand(reproduction_spec("rlx2-td3-nstep", "medium"))
    assert sorted({p.config.nstep for p in nstep}) == [1, 3] and len(nstep) == 2 * 5
    assert {p.config.sparsity.method for p in nstep} == {"rigl"}
    scaling = expand(reproduction_spec("scaling", "medium"))
    assert len(scaling) == 3 * 3 * 5 and {p.config.diagnostics_every for p in scaling} == {10_000}
    assert sorted({p.config.sparsity.level("critic") for p in scaling}) == [0.0, 0.8, 0.9]


def test_a_reproduction_runs_in_the_precision_asked_for_and_fp32_by_default():
    assert {p.config.precision for p in expand(reproduction_spec("rnm-td3", "small"))} == {"fp32"}
    assert {p.config.precision for p in expand(reproduction_spec("rnm-td3", "small", precision="auto"))} == {"auto"}
    with pytest.raises(ConfigError, match="precision bf16: stream-ac"):
        expand(reproduction_spec("streaming", "small", precision="bf16"))


def test_paper_budget_keeps_the_presets_schedule():
    plans = expand(reproduction_spec("rlx2-sac", "paper"))
    assert len(plans) == 3 * 4 * 8
    assert {p.config.total_steps for p in plans} == {3_000_000}


@pytest.mark.parametrize("args,message", [
    (("rlx3-td3",), r"unknown paper 'rlx3-td3'; reproductions exist for rnm-td3, rlx2-td3, rlx2-sac"),
    (("rlx2-td3", "tiny"), r"unknown budget 'tiny'; choose one of small, medium, paper"),
])
def test_bad_reproduction_names(args, message):
    with pytest.raises(ConfigError, match=message):
        reproduction_spec(*args)


def test_an_env_without_preset_settings_is_refused_before_any_run():
    with pytest.raises(ConfigError, match=r"preset 'rlx2-td3' has no settings for Humanoid-v5"):
        expand(reproduction_spec("rlx2-td3", envs=["Humanoid-v5"]))


@given(total=st.integers(2, 10**6), start=st.integers(0, 10**6), delay=st.integers(0, 10**6),
       interval=st.integers(0, 50_000))
def test_compressed_schedules_stay_valid(total, start, delay, interval):
    start = min(start, total - 1)
    config = Config(**resolve_values("rlx2-td3", env="Hopper-v5")).replace(delay_nstep=delay)
    config.sparsity.update_interval = interval
    small = compress_schedule(config, total, start)
    assert (small.total_steps, small.start_steps) == (total, start)
    assert small.sparsity.update_interval == 0 if interval == 0 else small.sparsity.update_interval >= 1
    assert (small.delay_nstep == 0) == (delay == 0)
    assert 1 <= small.buffer_min_size <= small.buffer_size
    small.validate()


def test_scaling_small_is_a_width_grid_of_dense_and_sparse_simba_on_a_cheap_task():
    plans = expand(reproduction_spec("scaling", "small"))
    assert len(plans) == 3 * 4
    configs = [p.config for p in plans]
    assert {c.env for c in configs} == {"dm_control/cartpole-swingup-v0"}
    assert {c.critic_width for c in configs} == {64, 128, 256} and {c.network for c in configs} == {"simba"}
    levels = {c.sparsity.critic_sparsity if c.sparsity.enabled else 0.0 for c in configs}
    assert levels == {0.0, 0.5, 0.8, 0.9}
    assert all(c.sparsity.method in ("dense", "static") and c.total_steps == 8_000 for c in configs)
    assert all(c.sparsity.budget_scope == "all" for c in configs if c.sparsity.enabled)


def test_streaming_compares_dense_sparse_init_and_a_fixed_mask_across_widths_without_replay():
    plans = expand(reproduction_spec("streaming", "small"))
    assert len(plans) == 12  # 3 variants x 2 widths x 2 seeds on Hopper
    variants = {(p.values["preset"], tuple(p.config.hidden)) for p in plans}
    assert variants == {(v, (w, w)) for v in ("stream-ac-dense", "stream-ac", "stream-ac-static") for w in (128, 512)}
    for plan in plans:
        c = plan.config.validate()  # no replay setting crept in through the budget
        assert (c.algo, c.env, c.total_steps, c.start_steps, c.eval_episodes, c.threads) == \
            ("stream-ac", "Hopper-v5", 100_000, 0, 0, 1)
        assert c.init == ("sparse" if plan.values["preset"] == "stream-ac" else "default")
        assert c.sparsity.enabled == (plan.values["preset"] == "stream-ac-static")
    medium = expand(reproduction_spec("streaming", "medium"))
    assert len(medium) == 24 and {p.config.env for p in medium} == {"Hopper-v5", "Walker2d-v5"}
    assert {p.config.total_steps for p in medium} == {1_000_000}
    assert {p.config.hidden for p in expand(reproduction_spec("streaming", "paper"))} == \
        {(128, 128), (512, 512), (1024, 1024)}
