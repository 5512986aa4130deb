"""Mask construction: N:M groups, exact counts, and one hand-checked RigL update."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.sparsity.masks import drop_and_grow, magnitude_mask, nm_kept, nm_mask, random_mask, topk_mask


def topk_reference(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """N:M by torch.topk per group (ties broken by topk): the obvious implementation."""
    full = weight.shape[-1] // m * m
    groups = weight[..., :full].abs().reshape(*weight.shape[:-1], -1, m)
    mask = torch.zeros_like(groups).scatter_(-1, groups.topk(n, dim=-1).indices, 1.0)
    return mask.reshape(*weight.shape[:-1], full)


@settings(max_examples=200, deadline=None)
@given(members=st.integers(1, 3), out=st.integers(1, 9), fan_in=st.integers(1, 40),
       nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (1, 8), (4, 8), (2, 8), (3, 5)]), seed=st.integers(0, 99))
def test_nm_keeps_exactly_n_largest_per_group(members, out, fan_in, nm, seed):
    n, m = nm
    weight = torch.randn(members, out, fan_in, generator=torch.Generator().manual_seed(seed))
    mask = nm_mask(weight, n, m)
    assert mask.shape == weight.shape and set(mask.unique().tolist()) <= {0.0, 1.0}
    full = fan_in // m * m
    if full:
        groups = mask[..., :full].reshape(members, out, -1, m)
        assert (groups.sum(-1) == n).all()  # exactly N kept per full group
        w = weight[..., :full].abs().reshape(members, out, -1, m)
        kept_min = torch.where(groups > 0, w, math.inf).amin(-1)
        dropped_max = torch.where(groups > 0, -math.inf, w).amax(-1)
        assert (kept_min >= dropped_max).all()  # the kept ones are the largest |w|
    rest = fan_in - full
    if rest:
        assert (mask[..., full:].sum(-1) == math.ceil(rest * n / m)).all()  # partial group rule
    assert (mask.sum(-1) == nm_kept(fan_in, n, m)).all()  # equal fan-in for every output unit
    if full:  # without ties (random weights) the choice is unique: it must equal the topk rule
        assert torch.equal(mask[..., :full], topk_reference(weight, n, m))


def test_nm_ties_keep_exactly_n_earliest_first():
    weight = torch.zeros(1, 2, 8)
    weight[0, 1, :4] = torch.tensor([0.5, 0.5, 0.5, 0.1])
    mask = nm_mask(weight, 2, 4)
    assert mask[0, 0].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]  # all-zero groups: the first N positions
    assert mask[0, 1].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]


@settings(max_examples=100, deadline=None)
@given(members=st.integers(1, 3), out=st.integers(1, 20), fan_in=st.integers(1, 20), data=st.data())
def test_random_and_magnitude_masks_keep_exact_counts(members, out, fan_in, data):
    keep = data.draw(st.integers(0, out * fan_in))
    shape = torch.Size((members, out, fan_in))
    mask = random_mask(shape, keep, torch.Generator().manual_seed(0))
    assert (mask.reshape(members, -1).sum(1) == keep).all()
    weight = torch.randn(shape)
    mask = magnitude_mask(weight, keep)
    assert (mask.reshape(members, -1).sum(1) == keep).all()
    if 0 < keep < out * fan_in:
        flat_w, flat_m = weight.abs().reshape(members, -1), mask.reshape(members, -1)
        kept_min = torch.where(flat_m > 0, flat_w, math.inf).amin(1)
        assert (kept_min >= torch.where(flat_m > 0, -math.inf, flat_w).amax(1)).all()


def test_rigl_drops_smallest_active_and_grows_largest_gradient_inactive():
    # a 2x4 layer with 6 active weights; k = floor(0.5 * 6) = 3
    mask = torch.tensor([[[1, 1, 1, 0], [1, 1, 1, 0]]], dtype=torch.float32)
    weight = torch.tensor([[[0.9, -0.1, 0.5, 0.0], [0.05, -0.8, 0.3, 0.0]]])
    grad = torch.tensor([[[0.0, 0.2, 0.0, 0.7], [0.1, 0.0, 0.0, 0.6]]])
    new, dropped, grown = drop_and_grow(mask, weight.abs(), grad.abs(), 0.5)
    # smallest |w| among active: 0.05 (1,0), 0.1 (0,1), 0.3 (1,2) are dropped
    expected_dropped = torch.tensor([[[0, 1, 0, 0], [1, 0, 1, 0]]], dtype=torch.float32)
    # candidates are all non-kept positions (just-dropped included): |g| 0.7 (0,3), 0.6 (1,3), 0.2 (0,1)
    expected_new = torch.tensor([[[1, 1, 1, 1], [0, 1, 0, 1]]], dtype=torch.float32)
    assert torch.equal(new, expected_new)
    # (0,1) was dropped and regrown at once: neither dropped nor new (it keeps its value, as in RLx2)
    assert torch.equal(dropped, expected_dropped * (1 - expected_new))
    assert torch.equal(grown, torch.tensor([[[0, 0, 0, 1], [0, 0, 0, 1]]], dtype=torch.float32))
    assert new.sum() == mask.sum()


@settings(max_examples=50, deadline=None)
@given(members=st.integers(1, 3), out=st.integers(1, 9), fan_in=st.integers(1, 30), seed=st.integers(0, 99))
def test_nm_along_any_axis_equals_the_row_view(members, out, fan_in, seed):
    """Grouping along axis 1 of an input-major (E, in, out) weight is the row-wise rule of its (E, out, in) view."""
    weight_io = torch.randn(members, fan_in, out, generator=torch.Generator().manual_seed(seed))
    by_axis = nm_mask(weight_io, 2, 4, dim=1)
    by_rows = nm_mask(weight_io.transpose(1, 2), 2, 4)
    assert torch.equal(by_axis, by_rows.transpose(1, 2))


@settings(max_examples=60, deadline=None)
@given(members=st.integers(1, 5), out=st.integers(1, 6), fan_in=st.integers(1, 9), data=st.data())
def test_members_with_counts_of_their_own_each_get_their_own_top_k(members, out, fan_in, data):
    """A population whose agents have levels of their own: member m keeps exactly counts[m] weights,
    the same ones it keeps when selected alone."""
    counts = data.draw(st.lists(st.integers(0, out * fan_in), min_size=members, max_size=members))
    scores = torch.randn(members, out, fan_in, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    mask = topk_mask(scores, counts)
    assert mask.flatten(1).sum(1).tolist() == counts
    for m, count in enumerate(counts):
        assert torch.equal(mask[m:m + 1], topk_mask(scores[m:m + 1], count))


def test_drop_and_grow_keeps_each_members_own_count():
    generator = torch.Generator().manual_seed(0)
    mask = topk_mask(torch.rand(3, 8, 10, generator=generator), [20, 40, 60])
    grow_scores = (1.0 - mask) + torch.rand(3, 8, 10, generator=generator) * 0.1  # the long inactive first
    new, dropped, grown = drop_and_grow(mask, torch.rand(3, 8, 10, generator=generator), grow_scores, 0.25)
    assert new.flatten(1).sum(1).tolist() == [20, 40, 60]
    assert dropped.flatten(1).sum(1).tolist() == grown.flatten(1).sum(1).tolist() == [5, 10, 15]  # floor(0.25 active)
