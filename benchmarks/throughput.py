"""Training throughput of sparserl TD3 against Stable-Baselines3 TD3, and against the arithmetic floor.

Both learners use the same settings (Hopper-v5, 256-256 MLPs, batch 256, Adam 3e-4, one update per
environment step, policy delay 2, exploration noise 0.1, the same torch thread count). After a
warm-up, training segments of both run interleaved (A B A B ...) in this one process, so machine
noise hits both alike; the figures are medians over segments, and the speed-up is the median of
the per-round ratios (each pair of segments ran back to back, so slow drift cancels within it).

sparserl runs twice, with its update eager (`--step-compile off`) and compiled (`on`, what `auto`
picks for runs of 50 000 updates or more: sparserl.runs.capture); the headline speed-up is the
compiled one's.

The floor: FLOPs of one TD3 update at these sizes divided by this machine's measured rate for the
dominant GEMM shape (batch x 256 x 256), i.e. the update rate if every matmul ran at that rate and
nothing else cost anything.

    pip install -e ".[bench]"
    python benchmarks/throughput.py [--threads 2] [--rounds 5] [--segment 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sparserl import hardware

ENV = "Hopper-v5"
HIDDEN = (256, 256)
BATCH = 256


def td3_update_flops(obs_dim: int, act_dim: int, hidden=HIDDEN, batch: int = BATCH, policy_delay: int = 2) -> float:
    """Multiply-add FLOPs (2 per MAC) of the GEMMs of one TD3 update, averaged over the policy delay."""

    def layers(i, o):
        sizes = (i, *hidden, o)
        return list(zip(sizes[:-1], sizes[1:]))

    actor, critic = layers(obs_dim, act_dim), layers(obs_dim + act_dim, 1)
    fwd = lambda ls: sum(2 * batch * i * o for i, o in ls)  # noqa: E731
    weight_grad = fwd
    input_grad = lambda ls: sum(2 * batch * i * o for i, o in ls[1:])  # noqa: E731  (no grad into the data)
    critic_step = fwd(actor) + 2 * fwd(critic) + 2 * fwd(critic) + 2 * (weight_grad(critic) + input_grad(critic))
    # actor step: actor forward, Q1 forward, Q1 backward to its input (incl. the action), actor backward
    actor_step = fwd(actor) + fwd(critic) + fwd(critic) + weight_grad(actor) + input_grad(actor)
    return critic_step + actor_step / policy_delay


def gemm_rate(threads: int, repeats: int = 30) -> float:
    """Measured FLOP/s of a BATCH x 256 x 256 fp32 matmul (median over repeats of 50 calls)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(BATCH, HIDDEN[0]), torch.randn(HIDDEN[0], HIDDEN[1])
    out = torch.empty(BATCH, HIDDEN[1])
    for _ in range(50):
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(50):
            torch.mm(a, b, out=out)
        rates.append(50 * 2 * BATCH * HIDDEN[0] * HIDDEN[1] / (time.perf_counter() - start))
    return statistics.median(rates)


class Sparserl:
    def __init__(self, threads: int, warmup: int, run_dir: str, step_compile: str = "off"):
        from sparserl.config import Config
        from sparserl.runs.trainer import Trainer

        self.name = "sparserl" if step_compile == "off" else "sparserl-compiled"
        config = Config(env=ENV, algo="td3", hidden=HIDDEN, batch_size=BATCH, start_steps=warmup,
                        total_steps=warmup, eval_every=10**9, checkpoint_every=10**9, threads=threads,
                        progress=False, tensorboard=False, run_dir=run_dir, buffer_size=200_000,
                        step_compile=step_compile)
        self.trainer = Trainer(config, run_dir)
        self.trainer._train_loop()

    def train(self, steps: int) -> None:
        t = self.trainer
        t.config = t.config.replace(total_steps=t.step + steps)
        t._train_loop()

    def updates_per_second(self, updates: int = 300) -> float:
        update, buffer = self.trainer.learner._update, self.trainer.learner.buffer
        for _ in range(20):
            update(buffer.sample(BATCH))
        start = time.perf_counter()
        for _ in range(updates):
            update(buffer.sample(BATCH))
        return updates / (time.perf_counter() - start)


