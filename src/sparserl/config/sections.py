"""The run configuration's sections, one dataclass per concern. `Config` (sparserl.config.schema)
combines them, so every field stays one flat flag and YAML key (``--total-steps``, ``gamma: 0.99``);
each section checks its own values (`problems`). Defaults are the papers' settings (TD3: Fujimoto
et al. 2018 / sfujim/TD3; SAC: Haarnoja et al. 2018 with a learned temperature), not
Stable-Baselines3's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import tyro

from sparserl.config import checks
from sparserl.config.checks import MAX_STEPS, positive_ints, positive_numbers, require
from sparserl.config.coerce import coerce_fields
from sparserl.config.sparsity import NetworkSparsity
from sparserl.sparsity.execution import EXECUTIONS


@dataclass
class Training:
    """What to train, and for how long."""

    env: str = "Hopper-v5"
    """Gymnasium id (e.g. Hopper-v5) or dm_control/<domain>-<task>-v0 (needs the dmc extra)."""
    algo: str = "td3"
    """Algorithm: a registered one (sparserl.algos; td3, sac and ddpg are built in)."""
    seed: int = 0
    """Seed for networks, exploration, replay sampling and training episodes."""
    total_steps: int = 1_000_000
    """Environment steps to train for."""
    start_steps: int = 25_000
    """Uniform-random actions for this many steps before learning starts (TD3 paper, RLx2: 25 000)."""
    updates_per_step: int = 1
    """Gradient updates per environment step once learning has started (update-to-data ratio)."""
    update_every: int = 1
    """Steps between learning steps (each of updates_per_step updates) once learning has started
    (DrQ-v2: 2)."""
    batch_size: int = 256
    """Minibatch size."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    action_repeat: int = 1
    """Repeat each action this many environment steps, summing rewards (steps count decisions)."""
    time_feature: bool = False
    """Append the time left in the episode to each observation, -0.5 + t / T for decision t of an
    episode of at most T (Pardo et al. 2018; Elsayed et al. 2024); a time limit is then a terminal."""
    plugins: tuple[str, ...] = ()
    """Python files (.py) or modules imported first, which register your own algorithms, sparsity
    methods or network bodies; kept in the run's config, so resume and sweeps import them too."""

    def problems(self) -> list[str]:
        out = positive_ints(self, "total_steps", "batch_size", "buffer_size", "updates_per_step", "update_every")
        if not out and self.total_steps > MAX_STEPS:
            out.append(f"total_steps ({self.total_steps:.3g}) is more than a run can take; at most {MAX_STEPS:,}")
        out += require(self, ("action_repeat",), checks.positive_int, "an integer >= 1")
        out += require(self, ("seed",), checks.seed, "an integer in [0, 2**32)")
        if not (isinstance(self.start_steps, int) and self.start_steps >= 0):
            out.append(f"start_steps must be an integer >= 0, got {self.start_steps!r}")
        elif checks.positive_int(self.total_steps) and self.start_steps > self.total_steps:
            out.append(f"start_steps ({self.start_steps}) exceeds total_steps ({self.total_steps}): the run would "
                       f"end before it learns")
        if not out and self.batch_size > self.buffer_size:
            out.append(f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})")
        if not self.env:
            out.append("env must name an environment, e.g. Hopper-v5")
        return out


