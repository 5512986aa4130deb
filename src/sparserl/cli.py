"""The `sparserl` command.

    sparserl train [--preset NAME] [--config FILE] [--<key> VALUE ...]
    sparserl train --resume RUN_DIR [--total-steps N] [--checkpoint FILE]
    sparserl eval RUN_DIR [--episodes N] [--seed S]
    sparserl eval --policy FILE [--env ENV] [--episodes N] [--backend auto|dense|csr|nm] [--plugins FILE]
    sparserl export RUN_DIR --out policy.safetensors [--storage auto|dense|csr|nm] [--plugins FILE]
    sparserl sweep SPEC.yaml [--backend local|ray] [--workers N] [--address auto]
    sparserl sweep --preset NAME --axis KEY=V1,V2 ... --name NAME
    sparserl report DIR... [--out DIR] [--last-k K] [--baseline LABEL] [--label-by KEY,...]
    sparserl reproduce {rnm-td3,rlx2-td3,rlx2-sac,scaling} [--budget small|medium|paper] [--env ENV ...] [--seeds N]
    sparserl presets

Flags of `train` are generated from sparserl.config.Config (its field docstrings are the help).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console
from rich.markup import escape

from sparserl.config import Config, list_presets, preset_envs, preset_header, resolve_values
from sparserl.deploy import BACKENDS
from sparserl.errors import ConfigError, SparserlError, SparserlWarning, TrainingDiverged
from sparserl.registry import load_plugins
from sparserl.studies.commands import cmd_report, cmd_reproduce, cmd_sweep

#: Config fields that may change when a run is resumed.
RESUMABLE_CHANGES = ("total_steps", "progress")

_console = Console(highlight=False, soft_wrap=True, emoji=False)
_errors = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@dataclass
class TrainArgs:
    """Train an agent. Values resolve as: defaults < --preset < --config file < flags."""

    settings: tyro.conf.OmitArgPrefixes[Config]
    preset: str | None = None
    """A preset shipped with sparserl (list them with `sparserl presets`)."""
    config: Path | None = None
    """A YAML file of config keys (the same names as the flags, with underscores)."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint (only --total-steps and
    --progress may change)."""
    checkpoint: Path | None = None
    """With --resume: continue from this checkpoint file instead of the newest one."""


@dataclass
class EvalArgs:
    """Re-evaluate the saved policy of a run directory, or an exported policy file (--policy)."""

    run_dir: tyro.conf.Positional[Path | None] = None
    """A run directory written by `sparserl train`."""
    policy: Path | None = None
    """An exported policy file (`sparserl export`) to evaluate instead of a run directory."""
    env: str | None = None
    """With --policy: the environment (default: the one the policy was trained on)."""
    episodes: int | None = None
    """Episodes to run (default: the run's eval_episodes, or 10 for a run that evaluated none; policy files
    of runs record it; else 10)."""
    seed: int | None = None
    """Seed of the evaluation environment (default: the run's evaluation seed, eval_seed or seed + 100,
    which policy files of runs record; else 0): a run and its policy file get the same score."""
    backend: Literal[BACKENDS] = "auto"
    """Kernels of the sparse layers: auto measures and keeps the fastest per layer."""
    plugins: tuple[str, ...] = ()
    """With --policy: files or modules that register the policy's body or storage (a run directory
    imports its recorded plugins itself)."""


@dataclass
class ExportArgs:
    """Export a run's policy as a compact deployable file (actor only, sparse layers packed)."""

    run_dir: tyro.conf.Positional[Path]
    """A run directory written by `sparserl train`."""
    out: Path = Path("policy.safetensors")
    """Where to write the policy file."""
    storage: str = "auto"
    """Weight storage: auto takes the smallest per layer, or a registered storage (dense, csr and nm
    are built in: sparserl.storage)."""
    plugins: tuple[str, ...] = ()
    """Files or modules that register a storage of your own (the run's recorded plugins are imported
    too)."""


