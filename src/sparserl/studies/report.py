"""Reports over run directories: the tables and plots sparse-RL papers show, with honest uncertainty.

Runs are grouped by environment and label (sparserl.studies.collect says how runs are labelled;
runs under one label must differ only in their seed).

Per environment and label:
- score: each run's mean of its last K evaluations (K = the runs' score_window, RLx2: 30), then
  the mean over seeds with a 95 % percentile-bootstrap interval of it (and the std);
- % of dense (RLx2's convention): 100 * score / dense score, when the dense score is positive;
- normalised: (score - untrained) / (dense - untrained), where untrained and dense are the dense
  baseline's mean step-0 and final scores on that environment: 0 is an untrained policy, 1 the dense
  agent, whatever the sign of the returns (left out, with a note, while the dense agent has not yet
  improved on its untrained policy);
- model size, inference and training FLOPs relative to dense, from the runs' sparsity.json;
- wall time: the median over seeds of the hours each run trained, on the machines its run.json names.

Across environments, per label: the interquartile mean (IQM) of the normalised scores of all runs
with a 95 % stratified-bootstrap interval, and the probability that a run of the label scores above
a dense run of the same task (averaged over tasks) with a 95 % stratified-bootstrap interval
(sparserl.studies.stats). Learning curves show the mean over seeds with a 95 % bootstrap band of
that mean.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparserl.errors import ConfigError
from sparserl.studies.collect import RunData, check_groups, collect_runs, label_runs, unfinished_note
from sparserl.studies.stats import (
    bootstrap_mean_band,
    iqm,
    mean_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


@dataclass
class Report:
    rows: list[dict]
    """One per environment and label (see the module docstring for the columns)."""
    iqm_rows: list[dict]
    """One per label: IQM of normalised scores over all runs of all environments, with its interval."""
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]
    """env -> label -> (steps, mean, low, high)."""
    improvement_rows: list[dict] = field(default_factory=list)
    """One per label other than the baseline: P(a run of it beats a dense run), with its interval."""
    notes: list[str] = field(default_factory=list)
    curve_kind: str = "evaluation return"
    """What the curves plot: evaluation or training returns (streaming runs measure the latter)."""

    # --- output -----------------------------------------------------------------------------------
    def markdown(self) -> str:
        out = ["| env | label | seeds | score: mean [95 % CI] | % of dense | normalised | model size | "
               "inference FLOPs | training FLOPs | wall time (h) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            out.append(f"| {r['env']} | {r['label']} | {r['seeds']} | {r['score_mean']:.1f} "
                       f"[{r['score_ci_low']:.1f}, {r['score_ci_high']:.1f}] | "
                       f"{_fmt(r['pct_of_dense'], '{:.1f}')} | {_fmt(r['normalised'], '{:.3f}')} | "
                       f"{_fmt(r['model_size'], '{:.3f}')} | {_fmt(r['inference_flops'], '{:.3f}')} | "
                       f"{_fmt(r['training_flops'], '{:.3f}')} | {_fmt(r['wall_time_h'], '{:.2f}')} |")
        if self.iqm_rows:
            out += ["", "| label | environments | runs | IQM of normalised score [95 % CI] |", "|---|---|---|---|"]
            for r in self.iqm_rows:
                out.append(f"| {r['label']} | {r['tasks']} | {r['runs']} | {r['iqm']:.3f} "
                           f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |")
        if self.improvement_rows:
            out += ["", "| label | over | environments | P(label > baseline) [95 % CI] |", "|---|---|---|---|"]
            for r in self.improvement_rows:
                out.append(f"| {r['label']} | {r['baseline']} | {r['tasks']} | {r['probability']:.3f} "
                           f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |")
        out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"

    def write(self, folder: str | Path) -> list[Path]:
        """report.md, report.csv, iqm.csv, improvement.csv, curves_<env>.png, iqm.png and
        improvement.png in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "report.md", folder / "report.csv", folder / "iqm.csv", folder / "improvement.csv"]
        written[0].write_text(self.markdown())
        _write_csv(written[1], self.rows)
        _write_csv(written[2], self.iqm_rows)
        _write_csv(written[3], self.improvement_rows)
        written += self.plot(folder)
        return written

    def plot(self, folder: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        paths = []
        for env, by_label in self.curves.items():
            fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
            for label, (steps, mean, low, high) in by_label.items():
                (line,) = ax.plot(steps, mean, label=label, linewidth=1.8)
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            ax.set_title(f"{env}: {self.curve_kind} (mean over seeds, 95 % bootstrap band)", fontsize=10)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("return")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, frameon=False)
            fig.tight_layout()
            path = folder / f"curves_{_slug(env)}.png"
            fig.savefig(path)
            plt.close(fig)
            paths.append(path)
        intervals = ((self.iqm_rows, "iqm", 1.0, "IQM over tasks and seeds", "normalised score (1 = dense)",
                      "iqm.png"),
                     (self.improvement_rows, "probability", 0.5, "probability of improvement over the baseline",
                      "P(a run of the label scores above a baseline run)", "improvement.png"))
        for rows, key, reference, title, xlabel, name in intervals:
            if not rows:
                continue
            fig, ax = plt.subplots(figsize=(7, 1.0 + 0.45 * len(rows)), dpi=120)
            for y, r in enumerate(rows):
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], linewidth=6, alpha=0.35, solid_capstyle="butt")
                ax.plot([r[key]], [y], "k|", markersize=14)
            ax.set_yticks(range(len(rows)), [r["label"] for r in rows])
            ax.axvline(reference, color="grey", linestyle=":", linewidth=1)
            ax.set_title(f"{title}, 95 % stratified bootstrap interval", fontsize=10)
            ax.set_xlabel(xlabel)
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            fig.savefig(folder / name)
            plt.close(fig)
            paths.append(folder / name)
        return paths


