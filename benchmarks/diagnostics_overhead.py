"""Run time with the default diagnostics against none: TD3 on Hopper-v5, runs interleaved.

Both variants are whole short runs (evaluations included) with the same settings except
`diagnostics_every` (the default 5 000 against 0). They alternate A B A B ... in this one process; the
figure is the median over pairs of the run-time ratio. Diagnostics are computed at the first
evaluation after every 5 000 steps, so a run of `--steps` steps pays for steps / 5 000 of them.

    python benchmarks/diagnostics_overhead.py [--threads 1] [--pairs 3] [--steps 15000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from sparserl import hardware
from sparserl.config import Config
from sparserl.runs.api import train


def timed_run(folder: str, name: str, diagnostics_every: int, args) -> float:
    config = Config(env="Hopper-v5", algo="td3", total_steps=args.steps, start_steps=1_000, eval_every=5_000,
                    eval_episodes=5, checkpoint_every=10**9, threads=args.threads, progress=False, tensorboard=False,
                    buffer_size=100_000, diagnostics_every=diagnostics_every, run_dir=f"{folder}/{name}")
    start = time.perf_counter()
    train(config)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # (each run sets it again from its config)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}; {args.steps} steps per run, "
          f"diagnostics every 5 000")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.pairs):
            on = timed_run(folder, f"on-{i}", 5_000, args)
            off = timed_run(folder, f"off-{i}", 0, args)
            ratios.append(on / off)
            print(f"pair {i}: with diagnostics {on:.1f} s, without {off:.1f} s, ratio {on / off:.3f}")
    print(f"median ratio over {args.pairs} pairs: {statistics.median(ratios):.3f}")
    print(f"RESULT diagnostics_overhead {statistics.median(ratios):.4f}")


if __name__ == "__main__":
    main()