def _prescan(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    for flag in ("--preset", "--config", "--resume", "--checkpoint", "--env"):
        pre.add_argument(flag)
    known, _ = pre.parse_known_args(argv)
    return known


def _parse_train(argv: list[str]) -> TrainArgs:
    known = _prescan(argv)
    if known.resume:
        from sparserl.runs.files import load_run_config
        base = load_run_config(Path(known.resume))
    else:  # a preset with per-environment settings needs the env first; flags go on top below
        base = Config(**resolve_values(known.preset, known.config, env=known.env))
    defaults = TrainArgs(settings=base)
    args = tyro.cli(TrainArgs, default=defaults, args=argv, prog="sparserl train")
    if args.resume:
        if args.preset or args.config:
            raise ConfigError("--resume continues a run with its saved configuration; "
                              "it cannot be combined with --preset or --config")
        changed = [f.name for f in dataclasses.fields(Config)
                   if getattr(args.settings, f.name) != getattr(base, f.name) and f.name not in RESUMABLE_CHANGES]
        if changed:
            flags = ", ".join("--" + name.replace("_", "-") for name in changed)
            raise ConfigError(f"cannot change {flags} when resuming {args.resume}; only "
                              f"{', '.join('--' + n.replace('_', '-') for n in RESUMABLE_CHANGES)} may change")
    elif args.checkpoint:
        raise ConfigError("--checkpoint selects the checkpoint to resume from; use it with --resume RUN_DIR")
    else:  # the flags are the last layer of the one resolution rule (a dense --sparsity drops a preset's levels)
        flags = _changed(args.settings, base)
        args.settings = Config(**resolve_values(known.preset, known.config, overrides=flags, env=known.env))
    return args


def _changed(settings: Config, base: Config) -> dict:
    """The values the flags changed from `base`, with the sparsity section's as a mapping."""
    out = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Config)
           if f.name != "sparsity" and getattr(settings, f.name) != getattr(base, f.name)}
    section = {f.name: getattr(settings.sparsity, f.name) for f in dataclasses.fields(settings.sparsity)
               if getattr(settings.sparsity, f.name) != getattr(base.sparsity, f.name)}
    if section:
        out["sparsity"] = section
    return out


def _print_result(result) -> None:
    if result.agents:
        _console.print(f"Population saved to {result.run_dir}: {len(result.agents)} agents")
        for agent in result.agents:
            _print_result(agent)
        _console.print(f"Population score (mean of the agents' scores): {result.score:.1f}")
        return
    _console.print(f"Run saved to {result.run_dir}")
    if result.final_eval is not None:
        _console.print(f"Final evaluation at step {result.step:,}: {result.final_eval}")
    n = len(result.evaluations)
    if n:
        from sparserl.runs.files import load_run_config

        config = load_run_config(result.run_dir)
        window = config.score_span(n)
        what = "evaluations" if config.measure == "eval_return" else "rows' training episode returns"
        _console.print(f"Score (mean of the last {window} {what}): {result.score:.1f}")
    if result.sparsity is not None:
        _console.print(str(result.sparsity), markup=False)


def cmd_train(argv: list[str]) -> int:
    from sparserl.runs.api import resume, train

    args = _parse_train(argv)
    if args.resume:
        result = resume(args.resume, checkpoint=args.checkpoint, total_steps=args.settings.total_steps)
    else:
        config = args.settings.validate()
        result = train(config)
    _print_result(result)
    return 0


def cmd_eval(argv: list[str]) -> int:
    from sparserl.runs.eval_run import evaluate_policy_file, evaluate_run

    args = tyro.cli(EvalArgs, args=argv, prog="sparserl eval")
    load_plugins(args.plugins)
    if (args.run_dir is None) == (args.policy is None):
        raise ConfigError("give either a run directory or --policy FILE (exactly one)")
    if args.policy is not None:
        result, source = evaluate_policy_file(args.policy, args.env, args.episodes, args.seed, args.backend)
        origin = f" (trained on {source.get('env')}, step {source.get('step', '?'):,})" if source.get("env") else ""
        _console.print(f"Evaluation of {args.policy}{origin}: {result}")
        return 0
    if args.env is not None:
        raise ConfigError("--env applies to --policy files; a run directory is evaluated on its own environment")
    result, step = evaluate_run(args.run_dir, args.episodes, args.seed, args.backend)
    at = f" (policy saved at step {step:,})" if step >= 0 else ""
    _console.print(f"Evaluation of {args.run_dir}{at}: {result}")
    return 0


