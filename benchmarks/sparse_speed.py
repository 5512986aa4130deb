"""Real speed and size from sparsity: training updates, batch-1 acting and exported bytes, against dense.

(a) TD3 update time (Hopper-v5 sizes: 11 observations, 3 actions; two hidden layers of `width`,
    batch 256) for widths 256/1024/2048: dense against unstructured static masks at 0.5, 0.75,
    0.9, 0.95 (ER budget, the engine's default) and row-wise N:M 2:4, 1:4, 1:8 (masked gradients),
    each sparse agent with `execution=auto` (CSR products wherever they measure faster), on
    sparserl.native's kernels; column s90-pt repeats the 90 % agent on PyTorch's CSR kernels.
(b) Batch-1 action latency of exported actors, `Policy.act` on a numpy observation: the dense export
    against sparse exports loaded with the auto backend, same widths and sparsities.
(c) Bytes of the exported policy files against the dense export.

Every comparison interleaves its variants (A B C ... A B C ...) in this one process and reports the
median over rounds of each variant's time divided by the dense time of the same round.

    python benchmarks/sparse_speed.py [--threads 2] [--rounds 5] [--widths 256 1024 2048]
                                      [--plot docs/benchmarks/sparse_speed.png]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sparserl import hardware, native
from sparserl.algos import make_agent
from sparserl.config import Config, NetworkSparsity
from sparserl.deploy import load_policy
from sparserl.envs import EnvInfo
from sparserl.export import export_actor
from sparserl.replay import ReplayBuffer
from sparserl.sparsity import Sparsifier

OBS, ACT, BATCH = 11, 3, 256
TORCH_S90 = "s90-pt"
"""The 90 % variant again, on PyTorch's CSR kernels instead of sparserl.native's (update only)."""
SPARSE = {
    "s50": NetworkSparsity(method="static", actor_sparsity=0.5, critic_sparsity=0.5),
    "s75": NetworkSparsity(method="static", actor_sparsity=0.75, critic_sparsity=0.75),
    "s90": NetworkSparsity(method="static", actor_sparsity=0.9, critic_sparsity=0.9),
    "s95": NetworkSparsity(method="static", actor_sparsity=0.95, critic_sparsity=0.95),
    "nm2:4": NetworkSparsity(method="nm:2:4", nm_gradient="masked"),
    "nm1:4": NetworkSparsity(method="nm:1:4", nm_gradient="masked"),
    "nm1:8": NetworkSparsity(method="nm:1:8", nm_gradient="masked"),
}


def env_info() -> EnvInfo:
    return EnvInfo("Hopper-v5", OBS, ACT, 1000)


def make(width: int, sparsity: NetworkSparsity | None, execution: str = "auto"):
    """A TD3 agent with a filled replay buffer (random transitions: the cost does not depend on them)."""
    config = Config(env="Hopper-v5", hidden=(width, width), batch_size=BATCH, execution=execution,
                    sparsity=sparsity or NetworkSparsity())
    agent = make_agent(env_info(), config)
    if sparsity is not None:
        sparsifier = Sparsifier(sparsity, seed=0)
        agent.attach_sparsity(sparsifier, 10**6)
        sparsifier.execute_sparse(execution, BATCH)
    buffer = ReplayBuffer(OBS, ACT, 4096, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4096):
        buffer.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), float(rng.normal()), rng.normal(size=OBS),
                   False, False, rng.uniform(-1, 1, ACT))
    return agent, buffer


def time_updates(agent, buffer, updates: int) -> float:
    start = time.perf_counter()
    for _ in range(updates):
        agent.update(buffer.sample(BATCH))
    return (time.perf_counter() - start) / updates


def interleave(variants: dict, measure, rounds: int) -> dict[str, list[float]]:
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, subject in variants.items():
            times[name].append(measure(subject))
    return times


def ratios(times: dict[str, list[float]]) -> dict[str, float]:
    """Speed-up of each variant: median over rounds of dense time / variant time."""
    return {name: statistics.median(d / t for d, t in zip(times["dense"], ts)) for name, ts in times.items()}


def updates_benchmark(width: int, rounds: int) -> dict[str, list[float]]:
    """Update times of dense, every sparse variant (native kernels where built) and, as TORCH_S90,
    the 90 % variant on PyTorch's CSR kernels."""
    variants = {"dense": make(width, None), **{name: make(width, cfg) for name, cfg in SPARSE.items()}}
    with native.disabled():
        variants[TORCH_S90] = make(width, SPARSE["s90"])
    updates = max(2, int(8 * (256 / width) ** 1.5))

    def measure(name: str, count: int) -> float:
        with native.disabled() if name == TORCH_S90 else contextlib.nullcontext():
            return time_updates(*variants[name], count)

    for name in variants:  # warm-up: auto's measurements, first-call allocations
        measure(name, 3)
    return interleave({name: name for name in variants}, lambda name: measure(name, updates), rounds)


