"""The study commands of the `sparserl` CLI: sweep, report and reproduce (see sparserl.cli)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro
from rich.console import Console

from sparserl.config.presets import read_mapping
from sparserl.errors import ConfigError
from sparserl.studies.reproduce import BUDGETS, REPRODUCTIONS, budgets_help

_console = Console(highlight=False, soft_wrap=True, emoji=False)


@dataclass
class LaunchArgs:
    """How a sweep's runs are launched: the flags `sweep` and `reproduce` share."""

    backend: Literal["local", "ray"] = "local"
    """local: a process per run, as many at once as cores / threads; ray: a Ray task per run."""
    workers: int | None = None
    """Runs at once (default: cores / threads)."""
    address: str | None = None
    """Ray cluster address (e.g. auto); default: start a local Ray instance."""
    dry_run: bool = False
    """List the runs and stop."""
    pack: bool = False
    """Train the seeds of runs that differ only in their seed as one population each (one process,
    each layer one batched product for all of them; sparserl.population); each seed keeps its own
    agent directory inside the population's."""
    pack_size: int | None = None
    """At most this many agents per population (implies --pack; default: all of a group's): smaller
    populations finish sooner and spread one group over several workers. Runs finished before, however
    they were packed, are not trained again."""

    def spec_changes(self) -> dict:
        """The sweep spec keys these flags set."""
        if self.pack_size is not None:
            return {"pack": True, "pack_size": self.pack_size}
        return {"pack": True} if self.pack else {}


_Launch = Annotated[LaunchArgs, tyro.conf.OmitArgPrefixes]


@dataclass
class SweepArgs:
    """Run a sweep: every combination of the axes, skipping finished runs and resuming interrupted ones."""

    spec: tyro.conf.Positional[Path | None] = None
    """A sweep spec YAML file (name, preset, base, axes, threads, output)."""
    axis: tyro.conf.UseAppendAction[tuple[str, ...]] = ()
    """Axes given on the command line instead of (or on top of) the spec: KEY=V1,V2 (repeatable)."""
    preset: str | None = None
    """Base preset when no spec file is given."""
    name: str | None = None
    """Sweep name (default: the spec file's name, or "sweep")."""
    output: Path | None = None
    """Output folder (default: studies/<name>)."""
    threads: int | None = None
    """Torch threads per run (default 1: runs go side by side)."""
    launch: _Launch = field(default_factory=lambda: LaunchArgs())


def _print_plan(spec) -> None:
    """What a sweep would do now (--dry-run): each run or population to train, and how many runs
    are finished already or would be copied."""
    from sparserl.studies.sweep import plan_sweep

    plan = plan_sweep(spec)
    copies = f"{len(plan.copies)} to copy from {', '.join(spec.reuse)}, " if spec.reuse else ""
    _console.print(f"{len(plan.runs)} runs: {len(plan.finished)} finished, {copies}{plan.trained} to train"
                   + (f" as {len(plan.units)} populations or runs" if spec.pack else ""), markup=False)
    for unit in plan.units:
        c = unit.config
        agents = f", {unit.agents} agents" if unit.agents > 1 else ""
        _console.print(f"{unit.run_id}  ->  {unit.run_dir}  ({c.total_steps:,} steps, {c.sparsity.method}{agents})",
                       markup=False)


