"""Sweep specifications: a base configuration and axes whose cartesian product is a list of runs.

    name: nm-vs-rigl
    preset: quickstart            # optional base preset
    base: {total_steps: 20000}    # optional config keys on top of it
    axes:                         # any config key, with a list of values
      env: [Pendulum-v1, InvertedPendulum-v5]
      sparsity: [dense, nm:2:4, rigl]
      seed: [0, 1, 2]
    threads: 1                    # torch threads per run (runs go side by side)
    output: studies/nm-vs-rigl    # default: studies/<name>
    budget: {total_steps: 20000, start_steps: 5000}   # optional: compress each run's schedule
    pack: true                    # optional: train seeds (and levels of one method) as populations
    pack_size: 3                  # optional: at most this many agents per population (implies pack)

``preset`` may also be an axis (``preset: [rlx2-td3, rlx2-td3-ss, rlx2-td3-dense]``); presets with
per-environment settings get those of each run's env. A ``budget`` compresses every run's whole
schedule (see sparserl.studies.budget.compress_schedule) into fewer steps, for reduced-budget reproductions.

Every run gets a stable id built from its axis values (``env=Pendulum-v1_sparsity=nm-2-4_seed=0``)
and the directory ``<output>/runs/<id>``, so re-running a spec finds its runs again.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparserl.config import SPARSITY_KEYS, Config, merged, resolve_values
from sparserl.config.presets import read_yaml
from sparserl.config.sparsity import LEVELS
from sparserl.envs import check_env_id
from sparserl.errors import ConfigError, ConfigWarning
from sparserl.sparsity.methods import method_class
from sparserl.studies.budget import compress_schedule

LEVEL_KEYS = tuple(f"{network}_{kind}" for network in LEVELS for kind in ("sparsity", "levels"))
"""The sparsity section's level settings: packed runs may differ in them."""

SPEC_KEYS = ("name", "preset", "base", "axes", "threads", "output", "budget", "pack", "pack_size", "reuse")


@dataclass
class RunPlan:
    """One run of a sweep: its id, its axis values and its complete configuration."""

    run_id: str
    values: dict[str, Any]
    config: Config

    @property
    def agents(self) -> int:
        """Agents the run trains (a packed population's seeds, else 1)."""
        return self.config.population

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)


