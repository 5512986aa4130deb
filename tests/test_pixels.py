"""DeepMind Control from pixels: frames as the camera renders them, uint8 and channel-first, stacked
as DrQ-v2 stacks them, rendered once per decision; bad pixel settings refused before any work."""

from __future__ import annotations

import numpy as np
import pytest

from sparserl.envs import make_env
from sparserl.envs.pixels import PixelSettings, require_offscreen_gl
from sparserl.errors import EnvError

TASK = "dm_control/cartpole-swingup-v0"


def test_frames_are_the_cameras_render_stacked_and_rendered_once_per_decision(monkeypatch):
    from dm_control.mujoco import Camera

    renders = []
    render = Camera.render
    monkeypatch.setattr(Camera, "render", lambda self, *a, **k: renders.append(1) or render(self, *a, **k))
    env = make_env(TASK, action_repeat=2, pixels=PixelSettings(size=32, frame_stack=3))
    physics = env.unwrapped._env.physics
    obs, _ = env.reset(seed=3)
    assert obs.shape == (9, 32, 32) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert np.array_equal(obs[0:3], obs[3:6]) and np.array_equal(obs[3:6], obs[6:9])  # a reset repeats its frame
    previous = obs
    for _ in range(4):
        # the newest frame is the one dm_control's own render draws (the kept camera re-posed), channels first
        assert np.array_equal(obs[6:9], physics.render(32, 32, camera_id=0).transpose(2, 0, 1))
        obs, *_ = env.step(np.array([0.8], dtype=np.float32))
        assert np.array_equal(obs[:6], previous[3:])  # the stack shifts by one frame per decision
        assert not np.array_equal(obs[6:9], previous[6:9])  # a new frame, not the camera's last buffer again
        previous = obs
    assert len(renders) == 5 + 4  # one per reset or decision (not per repeated physics step), and the checks'
    assert not np.array_equal(obs[0:3], obs[6:9])  # the pole moved
    env.close()


def test_fast_rendering_drops_shadows_and_multisampling_only():
    frames = {}
    for quality in ("fast", "model"):
        env = make_env(TASK, pixels=PixelSettings(size=48, quality=quality), seed=1)
        frames[quality] = env.reset(seed=1)[0].astype(int)
        quality_settings = env.unwrapped._env.physics.model.vis.quality
        assert (quality_settings.shadowsize == 0) == (quality == "fast")
        env.close()
    difference = np.abs(frames["fast"] - frames["model"]).mean()
    assert 0 < difference < 8  # the same scene, up to shadows and anti-aliasing


def test_drqv2s_camera_choice():
    assert PixelSettings().camera_for("dm_control/quadruped-run-v0") == 2
    assert PixelSettings().camera_for("dm_control/walker-walk-v0") == 0
    assert PixelSettings(camera=1).camera_for("dm_control/quadruped-run-v0") == 1


@pytest.mark.parametrize("env_id, settings, extra, words", [
    ("Pendulum-v1", PixelSettings(), {}, "pixel observations are rendered from DeepMind Control tasks"),
    (TASK, PixelSettings(size=8), {}, "pixel size must be an integer in [16, 1024], got 8"),
    (TASK, PixelSettings(quality="best"), {}, "render quality must be one of fast, model, got 'best'"),
    (TASK, PixelSettings(frame_stack=0), {}, "frame_stack must be an integer >= 1, got 0"),
    (TASK, PixelSettings(camera=7), {}, "has cameras 0..1"),
    (TASK, PixelSettings(), {"time_feature": True}, "the time feature is appended to state vectors"),
])
def test_bad_pixel_settings_are_refused_by_name(env_id, settings, extra, words):
    with pytest.raises(EnvError, match=words.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        make_env(env_id, pixels=settings, **extra)


def test_an_onscreen_gl_backend_is_refused_with_what_to_set(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    with pytest.raises(EnvError, match=r"MUJOCO_GL='glfw'.*set MUJOCO_GL=egl"):
        require_offscreen_gl()
