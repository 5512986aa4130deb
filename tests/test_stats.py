"""The report statistics against brute-force computations, and their invariants (Agarwal et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.studies.stats import (
    iqm,
    mean_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

scores = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=7)  # small integers: ties happen
tasks = st.lists(st.tuples(scores, scores), min_size=1, max_size=4)


def brute_force_improvement(pairs):
    per_task = []
    for x, y in pairs:
        wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y]
        per_task.append(sum(wins) / len(wins))
    return sum(per_task) / len(per_task)


@settings(max_examples=200, deadline=None)
@given(tasks)
def test_probability_of_improvement_is_the_mann_whitney_fraction_averaged_over_tasks(pairs):
    x, y = zip(*pairs)
    p = probability_of_improvement(x, y)
    assert p == pytest.approx(brute_force_improvement(pairs))
    assert p + probability_of_improvement(y, x) == pytest.approx(1.0)  # ties count half on each side
    assert probability_of_improvement(x, x) == pytest.approx(0.5)
    # ranks only: a strictly increasing transform of every score changes nothing
    assert probability_of_improvement([np.exp(np.array(a)) for a in x], [np.exp(np.array(b)) for b in y]) == \
        pytest.approx(p)


@settings(max_examples=50, deadline=None)
@given(tasks, st.integers(0, 10))
def test_improvement_interval_is_an_interval_of_possible_values(pairs, seed):
    x, y = zip(*pairs)
    low, high = probability_of_improvement_ci(x, y, reps=300, seed=seed)
    assert 0.0 <= low <= high <= 1.0
    if all(min(a) > max(b) for a, b in pairs):  # every resample has X above Y
        assert low == high == 1.0


def test_improvement_interval_covers_the_truth_and_narrows_with_more_runs():
    rng = np.random.default_rng(0)
    # X ~ N(0.5, 1), Y ~ N(0, 1): P(X > Y) = Phi(0.5 / sqrt(2)) = 0.638
    widths = []
    for runs in (5, 80):
        x = [rng.normal(0.5, 1.0, runs) for _ in range(3)]
        y = [rng.normal(0.0, 1.0, runs) for _ in range(3)]
        low, high = probability_of_improvement_ci(x, y, reps=2000)
        assert low <= probability_of_improvement(x, y) <= high
        widths.append(high - low)
    assert low < 0.638 < high and low > 0.5  # better than a coin, with 80 runs a task
    assert widths[1] < widths[0] / 2.5


def test_tasks_must_pair_up():
    with pytest.raises(ValueError, match="2 tasks for X but 1 for Y"):
        probability_of_improvement([[1.0], [2.0]], [[0.0]])


@settings(max_examples=100, deadline=None)
@given(scores, st.integers(0, 10))
def test_mean_interval_lies_within_the_values(values, seed):
    low, high = mean_ci(values, reps=300, seed=seed)
    assert min(values) <= low <= high <= max(values)
    if len(set(values)) == 1:
        assert low == high == values[0]


def test_mean_interval_matches_the_normal_approximation_for_many_runs():
    values = np.random.default_rng(2).normal(3.0, 2.0, 400)
    low, high = mean_ci(values, reps=4000)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.05)
    assert high == pytest.approx(values.mean() + half, abs=0.05)


def test_iqm_trims_a_quarter_at_each_end_and_stratified_interval_keeps_runs_per_task():
    assert iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm(np.array([100.0, 1.0, 2.0, 3.0])) == pytest.approx(2.5)
    # one task always at 0 and one always at 1: every stratified resample pools half zeros, half ones
    low, high = stratified_bootstrap_ci([np.zeros(4), np.ones(4)], np.mean, reps=200)
    assert low == high == 0.5