def _fmt(value, pattern: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "-" for c in text)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


# --- the report ------------------------------------------------------------------------------------

def build_report(dirs: list[str | Path], last_k: int | None = None, baseline: str | None = None,
                 label_by: list[str] | None = None, reps: int = 5000, seed: int = 0) -> Report:
    """Aggregate the runs under `dirs` (see the module docstring)."""
    unfinished: list[Path] = []
    runs = collect_runs(dirs, unfinished)
    label_runs(runs, label_by)
    groups: dict[tuple[str, str], list[RunData]] = {}
    for run in runs:
        groups.setdefault((run.env, run.label), []).append(run)
    check_groups(groups)
    envs = sorted({env for env, _ in groups})
    labels = sorted({label for _, label in groups}, key=lambda lab: (not lab.endswith("dense"), lab))
    notes = []
    rows, normalised_by_label = [], {label: [] for label in labels}
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # label -> [(its scores, the baseline's)] per env
    baselines = set()
    curves: dict[str, dict] = {}
    for env in envs:
        base_label = _baseline(env, groups, baseline)
        base = None
        if base_label is not None:
            base_runs = groups[(env, base_label)]
            base = (float(np.mean([r.score(last_k) for r in base_runs])),
                    float(np.mean([r.returns[0] for r in base_runs])))
            if base[0] <= base[1]:
                notes.append(f"{env}: the dense baseline ({base[0]:.1f}) has not improved on its untrained policy "
                             f"({base[1]:.1f}), so scores there are not normalised")
            baselines.add(base_label)
        else:
            notes.append(f"{env}: no dense baseline among the labels, so no normalised scores")
        curves[env] = {}
        for label in labels:
            group = groups.get((env, label))
            if not group:
                continue
            scores = np.array([r.score(last_k) for r in group])
            low, high = mean_ci(scores, reps=reps, seed=seed)
            row = {"env": env, "label": label, "seeds": len(group), "score_mean": float(scores.mean()),
                   "score_ci_low": low, "score_ci_high": high, "score_std": float(scores.std()),
                   "pct_of_dense": None, "normalised": None}
            if base_label is not None and label != base_label:
                pairs.setdefault(label, []).append((scores, np.array([r.score(last_k) for r in base_runs])))
            if base is not None:
                dense, untrained = base
                if dense > 0:
                    row["pct_of_dense"] = 100.0 * row["score_mean"] / dense
                if dense > untrained:
                    per_run = (scores - untrained) / (dense - untrained)
                    row["normalised"] = float(per_run.mean())
                    normalised_by_label[label].append(per_run)
            row.update(_accounting(group))
            row["wall_time_h"] = float(np.median([r.wall_time for r in group])) / 3600.0
            rows.append(row)
            common = sorted(set.intersection(*(set(r.steps.tolist()) for r in group)))
            matrix = np.array([[dict(zip(r.steps.tolist(), r.returns.tolist()))[s] for s in common] for r in group])
            curves[env][label] = (np.array(common), *bootstrap_mean_band(matrix, seed=seed))
    iqm_rows = []
    for label in labels:
        tasks = normalised_by_label[label]
        if tasks:
            low, high = stratified_bootstrap_ci(tasks, iqm, reps=reps, seed=seed)
            iqm_rows.append({"label": label, "tasks": len(tasks), "runs": int(sum(t.size for t in tasks)),
                             "iqm": iqm(np.concatenate(tasks)), "ci_low": low, "ci_high": high})
    baseline_name = baselines.pop() if len(baselines) == 1 else "dense"
    improvement_rows = []
    for label, paired in pairs.items():
        x, y = zip(*paired)
        low, high = probability_of_improvement_ci(x, y, reps=reps, seed=seed)
        improvement_rows.append({"label": label, "baseline": baseline_name, "tasks": len(paired),
                                 "probability": probability_of_improvement(x, y), "ci_low": low, "ci_high": high})
    notes.append(_machines_note([run for group in groups.values() for run in group]))
    if note := unfinished_note(unfinished):
        notes.append(note)
    k_text = f"the last {last_k}" if last_k else "each run's last score_window"
    measured = {run.config.measure for group in groups.values() for run in group}
    what, curve_kind = {frozenset({"eval_return"}): ("evaluations", "evaluation return"),
                        frozenset({"train_return"}): ("rows' training returns", "training return")}.get(
        frozenset(measured), ("evaluations (or rows' training returns)", "return"))
    notes.append(f"score: mean of {k_text} {what} per run, then mean ± std over seeds")
    return Report(rows, iqm_rows, curves, improvement_rows, notes, curve_kind)


