"""The frame replay against an independent one that keeps every transition's full stacks: the same
windows, stacks, rewards, flags and bootstrap index; frames stored once, as uint8, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.replay import FrameReplay

SHAPE = (3, 4, 5)  # channels, height, width: small frames, every pixel of one frame the same value


def episodes_of(rng: np.random.Generator, lengths: list[int], stack: int, act_dim: int = 2):
    """Transitions of episodes of the given lengths, as an agent with a k-frame stack sees them:
    (obs stack, action, reward, next_obs stack, terminated, truncated, policy_action). Frames carry
    a distinct random pattern each; an episode ends by a terminal or a time limit, at random."""
    out = []
    for length in lengths:
        frame = rng.integers(0, 256, SHAPE, dtype=np.uint8)
        deque = [frame] * stack  # a reset fills the stack with the first frame
        for t in range(length):
            new = rng.integers(0, 256, SHAPE, dtype=np.uint8)
            following = deque[1:] + [new]
            ends = t == length - 1
            terminated = ends and bool(rng.random() < 0.5)
            out.append((np.concatenate(deque), rng.normal(size=act_dim).astype(np.float32), float(rng.normal()),
                        np.concatenate(following), terminated, ends and not terminated,
                        rng.normal(size=act_dim).astype(np.float32)))
            deque = following
    return out


def expected_window(transitions, first: int, n: int):
    """The window starting at transition `first`, computed from the full stacks."""
    window = transitions[first:first + n]
    last = n - 1
    for k, (_, _, _, _, terminated, truncated, _) in enumerate(window):
        if terminated or truncated:
            last = k
            break
    return window[0][0], window[last][3], last, window


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(8, 60), stack=st.integers(1, 4), n=st.integers(1, 4),
       lengths=st.lists(st.integers(1, 12), min_size=1, max_size=12), seed=st.integers(0, 10_000))
def test_samples_equal_the_full_stacks_of_the_live_transitions(capacity, stack, n, lengths, seed):
    transitions = episodes_of(np.random.default_rng(seed), lengths, stack)
    replay = FrameReplay(SHAPE, stack, 2, capacity)
    for transition in transitions:
        replay.add(*transition)
    live = len(replay)
    # every frame is kept once: the live transitions' frames fit the ring, the newest ones stay
    assert 0 < live <= capacity and replay.transitions_written == len(transitions)
    frames_needed = live + sum(1 for i in range(len(transitions) - live, len(transitions))
                               if i == 0 or transitions[i - 1][4] or transitions[i - 1][5])
    assert frames_needed <= capacity or live == 1
    if live < n:
        with pytest.raises(ValueError, match="cannot sample windows"):
            replay.sample(4, n)
        return
    generator = torch.Generator().manual_seed(seed)
    twin = torch.Generator().manual_seed(seed)
    batch = replay.sample(32, n, generator=generator)
    starts = torch.randint(0, live - n + 1, (32,), generator=twin).tolist()
    assert batch.obs.dtype == batch.next_obs.dtype == torch.uint8
    assert batch.obs.shape == (32, stack * SHAPE[0], *SHAPE[1:])
    for b, start in enumerate(starts):
        obs, next_obs, last, window = expected_window(transitions, len(transitions) - live + start, n)
        assert np.array_equal(batch.obs[b].numpy(), obs)  # exact: uint8 in, uint8 out
        assert np.array_equal(batch.next_obs[b].numpy(), next_obs)
        assert int(batch.last[b]) == last
        rewards = torch.tensor([w[2] for w in window], dtype=torch.float32)
        actions = torch.tensor(np.stack([w[1] for w in window]))
        flags = torch.tensor([[float(w[4]) for w in window], [float(w[5]) for w in window]])
        got_reward = batch.reward[b] if n > 1 else batch.reward[b:b + 1]
        got_action = batch.action[b] if n > 1 else batch.action[b:b + 1]
        got_flags = torch.stack([batch.terminated[b], batch.truncated[b]]).reshape(2, -1)
        torch.testing.assert_close(got_reward, rewards)
        torch.testing.assert_close(got_action, actions)
        torch.testing.assert_close(got_flags, flags)


def test_long_episodes_keep_almost_every_frame_live():
    """Episodes of L decisions store L + 1 frames: capacity * L / (L + 1) transitions stay live."""
    replay = FrameReplay(SHAPE, 3, 2, capacity=101)
    for transition in episodes_of(np.random.default_rng(0), [100] * 5, 3):
        replay.add(*transition)
    assert len(replay) in (99, 100)
    assert replay.frames.dtype == torch.uint8
    allocated = sum(t.nbytes for t in (replay.frames, replay.obs_frames, replay.new_frame, replay.action,
                                       replay.policy_action, replay.reward, replay.terminated, replay.truncated))
    assert FrameReplay.bytes_needed(SHAPE, 101, 2, 3) == allocated
    # DrQ-v2's 1M-frame buffer of 84x84 RGB frames: about 21 GB, almost all of it the frames
    assert FrameReplay.bytes_needed((3, 84, 84), 1_000_000, 6, 3) / 1e9 == pytest.approx(21.2, abs=0.1)


def test_checkpoint_round_trip_continues_exactly():
    transitions = episodes_of(np.random.default_rng(1), [7, 9, 4, 11, 6], 3)
    replay = FrameReplay(SHAPE, 3, 2, capacity=20)
    for t in transitions[:20]:  # stops inside an episode
        replay.add(*t)
    restored = FrameReplay(SHAPE, 3, 2, capacity=20, seed=99)
    restored.load_state_dict(replay.state_dict())
    for t in transitions[20:]:
        replay.add(*t)
        restored.add(*t)
    for a, b in zip(replay.sample(16, 3), restored.sample(16, 3)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="layout mismatch"):
        FrameReplay(SHAPE, 2, 2, capacity=20).load_state_dict(replay.state_dict())


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="room for more than one stack"):
        FrameReplay(SHAPE, 3, 2, capacity=4)
    with pytest.raises(ValueError, match="stack must be >= 1"):
        FrameReplay(SHAPE, 0, 2, capacity=10)


def test_a_replay_too_big_for_the_gpu_stays_in_host_memory_and_hands_batches_over():
    """A GPU agent's frame replay lives on the GPU where it takes at most half the free memory there,
    else in host memory with each batch copied to the agent's device (here the meta device stands
    in for the GPU: the copy's code path, with no GPU)."""
    from sparserl.runs.build import replay_home

    gpu = torch.device("cuda")
    assert replay_home(gpu, needed=10 * 2**30, free=40 * 2**30) == gpu
    assert replay_home(gpu, needed=30 * 2**30, free=40 * 2**30) == torch.device("cpu")
    assert replay_home(torch.device("cpu"), needed=10**15) == torch.device("cpu")
    replay = FrameReplay((3, 8, 8), 2, 1, 50, device="cpu", batch_device="meta")
    obs = np.zeros((6, 8, 8), dtype=np.uint8)
    for t in range(10):
        replay.add(obs, np.zeros(1, np.float32), 1.0, obs, False, t == 9, np.zeros(1, np.float32))
    batch = replay.sample(4, 2)
    assert replay.frames.device.type == "cpu" and all(field.device.type == "meta" for field in batch)
    assert batch.obs.shape == (4, 6, 8, 8) and batch.obs.dtype == torch.uint8
