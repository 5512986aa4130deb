"""Time per environment step of sparse TD3 against dense TD3 (Hopper-v5 sizes), interleaved.

Variants: dense, static 90 %, rigl 90 % (Δ = 10 000, so the cost is the per-step masking; one
topology update is forced inside the measured window to include it), and nm:2:4 re-projected every
step with SR-STE. After a warm-up, segments of every variant run in turn (A B C D A B C D ...) in
this one process; the figure for each variant is the median over rounds of its step time divided
by the dense step time of the same round.

    python benchmarks/sparse_overhead.py [--threads 2] [--rounds 5] [--segment 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from sparserl import hardware
from sparserl.config import Config, NetworkSparsity
from sparserl.runs.trainer import Trainer

VARIANTS = {
    "dense": NetworkSparsity(),
    "static-90": NetworkSparsity(method="static", actor_sparsity=0.9, critic_sparsity=0.9),
    "rigl-90": NetworkSparsity(method="rigl", actor_sparsity=0.9, critic_sparsity=0.9),
    "nm-2:4-srste-dT1": NetworkSparsity(method="nm:2:4", nm_gradient="srste", update_interval=1),
}


def make_trainer(name: str, sparsity: NetworkSparsity, threads: int, warmup: int, folder: str) -> Trainer:
    config = Config(env="Hopper-v5", algo="td3", start_steps=warmup, total_steps=1_000_000, eval_every=10**9,
                    checkpoint_every=10**9, threads=threads, progress=False, tensorboard=False,
                    buffer_size=200_000, sparsity=sparsity, run_dir=f"{folder}/{name}")
    trainer = Trainer(config, config.run_dir)
    trainer.config = config.replace(total_steps=warmup + 200)
    trainer._train_loop()
    return trainer


def train_segment(trainer: Trainer, steps: int) -> float:
    trainer.config = trainer.config.replace(total_steps=trainer.step + steps)
    start = time.perf_counter()
    trainer._train_loop()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--segment", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        trainers = {name: make_trainer(name, cfg, args.threads, args.warmup, folder) for name, cfg in VARIANTS.items()}
        rigl = trainers["rigl-90"].sparsifier
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for r in range(args.rounds):
            for name, trainer in trainers.items():
                if name == "rigl-90" and r == 0:  # make one topology update fall inside the measured window
                    for group in rigl.groups.values():
                        interval = rigl.method.interval()
                        group.step = (group.step // interval + 1) * interval - 10
                times[name].append(train_segment(trainer, args.segment))
            print(f"round {r + 1}: " + "  ".join(f"{n} {t[-1] * 1e3:.2f} ms" for n, t in times.items()))
        assert sum(g.flips.sum().item() for g in rigl.groups.values()) > 0, "no RigL update was measured"
    ratios = {name: statistics.median(t / d for t, d in zip(times[name], times["dense"])) for name in VARIANTS}
    print()
    for name in VARIANTS:
        print(f"{name:<18} {statistics.median(times[name]) * 1e3:6.2f} ms/step   {ratios[name]:.3f}x dense")
    worst = max(v for k, v in ratios.items() if k != "dense")
    for name in VARIANTS:
        if name != "dense":
            print(f"RESULT overhead_{name.replace(':', '_').replace('-', '_')} {ratios[name]:.3f}")
    print(f"RESULT sparse_overhead_max {worst:.3f}")


if __name__ == "__main__":
    main()