def cmd_sweep(argv: list[str]) -> int:
    from sparserl.studies import load_spec, parse_axis, run_sweep, spec_from_dict

    args = tyro.cli(SweepArgs, args=argv, prog="sparserl sweep")
    if args.spec is None and not args.axis:
        raise ConfigError("give a sweep spec file or at least one --axis KEY=V1,V2")
    data = load_spec(args.spec).to_dict() if args.spec else {"name": args.name or "sweep", "axes": {}}
    if args.spec is None:
        data["preset"] = args.preset
        data["output"] = None
    for text in args.axis:
        key, values = parse_axis(text)
        data["axes"][key] = values
    for key in ("name", "threads"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    data.update(args.launch.spec_changes())
    if args.output is not None:
        data["output"] = str(args.output)
    elif args.name is not None and args.spec is not None:
        data["output"] = None
    spec = spec_from_dict(data, source=str(args.spec or "command line"))
    if args.launch.dry_run:
        _print_plan(spec)
        return 0
    result = run_sweep(spec, backend=args.launch.backend, workers=args.launch.workers, address=args.launch.address,
                       log=lambda text: _console.print(text, markup=False))
    return 1 if result.failed else 0


@dataclass
class ReportArgs:
    """Aggregate runs into tables (Markdown, CSV) and plots (PNG)."""

    dirs: tyro.conf.Positional[tuple[Path, ...]]
    """Run directories or folders holding them (e.g. a sweep's output)."""
    out: Path | None = None
    """Where to write report.md, report.csv, iqm.csv and the PNGs (default: the first folder)."""
    last_k: int | None = None
    """Score = mean of the last K evaluations of each run (default: each run's score_window)."""
    baseline: str | None = None
    """Label of the dense baseline to normalise by (default: the dense runs of each environment)."""
    label_by: tuple[str, ...] = ()
    """Config keys whose values label the runs (default: the sweep's axes, or algorithm and sparsity)."""
    reps: int = 5000
    """Bootstrap resamples for the intervals."""
    kind: Literal["auto", "normalised", "scaling"] = "auto"
    """normalised (scores over the dense runs'), scaling (score against network size, per variant:
    scaling.md and scaling_<env>.png), or auto: the kind of the reproduction whose sweep folders these
    are (`sparserl reproduce streaming` and `scaling` sweeps: scaling), else normalised."""


def report_kind(dirs: list[Path]) -> str:
    """scaling where every folder is a sweep of a reproduction reported by size, else normalised."""
    kinds = set()
    for folder in dirs:
        name = (read_mapping(folder / "sweep.yaml") or {}).get("name", "") if (folder / "sweep.yaml").is_file() else ""
        paper = max((p for p in REPRODUCTIONS if name.startswith(f"reproduce-{p}-")), key=len, default=None)
        kinds.add(REPRODUCTIONS[paper].report if paper else "normalised")
    return "scaling" if kinds == {"scaling"} else "normalised"


def build_kind_report(kind: str, dirs: list[Path], last_k: int | None = None, **normalised):
    """The report of `kind` over `dirs`: by network size (scaling), or normalised to dense with the
    `normalised` options (baseline, label_by, reps)."""
    if kind == "scaling":
        from sparserl.studies.scaling import build_scaling_report

        return build_scaling_report(dirs, last_k=last_k)
    from sparserl.studies.report import build_report

    return build_report(dirs, last_k=last_k, **normalised)


def cmd_report(argv: list[str]) -> int:
    args = tyro.cli(ReportArgs, args=argv, prog="sparserl report")
    if args.last_k is not None and args.last_k < 1:
        raise ConfigError(f"--last-k must be a positive integer, got {args.last_k}")
    dirs = list(args.dirs)
    report = build_kind_report(report_kind(dirs) if args.kind == "auto" else args.kind, dirs, args.last_k,
                               baseline=args.baseline, label_by=list(args.label_by) or None, reps=args.reps)
    out = args.out or args.dirs[0]
    written = report.write(out)
    _console.print(report.markdown(), markup=False)
    _console.print("written: " + ", ".join(str(p) for p in written), markup=False)
    return 0


@dataclass
class ReproduceArgs:
    """Run a paper's comparison at a CPU-sized budget and print its table normalised to dense."""

    paper: tyro.conf.Positional[Annotated[str, tyro.conf.arg(help=f"The comparison: {', '.join(REPRODUCTIONS)}.")]]
    budget: Annotated[Literal[tuple(BUDGETS)], tyro.conf.arg(help=budgets_help())] = "small"
    env: tuple[str, ...] = ()
    """Tasks to run instead of the budget's choice of the paper's."""
    seeds: int | None = None
    """Seeds per configuration instead of the budget's."""
    output: Path | None = None
    """Output folder (default: studies/reproduce-<paper>-<budget>)."""
    precision: Literal["fp32", "bf16", "auto"] | None = None
    """The replay updates' products (default: the presets', fp32). auto: bf16 on each machine whose CPU
    or GPU has bfloat16 matrix units, fp32 elsewhere, so a sweep resumed on another machine may go on
    in the other precision (run.json names every machine a run trained on)."""
    launch: _Launch = field(default_factory=lambda: LaunchArgs())


def cmd_reproduce(argv: list[str]) -> int:
    import time

    from sparserl.studies import run_sweep, spec_from_dict
    from sparserl.studies.reproduce import reproduction_spec

    args = tyro.cli(ReproduceArgs, args=argv, prog="sparserl reproduce")
    spec = reproduction_spec(args.paper, args.budget, envs=list(args.env) or None, seeds=args.seeds,
                             output=str(args.output) if args.output else None, precision=args.precision)
    spec = spec_from_dict({**spec.to_dict(), **args.launch.spec_changes()}, source=f"reproduction {args.paper}")
    _console.print(f"{REPRODUCTIONS[args.paper].description}; budget {args.budget}", markup=False)
    if args.launch.dry_run:
        _print_plan(spec)
        return 0
    start = time.perf_counter()
    result = run_sweep(spec, backend=args.launch.backend, workers=args.launch.workers, address=args.launch.address,
                       log=lambda text: _console.print(text, markup=False))
    report = build_kind_report(REPRODUCTIONS[args.paper].report, [spec.output_dir])
    written = report.write(spec.output_dir / "report")
    _console.print(report.markdown(), markup=False)
    _console.print(f"wall time {time.perf_counter() - start:,.0f} s; written: "
                   + ", ".join(str(p) for p in written), markup=False)
    return 1 if result.failed else 0