def _machines_note(runs: list[RunData]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        for name in run.machines or ("not recorded",):
            counts[name] = counts.get(name, 0) + 1
    return "machines (runs): " + ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))


def _baseline(env: str, groups, baseline: str | None) -> str | None:
    labels = [label for e, label in groups if e == env]
    if baseline is not None:
        if baseline not in labels:
            raise ConfigError(f"report: baseline {baseline!r} has no runs on {env}; labels there: {', '.join(labels)}")
        return baseline
    unmasked = [label for label in labels if not groups[(env, label)][0].config.sparsity.enabled]
    dense = [label for label in unmasked if groups[(env, label)][0].config.init != "sparse"] or unmasked
    if len(dense) > 1:
        raise ConfigError(f"report: several dense labels on {env} ({', '.join(dense)}); choose one with --baseline")
    return dense[0] if dense else None


def _accounting(group: list[RunData]) -> dict:
    reports = [r.sparsity for r in group if r.sparsity]
    if not group[0].config.sparsity.enabled:
        return {"model_size": 1.0, "inference_flops": 1.0, "training_flops": 1.0}
    if not reports:
        return {"model_size": None, "inference_flops": None, "training_flops": None}
    keys = ("model_size", "inference_flops", "training_flops")
    return {key: float(np.mean([r[key] for r in reports])) for key in keys}