class StableBaselines3:
    name = "sb3"

    def __init__(self, threads: int, warmup: int):
        import gymnasium as gym
        from stable_baselines3 import TD3
        from stable_baselines3.common.noise import NormalActionNoise

        torch.set_num_threads(threads)
        env = gym.make(ENV)
        act_dim = env.action_space.shape[0]
        self.model = TD3("MlpPolicy", env, learning_rate=3e-4, buffer_size=200_000, learning_starts=warmup,
                         batch_size=BATCH, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
                         action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)),
                         policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5,
                         policy_kwargs={"net_arch": list(HIDDEN)}, device="cpu", seed=0, verbose=0)
        self.model.learn(warmup + 1)

    def train(self, steps: int) -> None:
        self.model.learn(steps, reset_num_timesteps=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both learners")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved segments per learner")
    parser.add_argument("--segment", type=int, default=1000, help="environment steps per segment")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before learning starts")
    args = parser.parse_args()

    import tempfile

    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        eager, compiled = (Sparserl(args.threads, args.warmup, f"{tmp}/{mode}", mode) for mode in ("off", "on"))
        sb3 = StableBaselines3(args.threads, args.warmup)
        learners = (eager, compiled, sb3)
        for learner in learners:  # first learning steps (allocations, optimiser state, compiling) off the clock
            torch.set_num_threads(args.threads)
            learner.train(200)
        rates: dict[str, list[float]] = {learner.name: [] for learner in learners}
        for r in range(args.rounds):
            for learner in learners:
                torch.set_num_threads(args.threads)
                start = time.perf_counter()
                learner.train(args.segment)
                rates[learner.name].append(args.segment / (time.perf_counter() - start))
            print(f"round {r + 1}: " + "   ".join(f"{name} {rate[-1]:7.1f}" for name, rate in rates.items())
                  + " steps/s")
        torch.set_num_threads(args.threads)
        updates = {ours.name: statistics.median(ours.updates_per_second() for _ in range(5))
                   for ours in (eager, compiled)}

    info = eager.trainer.info
    flops = td3_update_flops(info.obs_dim, info.act_dim)
    rate = gemm_rate(args.threads)
    floor = rate / flops
    sps = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {name: [a / b for a, b in zip(rates[name], rates["sb3"])] for name in (eager.name, compiled.name)}
    speedup = {name: statistics.median(r) for name, r in ratios.items()}  # each round's segments ran back to back
    print()
    print(f"env steps/s (median of {args.rounds} segments of {args.segment}): "
          + ", ".join(f"{name} {value:.1f}" for name, value in sps.items()))
    for name, r in ratios.items():
        print(f"{name} vs Stable-Baselines3: {speedup[name]:.2f}x, median of per-round ratios "
              f"{', '.join(f'{x:.2f}' for x in r)}")
    print(f"compiled vs eager update, in training: "
          f"{statistics.median(a / b for a, b in zip(rates[compiled.name], rates[eager.name])):.2f}x")
    print(f"TD3 update at these sizes: {flops / 1e6:.0f} MFLOP; {BATCH}x256x256 GEMM runs at {rate / 1e9:.0f} GFLOP/s")
    for name, value in updates.items():
        print(f"updates/s: {name} {value:.0f}; arithmetic floor {floor:.0f} ({value / floor:.0%} of the floor)")
    print(f"RESULT td3_speedup_vs_sb3 {speedup[compiled.name]:.3f}")
    print(f"RESULT td3_speedup_vs_sb3_eager {speedup[eager.name]:.3f}")
    print(f"RESULT sparserl_td3_env_steps_per_s {sps[compiled.name]:.1f}")
    print(f"RESULT sparserl_td3_env_steps_per_s_eager {sps[eager.name]:.1f}")
    print(f"RESULT sb3_td3_env_steps_per_s {sps['sb3']:.1f}")
    print(f"RESULT sparserl_td3_updates_per_s {updates[compiled.name]:.1f}")
    print(f"RESULT sparserl_td3_updates_per_s_eager {updates[eager.name]:.1f}")
    print(f"RESULT td3_update_floor_per_s {floor:.1f}")


if __name__ == "__main__":
    main()
