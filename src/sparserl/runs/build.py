"""The composition root: one place that turns a Config into a run's parts (environments, agent,
sparsity engine, replay, learner, diagnostics): a replay learner (sparserl.runs.learner) for the
replay-based algorithms, the streaming learner (sparserl.streaming.learner) for streaming ones.
The trainer, the pre-run sparsity check and the scaling report all build through here, each only
as far as it needs."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import gymnasium as gym
import torch

from sparserl.algos import ALGORITHMS, Agent, make_agent
from sparserl.config import Config
from sparserl.envs import EnvInfo, env_info, make_env
from sparserl.errors import ConfigError
from sparserl.hardware import resolve_device, update_dtype
from sparserl.replay import DynamicCapacity, FrameReplay, ReplayBuffer
from sparserl.runs.capture import wants_compiled_update
from sparserl.runs.learner import Learner, OffPolicyLearner


@dataclass
class Run:
    """A run's parts, built from its config (a population's: an environment pair per agent)."""

    config: Config
    envs: list[gym.Env]
    eval_envs: list[gym.Env]
    info: EnvInfo
    agent: Agent
    sparsifier: object | None
    learner: Learner
    diagnostics: object | None
    """The plasticity diagnostics' probe (sparserl.runs.probe), None when off or streaming."""

    @property
    def env(self) -> gym.Env:
        """The training environment (a population's first agent's)."""
        return self.envs[0]

    @property
    def eval_env(self) -> gym.Env:
        return self.eval_envs[0]

    def close(self) -> None:
        for env in (*self.envs, *self.eval_envs):
            env.close()


def resolve_threads(threads: int) -> int:
    """Torch threads: `threads`, or every core this process may use (0)."""
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_agent(config: Config, info: EnvInfo):
    """The agent, with its networks under the sparsity engine when the run is sparse; (agent, sparsifier)."""
    agent = make_agent(info, config)
    sparsifier = None
    if config.sparsity.enabled:
        from sparserl.sparsity import Sparsifier

        sparsifier = Sparsifier(config.sparsity, seed=config.seed, agents=config.population)
        agent.attach_sparsity(sparsifier, config.learning_updates)
    return agent, sparsifier


def make_run_env(config: Config) -> gym.Env:
    """An environment of the run: its id, action repeat, time feature and pixel observations."""
    return make_env(config.env, action_repeat=config.action_repeat, time_feature=config.time_feature,
                    pixels=config.pixel_settings())