@dataclass
class Networks:
    """Actor and critic networks and their optimisation."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics (the MLP bodies)."""
    network: str = "mlp"
    """Actor and critic bodies: mlp (the ReLU MLP of `hidden`), layernorm-mlp (the same with LayerNorm
    and leaky ReLU, the streaming networks of Elsayed et al. 2024), simba (Lee et al. 2025) or bronet
    (Nauman et al. 2024) of the widths and block counts below, or a registered body."""
    actor_width: int = 128
    """SimBa/BroNet: actor width (SimBa default 128)."""
    actor_blocks: int = 1
    """SimBa/BroNet: actor residual blocks (SimBa default 1)."""
    critic_width: int = 512
    """SimBa/BroNet: critic width (SimBa default 512)."""
    critic_blocks: int = 2
    """SimBa/BroNet: critic residual blocks (SimBa default 2)."""
    critics: int = 2
    """Q-networks in the critic ensemble; the target takes their minimum (2: clipped double Q;
    1: a single critic, as SimBa on DeepMind Control)."""
    init: Literal["default", "sparse"] = "default"
    """Initial weights: each body's own, or SparseInit (Elsayed et al. 2024): uniform +-sqrt(1/fan_in)
    with ceil(0.9 fan_in) inputs of every unit zeroed, free to regrow, and zero biases."""
    obs_norm: bool = False
    """Normalise observations with running statistics updated on every observation (SimBa; per-sample
    Welford statistics for the streaming learners)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    weight_decay: float = 0.0
    """Weight decay on actor and critics: Adam's L2 term (DS-TD3: 2e-4) or AdamW's decoupled one."""
    optimizer: Literal["adam", "adamw"] = "adam"
    """Adam, or AdamW with decoupled weight decay (SimBa: lr 1e-4, weight decay 1e-2)."""

    def problems(self) -> list[str]:
        out = require(self, ("actor_width", "actor_blocks", "critic_width", "critic_blocks", "critics"),
                       checks.positive_int, "an integer >= 1")
        if not (len(self.hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in self.hidden)):
            out.append(f"hidden must be one or more positive layer widths, got {self.hidden!r}")
        if not 0.0 < self.gamma <= 1.0:
            out.append(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0.0 < self.tau <= 1.0:
            out.append(f"tau must be in (0, 1], got {self.tau!r}")
        out += positive_numbers(self, "actor_lr", "critic_lr")
        return out + require(self, ("weight_decay",), checks.non_negative, ">= 0")


@dataclass
class DeterministicPolicy:
    """TD3 and DDPG: exploration and target smoothing, in units of the max action."""

    exploration_noise: float = 0.1
    """TD3/DDPG: std of the Gaussian exploration noise, in units of the max action."""
    policy_noise: float = 0.2
    """TD3: std of the target-policy smoothing noise, in units of the max action."""
    noise_clip: float = 0.5
    """TD3: clip of the target-policy smoothing noise, in units of the max action."""
    policy_delay: int = 2
    """TD3: critic updates per actor and target update."""

    def problems(self) -> list[str]:
        return (require(self, ("exploration_noise", "policy_noise", "noise_clip"), checks.non_negative, ">= 0")
                + positive_ints(self, "policy_delay"))


@dataclass
class MaximumEntropy:
    """SAC: the temperature and the squashed Gaussian policy."""

    alpha_lr: float = 3e-4
    """SAC: Adam learning rate of log(alpha)."""
    init_alpha: float = 1.0
    """SAC: initial temperature alpha."""
    target_entropy: float | None = None
    """SAC: entropy target; None means -target_entropy_scale * |A|."""
    target_entropy_scale: float = 1.0
    """SAC: the default entropy target is -this * |A| (Haarnoja et al. 2018: 1; SimBa: 0.5)."""
    log_std_min: float = -20.0
    """SAC: lower clamp of the policy's log standard deviation."""
    log_std_max: float = 2.0
    """SAC: upper clamp of the policy's log standard deviation."""
    log_std_bound: Literal["clamp", "tanh"] = "clamp"
    """SAC: how the log standard deviation is kept in [log_std_min, log_std_max]: clamped (Haarnoja et
    al.'s code), or squashed, min + (max - min) (1 + tanh(x)) / 2 (SimBa, Lee et al. 2025: [-10, 2])."""

    def problems(self) -> list[str]:
        out = positive_numbers(self, "alpha_lr", "init_alpha", "target_entropy_scale")
        bounds = require(self, ("log_std_min", "log_std_max"), math.isfinite, "a finite number")
        out += bounds
        if not bounds and not self.log_std_min < self.log_std_max:
            out.append(f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        if not (self.target_entropy is None or math.isfinite(self.target_entropy)):
            out.append(f"target_entropy must be a finite number or None, got {self.target_entropy!r}")
        return out


@dataclass
class ValueLearning:
    """RLx2's extras (Tan et al. 2023, §4.2): multi-step targets and the policy-aware replay capacity."""

    nstep: int = 1
    """Transitions summed in the TD target, uncorrected (RLx2: 3); see delay_nstep."""
    delay_nstep: int = 0
    """One-step targets for this many gradient updates, then nstep for good (RLx2: 300 000)."""
    dynamic_buffer: bool = False
    """RLx2's policy-aware replay capacity: drop the oldest transitions once the current policy has
    drifted from the noise-free actions stored with them; buffer_size is then the maximum."""
    buffer_check_every: int = 10_000
    """Dynamic buffer: environment steps between policy-distance checks (RLx2: 10 000)."""
    buffer_threshold: float = 0.2
    """Dynamic buffer: shrink when D = mean((pi(s) - a_stored)^2) / 2 over the oldest transitions
    exceeds this (RLx2: 0.2; actions in units of the max action)."""
    buffer_min_size: int = 100_000
    """Dynamic buffer: never shrink below this many transitions (RLx2: TD3 1e5, SAC 2e5)."""
    buffer_drop_fraction: float = 0.1
    """Dynamic buffer: fraction of the current contents dropped, oldest first, per shrink (RLx2: 0.1)."""
    buffer_check_samples: int | None = None
    """Dynamic buffer: how many of the oldest transitions D is measured on; None = 8 x batch_size."""
    buffer_shrink: Literal["once", "until_below"] = "once"
    """Dynamic buffer: shrink once per check (RLx2's code) or until D is below the threshold (its paper)."""

    def problems(self) -> list[str]:
        out = require(self, ("nstep",), checks.positive_int, "an integer >= 1")
        if not (isinstance(self.delay_nstep, int) and self.delay_nstep >= 0):
            out.append(f"delay_nstep must be an integer >= 0 (gradient updates), got {self.delay_nstep!r}")
        out += positive_ints(self, "buffer_check_every")  # checked even while the buffer is fixed
        out += positive_numbers(self, "buffer_threshold")
        if not 0.0 < self.buffer_drop_fraction < 1.0:
            out.append(f"buffer_drop_fraction must be in (0, 1), got {self.buffer_drop_fraction!r}")
        if not checks.positive_int(self.buffer_min_size):
            out.append(f"buffer_min_size must be a positive integer, got {self.buffer_min_size!r}")
        elif self.dynamic_buffer and self.buffer_min_size > self.buffer_size:
            out.append(f"buffer_min_size ({self.buffer_min_size}) must be positive and at most buffer_size "
                       f"({self.buffer_size}), the maximum")
        if not (self.buffer_check_samples is None or self.buffer_check_samples > 0):
            out.append(f"buffer_check_samples must be positive or None (8 x batch_size), "
                       f"got {self.buffer_check_samples!r}")
        return out


@dataclass
class Sparsity:
    """Which networks are sparse, how, and on which kernels."""

    sparsity: tyro.conf.OmitArgPrefixes[NetworkSparsity] = field(default_factory=NetworkSparsity)
    """Sparsity of actor and critics (see sparserl.config.sparsity.NetworkSparsity)."""
    execution: Literal[EXECUTIONS] = "dense"
    """Kernels of the masked layers: dense (masked dense products, bitwise reproducible), csr
    (compressed sparse rows in forward and backward where no dense gradient is needed, on
    sparserl.native's kernels; pays at >= 75 % sparsity and width >= 1024, BENCHMARKS.md) or auto
    (per layer, whichever measures faster); semi_structured: N:M 2:4 forward products on a GPU's
    2:4 sparse tensor cores (compute capability 8.0 or newer; sparserl.sparsity.semi_structured)."""

    def __post_init__(self) -> None:
        """A method name or a mapping of sparsity keys given in Python becomes the section."""
        if isinstance(self.sparsity, str):
            self.sparsity = NetworkSparsity(method=self.sparsity)
        elif isinstance(self.sparsity, dict):
            self.sparsity = NetworkSparsity(**coerce_fields(self.sparsity, "sparsity", NetworkSparsity))

    def problems(self) -> list[str]:
        if not isinstance(self.sparsity, NetworkSparsity):
            return [f"sparsity must be a NetworkSparsity (or, through Config.from_dict or YAML, a method name or a "
                    f"mapping), got {self.sparsity!r}"]
        out = checks.choice_problems(self.sparsity) + self.sparsity.problems()
        if self.execution == "semi_structured":
            from sparserl.sparsity.semi_structured import problems

            out += problems(self.sparsity.method, self.device)
        return out


@dataclass
class Evaluation:
    """When and how the deterministic policy is evaluated, and the run's score."""

    eval_every: int = 5_000
    """Evaluate the deterministic policy every this many environment steps (TD3 protocol)."""
    eval_episodes: int = 10
    """Episodes per evaluation; 0 evaluates nothing: rows and the score then use training episodes
    (the streaming literature's measure)."""
    eval_seed: int | None = None
    """Seed of the separate evaluation environment; None means seed + 100 (sfujim/TD3)."""
    score_window: int = 30
    """The run's headline score is the mean of its last this-many evaluations (RLx2: 30)."""
    stop_at_return: float | None = None
    """Stop the run early once an evaluation's mean return reaches this value (None: never)."""

    def problems(self) -> list[str]:
        out = positive_ints(self, "eval_every", "score_window")
        out += require(self, ("eval_episodes",), lambda n: checks.integer(n) and n >= 0, "an integer >= 0 (0: none)")
        if self.eval_seed is not None:
            out += require(self, ("eval_seed",), checks.seed, "an integer in [0, 2**32) or None (seed + 100)")
        if self.stop_at_return is not None:
            out += require(self, ("stop_at_return",), math.isfinite, "a finite number or None")
        return out


@dataclass
class Diagnostics:
    """Plasticity diagnostics (sparserl.diagnostics)."""

    diagnostics_every: int = 5_000
    """Log plasticity diagnostics (srank, dormant ratio, norms, gradient interference) at the first
    evaluation after every this-many steps; 0 turns them off."""
    diagnostics_batch: int = 256
    """Replay samples the diagnostics are computed on (Ma et al.: 256)."""
    interference_samples: int = 32
    """Per-sample actor gradients compared for the gradient interference."""
    dormant_point: Literal["post", "pre"] = "post"
    """Dormant units measured after the activation (Sokar et al.) or on the layer output before it."""

    def problems(self) -> list[str]:
        out = []
        if not (isinstance(self.diagnostics_every, int) and self.diagnostics_every >= 0):
            out.append(f"diagnostics_every must be an integer >= 0 (0 = off), got {self.diagnostics_every!r}")
        out += [f"{name} must be an integer >= 2, got {getattr(self, name)!r}"
                for name in ("diagnostics_batch", "interference_samples")
                if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 2)]
        return out


@dataclass
class Output:
    """The run directory, checkpoints, threads and console."""

    run_dir: str | None = None
    """Where the run is written; None means <runs_root>/<env>__<algo>__s<seed>__<time>."""
    runs_root: str = "runs"
    """Parent folder of generated run directories."""
    checkpoint_every: int = 50_000
    """Checkpoint at the first episode end after every this-many steps, and at the end of the run."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep (oldest are deleted once a newer one is safely written)."""
    threads: int = 0
    """Torch intra-op threads; 0 means all cores. Use 1 per process when running runs side by side."""
    tensorboard: bool = True
    """Write TensorBoard event files next to metrics.csv."""
    progress: bool = True
    """Show a progress bar (on a terminal) and print one line per evaluation."""

    def problems(self) -> list[str]:
        out = positive_ints(self, "checkpoint_every", "keep_checkpoints")
        if not self.threads >= 0:
            out.append(f"threads must be >= 0 (0 = all cores), got {self.threads!r}")
        return out


#: In flag and key order (first section first).
SECTIONS = (Training, Networks, DeterministicPolicy, MaximumEntropy, ValueLearning, Sparsity, Evaluation,
            Diagnostics, Output)
