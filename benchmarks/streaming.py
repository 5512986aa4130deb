"""Streaming speed: sparserl's Stream AC(lambda) against a plain per-step eager PyTorch
implementation of the same algorithm, and against the environment's own stepping rate (the ceiling).

The baseline is written here the way the paper's pseudo-code reads (Elsayed, Vasan, Mahmood 2024,
and the structure of its released code): nn.Linear modules, torch.distributions.Normal, one
backward per network, ObGD as loops over parameter tensors with the bound computed on the host, the
observation and reward normalisation as NumPy wrappers. It runs the same networks (2 hidden layers,
LayerNorm without affine parameters, leaky ReLU, SparseInit), the same settings and the same
environment (Hopper-v5 with the time feature) on the same number of torch threads.

sparserl runs as a training run does by default (`step_compile auto`: the step compiled as one graph,
sparserl.streaming.capture; its compile happens in the warm-up), and once more with
`step_compile off` (every step eager), to show what the compiled step adds. Segments of the three run
interleaved (A B C A B C ...) in this one process after a warm-up; figures are medians over segments
and each speed-up is the median of the per-round ratios. The ceiling is the environment stepped with
fixed actions and nothing else.

With `--population K ...`, populations of K Stream AC agents (one process, eager: their batched
products share each step's dispatch) run in the same rounds on the same threads, reported as
agent-steps/s and as the ratio to the single agent's default step (`stream_population_speedup_k<K>_w<width>`).

    python benchmarks/streaming.py [--widths 128 1024] [--rounds 5] [--segment 1000] [--threads 1] [--population 4 16]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sparserl import hardware

ENV = "Hopper-v5"


# --- the baseline: Stream AC as the paper's pseudo-code reads -----------------------------------
class PlainObGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1.0, gamma=0.99, lamda=0.8, kappa=2.0):
        super().__init__(params, dict(lr=lr, gamma=gamma, lamda=lamda, kappa=kappa))

    def step(self, delta, reset=False):
        z_sum = 0.0
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["trace"] = torch.zeros_like(p)
                state["trace"].mul_(group["gamma"] * group["lamda"]).add_(p.grad)
                z_sum += state["trace"].abs().sum().item()
        bound = max(abs(delta), 1.0) * z_sum * group["lr"] * group["kappa"]
        alpha = group["lr"] / bound if bound > 1.0 else group["lr"]
        for group in self.param_groups:
            for p in group["params"]:
                p.data.add_(delta * self.state[p]["trace"], alpha=-alpha)
                if reset:
                    self.state[p]["trace"].zero_()


def plain_sparse_init(layer: nn.Linear, sparsity: float = 0.9) -> None:
    fan_in = layer.weight.shape[1]
    bound = math.sqrt(1.0 / fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
        for row in layer.weight:
            row[torch.randperm(fan_in)[: math.ceil(sparsity * fan_in)]] = 0.0
        layer.bias.zero_()


class PlainNet(nn.Module):
    def __init__(self, n_in, n_out, width):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(n_in, width), nn.Linear(width, width), nn.Linear(width, n_out)
        for layer in (self.fc1, self.fc2, self.out):
            plain_sparse_init(layer)

    def forward(self, x):
        x = F.leaky_relu(F.layer_norm(self.fc1(x), (self.fc1.out_features,)))
        x = F.leaky_relu(F.layer_norm(self.fc2(x), (self.fc2.out_features,)))
        return self.out(x)


class PlainStats:
    """Welford mean / variance of the normalisation wrappers."""

    def __init__(self, shape):
        self.mean, self.p, self.count, self.var = np.zeros(shape), np.zeros(shape), 0, np.ones(shape)

    def update(self, x):
        self.count += 1
        old = self.mean
        self.mean = old + (x - old) / self.count
        self.p = self.p + (x - old) * (x - self.mean)
        self.var = self.p / (self.count - 1) if self.count >= 2 else np.ones_like(self.p)


class PlainStreamAC:
    def __init__(self, n_obs, n_act, width, gamma=0.99, lamda=0.8, entropy=0.01):
        self.policy, self.value = PlainNet(n_obs, 2 * n_act, width), PlainNet(n_obs, 1, width)
        self.opt_policy = PlainObGD(self.policy.parameters(), gamma=gamma, lamda=lamda, kappa=3.0)
        self.opt_value = PlainObGD(self.value.parameters(), gamma=gamma, lamda=lamda, kappa=2.0)
        self.gamma, self.entropy, self.n_act = gamma, entropy, n_act
        self.obs_stats, self.reward_stats, self.trace = PlainStats(n_obs - 1), PlainStats(()), 0.0

    def normalise(self, obs):  # the time feature (last) stays as it is
        self.obs_stats.update(obs[:-1])
        return np.append((obs[:-1] - self.obs_stats.mean) / np.sqrt(self.obs_stats.var + 1e-8), obs[-1])

    def scale(self, reward, done):
        self.trace = self.trace * self.gamma * (1 - done) + reward
        self.reward_stats.update(np.array(self.trace))
        return reward / math.sqrt(float(self.reward_stats.var) + 1e-8)

    def dist(self, s):
        out = self.policy(s)
        return torch.distributions.Normal(out[: self.n_act], F.softplus(out[self.n_act:]))

    def sample(self, s):
        with torch.no_grad():
            return self.dist(torch.tensor(s, dtype=torch.float32)).sample().numpy()

    def update(self, s, a, r, s2, terminal, done):
        s, s2, a = (torch.tensor(x, dtype=torch.float32) for x in (s, s2, a))
        v, v2 = self.value(s), self.value(s2)
        delta = r + self.gamma * v2 * (0.0 if terminal else 1.0) - v
        dist = self.dist(s)
        log_prob = -dist.log_prob(a).sum()
        entropy = -self.entropy * dist.entropy().sum() * torch.sign(delta).item()
        self.opt_value.zero_grad()
        self.opt_policy.zero_grad()
        (-v).sum().backward()
        (log_prob + entropy).backward()
        self.opt_policy.step(delta.item(), reset=done)
        self.opt_value.step(delta.item(), reset=done)


class Plain:
    """The baseline's loop: wrappers, sample, step, update."""

    def __init__(self, width, seed):
        from sparserl.envs import make_env

        self.env = make_env(ENV, time_feature=True)
        self.agent = PlainStreamAC(self.env.observation_space.shape[0], self.env.action_space.shape[0], width)
        self.obs = self.agent.normalise(self.env.reset(seed=seed)[0])

    def run(self, steps):
        env, agent, obs = self.env, self.agent, self.obs
        for _ in range(steps):
            action = agent.sample(obs)
            next_obs, reward, terminated, truncated, _ = env.step(np.clip(action, -1, 1))
            done = terminated or truncated
            next_obs = agent.normalise(next_obs)
            agent.update(obs, action, agent.scale(reward, done), next_obs, terminated or truncated, done)
            obs = agent.normalise(env.reset()[0]) if done else next_obs
        self.obs = obs