@dataclass
class SweepSpec:
    name: str
    axes: dict[str, list[Any]]
    base: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    threads: int = 1
    output: str | None = None
    budget: dict[str, int] | None = None
    pack: bool = False
    """Train runs that differ only in their seed and their sparsity levels (of one method) as one
    population each."""
    pack_size: int | None = None
    """The most agents per population (None: all runs of a group): smaller populations finish sooner
    and spread one group over several workers."""
    reuse: list[str] = field(default_factory=list)
    """Other sweeps' output folders whose finished runs of identical settings are copied instead of
    trained (sparserl.studies.reuse)."""

    @property
    def output_dir(self) -> Path:
        return Path(self.output) if self.output else Path("studies") / self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "base": self.base, "axes": self.axes,
                "threads": self.threads, "output": str(self.output_dir), "budget": self.budget, "pack": self.pack,
                "pack_size": self.pack_size, "reuse": list(self.reuse)}


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec YAML file, with errors that name the file and the problem."""
    path = Path(path)
    data = read_yaml(path, "sweep spec")
    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec {str(path)!r} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    return spec_from_dict(data, default_name=path.stem, source=str(path))


def spec_from_dict(data: dict[str, Any], default_name: str = "sweep", source: str = "sweep spec") -> SweepSpec:
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        hint = difflib.get_close_matches(str(unknown[0]), SPEC_KEYS, n=1)
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                          + f" (allowed: {', '.join(SPEC_KEYS)})")
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise ConfigError(f"{source}: axes must map config keys to lists of values, got {type(axes).__name__}")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: base must be a mapping of config keys, got {type(base).__name__}")
    threads = data.get("threads", 1)
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{source}: threads must be a positive integer, got {threads!r}")
    budget = data.get("budget")
    if budget is not None and (not isinstance(budget, dict) or set(budget) != {"total_steps", "start_steps"}
                               or not all(isinstance(v, int) for v in budget.values())):
        raise ConfigError(f"{source}: budget must be a mapping with integer total_steps and start_steps, "
                          f"got {budget!r}")
    pack_size = data.get("pack_size")
    if pack_size is not None and (isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1):
        raise ConfigError(f"{source}: pack_size must be a positive integer (agents per population), got {pack_size!r}")
    pack = data.get("pack", pack_size is not None)
    if not isinstance(pack, bool):
        raise ConfigError(f"{source}: pack must be true or false, got {pack!r}")
    if pack_size is not None and not pack:
        raise ConfigError(f"{source}: pack_size {pack_size} needs pack: true (it sizes the populations packing makes)")
    reuse = data.get("reuse") or []
    if not isinstance(reuse, list) or not all(isinstance(v, str) for v in reuse):
        raise ConfigError(f"{source}: reuse must be a list of sweep output folders, got {reuse!r}")
    spec = SweepSpec(name=str(data.get("name") or default_name),
                     axes={k: _as_list(k, v, source) for k, v in axes.items()},
                     base=dict(base), preset=data.get("preset"), threads=threads, output=data.get("output"),
                     budget=budget, pack=pack, pack_size=pack_size, reuse=list(reuse))
    expand(spec)  # validates every axis and value now, before anything runs
    return spec


def _as_list(key: str, value: Any, source: str) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{source}: axis {key!r} has no values, so the sweep would have no runs")
    return values


_KNOWN_AXES = sorted({f.name for f in dataclasses.fields(Config)} | SPARSITY_KEYS | {"method", "preset"})


def expand(spec: SweepSpec, packed: bool = True) -> list[RunPlan]:
    """The runs of a sweep (cartesian product of the axes), each with a validated configuration,
    packed into populations where the spec asks for it and `packed` allows."""
    for key in spec.axes:
        if key not in _KNOWN_AXES or key in ("run_dir", "runs_root"):
            hint = difflib.get_close_matches(key, _KNOWN_AXES, n=3)
            raise ConfigError(f"sweep {spec.name!r}: unknown axis {key!r}"
                              + (f"; did you mean {', '.join(hint)}?" if hint else "")
                              + " (an axis is a config key, e.g. env, seed, sparsity, actor_sparsity, hidden)")
        if not spec.axes[key]:
            raise ConfigError(f"sweep {spec.name!r}: axis {key!r} has no values, so the sweep would have no runs")
    bases: dict[tuple[str | None, str | None], dict[str, Any]] = {}

    def base_for(preset: str | None, env: str | None) -> dict[str, Any]:  # presets may hold per-env settings
        if (preset, env) not in bases:
            bases[preset, env] = resolve_values(preset, overrides=spec.base, env=env,
                                                overrides_source=f"sweep {spec.name!r}: base")
        return bases[preset, env]

    keys = list(spec.axes)
    plans, seen = [], {}
    for combo in itertools.product(*(spec.axes[k] for k in keys)):
        values = dict(zip(keys, combo))
        run_id = "_".join(f"{k}={_slug(v)}" for k, v in values.items()) or "run"
        if run_id in seen:
            raise ConfigError(f"sweep {spec.name!r}: two runs would share the id {run_id!r}; "
                              f"make the axis values distinct")
        seen[run_id] = True
        try:
            base = base_for(values.get("preset", spec.preset), values.get("env") or spec.base.get("env"))
        except ConfigError as exc:
            raise ConfigError(f"sweep {spec.name!r}, run {run_id}: {exc}") from None
        settings = _apply(base, {k: v for k, v in values.items() if k != "preset"}, spec.name)
        settings.update(run_dir=str(spec.output_dir / "runs" / run_id), threads=spec.threads)
        try:
            config = Config(**settings)
            if spec.budget:
                config = compress_schedule(config, spec.budget["total_steps"], spec.budget["start_steps"])
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"sweep {spec.name!r}, run {run_id}: {exc}") from None
        plans.append(RunPlan(run_id, values, config))
    for env, pixels in sorted({(plan.config.env, plan.config.pixels) for plan in plans}):
        check_env_id(env, pixels)
    return pack_runs(plans, spec) if spec.pack and packed else plans


def pack_runs(plans: list[RunPlan], spec: SweepSpec) -> list[RunPlan]:
    """Runs that differ only in their seed and in their networks' levels of one sparsity method, as
    one population each (sparserl.population), its agents at their own seeds and levels: run id
    `seed=0+1+2_...` (every value of a packed axis), written to that folder with an agent directory
    per run; at most `spec.pack_size` agents each (a group's runs in order, split evenly). Runs a
    population cannot batch (config.scale says which) stay as they are."""
    groups: dict[str, list[RunPlan]] = {}
    for plan in plans:
        groups.setdefault(_pack_key(plan.config), []).append(plan)
    out: list[RunPlan] = []
    for whole in groups.values():
        for group in _split(whole, spec.pack_size):
            out += _population(group, spec, taken={plan.run_id for plan in out})
    return out


def _split(group: list[RunPlan], size: int | None) -> list[list[RunPlan]]:
    """`group` in order, in as few parts of at most `size` as there can be, as even as they can be."""
    parts = 1 if size is None else -(-len(group) // size)
    cuts = [-(-k * len(group) // parts) for k in range(parts + 1)]  # the larger parts first
    return [group[a:b] for a, b in zip(cuts, cuts[1:])]


def _population(group: list[RunPlan], spec: SweepSpec, taken: set[str]) -> list[RunPlan]:
    """`group`'s runs as one population (its id numbered where another part of a split group lists
    the same values), or as they are: one run, or runs a population cannot batch."""
    if len(group) == 1:
        return group
    values = {key: _distinct([plan.values[key] for plan in group]) for key in group[0].values}
    run_id = "_".join(f"{k}={'+'.join(_slug(v) for v in vs)}" for k, vs in values.items())
    run_id = next(f"{run_id}_part-{k}" for k in itertools.count(2) if f"{run_id}_part-{k}" not in taken) \
        if run_id in taken else run_id
    config = group[0].config.replace(population=len(group), seeds=tuple(plan.config.seed for plan in group),
                                     sparsity=_agent_levels([plan.config.sparsity for plan in group]),
                                     run_dir=str(spec.output_dir / "runs" / run_id))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConfigWarning)  # (diagnostics: said once, by the run)
            config.validate()
    except ConfigError:
        return group  # not batchable: the runs stay separate
    return [RunPlan(run_id, {k: vs[0] if len(vs) == 1 else vs for k, vs in values.items()}, config)]


def _pack_key(config: Config) -> str:
    """What runs of one population share: everything but the seed, the run directory and, for a
    method whose level is free (not N:M), the networks' levels."""
    values = {k: v for k, v in config.to_dict().items() if k not in ("seed", "run_dir")}
    s = config.sparsity
    if s.enabled and method_class(s.method).fixed_level_of(s.method) is None:
        values["sparsity"] = {k: v for k, v in values["sparsity"].items() if k not in LEVEL_KEYS}
    return repr(sorted(values.items()))


