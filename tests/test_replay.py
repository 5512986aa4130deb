"""ReplayBuffer invariants (property-based): FIFO contents, n-step windows, dropping, resume."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.replay import ReplayBuffer

OBS, ACT = 3, 2


def fill(buffer: ReplayBuffer, count: int, offset: int = 0) -> None:
    """Transition k carries k in every field, and is terminal when k % 7 == 6."""
    for k in range(offset, offset + count):
        v = np.float32(k)
        buffer.add(np.full(OBS, v), np.full(ACT, v), float(k), np.full(OBS, v + 0.5), k % 7 == 6, k % 5 == 4,
                   np.full(ACT, -v))


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 40), count=st.integers(1, 120))
def test_keeps_the_newest_capacity_transitions_in_order(capacity, count):
    buffer = ReplayBuffer(OBS, ACT, capacity)
    fill(buffer, count)
    assert len(buffer) == min(capacity, count)
    oldest = buffer.oldest(len(buffer))
    expected = np.arange(count - len(buffer), count, dtype=np.float32)
    np.testing.assert_array_equal(oldest.reward.numpy(), expected)
    np.testing.assert_array_equal(oldest.obs[:, 0].numpy(), expected)
    np.testing.assert_array_equal(oldest.next_obs[:, 0].numpy(), expected + 0.5)
    np.testing.assert_array_equal(oldest.policy_action[:, 1].numpy(), -expected)
    np.testing.assert_array_equal(oldest.terminated.numpy(), (expected % 7 == 6).astype(np.float32))
    np.testing.assert_array_equal(oldest.truncated.numpy(), (expected % 5 == 4).astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(4, 40), count=st.integers(4, 120), n=st.integers(1, 4), seed=st.integers(0, 9))
def test_nstep_windows_are_consecutive_and_never_pass_the_newest(capacity, count, n, seed):
    buffer = ReplayBuffer(OBS, ACT, capacity, seed=seed)
    fill(buffer, count)
    batch = buffer.sample(64, n=n)
    rewards = batch.reward if n > 1 else batch.reward.unsqueeze(1)
    assert rewards.shape == (64, n)
    newest = count - 1
    oldest = count - len(buffer)
    assert (rewards >= oldest).all() and (rewards <= newest).all()
    np.testing.assert_array_equal(np.diff(rewards.numpy(), axis=1), 1.0)  # consecutive, insertion order
    if n > 1:
        assert batch.obs.shape == (64, n, OBS) and batch.action.shape == (64, n, ACT)
        assert torch.equal(batch.terminated, (rewards % 7 == 6).float())


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(2, 30), count=st.integers(2, 80), drop=st.integers(0, 40), more=st.integers(0, 40))
def test_drop_oldest_then_append(capacity, count, drop, more):
    buffer = ReplayBuffer(OBS, ACT, capacity)
    fill(buffer, count)
    size = len(buffer)
    buffer.drop_oldest(drop)
    assert len(buffer) == max(0, size - drop)
    fill(buffer, more, offset=count)
    kept = min(capacity, max(0, size - drop) + more)
    assert len(buffer) == kept
    rewards = buffer.oldest(kept).reward.numpy()
    np.testing.assert_array_equal(rewards, np.arange(count + more - kept, count + more, dtype=np.float32))


@settings(max_examples=30, deadline=None)
@given(capacity=st.integers(2, 30), count=st.integers(2, 80), seed=st.integers(0, 5))
def test_state_dict_round_trip_resumes_sampling_exactly(capacity, count, seed):
    a = ReplayBuffer(OBS, ACT, capacity, seed=seed)
    fill(a, count)
    a.sample(8)
    b = ReplayBuffer(OBS, ACT, capacity, seed=seed + 1)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        for x, y in zip(a.sample(16, n=2), b.sample(16, n=2)):
            assert torch.equal(x, y)
        fill(a, 3, offset=1000)
        fill(b, 3, offset=1000)


def test_sample_fields_are_views_of_one_gather():
    buffer = ReplayBuffer(OBS, ACT, 10)
    fill(buffer, 10)
    batch = buffer.sample(5)
    assert batch.obs.shape == (5, OBS) and batch.reward.shape == (5,) and batch.terminated.shape == (5,)
    assert batch.obs.untyped_storage().data_ptr() == batch.reward.untyped_storage().data_ptr()
