"""Visual RL costs on this machine: rendering DeepMind Control frames headless, the environment's
frames/s from pixels, and DrQ-v2's update and frame-replay sampling.

Measured, interleaved round by round (A B A B ...), medians over rounds:

- render: frames/s of `physics.render` at each `--sizes` for `fast` (no shadow map, no
  multisampling) and `model` rendering (the task's own settings), MUJOCO_GL=egl;
- env: frames/s of a pixel environment stepping random actions (action repeat 2: two physics
  frames per decision, one render per decision), fast rendering;
- update: ms per DrQ-v2 update at batch `--batch` on 84 x 84 frame stacks (1024-wide heads,
  n-step 3), and ms per frame-replay sample of that batch (the stacks gathered at sampling time).

    python benchmarks/visual.py [--task dm_control/cartpole-swingup-v0] [--rounds 3] [--sizes 84 64]
                                [--batch 256] [--threads 1]

Ends with RESULT lines: render_fps_fast_84, render_fps_model_84, render_fast_speedup_84,
env_frames_per_s, drqv2_update_ms, frame_replay_sample_ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sparserl import hardware  # noqa: E402
from sparserl.envs import make_env  # noqa: E402
from sparserl.envs.pixels import PixelSettings  # noqa: E402


def render_rate(task: str, size: int, quality: str, frames: int) -> float:
    env = make_env(task, pixels=PixelSettings(size=size, quality=quality), seed=0)
    physics, camera = env.unwrapped._env.physics, PixelSettings().camera_for(task)
    for _ in range(3):  # the context and its buffers are made on the first renders
        physics.render(size, size, camera_id=camera)
    start = time.perf_counter()
    for _ in range(frames):
        physics.render(size, size, camera_id=camera)
    rate = frames / (time.perf_counter() - start)
    env.close()
    return rate


def env_rate(task: str, decisions: int) -> float:
    """Physics frames per second of a pixel environment at action repeat 2, random actions."""
    env = make_env(task, action_repeat=2, pixels=PixelSettings(), seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(decisions):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    rate = 2 * decisions / (time.perf_counter() - start)
    env.close()
    return rate


def drqv2_setup(act_dim: int, batch: int):
    from sparserl.algos.drqv2 import DrQV2
    from sparserl.config import Config
    from sparserl.envs import EnvInfo
    from sparserl.replay import FrameReplay

    info = EnvInfo("dm_control/cartpole-swingup-v0", 9 * 84 * 84, act_dim, 500, obs_shape=(9, 84, 84))
    config = Config(**{**DrQV2.defaults, "algo": "td3", "pixels": False, "batch_size": batch})
    torch.manual_seed(0)
    agent = DrQV2(info, config)
    replay = FrameReplay((3, 84, 84), 3, act_dim, 5_000)
    rng = np.random.default_rng(0)
    obs = np.tile(rng.integers(0, 256, (3, 84, 84), dtype=np.uint8), (3, 1, 1))
    for t in range(2_000):
        frame = rng.integers(0, 256, (3, 84, 84), dtype=np.uint8)
        following = np.concatenate([obs[3:], frame])
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)
        replay.add(obs, action, float(rng.normal()), following, False, t % 500 == 499, action)
        obs = following
    return agent, replay


def timed(fn, repeats: int) -> float:
    """Milliseconds per call of fn (median of `repeats` calls, after one untimed)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="dm_control/cartpole-swingup-v0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[84, 64])
    parser.add_argument("--frames", type=int, default=200, help="frames per render measurement")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}; MUJOCO_GL={os.environ['MUJOCO_GL']}, LP_NUM_THREADS="
          f"{os.environ.get('LP_NUM_THREADS', 'unset')}")
    renders = {(q, s): [] for s in args.sizes for q in ("fast", "model")}
    envs, updates, samples = [], [], []
    agent, replay = drqv2_setup(1, args.batch)
    for r in range(args.rounds):
        for size in args.sizes:
            for quality in ("fast", "model"):
                renders[(quality, size)].append(render_rate(args.task, size, quality, args.frames))
        envs.append(env_rate(args.task, 200))
        samples.append(timed(lambda: replay.sample(args.batch, 3), 10))
        updates.append(timed(lambda: agent.update(replay.sample(args.batch, 3)), 5))
        print(f"round {r + 1}: " + ", ".join(f"render {q} {s}: {v[-1]:.1f}/s" for (q, s), v in renders.items())
              + f"; env {envs[-1]:.1f} frames/s; sample {samples[-1]:.1f} ms; update {updates[-1]:.0f} ms", flush=True)
    median = {key: statistics.median(v) for key, v in renders.items()}
    speedups = [statistics.median(f / m for f, m in zip(renders[("fast", s)], renders[("model", s)]))
                for s in args.sizes]
    print("\n| size | fast frames/s | model frames/s | fast / model |\n|---|---|---|---|")
    for size, speedup in zip(args.sizes, speedups):
        print(f"| {size} | {median[('fast', size)]:.1f} | {median[('model', size)]:.1f} | {speedup:.2f}x |")
    main_size = args.sizes[0]
    print(f"RESULT render_fps_fast_{main_size} {median[('fast', main_size)]:.1f}")
    print(f"RESULT render_fps_model_{main_size} {median[('model', main_size)]:.1f}")
    print(f"RESULT render_fast_speedup_{main_size} {speedups[0]:.2f}")
    print(f"RESULT env_frames_per_s {statistics.median(envs):.1f}")
    print(f"RESULT drqv2_update_ms {statistics.median(updates):.1f}")
    print(f"RESULT frame_replay_sample_ms {statistics.median(samples):.2f}")


if __name__ == "__main__":
    main()
