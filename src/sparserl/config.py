"""The run configuration: one dataclass that drives the Python API, the CLI and YAML files.

Every field is a CLI flag (``total_steps`` -> ``--total-steps``) and a YAML key. Defaults are the
papers' settings (TD3: Fujimoto et al. 2018 / sfujim/TD3; SAC: Haarnoja et al. 2018 with a learned
temperature), not Stable-Baselines3's. Values are resolved in this order, later wins:
dataclass defaults < ``--preset NAME`` < ``--config FILE`` < explicit flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tyro
import yaml

from sparserl.errors import ConfigError
from sparserl.sparsity.config import SparsityConfig

ALGOS = ("td3", "sac")


@dataclass
class Config:
    """Training settings: each is a flag here and a key in YAML config files and presets."""

    # --- what to train -------------------------------------------------------------------------
    env: str = "Hopper-v5"
    """Gymnasium id (e.g. Hopper-v5) or dm_control/<domain>-<task>-v0 (needs the dmc extra)."""
    algo: Literal["td3", "sac"] = "td3"
    """Algorithm."""
    seed: int = 0
    """Seed for networks, exploration, replay sampling and training episodes."""
    total_steps: int = 1_000_000
    """Environment steps to train for."""
    start_steps: int = 25_000
    """Uniform-random actions for this many steps before learning starts (TD3 paper, RLx2: 25 000)."""
    updates_per_step: int = 1
    """Gradient updates per environment step once learning has started (update-to-data ratio)."""
    batch_size: int = 256
    """Minibatch size."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""

    # --- networks and optimisation -------------------------------------------------------------
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics (ReLU MLP)."""
    network: Literal["mlp", "simba", "bronet"] = "mlp"
    """Actor and critic bodies: the ReLU MLP of `hidden`, or residual SimBa (Lee et al. 2025) or
    BroNet (Nauman et al. 2024) bodies of the widths and block counts below."""
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
    obs_norm: bool = False
    """Normalise observations with running statistics updated on every acted observation (SimBa)."""
    action_repeat: int = 1
    """Repeat each action this many environment steps, summing rewards (steps count decisions)."""
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

    # --- TD3 -----------------------------------------------------------------------------------
    exploration_noise: float = 0.1
    """TD3: std of the Gaussian exploration noise, in units of the max action."""
    policy_noise: float = 0.2
    """TD3: std of the target-policy smoothing noise, in units of the max action."""
    noise_clip: float = 0.5
    """TD3: clip of the target-policy smoothing noise, in units of the max action."""
    policy_delay: int = 2
    """TD3: critic updates per actor and target update."""

    # --- SAC -----------------------------------------------------------------------------------
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

    # --- value learning (RLx2's extras) --------------------------------------------------------
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

    # --- sparsity (flags are flat: --sparsity rigl --actor-sparsity 0.9 ...) ---------------------
    sparsity: tyro.conf.OmitArgPrefixes[SparsityConfig] = field(default_factory=SparsityConfig)
    """Sparsity of actor and critics (see sparserl.sparsity.config.SparsityConfig)."""
    execution: Literal["dense", "csr", "auto"] = "dense"
    """Kernels of the masked layers: dense (masked dense products, bitwise reproducible), csr
    (compressed sparse rows in forward and backward where no dense gradient is needed, on
    sparserl.native's kernels; pays at >= 75 % sparsity and width >= 1024, BENCHMARKS.md) or auto
    (per layer, whichever measures faster)."""

    # --- evaluation ----------------------------------------------------------------------------
    eval_every: int = 5_000
    """Evaluate the deterministic policy every this many environment steps (TD3 protocol)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    eval_seed: int | None = None
    """Seed of the separate evaluation environment; None means seed + 100 (sfujim/TD3)."""
    score_window: int = 30
    """The run's headline score is the mean of its last this-many evaluations (RLx2: 30)."""
    stop_at_return: float | None = None
    """Stop the run early once an evaluation's mean return reaches this value (None: never)."""

    # --- diagnostics (sparserl.diagnostics) ------------------------------------------------------
    diagnostics_every: int = 5_000
    """Log plasticity diagnostics (srank, dormant ratio, norms, gradient interference) at the first
    evaluation after every this-many steps; 0 turns them off."""
    diagnostics_batch: int = 256
    """Replay samples the diagnostics are computed on (Ma et al.: 256)."""
    interference_samples: int = 32
    """Per-sample actor gradients compared for the gradient interference."""
    dormant_point: Literal["post", "pre"] = "post"
    """Dormant units measured after the activation (Sokar et al.) or on the layer output before it."""

    # --- run directory, checkpoints, output ----------------------------------------------------
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

    # ---------------------------------------------------------------------------------------------
    def validate(self) -> Config:
        """Check every value and raise one ConfigError listing all problems; returns self."""
        problems: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        for name in ("actor_width", "actor_blocks", "critic_width", "critic_blocks", "critics", "action_repeat"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        need(math.isfinite(self.target_entropy_scale) and self.target_entropy_scale > 0,
             f"target_entropy_scale must be a positive number, got {self.target_entropy_scale!r}")
        for name in ("total_steps", "batch_size", "buffer_size", "updates_per_step", "eval_every",
                     "eval_episodes", "checkpoint_every", "keep_checkpoints", "policy_delay", "score_window"):
            value = getattr(self, name)
            need(isinstance(value, int) and value > 0, f"{name} must be a positive integer, got {value!r}")
        need(self.start_steps >= 0, f"start_steps must be >= 0, got {self.start_steps!r}")
        need(isinstance(self.diagnostics_every, int) and self.diagnostics_every >= 0,
             f"diagnostics_every must be an integer >= 0 (0 = off), got {self.diagnostics_every!r}")
        for name in ("diagnostics_batch", "interference_samples"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 2, f"{name} must be an integer >= 2, got {value!r}")
        need(self.threads >= 0, f"threads must be >= 0 (0 = all cores), got {self.threads!r}")
        need(self.algo in ALGOS, f"algo must be one of {', '.join(ALGOS)}; got {self.algo!r}")
        if self.batch_size > 0 and self.buffer_size > 0:
            need(self.batch_size <= self.buffer_size,
                 f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})")
        need(len(self.hidden) >= 1 and all(isinstance(h, int) and h > 0 for h in self.hidden),
             f"hidden must be one or more positive layer widths, got {self.hidden!r}")
        need(0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma!r}")
        need(0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau!r}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, f"{name} must be a positive number, got {value!r}")
        for name in ("exploration_noise", "policy_noise", "noise_clip", "weight_decay"):
            value = getattr(self, name)
            need(math.isfinite(value) and value >= 0, f"{name} must be >= 0, got {value!r}")
        need(isinstance(self.nstep, int) and self.nstep >= 1, f"nstep must be an integer >= 1, got {self.nstep!r}")
        need(isinstance(self.delay_nstep, int) and self.delay_nstep >= 0,
             f"delay_nstep must be an integer >= 0 (gradient updates), got {self.delay_nstep!r}")
        if self.dynamic_buffer:
            need(self.buffer_check_every > 0, f"buffer_check_every must be positive, got {self.buffer_check_every!r}")
            need(math.isfinite(self.buffer_threshold) and self.buffer_threshold > 0,
                 f"buffer_threshold must be a positive number, got {self.buffer_threshold!r}")
            need(0.0 < self.buffer_drop_fraction < 1.0,
                 f"buffer_drop_fraction must be in (0, 1), got {self.buffer_drop_fraction!r}")
            need(0 < self.buffer_min_size <= self.buffer_size,
                 f"buffer_min_size ({self.buffer_min_size}) must be positive and at most buffer_size "
                 f"({self.buffer_size}), the maximum")
            need(self.buffer_check_samples is None or self.buffer_check_samples > 0,
                 f"buffer_check_samples must be positive or None (8 x batch_size), got {self.buffer_check_samples!r}")
            need(self.buffer_shrink in ("once", "until_below"),
                 f"buffer_shrink must be once or until_below, got {self.buffer_shrink!r}")
        need(self.log_std_min < self.log_std_max,
             f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        need(self.target_entropy is None or math.isfinite(self.target_entropy),
             f"target_entropy must be a finite number or None, got {self.target_entropy!r}")
        need(bool(self.env), "env must name an environment, e.g. Hopper-v5")
        try:
            self.sparsity.validate()
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
        return self

    # --- conversion ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-friendly dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """Build a Config from a mapping, with clear errors for unknown keys and wrong types."""
        return cls(**coerce_fields(data, source))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def compress_schedule(config: Config, total_steps: int, start_steps: int) -> Config:
    """`config` with its whole schedule compressed into `total_steps` environment steps.

    For reduced-budget reproductions: settings counted in gradient updates (delay_nstep, the
    sparsity update interval) scale by the ratio of learning steps, (total - start) before and after;
    those counted in environment steps (the dynamic buffer's check interval and minimum size) by
    the ratio of total steps. Each stays at least 1; an interval of 0 (never) stays 0.
    """
    if not 0 <= start_steps < total_steps:
        raise ConfigError(f"budget: start_steps ({start_steps}) must be >= 0 and below total_steps ({total_steps})")
    learning = (total_steps - start_steps) / max(1, config.total_steps - config.start_steps)
    steps = total_steps / config.total_steps

    def scaled(value: int, ratio: float) -> int:
        return max(1, round(value * ratio)) if value > 0 else value

    sparsity = config.sparsity
    interval = sparsity.default("update_interval") if sparsity.enabled else None
    if interval and interval > 1:
        sparsity = dataclasses.replace(sparsity, update_interval=scaled(interval, learning))
    return config.replace(
        total_steps=total_steps, start_steps=start_steps, sparsity=sparsity,
        delay_nstep=scaled(config.delay_nstep, learning) if config.delay_nstep else 0,
        buffer_check_every=scaled(config.buffer_check_every, steps),
        buffer_min_size=min(config.buffer_size, scaled(config.buffer_min_size, steps)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


# --- field coercion (YAML values -> typed fields) ------------------------------------------------

_SPARSITY_KEYS = {f.name for f in fields(SparsityConfig)}


def coerce_fields(data: dict[str, Any], source: str, cls: type = Config) -> dict[str, Any]:
    """Validate keys against `cls` and convert YAML values to the declared field types.

    For Config, the sparsity section may be a mapping (``sparsity: {method: rigl}``), a method name
    (``sparsity: nm:2:4``), or its keys may stand at the top level, as the flags do
    (``actor_sparsity: 0.9``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    data = dict(data)
    if cls is Config:
        section = data.get("sparsity", {})
        if isinstance(section, str):
            section = {"method": section}
        if isinstance(section, SparsityConfig):
            section = dataclasses.asdict(section)
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: sparsity must be a method name (e.g. nm:2:4) or a mapping, got {section!r}")
        section = dict(section)
        for key in [k for k in data if k in _SPARSITY_KEYS and k != "method"]:
            section[key] = data.pop(key)
        if section:
            data["sparsity"] = section
        elif "sparsity" in data:
            del data["sparsity"]
    types_ = typing.get_type_hints(cls, include_extras=False)
    known = [f.name for f in fields(cls)] + (sorted(_SPARSITY_KEYS) if cls is Config else [])
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types_:
            hint = difflib.get_close_matches(str(key), known, n=3)
            did_you_mean = f"; did you mean {', '.join(hint)}?" if hint else ""
            raise ConfigError(f"{source}: unknown config key {key!r}{did_you_mean} "
                              f"(run `sparserl train --help` for all keys)")
        out[key] = _coerce(key, value, types_[key], source)
    return out


def _coerce(name: str, value: Any, tp: Any, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return tp(**coerce_fields(value, f"{source}: {name}", tp))
    bad = ConfigError(f"{source}: {name} must be {_describe(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], source)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {name} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(name, v, args[0], source) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        number = _number(value)
        if number is None or float(number) != int(number):
            raise bad
        return int(number)
    if tp is float:
        number = _number(value)
        if number is None:
            raise bad
        return float(number)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    return value


def _number(value: Any) -> float | int | None:
    """Numbers, plus strings such as '1e6' that YAML 1.1 leaves as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return None
    return None


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


# --- YAML files and presets -----------------------------------------------------------------------

def _read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file's mapping, uncoerced; errors name the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of config keys, "
                          f"got {type(data).__name__}")
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys; errors name the file, line and problem."""
    return coerce_fields(_read_mapping(path), str(Path(path)))


def list_presets() -> list[str]:
    """Names of the presets shipped with sparserl."""
    folder = resources.files("sparserl") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_header(name: str) -> tuple[str, str]:
    """A preset's one-line description and its source (its first comment line and `# source:` line)."""
    text = (resources.files("sparserl") / "presets" / f"{name}.yaml").read_text()
    comments = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    source = next((c.split(":", 1)[1].strip() for c in comments if c.lower().startswith("source:")), "")
    description = next((c for c in comments if not c.lower().startswith("source:")), "")
    return description, source


def _sectioned(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with its sparsity settings gathered in one `sparsity` mapping."""
    out = dict(values)
    section = out.pop("sparsity", {})
    section = {"method": section} if isinstance(section, str) else dict(section or {})
    for key in [k for k in out if k in _SPARSITY_KEYS and k != "method"]:
        section[key] = out.pop(key)
    if section:
        out["sparsity"] = section
    return out


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, the sparsity sections merged key by key."""
    base, over = _sectioned(base), _sectioned(over)
    out = {**base, **over}
    if "sparsity" in base or "sparsity" in over:
        out["sparsity"] = {**base.get("sparsity", {}), **over.get("sparsity", {})}
    return out


def _preset_data(name: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    names = list_presets()
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=3)
        did_you_mean = f" Did you mean {', '.join(hint)}?" if hint else ""
        raise ConfigError(f"unknown preset {name!r}.{did_you_mean} Available presets: {', '.join(names)}")
    if name in chain:
        raise ConfigError(f"preset {name!r} extends itself ({' -> '.join(chain + (name,))})")
    with resources.as_file(resources.files("sparserl") / "presets" / f"{name}.yaml") as path:
        data = _read_mapping(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base = _preset_data(parent, chain + (name,))
    base_envs = base.pop("per_env", None) or {}
    if "per_env" in data and data["per_env"] is None:  # `per_env: null` drops the parent's table
        data.pop("per_env")
        base_envs = {}
    per_env = {**base_envs, **(data.pop("per_env", None) or {})}
    merged = _merged(base, data)
    if per_env:
        merged["per_env"] = per_env
    return merged


def preset_envs(name: str) -> list[str] | None:
    """The environments a preset has settings for, or None if it applies to any environment."""
    per_env = _preset_data(name).get("per_env")
    return list(per_env) if per_env else None


def load_preset(name: str, env: str | None = None) -> dict[str, Any]:
    """A preset's config values. A preset may `extends:` another (sparsity keys merge) and may hold
    `per_env:` settings (e.g. RLx2's sparsities per task; `per_env: null` drops the parent's): those
    of `env` (default: the preset's own env) are applied, and an environment it has none for is an
    error that lists those it has."""
    data = _preset_data(name)
    per_env = data.pop("per_env", None)
    if per_env:
        env = env or data.get("env")
        if env not in per_env:
            raise ConfigError(f"preset {name!r} has no settings for {env}; it has them for "
                              f"{', '.join(per_env)} (pass one of these with --env)")
        data = _merged(data, {**per_env[env], "env": env})
    return coerce_fields(data, f"preset {name!r}")


def resolve_config(preset: str | None = None, config_file: str | Path | None = None,
                   **overrides: Any) -> Config:
    """Defaults < preset < config file < overrides, validated."""
    values: dict[str, Any] = {}
    from_file = load_yaml(config_file) if config_file else {}
    if preset:
        values.update(load_preset(preset, env=overrides.get("env") or from_file.get("env")))
    values.update(from_file)
    values.update(coerce_fields(overrides, "arguments"))
    return Config(**values).validate()
