"""The checks a GPU machine runs (benchmarks/gpu_check.sh, at most 8 minutes on one GPU):

1. equivalence: a population of 4 TD3 agents updated on the GPU equals the same population updated
   on the CPU (the same minibatches; no target-smoothing noise, so no draws to match), up to float
   rounding;
2. a short population run on the GPU (Pendulum-v1, 4 agents): it learns without a non-finite value;
3. K = 32 TD3 agents on Hopper-v5 (256-256, batch 256): agent-steps/s;
4. a SimBa critic of about 17M parameters (width 1024, 2 blocks, humanoid sizes): one SAC update's
   time dense and with a 90 % static mask (masked dense products);
5. a 2:4 semi-structured training step (`--execution semi_structured`: TD3 nm:2:4 at width 2048,
   bf16, batch 256): its update time against masked dense products, and how far one update's
   parameters are from theirs (where the GPU has no 2:4 kernels, the refusal is printed instead).

`--device cpu --quick` runs the same code at tiny sizes (the suite's smoke test of this script).

    python benchmarks/gpu_check.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from sparserl import hardware


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def equivalence(device: torch.device, updates: int) -> float:
    """Largest relative difference of the critics' parameters between the device and the CPU."""
    from sparserl.algos import make_agent
    from sparserl.config import Config
    from sparserl.envs import EnvInfo
    from sparserl.replay import Batch

    info = EnvInfo("check", obs_dim=11, act_dim=3, max_episode_steps=None)
    config = Config(algo="td3", hidden=(64, 64), population=4, seed=0, policy_noise=0.0)  # no draws to match
    torch.manual_seed(0)
    cpu, gpu = make_agent(info, config.replace(device="cpu")), make_agent(info, config.replace(device=device.type))
    for name, module in gpu.networks.items():
        module.load_state_dict(cpu.networks[name].state_dict())
    generator = torch.Generator().manual_seed(1)
    for _ in range(updates):
        batch = Batch(*(torch.randn(4, 64, *shape, generator=generator) for shape in ((11,), (3,), (), (11,), (3,))),
                      torch.zeros(4, 64), torch.zeros(4, 64))
        cpu.update(batch)
        gpu.update(Batch(*(field.to(device) for field in batch)))
    with torch.no_grad():
        return max(float(((b.cpu() - a).abs() / (a.abs() + 1e-3)).max())
                   for a, b in zip(cpu.critic.parameters(), gpu.critic.parameters()))


def short_run(device: torch.device, steps: int, folder: str) -> float:
    from sparserl.config import Config
    from sparserl.runs.api import train

    config = Config(env="Pendulum-v1", algo="td3", population=4, total_steps=steps, start_steps=steps // 4,
                    hidden=(64, 64), eval_every=steps, eval_episodes=1, progress=False, tensorboard=False,
                    diagnostics_every=0, device=device.type, run_dir=f"{folder}/short")
    start = time.perf_counter()
    train(config)
    return 4 * steps / (time.perf_counter() - start)


def population_rate(device: torch.device, agents: int, steps: int, folder: str, quick: bool) -> float:
    from population import make_trainer, train

    trainer = make_trainer(f"{folder}/pop", 2, 300 if quick else 1000, agents, device=device.type,
                           env="Pendulum-v1" if quick else "Hopper-v5", hidden=(32, 32) if quick else (256, 256))
    train(trainer, 10)
    return agents * steps / train(trainer, steps)


def simba_update_ms(device: torch.device, sparsity: float, width: int, repeats: int) -> tuple[float, int]:
    from sparserl.config import Config, resolve_values
    from sparserl.envs import EnvInfo
    from sparserl.replay import Batch
    from sparserl.runs.build import build_agent

    info = EnvInfo("humanoid", obs_dim=67, act_dim=21, max_episode_steps=None)
    method = {"method": "static", "actor_sparsity": sparsity, "critic_sparsity": sparsity} if sparsity else "dense"
    config = Config(**resolve_values("scaling-simba")).replace(critic_width=width, critic_blocks=2, sparsity=method,
                                                                device=device.type)
    agent = build_agent(config, info)[0]
    params = sum(p.numel() for p in agent.critic.parameters())
    batch = Batch(*(torch.randn(256, *shape, device=device) for shape in ((67,), (21,), (), (67,), (21,))),
                  torch.zeros(256, device=device), torch.zeros(256, device=device))
    times = []
    for i in range(repeats + 3):
        synchronize(device)
        start = time.perf_counter()
        agent.update(batch)
        synchronize(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), params