def probe_info(config: Config) -> EnvInfo:
    """The environment's sizes (one environment built and closed)."""
    env = make_run_env(config)
    try:
        return env_info(env)
    finally:
        env.close()


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def frame_shape(config: Config, info: EnvInfo) -> tuple[int, int, int]:
    """One rendered frame's (channels, height, width): the observed stack holds frame_stack of them."""
    return (info.obs_shape[0] // config.frame_stack, *info.obs_shape[1:])


def check_memory(config: Config, info: EnvInfo) -> None:
    """Refuse a replay buffer the machine cannot hold, before anything is written."""
    if ALGORITHMS.get(config.algo).streaming:
        return  # no replay buffer
    if config.pixels:
        needed = frame_replay_bytes(config, info)
        if replay_home(resolve_device(config.device), needed).type == "cuda":
            return  # it fits on the GPU
        what = f"{'x'.join(map(str, frame_shape(config, info)))} uint8 frames, buffer_size counts frames"
    else:
        needed = ReplayBuffer.bytes_needed(info.obs_dim, info.act_dim, config.buffer_size, config.population)
        what = f"{info.obs_dim} observations, {info.act_dim} actions per transition"
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(f"buffer_size {config.buffer_size:,} needs {needed / 2**30:.1f} GiB for the replay buffer "
                          f"({what}), but {available / 2**30:.1f} GiB of memory is available; lower --buffer-size")


def check_sparsity(config: Config, info: EnvInfo | None = None) -> None:
    """Build the networks once and attach the sparsity engine, so an impossible budget or a layer
    left without weights is reported before any work starts."""
    build_agent(config, info or probe_info(config))


def parameter_count(config: Config, info: EnvInfo, networks: tuple[str, ...] = ("actor", "critic")) -> int:
    """Parameters of the named networks (before pruning), from their descriptions: nothing is built."""
    shapes = ALGORITHMS.get(config.algo).architectures(info, config)
    return sum(arch.parameters(members) for name, (arch, members) in shapes.items() if name in networks)


def frame_replay_bytes(config: Config, info: EnvInfo) -> int:
    """Bytes a pixel run's frame replay allocates."""
    return FrameReplay.bytes_needed(frame_shape(config, info), config.buffer_size, info.act_dim, config.frame_stack)


def replay_home(device: torch.device, needed: int, free: int | None = None) -> torch.device:
    """Where a frame replay of `needed` bytes lives for an agent on `device`: on its GPU where the
    buffer takes at most half of the memory free there (`free`, read from the GPU if not given; the
    rest is for the networks and activations), so batches are sampled on the device; else in host
    memory, each batch copied over."""
    if device.type != "cuda":
        return device
    free = torch.cuda.mem_get_info(device)[0] if free is None else free
    return device if needed <= free // 2 else torch.device("cpu")


def make_replay(config: Config, info: EnvInfo, agent: Agent) -> ReplayBuffer | FrameReplay:
    """The replay of a replay-based run: frames stored once for a pixel agent, else transitions."""
    if agent.pixels:
        return FrameReplay(frame_shape(config, info), config.frame_stack, info.act_dim, config.buffer_size,
                           seed=config.seed, device=replay_home(agent.device, frame_replay_bytes(config, info)),
                           batch_device=agent.device)
    return ReplayBuffer(info.obs_dim, info.act_dim, config.buffer_size, seed=config.seed, agents=agent.population,
                        device=agent.device)


def build_run(config: Config) -> Run:
    """Every part of a run, seeded: torch, Python and the environments from config.seed."""
    c = config
    torch.set_num_threads(resolve_threads(c.threads))
    torch.manual_seed(c.seed)
    random.seed(c.seed)
    envs, eval_envs = [make_run_env(c) for _ in range(c.population)], [make_run_env(c) for _ in range(c.population)]
    info = env_info(envs[0])
    agent, sparsifier = build_agent(c, info)
    if sparsifier is not None:
        sparsifier.execute_sparse(c.execution, 2 if agent.streaming else c.batch_size)
    if agent.streaming:
        from sparserl.streaming.capture import wants_compiled
        from sparserl.streaming.learner import StreamingLearner

        learner = StreamingLearner(agent, reward_scaling=c.reward_scaling,
                                   compiled=wants_compiled(c, parameter_count(c, info)))
        return Run(c, envs, eval_envs, info, agent, sparsifier, learner, None)
    buffer = make_replay(c, info, agent)
    capacity = None
    if c.dynamic_buffer:
        capacity = DynamicCapacity(
            buffer, every=c.buffer_check_every, threshold=c.buffer_threshold, min_size=c.buffer_min_size,
            drop_fraction=c.buffer_drop_fraction, samples=c.buffer_check_samples or 8 * c.batch_size,
            until_below=c.buffer_shrink == "until_below")
    learner = OffPolicyLearner(agent, buffer, capacity, seed=c.seed, start_steps=c.start_steps,
                               batch_size=c.batch_size, updates_per_step=c.updates_per_step,
                               update_every=c.update_every,
                               autocast=update_dtype(c.precision, agent.device.type),
                               compiled=wants_compiled_update(c, agent.device))
    diagnostics = None
    if c.diagnostics_every:
        from sparserl.runs.probe import DiagnosticsProbe

        diagnostics = DiagnosticsProbe(c, info, agent, sparsifier)
    return Run(c, envs, eval_envs, info, agent, sparsifier, learner, diagnostics)
