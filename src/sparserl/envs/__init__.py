"""Environments: any Gymnasium id, and DeepMind Control through Shimmy.

Every environment sparserl builds has a flat float32 Box observation and either a Box action space
rescaled to [-1, 1], so algorithms never see the original action bounds (max_action = 1), or a
Discrete one (for the algorithms that act in it).
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sparserl.errors import EnvError

DMC_PREFIX = "dm_control/"


@dataclass(frozen=True)
class EnvInfo:
    """What networks and buffers need to know about an environment."""

    env_id: str
    obs_dim: int
    act_dim: int
    """Action dimensions, or the number of actions of a discrete action space."""
    max_episode_steps: int | None
    discrete: bool = False
    """The actions are integers in [0, act_dim) instead of vectors in [-1, 1]."""
    obs_shape: tuple[int, ...] = ()
    """The observation's shape where it is not a vector: (3 * frame_stack, size, size) for pixels."""


def _register_dmc(pixels: bool = False) -> None:
    if pixels:
        from sparserl.envs.pixels import require_offscreen_gl

        require_offscreen_gl()
    elif not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "disable"  # no screen: skip dm_control's GLFW probe (state runs never render)
        os.environ["SPARSERL_SET_MUJOCO_GL"] = "1"
    try:
        import shimmy
    except ImportError:
        raise EnvError("DeepMind Control ids need the dmc extra: pip install 'sparserl[dmc]'") from None
    gym.register_envs(shimmy)


def check_env_id(env_id: str, pixels: bool = False) -> None:
    """Raise EnvError (with close names) unless Gymnasium knows env_id. Like gym.make, an id of the
    form "package.module:Name-v0" first imports the module that registers it. `pixels`: the task is
    to be rendered (DeepMind Control only)."""
    if pixels and not env_id.startswith(DMC_PREFIX):
        raise EnvError(f"pixel observations are rendered from DeepMind Control tasks ({DMC_PREFIX}<domain>-<task>-v0); "
                       f"{env_id!r} is not one: drop the pixel option or choose a {DMC_PREFIX} task")
    if env_id.startswith(DMC_PREFIX):
        _register_dmc(pixels)
    if ":" in env_id and not env_id.startswith(DMC_PREFIX):
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvError(f"environment {env_id!r}: cannot import module {module!r}: {exc}") from None
        if name in gym.registry:
            return
        env_id = name
    if env_id in gym.registry:
        return
    known = sorted(gym.registry)
    hint = difflib.get_close_matches(env_id, known, n=5, cutoff=0.5)
    if not hint:  # fall back to case-insensitive matching of the name without version
        stem = env_id.split("-v")[0].lower()
        hint = [k for k in known if stem and stem in k.lower()][:5]
    did_you_mean = f" Did you mean: {', '.join(hint)}?" if hint else ""
    extra = "" if env_id.startswith(DMC_PREFIX) else \
        f" (DeepMind Control tasks are named {DMC_PREFIX}<domain>-<task>-v0 and need the dmc extra.)"
    raise EnvError(f"unknown environment id {env_id!r}.{did_you_mean}{extra}")