def export_variant(folder: Path, width: int, name: str, sparsity: NetworkSparsity | None) -> tuple[Path, Path]:
    """(sparse or dense export, dense export of the same weights) of a trained-shape actor."""
    agent, _ = make(width, sparsity, execution="dense")
    actor = agent.policy
    nm = agent.sparsifier.method.pattern() if agent.sparsifier is not None else None
    compact, dense = folder / f"{name}-{width}.safetensors", folder / f"{name}-{width}-dense.safetensors"
    export_actor(actor, compact, {"bench": name}, "auto", nm)
    export_actor(actor, dense, {"bench": name}, "dense")
    return compact, dense


def act_benchmark(folder: Path, width: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    files = {"dense": export_variant(folder, width, "dense", None)[1]}
    sizes = {}
    for name, cfg in SPARSE.items():
        compact, dense = export_variant(folder, width, name, cfg)
        files[name] = compact
        sizes[name] = compact.stat().st_size / dense.stat().st_size
    policies = {name: load_policy(path, backend="dense" if name == "dense" else "auto") for name, path in files.items()}
    obs = np.random.default_rng(0).normal(size=OBS).astype(np.float32)
    calls = 400 if width <= 1024 else 100

    def measure(policy) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            policy.act(obs)
        return (time.perf_counter() - start) / calls

    for policy in policies.values():
        measure(policy)
    return interleave(policies, measure, rounds), sizes


def plot(path: Path, widths, update_ms, act_us) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, data, title, unit, names in (
            (axes[0], update_ms, "TD3 update (batch 256)", "ms", ("dense", "s75", "s90", "s95", "nm1:8", TORCH_S90)),
            (axes[1], act_us, "exported actor, act at batch 1", "µs", ("dense", "s75", "s90", "s95", "nm1:8"))):
        for name in names:
            label = "s90, PyTorch's CSR kernels" if name == TORCH_S90 else name
            ax.plot(widths, [data[w][name] for w in widths], marker="o", label=label,
                    linestyle="--" if name == TORCH_S90 else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xlabel("hidden width")
        ax.set_ylabel(f"median time ({unit})")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}; {args.rounds} interleaved rounds")
    update_ms, act_us, headline = {}, {}, {}
    names = ["dense", *SPARSE]
    print(f"sparse kernels: {native.status()}")
    print(f"\n{'':>14}" + "".join(f"{n:>9}" for n in [*names, TORCH_S90]))
    with tempfile.TemporaryDirectory() as folder:
        for width in args.widths:
            times = updates_benchmark(width, args.rounds)
            update_ms[width] = {n: statistics.median(t) * 1e3 for n, t in times.items()}
            speed = ratios(times)
            print(f"update w{width:<5} ms" + "".join(f"{update_ms[width][n]:9.2f}" for n in [*names, TORCH_S90]))
            print(f"{'speed-up':>14}" + "".join(f"{speed[n]:9.2f}" for n in [*names, TORCH_S90]))
            times, sizes = act_benchmark(Path(folder), width, args.rounds)
            act_us[width] = {n: statistics.median(t) * 1e6 for n, t in times.items()}
            speed_act = ratios(times)
            print(f"act w{width:<8} µs" + "".join(f"{act_us[width][n]:9.1f}" for n in names))
            print(f"{'speed-up':>14}" + "".join(f"{speed_act[n]:9.2f}" for n in names))
            print(f"{'bytes ratio':>14}{1.0:9.3f}" + "".join(f"{sizes[n]:9.3f}" for n in SPARSE))
            headline[width] = (speed, speed_act, sizes)
    if args.plot is not None:
        plot(args.plot, args.widths, update_ms, act_us)
        print(f"\nplot written to {args.plot}")
    print()
    if 1024 in headline:
        print(f"RESULT act_speedup_w1024_s90 {headline[1024][1]['s90']:.3f}")
    if 2048 in headline:
        print(f"RESULT update_speedup_w2048_s90 {headline[2048][0]['s90']:.3f}")
        print(f"RESULT update_speedup_w2048_s90_pytorch_kernels {headline[2048][0][TORCH_S90]:.3f}")
    width = 1024 if 1024 in headline else args.widths[0]
    print(f"RESULT export_bytes_ratio_1_8 {headline[width][2]['nm1:8']:.3f}")


if __name__ == "__main__":
    main()