def semi_structured_step(device: torch.device, width: int, repeats: int) -> tuple[float, float, float] | str:
    """(masked dense ms, semi-structured ms, max relative parameter difference after one update), or why not."""
    from sparserl.algos.draws import Draws
    from sparserl.config import Config
    from sparserl.envs import EnvInfo
    from sparserl.errors import ConfigError
    from sparserl.replay import Batch
    from sparserl.runs.build import build_agent

    info = EnvInfo("hopper", obs_dim=12, act_dim=4, max_episode_steps=None)
    base = Config(algo="td3", hidden=(width, width), sparsity={"method": "nm:2:4", "keep_first_dense": True},
                  precision="bf16", device=device.type, total_steps=1000, start_steps=0)
    try:
        base.replace(execution="semi_structured").validate()
    except ConfigError as exc:
        return str(exc)
    agents = []
    for execution in ("dense", "semi_structured"):
        torch.manual_seed(0)
        agent, sparsifier = build_agent(base.replace(execution=execution), info)
        sparsifier.execute_sparse(execution)
        agent.draws = Draws([1], population=False, device=device)
        agents.append(agent)
    batch = Batch(*(torch.randn(256, *shape, device=device) for shape in ((12,), (4,), (), (12,), (4,))),
                  torch.zeros(256, device=device), torch.zeros(256, device=device))
    for agent in agents:
        agent.update(batch)
    worst = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                for a, b in zip(agents[1].critic.parameters(), agents[0].critic.parameters()))
    times = {0: [], 1: []}
    for i in range(repeats + 3):
        for k, agent in enumerate(agents):  # interleaved
            synchronize(device)
            start = time.perf_counter()
            agent.update(batch)
            synchronize(device)
            if i >= 3:
                times[k].append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1]), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, e.g. on the CPU)")
    args = parser.parse_args()
    device = hardware.resolve_device(args.device)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}, device {device}")
    quick = args.quick
    worst = equivalence(device, 5 if quick else 50)
    print(f"RESULT gpu_population_max_relative_difference {worst:.3g}")
    with tempfile.TemporaryDirectory() as folder:
        print(f"RESULT gpu_short_run_agent_steps_per_s {short_run(device, 400 if quick else 4000, folder):.1f}")
        agents = 2 if quick else 32
        rate = population_rate(device, agents, 20 if quick else 300, folder, quick)
        print(f"RESULT gpu_td3_population_k{agents}_agent_steps_per_s {rate:.1f}")
    width = 64 if quick else 1024
    dense, params = simba_update_ms(device, 0.0, width, 2 if quick else 20)
    sparse, _ = simba_update_ms(device, 0.9, width, 2 if quick else 20)
    print(f"SimBa critic of {params:,} parameters: SAC update {dense:.2f} ms dense, {sparse:.2f} ms at 90 % (masked)")
    print(f"RESULT gpu_simba_update_ms_dense {dense:.3f}")
    print(f"RESULT gpu_simba_update_ms_sparse90 {sparse:.3f}")
    step = semi_structured_step(device, 64 if quick else 2048, 2 if quick else 20)
    if isinstance(step, str):
        print(f"2:4 semi-structured step not run: {step}")
    else:
        masked, semi, worst = step
        print(f"TD3 nm:2:4 update: {masked:.2f} ms masked dense, {semi:.2f} ms semi-structured, "
              f"parameters after one update within {worst:.2g} (relative)")
        print(f"RESULT gpu_semi_structured_speedup {masked / semi:.3f}")
        print(f"RESULT gpu_semi_structured_max_relative_difference {worst:.3g}")


if __name__ == "__main__":
    main()