# --- sparserl: the training loop's own calls ---------------------------------------------------
class Sparserl:
    def __init__(self, width, seed, threads, step_compile="auto"):
        from sparserl.config import resolve_config
        from sparserl.runs.build import build_run

        self.parts = build_run(resolve_config(algo="stream-ac", env=ENV, hidden=[width, width], seed=seed,
                                              threads=threads, step_compile=step_compile))
        self.obs = self.parts.env.reset(seed=seed)[0]
        self.step = 0

    def run(self, steps):
        env, learner, obs = self.parts.env, self.parts.learner, self.obs
        act, observe = learner.act, learner.observe
        for _ in range(steps):
            action, policy_action = act(obs, self.step)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            terminated = terminated or truncated  # the time feature is on: a time limit is terminal
            observe(obs, action, reward, next_obs, terminated, truncated, policy_action, self.step)
            obs = env.reset()[0] if terminated or truncated else next_obs
            self.step += 1
        self.obs = obs


class SparserlPopulation:
    """K agents in lockstep, stepped by the population trainer's own loop (sparserl.population.trainer)."""

    def __init__(self, width, agents, threads):
        import tempfile

        from sparserl.config import resolve_config
        from sparserl.runs.api import trainer_class

        self.folder = tempfile.TemporaryDirectory()
        config = resolve_config(algo="stream-ac", env=ENV, hidden=[width, width], seed=0, threads=threads,
                                population=agents, total_steps=1, eval_every=10**9, checkpoint_every=10**9,
                                progress=False, tensorboard=False, run_dir=self.folder.name)
        self.trainer = trainer_class(config)(config, self.folder.name)
        self.parts = self.trainer.parts

    def run(self, steps):
        trainer = self.trainer
        trainer.config = trainer.config.replace(total_steps=trainer.step + steps)
        trainer._train_loop()  # (each call starts every agent's episode anew)