def cmd_export(argv: list[str]) -> int:
    from sparserl.export import export_run

    args = tyro.cli(ExportArgs, args=argv, prog="sparserl export")
    load_plugins(args.plugins)
    header = export_run(args.run_dir, args.out, args.storage)
    dense_bytes = sum(4 * e["shape"][0] * e["shape"][1] for e in header["layers"].values())
    stored = ", ".join(f"{n} {e['storage']}" for n, e in header["layers"].items())
    _console.print(f"Wrote {args.out} ({args.out.stat().st_size:,} bytes; weights dense would be {dense_bytes:,}): "
                   f"{stored}", markup=False)
    return 0


def cmd_presets(argv: list[str]) -> int:
    if argv:
        raise ConfigError(f"sparserl presets takes no arguments, got {' '.join(argv)}")
    for name in list_presets():
        description, source = preset_header(name)
        envs = preset_envs(name)
        _console.print(f"[bold]{escape(name):<16}[/] {escape(description)}", markup=True)
        details = ([f"source: {source}"] if source else []) + ([f"envs: {', '.join(envs)}"] if envs else [])
        for line in details:
            _console.print(f"{'':<17}{line}", markup=False)
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "sweep": cmd_sweep, "report": cmd_report,
            "reproduce": cmd_reproduce, "presets": cmd_presets}
USAGE = """usage: sparserl {train,eval,export,sweep,report,reproduce,presets} ...

  train    train an agent (sparserl train --help for every flag)
  eval     re-evaluate the saved policy of a run directory (or --policy FILE)
  export   write a run's policy as a compact deployable file (sparserl export RUN_DIR --out FILE)
  sweep    run a grid of configurations, locally or on Ray (sparserl sweep --help)
  report   tables and plots over runs (sparserl report --help)
  reproduce  a paper's comparison at a CPU budget (sparserl reproduce rlx2-td3 --budget small)
  presets  list the shipped presets, with their sources

  --debug (anywhere) prints the traceback of an unexpected error instead of writing it to a log
"""


_SHOWN: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """sparserl's own warnings as one line ("warning: ..."), each text once per command (a config
    is checked at several points); others as Python prints them."""
    if issubclass(category, SparserlWarning):
        if str(message) not in _SHOWN:
            _SHOWN.add(str(message))
            _errors.print(f"warning: {message}", markup=False)
    else:
        _default(message, category, filename, lineno, file, line)


def _report_crash(exc: BaseException, debug: bool) -> int:
    """An unexpected error: a short report, the traceback in a log file (or here, with --debug)."""
    import tempfile
    import traceback
    from datetime import datetime

    text = "".join(traceback.format_exception(exc))
    if debug:
        _errors.print(text, markup=False, end="")
    else:
        log = Path(tempfile.gettempdir()) / f"sparserl-crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
        log.write_text(text)
        _errors.print(f"error: unexpected {type(exc).__name__}: {exc} (not a problem sparserl recognises; the "
                      f"traceback is in {log}; rerun with --debug to print it)", markup=False)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run one command. sparserl's own errors print one message (exit code 2; 1 for a run that
    diverged); anything unexpected prints a short report pointing at a log (the traceback itself
    with --debug, given anywhere on the line)."""
    warnings.showwarning = _show_warning
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        _console.print(USAGE, markup=False)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        hint = difflib.get_close_matches(command, COMMANDS, n=1)
        _errors.print(f"error: unknown command {command!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                      markup=False)
        _errors.print(USAGE, markup=False)
        return 2
    try:
        return COMMANDS[command](rest)
    except SparserlError as exc:
        _errors.print("error:", style="bold red", end=" ")
        _errors.print(str(exc), markup=False)
        return 1 if isinstance(exc, TrainingDiverged) else 2
    except KeyboardInterrupt as exc:
        run_dir = getattr(exc, "run_dir", None)
        hint = f": continue with `sparserl train --resume {run_dir}`" if run_dir is not None else ""
        _errors.print(f"interrupted{hint}", markup=False)
        return 130
    except Exception as exc:  # noqa: BLE001 (the one place unexpected errors are reported)
        return _report_crash(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