def _agent_levels(sections: list) -> object:
    """The sparsity section of a population of `sections`' runs: each network's level shared, or one per agent."""
    first = sections[0]
    if not first.enabled or method_class(first.method).fixed_level_of(first.method) is not None:
        return first
    changes = {}
    for network in LEVELS:
        levels = tuple(section.level(network) for section in sections)
        if len(set(levels)) > 1:
            changes.update({f"{network}_sparsity": None, f"{network}_levels": levels})
    return dataclasses.replace(first, **changes)


def _distinct(values: list) -> list:
    """`values` without repeats, in order of first appearance."""
    out = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _apply(base: dict[str, Any], values: dict[str, Any], name: str) -> dict[str, Any]:
    """base with the axis values set (`method` is the sparsity method; sparsity keys merge into
    their section), typed."""
    axis = {("sparsity" if key == "method" else key): value for key, value in values.items()}
    try:
        return resolve_values(overrides=merged(_untyped(base), axis), overrides_source=f"sweep {name!r}: axis value")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (axis values {values})") from None


def _untyped(values: dict[str, Any]) -> dict[str, Any]:
    """Typed config values back as plain ones (the sparsity section as its set keys)."""
    out = dict(values)
    if "sparsity" in out and dataclasses.is_dataclass(out["sparsity"]):
        out["sparsity"] = dataclasses.asdict(out["sparsity"])
    return out


def _slug(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_slug(v) for v in value)
    if isinstance(value, dict):
        return "-".join(_slug(v) for v in value.values())  # short; a clash is refused by expand()
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "none"


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """A CLI axis KEY=V1,V2,... (values parsed as YAML; brackets keep lists whole: hidden=[64,64],[256,256])."""
    key, sep, rest = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--axis must look like KEY=VALUE1,VALUE2 (e.g. seed=0,1,2), got {text!r}")
    parts, depth, current = [], 0, ""
    for ch in rest:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    values = []
    for part in parts:
        try:
            values.append(yaml.safe_load(part) if part.strip() else None)
        except yaml.YAMLError:
            raise ConfigError(f"--axis {key}: cannot read value {part!r}") from None
    return key.strip(), values
