"""The pixel section of the run configuration: rendering DeepMind Control tasks as observations
(sparserl.envs.pixels) and DrQ-v2's settings (Yarats et al. 2021; sparserl.algos.drqv2). A pixel
setting given to a run that observes state vectors is a mistake, refused by name before any work."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from sparserl.config import checks
from sparserl.config.checks import positive_ints, require
from sparserl.config.sparsity import NetworkSparsity


@dataclass
class Pixels:
    """Observations from pixels: rendered frames of a DeepMind Control task."""

    pixels: bool = False
    """Observe the rendered frames of a DeepMind Control task instead of its state (DrQ-v2)."""
    pixel_size: int = 84
    """Pixels: frame height and width (DrQ-v2: 84)."""
    camera: int | None = None
    """Pixels: camera id; None is DrQ-v2's choice, camera 2 for quadruped tasks and 0 for the others."""
    frame_stack: int = 3
    """Pixels: the last frames the agent sees at once, stacked along the channels (DrQ-v2: 3)."""
    render_quality: Literal["fast", "model"] = "fast"
    """Pixels: fast renders without shadows and multisampling (about 4x faster on a CPU's software
    renderer); model renders with the task's own settings, as DrQ-v2 did."""

    def pixel_settings(self):
        """The environment's PixelSettings (sparserl.envs.pixels), or None for state observations."""
        from sparserl.envs.pixels import PixelSettings

        return PixelSettings(self.pixel_size, self.camera, self.frame_stack, self.render_quality) \
            if self.pixels else None

    def problems(self) -> list[str]:
        from sparserl.algos import ALGORITHMS

        out = self.pixel_settings().problems() if self.pixels else _state_run_problems(self)
        if self.pixels and self.diagnostics_every:
            out.append(f"diagnostics_every must be 0 for a pixel run, got {self.diagnostics_every}: the plasticity "
                       "diagnostics probe state-vector networks")
        if self.algo in ALGORITHMS and isinstance(self.sparsity, NetworkSparsity) and not self.sparsity.problems():
            out += self.sparsity.unused_levels(self.algo, dict(ALGORITHMS.items()))  # an encoder level on state
        if self.algo in ALGORITHMS and ALGORITHMS.get(self.algo).pixels != self.pixels:
            able = [name for name, cls in ALGORITHMS.items() if cls.pixels]
            out.append(f"pixels: {self.algo} learns from state vectors; algorithms that learn from pixels: "
                       f"{', '.join(able) or 'none registered'}" if self.pixels
                       else f"{self.algo} learns from pixels: set pixels true (and a dm_control task)")
        return out


@dataclass
class PixelLearning:
    """DrQ-v2's trunk, augmentation and exploration schedule (Yarats et al. 2021)."""

    feature_dim: int = 50
    """DrQ-v2: width of each network's trunk, Linear -> LayerNorm -> tanh over the encoder's output (50)."""
    std_start: float = 1.0
    """DrQ-v2: exploration std at the first decision (the linear schedule's start: 1.0)."""
    std_end: float = 0.1
    """DrQ-v2: exploration std from `std_duration` decisions on (0.1)."""
    std_duration: int = 500_000
    """DrQ-v2: decisions over which the std falls linearly from std_start to std_end (500 000: its
    medium tasks' linear(1.0, 0.1, 500000))."""
    std_clip: float = 0.3
    """DrQ-v2: clip of the noise added to the actions of the TD target and the actor loss (0.3)."""
    augment_pad: int = 4
    """DrQ-v2: random-shift augmentation, images padded by this and cropped back at a random offset (4)."""

    def problems(self) -> list[str]:
        out = positive_ints(self, "feature_dim", "std_duration")
        out += require(self, ("std_start", "std_end", "std_clip"), checks.non_negative, ">= 0")
        return out + require(self, ("augment_pad",), lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")


PIXEL_SETTINGS = ("pixel_size", "camera", "frame_stack", "render_quality")
"""The Pixels settings that only a run observing pixels reads (`pixels` itself aside)."""


def _state_run_problems(config) -> list[str]:
    defaults = {f.name: f.default for f in fields(Pixels)}
    return [f"{name} = {getattr(config, name)!r} is a pixel setting, but this run observes state vectors; "
            f"set pixels true (a dm_control task, with an algorithm that learns from pixels) or drop it"
            for name in PIXEL_SETTINGS if getattr(config, name) != defaults[name]]
