"""DrQ-v2's networks from pixels (Yarats et al. 2021, "Mastering Visual Continuous Control"):

- the encoder: frames scaled to [-0.5, 0.5], four 3x3 convolutions of 32 channels (strides 2, 1,
  1, 1) with ReLU, flattened: 32 * 35 * 35 = 39 200 features from 84 x 84 frames;
- a trunk per network: Linear(features -> 50) -> LayerNorm -> tanh;
- random-shift augmentation: each image padded by 4 (edge pixels repeated) and cropped back at a
  random integer offset in [0, 8] along each axis (DrQ-v2 shifts a sampling grid by whole pixels,
  which is this crop);
- the truncated-normal action noise: loc + clip(std * N(0, 1), -c, c), clamped to the action
  bounds with a straight-through gradient.

Convolutions and linear layers start orthogonal (ReLU gain for convolutions), biases at zero.
"""

from __future__ import annotations

import torch
from torch import nn

from sparserl.errors import ConfigError
from sparserl.nets.layers import Linear

CHANNELS, KERNEL, STRIDES = 32, 3, (2, 1, 1, 1)


def feature_map_sides(size: int) -> list[int]:
    """The side of each convolution's output for `size` x `size` frames (41, 39, 37, 35 for 84)."""
    sides = [size]
    for stride in STRIDES:
        sides.append((sides[-1] - KERNEL) // stride + 1)
    return sides[1:]


def encoder_output_side(size: int) -> int:
    """The side of the encoder's last feature map for `size` x `size` frames (35 for 84)."""
    return feature_map_sides(size)[-1]


def orthogonal_init(module: nn.Module) -> None:
    """DrQ-v2's initialisation: orthogonal weights (ReLU gain for convolutions), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(m.weight.data, nn.init.calculate_gain("relu") if isinstance(m, nn.Conv2d) else 1.0)
            if m.bias is not None:
                m.bias.data.zero_()


class Encoder(nn.Module):
    """uint8 stacks (B, channels, size, size) -> (B, features)."""

    def __init__(self, in_channels: int, size: int):
        super().__init__()
        side = encoder_output_side(size)
        if side < 1:
            raise ConfigError(f"the encoder's four 3x3 convolutions (strides 2, 1, 1, 1) reduce {size} x {size} frames "
                              f"to nothing; use frames of at least 15 pixels a side (DrQ-v2: 84)")
        layers, channels = [], in_channels
        for stride in STRIDES:
            layers += [nn.Conv2d(channels, CHANNELS, KERNEL, stride=stride), nn.ReLU()]
            channels = CHANNELS
        self.convs, self.size = nn.Sequential(*layers), size
        self.features = CHANNELS * side * side
        orthogonal_init(self)

    def weight_uses(self) -> dict[str, int]:
        """Each convolution's output positions: the times its weights are applied per frame stack."""
        convs = [name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]
        return {f"{name}.weight": side * side for name, side in zip(convs, feature_map_sides(self.size))}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # channels-last: oneDNN's convolutions forward and backward took 1.24x less time than on
        # channels-first tensors (an update's encoder passes, 24 x 24, batch 64, one Zen 3 core); the
        # features are flattened in (channel, row, column) order still
        x = (obs.float() / 255.0 - 0.5).contiguous(memory_format=torch.channels_last)
        return self.convs(x).flatten(1)


class Trunk(nn.Module):
    """Linear(features -> dim) -> LayerNorm -> tanh: each network's own view of the encoding."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.linear, self.norm = Linear(features, dim), nn.LayerNorm(dim)  # CSR-executable (--execution)
        orthogonal_init(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.linear(h)))


def random_shift(images: torch.Tensor, offsets: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Each image of (B, C, H, W) padded by `pad` (edge pixels repeated) and cropped back to H x W
    at its (row, column) offset in `offsets` (B, 2), integers in [0, 2 pad]. Repeating the edge is
    clamping the source index, so no padded copy is made: one gather, of any dtype (uint8 frames are
    cropped before they become floats; 3x faster than indexing a padded float copy at 84 x 84)."""
    b, c, h, w = images.shape
    rows = (offsets[:, 0, None] - pad + torch.arange(h, device=images.device)).clamp_(0, h - 1)  # (B, H)
    cols = (offsets[:, 1, None] - pad + torch.arange(w, device=images.device)).clamp_(0, w - 1)  # (B, W)
    source = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return images.reshape(b, c, h * w).gather(2, source).view(b, c, h, w)


def shift_offsets(uniform: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Offsets for `random_shift` from uniform [0, 1) draws of shape (B, 2): each of the 2 pad + 1
    values equally likely."""
    return (uniform * (2 * pad + 1)).long().clamp_(max=2 * pad)


def truncated_normal_action(loc: torch.Tensor, std: float, noise: torch.Tensor, clip: float | None) -> torch.Tensor:
    """loc + std * noise, the noise clipped to [-clip, clip] (if `clip`), then the action clamped to
    (-1, 1) with the gradient of the unclamped value (DrQ-v2's TruncatedNormal.sample)."""
    eps = noise * std
    if clip is not None:
        eps = eps.clamp(-clip, clip)
    action = loc + eps
    bound = 1.0 - 1e-6
    return action - action.detach() + action.detach().clamp(-bound, bound)


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """DrQ-v2's `linear(start, end, duration)`: from start at step 0 to end at `duration`, then end."""
    mix = min(max(step / duration, 0.0), 1.0) if duration > 0 else 1.0
    return (1.0 - mix) * start + mix * end