class ActionRepeat(gym.Wrapper):
    """Repeat each action `repeat` times, summing the rewards; stops early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class TimeFeature(gym.ObservationWrapper):
    """Append -0.5 + t / T to each observation, where t counts the decisions taken in the episode and
    T is the episode's limit (Pardo et al. 2018, "Time Limits in RL"; Elsayed et al. 2024's time
    feature, there computed one step later): -0.5 at a reset, +0.5 when the limit ends it."""

    def __init__(self, env: gym.Env, limit: int):
        super().__init__(env)
        self.limit, self.t = limit, 0
        box = env.observation_space
        self.observation_space = gym.spaces.Box(np.append(box.low, -0.5).astype(np.float32),
                                                np.append(box.high, 0.5).astype(np.float32), dtype=np.float32)

    def reset(self, **kwargs):
        self.t = 0
        return super().reset(**kwargs)

    def step(self, action):
        self.t += 1
        return super().step(action)

    def observation(self, obs):
        return np.append(obs, np.float32(-0.5 + self.t / self.limit)).astype(np.float32, copy=False)


def make_env(env_id: str, seed: int | None = None, action_repeat: int = 1, time_feature: bool = False,
             pixels=None, **kwargs) -> gym.Env:
    """Build `env_id` with flat float32 observations and, for a Box action space, actions rescaled to
    [-1, 1] (a Discrete one is kept as it is), each action repeated `action_repeat` times, and with
    the time feature appended to observations if `time_feature`. With `pixels` (PixelSettings, a
    DeepMind Control task) the observation is instead the stack of its last rendered frames, uint8
    (3 * frame_stack, size, size), rendered once per decision (sparserl.envs.pixels).

    If `seed` is given the environment is reset once with it and its action space is seeded.
    """
    if action_repeat < 1:
        raise EnvError(f"action_repeat must be >= 1, got {action_repeat}")
    if pixels is not None and (problems := pixels.problems()):
        raise EnvError("; ".join(problems))
    if pixels is not None and time_feature:
        raise EnvError("the time feature is appended to state vectors; a pixel observation has none: drop one of them")
    check_env_id(env_id, pixels is not None)
    env = gym.make(env_id, **kwargs)
    if pixels is None:
        env = _flat_float_observations(env, env_id)
    env = _unit_actions(env, env_id)
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    if pixels is not None:
        from sparserl.envs.pixels import pixel_observations

        env = pixel_observations(env, env_id, pixels)
    if time_feature:
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if not limit:
            env.close()
            raise EnvError(f"{env_id}: the time feature needs an episode time limit, and this environment has none")
        env = TimeFeature(env, -(-limit // action_repeat))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def _flat_float_observations(env: gym.Env, env_id: str) -> gym.Env:
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = gym.wrappers.FlattenObservation(env)
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        env.close()
        raise EnvError(f"{env_id}: sparserl needs a flat Box observation space, got {env.observation_space}")
    if env.observation_space.dtype != np.float32:
        box = env.observation_space
        space = gym.spaces.Box(box.low.astype(np.float32), box.high.astype(np.float32), dtype=np.float32)
        env = gym.wrappers.TransformObservation(env, lambda obs: np.asarray(obs, dtype=np.float32), space)
    return env


def _unit_actions(env: gym.Env, env_id: str) -> gym.Env:
    """A Box action space rescaled to [-1, 1]; a Discrete one as it is."""
    space = env.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    if not discrete and (not isinstance(space, gym.spaces.Box) or len(space.shape) != 1):
        env.close()
        raise EnvError(f"{env_id}: sparserl needs a 1-D Box or a Discrete action space, got {space}")
    if not discrete and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        env.close()
        raise EnvError(f"{env_id}: action bounds must be finite to rescale them to [-1, 1], got {space}")
    if not discrete and not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        ones = np.ones(space.shape, dtype=space.dtype)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    return env


def env_info(env: gym.Env) -> EnvInfo:
    spec, space = env.spec, env.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    return EnvInfo(
        env_id=spec.id if spec is not None else type(env.unwrapped).__name__,
        obs_dim=int(np.prod(env.observation_space.shape)),
        act_dim=int(space.n) if discrete else int(space.shape[0]),
        max_episode_steps=spec.max_episode_steps if spec is not None else None,
        discrete=discrete,
        obs_shape=tuple(env.observation_space.shape) if len(env.observation_space.shape) > 1 else (),
    )


def episode_seed(run_seed: int, episode: int) -> int:
    """Seed of training episode `episode`: every reset is seeded, so a run's environment state at
    an episode boundary is a function of (seed, episode index) alone. This is what lets a resumed
    run continue exactly, for Gymnasium and dm_control environments alike."""
    return int(np.random.SeedSequence([run_seed, episode]).generate_state(1, np.uint32)[0])


__all__ = ["EnvInfo", "check_env_id", "env_info", "episode_seed", "make_env"]
