"""Visual RL costs on this machine: rendering DeepMind Control frames headless, the environment's
frames/s from pixels, and DrQ-v2's update and frame-replay sampling.

Measured, interleaved round by round (A B A B ...), medians over rounds:

- render: frames/s of `physics.render` at each `--sizes` for `fast` (no shadow map, no
  multisampling) and `model` rendering (the task's own settings), MUJOCO_GL=egl;
- env: frames/s of a pixel environment stepping random actions (action repeat 2: two physics
  frames per decision, one render per decision), fast rendering;
- update: ms per DrQ-v2 update (and updates/s) at batch `--batch` on 84 x 84 frame stacks
  (1024-wide heads, n-step 3), and ms per frame-replay sample of that batch (the stacks gathered at
  sampling time);
- sparse: ms per update at `--sparse-batch` of the dense agent against a fixed random 90 % mask on
  encoder, trunks and heads (ERK) under `--execution dense|csr|auto` (on the CPU; masked dense on a
  GPU), interleaved. CSR kernels reach the trunks' and heads' linear layers; the convolutions run as
  dense products under every execution;
- run (`--parts ... run`): a DrQ-v2 training run from pixels for `--run-decisions` at the paper's
  settings on `--device`: physics frames/s end to end, and the peak GPU memory on a GPU.

    python benchmarks/visual.py [--parts render env update sparse run] [--device cpu|cuda]
                                [--task dm_control/cartpole-swingup-v0] [--rounds 3] [--sizes 84 64]
                                [--batch 256] [--sparse-batch 64] [--run-decisions 4000] [--threads 1]

Ends with a RESULT line per figure measured: render_fps_fast_84, render_fps_model_84,
render_fast_speedup_84, env_frames_per_s, drqv2_update_ms, drqv2_updates_per_s,
frame_replay_sample_ms, drqv2_update_ms_{dense_network,sparse90_dense,sparse90_csr,sparse90_auto},
drqv2_sparse90_csr_speedup, drqv2_run_frames_per_s, drqv2_run_gpu_memory_gib.
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


def drqv2_setup(act_dim: int, batch: int, device: str = "cpu", sparsity=None, execution: str = "dense"):
    """A DrQ-v2 agent at its paper's sizes on 84 x 84 stacks (optionally masked, its layers run by
    `execution`) and a frame replay of 2 000 random transitions on `device`."""
    from sparserl.algos.drqv2 import DrQV2
    from sparserl.config import Config
    from sparserl.envs import EnvInfo
    from sparserl.replay import FrameReplay
    from sparserl.runs.build import build_agent

    info = EnvInfo("dm_control/cartpole-swingup-v0", 9 * 84 * 84, act_dim, 500, obs_shape=(9, 84, 84))
    config = Config(**{**DrQV2.defaults, "algo": "drqv2", "batch_size": batch, "device": device,
                       "execution": execution, "sparsity": sparsity or "dense"})
    torch.manual_seed(0)
    agent, sparsifier = build_agent(config, info)
    if sparsifier is not None:
        sparsifier.execute_sparse(execution, batch)
    replay = FrameReplay((3, 84, 84), 3, act_dim, 5_000, device=device)
    rng = np.random.default_rng(0)
    obs = np.tile(rng.integers(0, 256, (3, 84, 84), dtype=np.uint8), (3, 1, 1))
    for t in range(2_000):
        frame = rng.integers(0, 256, (3, 84, 84), dtype=np.uint8)
        following = np.concatenate([obs[3:], frame])
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)
        replay.add(obs, action, float(rng.normal()), following, False, t % 500 == 499, action)
        obs = following
    return agent, replay


SPARSE_90 = {"method": "static", "encoder_sparsity": 0.9, "actor_sparsity": 0.9, "critic_sparsity": 0.9,
             "distribution": "erk"}
"""A fixed random mask on encoder, trunks and heads, 90 % of each network (ERK budgets)."""


def sparse_execution(batch: int, rounds: int, repeats: int, device: str) -> dict[str, float]:
    """ms per update of the dense agent and of the 90 %-masked one under each execution, interleaved
    round by round (medians). CSR kernels reach the trunks and heads; the convolutions stay dense products."""
    setups = {"dense network": drqv2_setup(1, batch, device)}
    executions = ("dense", "csr", "auto") if device == "cpu" else ("dense",)
    setups.update({f"90 % {e}": drqv2_setup(1, batch, device, SPARSE_90, e) for e in executions})
    times = {name: [] for name in setups}
    for r in range(rounds):
        for name, (agent, replay) in setups.items():
            times[name].append(timed(lambda a=agent, b=replay: a.update(b.sample(batch, 3)), repeats, device))
        print(f"sparse execution round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f} ms" for n, v in times.items()),
              flush=True)
    return {name: statistics.median(v) for name, v in times.items()}


def short_run(task: str, decisions: int, device: str, folder: str) -> tuple[float, float, float | None]:
    """A DrQ-v2 training run from 84 x 84 pixels at its paper's settings (1 000 exploration decisions):
    (physics frames/s, seconds, peak GPU memory in GiB or None on the CPU)."""
    from sparserl.config import resolve_config
    from sparserl.runs.api import train

    config = resolve_config("drqv2", env=task, total_steps=decisions, start_steps=min(1_000, decisions // 2),
                            buffer_size=max(decisions, 1_000), eval_every=decisions, eval_episodes=1, device=device,
                            progress=False, tensorboard=False, checkpoint_every=10**9, run_dir=f"{folder}/run")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return config.action_repeat * decisions / seconds, seconds, memory


def timed(fn, repeats: int, device: str = "cpu") -> float:
    """Milliseconds per call of fn (median of `repeats` calls, after one untimed)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


