"""DrQ-v2's pieces against independent computations: the random shift against DrQ-v2's own
grid-sampling formulation, the encoder's sizes, the truncated-normal noise and the std schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sparserl.errors import ConfigError
from sparserl.nets.visual import (
    Encoder,
    Trunk,
    encoder_output_side,
    linear_schedule,
    random_shift,
    shift_offsets,
    truncated_normal_action,
)


def grid_sample_shift(images: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ-v2's formulation: a replicate-padded image sampled bilinearly on a grid of pixel centres
    moved by whole pixels (`shifts` (B, 2) as (x, y) = (column, row))."""
    n, _, h, w = images.shape
    padded = F.pad(images, (pad,) * 4, mode="replicate")
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad, dtype=images.dtype)[:h]
    arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
    base = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)
    grid = base + shifts.view(n, 1, 1, 2).to(images.dtype) * 2.0 / (h + 2 * pad)
    return F.grid_sample(padded, grid, padding_mode="zeros", align_corners=False)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(6, 20), pad=st.integers(1, 4), seed=st.integers(0, 1000))
def test_random_shift_is_drqv2s_grid_shift(size, pad, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(5, 3, size, size, generator=g, dtype=torch.float64) * 255
    offsets = torch.randint(0, 2 * pad + 1, (5, 2), generator=g)
    ours = random_shift(images, offsets, pad)
    theirs = grid_sample_shift(images, offsets.flip(1), pad)  # DrQ-v2's grid is (x, y): column first
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
    centred = random_shift(images, torch.full((5, 2), pad), pad)
    assert torch.equal(centred, images)  # offset pad is no shift at all
    frames = images.to(torch.uint8)  # frames are cropped as they are stored, before they become floats
    assert torch.equal(random_shift(frames, offsets, pad).double(), random_shift(frames.double(), offsets, pad))


def test_shift_offsets_are_uniform_over_the_2pad_plus_1_values():
    offsets = shift_offsets(torch.rand(90_000, 2, generator=torch.Generator().manual_seed(0)), pad=4)
    counts = torch.bincount(offsets.flatten(), minlength=9).float()
    assert counts.numel() == 9 and offsets.min() == 0 and offsets.max() == 8
    assert torch.allclose(counts / counts.sum(), torch.full((9,), 1 / 9), atol=0.005)
    assert int(shift_offsets(torch.tensor([[0.99999999, 0.0]]), pad=4).max()) == 8


def test_encoder_sizes_and_scaling():
    assert encoder_output_side(84) == 35
    encoder = Encoder(9, 84)
    assert encoder.features == 39_200  # DrQ-v2's representation size
    frames = torch.randint(0, 256, (2, 9, 84, 84), dtype=torch.uint8)
    assert encoder(frames).shape == (2, 39_200)
    first = encoder.convs[0]
    expected = F.relu(F.conv2d(frames.float() / 255 - 0.5, first.weight, first.bias, stride=2))
    torch.testing.assert_close(encoder.convs[1](first(frames.float() / 255 - 0.5)), expected)
    with pytest.raises(ConfigError, match="reduce 14 x 14 frames to nothing"):
        Encoder(9, 14)
    trunk = Trunk(39_200, 50)
    out = trunk(encoder(frames))
    assert out.shape == (2, 50) and out.abs().max() <= 1.0


def test_truncated_normal_clips_the_noise_and_keeps_the_gradient_at_the_bounds():
    loc = torch.tensor([0.0, 0.0, 0.9, -0.95], requires_grad=True)
    noise = torch.tensor([0.5, -3.0, 3.0, -3.0])
    action = truncated_normal_action(loc, 0.2, noise, clip=0.3)
    expected = torch.tensor([0.1, -0.3, 1.0 - 1e-6, -1.0 + 1e-6])
    torch.testing.assert_close(action.detach(), expected)
    action.sum().backward()
    assert torch.equal(loc.grad, torch.ones(4))  # straight through the clamp
    unclipped = truncated_normal_action(torch.zeros(1), 0.2, torch.tensor([2.0]), clip=None)
    torch.testing.assert_close(unclipped, torch.tensor([0.4]))


def test_linear_std_schedule():
    assert linear_schedule(1.0, 0.1, 500_000, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 500_000, 250_000) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 500_000, 2_000_000) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 0, 10) == pytest.approx(0.1)
