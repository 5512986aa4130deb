"""Populations: agent-steps/s of TD3 on Hopper-v5 trained as one population of K agents, against the
single-agent layouts a user would otherwise pick on the same cores, and the population's update
against its arithmetic floor.

Layouts (one round runs each once, in this order, so machine noise hits all alike; figures are
medians over rounds, speed-ups the medians of per-round ratios):

- population K (K = 1, 4, 8, 16) in this process on `--threads` threads, float32, and bfloat16
  autocast where the CPU has bf16 matrix units (or with `--bf16` anyway);
- `--threads` single-agent processes side by side, one thread each (every agent-step of K agents
  costs what it costs them: more processes than cores only take turns);
- one single-agent process on `--threads` threads.

Every learner runs TD3's paper settings (256-256 MLPs, batch 256, one update per step) after
`--warmup` random steps. `population_speedup_k16` divides the K = 16 population's agent-steps/s (the
faster precision) by the best single-agent layout's. `population_floor_ratio` divides the K = 16
population's update time per agent by its floor: the FLOPs of one TD3 update
(benchmarks/throughput.td3_update_flops) over the measured rate of the population's dominant batched
product (2K x 256 x 256 x 256) in that precision.

    python benchmarks/population.py [--threads 2] [--rounds 3] [--segment 300] [--sizes 1 4 8 16] [--bf16]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time

import torch

from sparserl import hardware

ENV, HIDDEN, BATCH = "Hopper-v5", (256, 256), 256


def make_trainer(run_dir: str, threads: int, warmup: int, population: int = 1, precision: str = "fp32",
                 device: str = "cpu", env: str = ENV, hidden=HIDDEN):
    """A trainer past its warm-up, whose `train(steps)` continues for that many more steps."""
    from sparserl.config import Config
    from sparserl.runs.api import trainer_class

    config = Config(env=env, algo="td3", hidden=hidden, batch_size=BATCH, start_steps=warmup, total_steps=warmup,
                    eval_every=10**9, checkpoint_every=10**9, threads=threads, progress=False, tensorboard=False,
                    diagnostics_every=0, run_dir=run_dir, buffer_size=50_000, population=population,
                    precision=precision, device=device)
    trainer = trainer_class(config)(config, run_dir)
    trainer._train_loop()
    return trainer


def train(trainer, steps: int) -> float:
    """Seconds for `steps` more lockstep steps."""
    trainer.config = trainer.config.replace(total_steps=trainer.step + steps)
    torch.set_num_threads(trainer.config.threads)
    start = time.perf_counter()
    trainer._train_loop()
    return time.perf_counter() - start


def _single_worker(connection, run_dir: str, warmup: int) -> None:
    trainer = make_trainer(run_dir, 1, warmup)
    connection.send("ready")
    while (steps := connection.recv()) is not None:
        connection.send(train(trainer, steps))


class SideBySide:
    """`count` single-agent processes of one thread each, stepped together."""

    def __init__(self, count: int, folder: str, warmup: int):
        context = mp.get_context("spawn")
        self.connections, self.processes = [], []
        for i in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_single_worker, args=(theirs, f"{folder}/single-{i}", warmup))
            process.start()
            self.connections.append(ours)
            self.processes.append(process)
        for c in self.connections:
            assert c.recv() == "ready"

    def train(self, steps: int) -> float:
        start = time.perf_counter()
        for c in self.connections:
            c.send(steps)
        for c in self.connections:
            c.recv()
        return time.perf_counter() - start

    def close(self) -> None:
        for c in self.connections:
            c.send(None)
        for p in self.processes:
            p.join()


def update_seconds(trainer, repeats: int = 20) -> float:
    """Median seconds of one batched update of the trainer's agent (no environment)."""
    agent, buffer = trainer.agent, trainer.parts.learner.buffer
    context = trainer.parts.learner._precision
    times = []
    with context:
        for i in range(repeats + 5):
            batch = buffer.sample(BATCH)
            start = time.perf_counter()
            agent.update(batch)
            if i >= 5:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def batched_gemm_rate(members: int, dtype: torch.dtype | None, repeats: int = 15) -> float:
    """FLOP/s of the population's dominant product: `members` (BATCH x 256) @ (256 x 256), batched."""
    a, b = torch.randn(members, BATCH, HIDDEN[0]), torch.randn(members, HIDDEN[0], HIDDEN[1])
    context = torch.autocast("cpu", dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)
    rates = []
    with context:
        for i in range(repeats + 3):
            start = time.perf_counter()
            for _ in range(10):
                torch.bmm(a, b)
            if i >= 3:
                rates.append(10 * 2 * members * BATCH * HIDDEN[0] * HIDDEN[1] / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segment", type=int, default=300, help="lockstep environment steps per segment")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before learning starts")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--bf16", action="store_true", help="measure bf16 even where it is emulated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    units = hardware.cpu_has_bf16_matrix_units()
    precisions = ["fp32"] + (["bf16"] if units or args.bf16 else [])
    print(f"machine: {hardware.describe()}, torch {torch.__version__}")
    print(f"TD3 on {ENV}, {HIDDEN} networks, batch {BATCH}; precisions {', '.join(precisions)}; "
          f"{args.rounds} rounds of {args.segment} steps per layout")
    from sparserl.algos import ALGORITHMS  # noqa: F401  (registries before the spawned workers)

    with tempfile.TemporaryDirectory() as folder:
        populations = {(k, p): make_trainer(f"{folder}/pop-{k}-{p}", args.threads, args.warmup, k, p)
                       for k in args.sizes for p in precisions}
        side = SideBySide(args.threads, folder, args.warmup)
        alone = make_trainer(f"{folder}/alone", args.threads, args.warmup)
        rates: dict[str, list[float]] = {}
        for trainer in (*populations.values(), alone):  # first learning steps off the clock
            train(trainer, 20)
        side.train(20)
        for r in range(args.rounds):
            for (k, p), trainer in populations.items():
                rates.setdefault(f"population K={k} {p}", []).append(k * args.segment / train(trainer, args.segment))
            rates.setdefault(f"{args.threads} single processes, 1 thread each", []).append(
                args.threads * args.segment / side.train(args.segment))
            rates.setdefault(f"1 single process, {args.threads} threads", []).append(
                args.segment / train(alone, args.segment))
            print(f"round {r + 1}: " + "  ".join(f"{name} {values[-1]:.0f}" for name, values in rates.items()))
        side.close()
        largest = max(args.sizes)
        best_precision = max(precisions, key=lambda p: statistics.median(rates[f"population K={largest} {p}"]))
        trainer = populations[(largest, best_precision)]
        per_agent = update_seconds(trainer) / largest
        dtype = torch.bfloat16 if best_precision == "bf16" else None
        info = trainer.info
        from throughput import td3_update_flops

        floor = td3_update_flops(info.obs_dim, info.act_dim) / batched_gemm_rate(2 * largest, dtype)

    print("\nagent-steps/s (median over rounds):")
    for name, values in rates.items():
        print(f"  {name:<40} {statistics.median(values):8.1f}")
    singles = [name for name in rates if "single" in name]
    speedups = [rates[f"population K={largest} {best_precision}"][r] / max(rates[s][r] for s in singles)
                for r in range(args.rounds)]
    speedup = statistics.median(speedups)
    print(f"\nK={largest} {best_precision} population vs the best single-agent layout: {speedup:.2f}x")
    print(f"update per agent {per_agent * 1e3:.2f} ms, floor {floor * 1e3:.2f} ms "
          f"({best_precision} batched products)")
    print(f"RESULT population_speedup_k{largest} {speedup:.3f}")
    print(f"RESULT population_floor_ratio {per_agent / floor:.3f}")
    for p in precisions:
        rate = statistics.median(rates[f"population K={largest} {p}"])
        print(f"RESULT population_agent_steps_per_s_k{largest}_{p} {rate:.1f}")


if __name__ == "__main__":
    main()