PARTS = ("render", "env", "update", "sparse", "run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="dm_control/cartpole-swingup-v0")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["render", "env", "update", "sparse"])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[84, 64])
    parser.add_argument("--frames", type=int, default=200, help="frames per render measurement")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sparse-batch", type=int, default=64, help="batch of the sparse-execution comparison")
    parser.add_argument("--run-decisions", type=int, default=4_000, help="decisions of the training run (part run)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}; device {args.device}; MUJOCO_GL={os.environ['MUJOCO_GL']}, "
          f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'unset')}")
    results = {}
    if "render" in args.parts or "env" in args.parts or "update" in args.parts:
        results.update(rendering_and_update(args))
    if "sparse" in args.parts:
        ms = sparse_execution(args.sparse_batch, args.rounds, 3, args.device)
        print(f"\n| DrQ-v2 update, batch {args.sparse_batch}, 84 x 84 | ms | updates/s |\n|---|---|---|")
        for name, value in ms.items():
            print(f"| {name} | {value:.0f} | {1000 / value:.2f} |")
        for name, value in ms.items():
            results[f"drqv2_update_ms_{name.replace('90 % ', 'sparse90_').replace(' ', '_')}"] = f"{value:.1f}"
        if "90 % csr" in ms:
            results["drqv2_sparse90_csr_speedup"] = f"{ms['90 % dense'] / ms['90 % csr']:.2f}"
    if "run" in args.parts:
        import tempfile

        try:
            with tempfile.TemporaryDirectory() as folder:
                fps, seconds, memory = short_run(args.task, args.run_decisions, args.device, folder)
        except Exception as exc:  # noqa: BLE001 (a GPU machine without EGL: the other figures still count)
            print(f"training run not measured: {type(exc).__name__}: {exc}")
            fps = None
    if "run" in args.parts and fps is not None:
        print(f"DrQ-v2 training run: {args.run_decisions} decisions in {seconds:.0f} s, {fps:.1f} frames/s"
              + (f", peak GPU memory {memory:.2f} GiB" if memory is not None else ""))
        results["drqv2_run_frames_per_s"] = f"{fps:.1f}"
        if memory is not None:
            results["drqv2_run_gpu_memory_gib"] = f"{memory:.2f}"
    for name, value in results.items():
        print(f"RESULT {name} {value}")


def rendering_and_update(args) -> dict[str, str]:
    """The render rates, the pixel environment's frames/s and the dense update at --batch, interleaved."""
    renders = {(q, s): [] for s in args.sizes for q in ("fast", "model")} if "render" in args.parts else {}
    envs, updates, samples = [], [], []
    agent, replay = drqv2_setup(1, args.batch, args.device) if "update" in args.parts else (None, None)
    for r in range(args.rounds):
        for quality, size in renders:
            renders[(quality, size)].append(render_rate(args.task, size, quality, args.frames))
        if "env" in args.parts:
            envs.append(env_rate(args.task, 200))
        if agent is not None:
            samples.append(timed(lambda: replay.sample(args.batch, 3), 10, args.device))
            updates.append(timed(lambda: agent.update(replay.sample(args.batch, 3)), 5, args.device))
        print(f"round {r + 1}: " + ", ".join(f"render {q} {s}: {v[-1]:.1f}/s" for (q, s), v in renders.items())
              + (f"; env {envs[-1]:.1f} frames/s" if envs else "")
              + (f"; sample {samples[-1]:.1f} ms; update {updates[-1]:.0f} ms" if updates else ""), flush=True)
    out = {}
    if renders:
        median = {key: statistics.median(v) for key, v in renders.items()}
        speedups = [statistics.median(f / m for f, m in zip(renders[("fast", s)], renders[("model", s)]))
                    for s in args.sizes]
        print("\n| size | fast frames/s | model frames/s | fast / model |\n|---|---|---|---|")
        for size, speedup in zip(args.sizes, speedups):
            print(f"| {size} | {median[('fast', size)]:.1f} | {median[('model', size)]:.1f} | {speedup:.2f}x |")
        main_size = args.sizes[0]
        out[f"render_fps_fast_{main_size}"] = f"{median[('fast', main_size)]:.1f}"
        out[f"render_fps_model_{main_size}"] = f"{median[('model', main_size)]:.1f}"
        out[f"render_fast_speedup_{main_size}"] = f"{speedups[0]:.2f}"
    if envs:
        out["env_frames_per_s"] = f"{statistics.median(envs):.1f}"
    if updates:
        out["drqv2_update_ms"] = f"{statistics.median(updates):.1f}"
        out["drqv2_updates_per_s"] = f"{1000 / statistics.median(updates):.3f}"
        out["frame_replay_sample_ms"] = f"{statistics.median(samples):.2f}"
    return out


if __name__ == "__main__":
    main()
