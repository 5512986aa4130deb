"""DeepMind Control from pixels (DrQ-v2's setting, Yarats et al. 2021): each decision's observation
is the task rendered by a camera, uint8 (3, size, size), and the agent sees the last `frame_stack`
frames stacked along the channels (a reset fills the stack with copies of its first frame).

Rendering is headless through MuJoCo's EGL backend (`MUJOCO_GL=egl`): a GPU driver's EGL on a GPU
machine, Mesa's software renderer (llvmpipe) on a CPU one. On a CPU most of a frame's cost is the
scene's shadow map and multisampling, not its size; `quality="fast"` renders without both (about
4x faster on llvmpipe, frames differing by about 1/255 per pixel on average), `quality="model"`
with the task's own settings, as DrQ-v2 rendered them. One camera (and its scene) serves every
frame of an environment: dm_control's `physics.render` builds and frees a scene per call, which
cost more than drawing a small frame.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sparserl.errors import EnvError

RENDER_QUALITIES = ("fast", "model")
OFFSCREEN_BACKENDS = ("egl", "osmesa")


@dataclass(frozen=True)
class PixelSettings:
    size: int = 84
    """Frame height and width (DrQ-v2: 84)."""
    camera: int | None = None
    """Camera id; None: DrQ-v2's choice, camera 2 for quadruped tasks, else camera 0."""
    frame_stack: int = 3
    """Frames the agent sees at once (DrQ-v2: 3)."""
    quality: str = "fast"
    """fast (no shadows, no multisampling) or model (the task's own rendering settings)."""

    def camera_for(self, env_id: str) -> int:
        if self.camera is not None:
            return self.camera
        return 2 if env_id.split("/")[-1].startswith("quadruped") else 0

    def problems(self) -> list[str]:
        out = []
        if not (isinstance(self.size, int) and 16 <= self.size <= 1024):
            out.append(f"pixel size must be an integer in [16, 1024], got {self.size!r}")
        if not (isinstance(self.frame_stack, int) and self.frame_stack >= 1):
            out.append(f"frame_stack must be an integer >= 1, got {self.frame_stack!r}")
        if self.quality not in RENDER_QUALITIES:
            out.append(f"render quality must be one of {', '.join(RENDER_QUALITIES)}, got {self.quality!r}")
        if self.camera is not None and not (isinstance(self.camera, int) and self.camera >= -1):
            out.append(f"camera must be an integer >= -1 (-1: the free camera), got {self.camera!r}")
        return out


def require_offscreen_gl() -> None:
    """Choose EGL unless an offscreen backend is set; refuse a backend that cannot render headless.
    dm_control reads MUJOCO_GL when it is first imported: sparserl's own "disable" (set for state
    runs without a screen) is replaced while dm_control is not imported yet."""
    imported = "dm_control.mujoco" in sys.modules
    if "MUJOCO_GL" not in os.environ or (os.environ.get("SPARSERL_SET_MUJOCO_GL") and not imported):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.pop("SPARSERL_SET_MUJOCO_GL", None)
    backend = os.environ["MUJOCO_GL"]
    if backend not in OFFSCREEN_BACKENDS:
        already = " (this process imported dm_control with it already)" if imported else ""
        raise EnvError(f"pixel observations render offscreen, but MUJOCO_GL={backend!r}{already}; set MUJOCO_GL=egl "
                       f"(GPU drivers, or Mesa's software renderer on a CPU) or MUJOCO_GL=osmesa")


class PixelObservation(gym.ObservationWrapper):
    """Replaces a dm_control task's state by the frame its camera renders, uint8 (3, size, size)."""

    def __init__(self, env: gym.Env, env_id: str, settings: PixelSettings):
        super().__init__(env)
        self.size, self.camera = settings.size, settings.camera_for(env_id)
        self.physics = env.unwrapped._env.physics  # (Shimmy's dm_control wrapper)
        if settings.quality == "fast":  # before the first render creates the rendering context
            self.physics.model.vis.quality.shadowsize = 0
            self.physics.model.vis.quality.offsamples = 0
        if not -1 <= self.camera < self.physics.model.ncam:
            raise EnvError(f"{env_id} has cameras 0..{self.physics.model.ncam - 1} (and -1, the free camera); "
                           f"got camera {self.camera}")
        self.observation_space = gym.spaces.Box(0, 255, (3, self.size, self.size), dtype=np.uint8)
        self._view = None  # the camera, made at the first frame (its scene is re-posed for each frame)

    def observation(self, obs) -> np.ndarray:
        try:
            if self._view is None:
                from dm_control.mujoco import Camera

                self._view = Camera(self.physics, self.size, self.size, camera_id=self.camera)
            frame = self._view.render()
        except Exception as exc:  # the backend failed to create a context: name what to change
            raise EnvError(f"rendering with MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed ({type(exc).__name__}: "
                           f"{exc}); install an EGL driver (libegl1 and Mesa on a CPU machine) or set "
                           f"MUJOCO_GL=osmesa with OSMesa installed") from None
        return frame.transpose(2, 0, 1).copy()  # the camera reuses its buffer for the next frame

    def close(self):
        if self._view is not None:
            self._view.scene.free()
            self._view = None
        super().close()


class FrameStack(gym.Wrapper):
    """The last `k` frames along the channels, (3k, H, W) uint8; a reset repeats its frame k times."""

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self.k = k
        space = env.observation_space
        self.observation_space = gym.spaces.Box(0, 255, (space.shape[0] * k, *space.shape[1:]), dtype=np.uint8)
        self._frames: list[np.ndarray] = []

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)
        self._frames = [frame] * self.k
        return np.concatenate(self._frames), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        self._frames = self._frames[1:] + [frame]
        return np.concatenate(self._frames), reward, terminated, truncated, info


def pixel_observations(env: gym.Env, env_id: str, settings: PixelSettings) -> gym.Env:
    """`env` (a dm_control task) observed through its camera, frames stacked."""
    return FrameStack(PixelObservation(env, env_id, settings), settings.frame_stack)