def env_rate(steps: int) -> float:
    from sparserl.envs import make_env

    env = make_env(ENV, time_feature=True)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def compare(width: int, rounds: int, segment: int, threads: int, populations=()) -> dict[str, float]:
    """Median (agent-)steps/s of sparserl (compiled), sparserl eager, the baseline and each population
    at `width`; the median per-round ratios of the first two to the baseline, and of each population
    to the single agent's default step."""
    torch.manual_seed(0)
    runners = {"ours": Sparserl(width, 0, threads, "on"), "eager": Sparserl(width, 0, threads, "off"),
               "plain": Plain(width, 0)}
    auto = "ours" if auto_compiles(runners["eager"].parts) else "eager"
    runners.update({f"k{k}": SparserlPopulation(width, k, threads) for k in populations})
    agents = {name: int(name[1:]) if name.startswith("k") else 1 for name in runners}
    torch.set_num_threads(threads)
    for name, runner in runners.items():
        runner.run(max(1, segment // 4 // agents[name]))  # warm-up (the compile included)
    rates = {name: [] for name in runners}
    ratios = {"ours": [], "eager": [], **{name: [] for name in runners if name.startswith("k")}}
    for _ in range(rounds):
        for name, runner in runners.items():
            steps = max(1, segment // agents[name])  # about the same agent-steps each
            start = time.perf_counter()
            runner.run(steps)
            rates[name].append(steps * agents[name] / (time.perf_counter() - start))
        for name in ratios:
            ratios[name].append(rates[name][-1] / rates[auto if name.startswith("k") else "plain"][-1])
    out = {name: statistics.median(values) for name, values in rates.items()}
    out.update({f"{name}_ratio": statistics.median(values) for name, values in ratios.items()})
    out["auto"] = auto
    return out


def auto_compiles(parts) -> bool:
    """Whether `step_compile auto` compiles the step of a run of these networks (2M steps)."""
    from sparserl.runs.build import parameter_count
    from sparserl.streaming.capture import wants_compiled

    return wants_compiled(parts.config.replace(step_compile="auto"), parameter_count(parts.config, parts.info))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--segment", type=int, default=1000, help="steps per segment at width 128 (fewer when wider)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--population", type=int, nargs="*", default=[], metavar="K",
                        help="also populations of K agents (agent-steps/s against the single agent)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {hardware.describe()}, torch {torch.__version__}, {ENV} with the time feature")
    ceiling = env_rate(5 * args.segment)
    print(f"environment alone: {ceiling:,.0f} steps/s")
    results = {}
    for width in args.widths:
        segment = max(50, args.segment * 128 // width)
        r = results[width] = compare(width, args.rounds, segment, args.threads, args.population)
        print(f"width {width:>5}: sparserl compiled {r['ours']:8.1f} steps/s ({r['ours_ratio']:.2f}x), eager "
              f"{r['eager']:8.1f} steps/s ({r['eager_ratio']:.2f}x), plain eager {r['plain']:8.1f} steps/s "
              f"(median of {args.rounds} rounds of {segment} steps); auto takes the "
              f"{'compiled' if r['auto'] == 'ours' else 'eager'} step here")
        for k in args.population:
            print(f"             population K = {k:>3}: {r[f'k{k}']:8.1f} agent-steps/s, {r[f'k{k}_ratio']:.2f}x the "
                  f"single agent's default step")
    for width, r in results.items():
        print(f"RESULT stream_steps_per_s_w{width} {r[r['auto']]:.1f}")
        print(f"RESULT stream_compiled_steps_per_s_w{width} {r['ours']:.1f}")
        print(f"RESULT stream_eager_steps_per_s_w{width} {r['eager']:.1f}")
        print(f"RESULT stream_plain_steps_per_s_w{width} {r['plain']:.1f}")
        print(f"RESULT stream_speedup_vs_eager_w{width} {r[r['auto'] + '_ratio']:.3f}")
        for k in args.population:
            print(f"RESULT stream_population_agent_steps_per_s_k{k}_w{width} {r[f'k{k}']:.1f}")
            print(f"RESULT stream_population_speedup_k{k}_w{width} {r[f'k{k}_ratio']:.3f}")
    if 128 in results:
        print(f"RESULT stream_speedup_vs_eager {results[128][results[128]['auto'] + '_ratio']:.3f}")
    print(f"RESULT stream_env_steps_per_s {ceiling:.1f}")


if __name__ == "__main__":
    main()
