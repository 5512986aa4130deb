"""Scaling reports: final return and plasticity diagnostics against network size, per sparsity level.

For every environment, sparsity level and network size (the dense parameter count of actor and
critics): the score (mean of each run's last K evaluations, then the mean over seeds with a 95 %
bootstrap interval, and each seed's), the median wall time per run, the
parameters left after pruning, and the mean over seeds of the last logged diagnostics (critic and
actor srank, dormant ratio at tau = 0.1, critic parameter and gradient norms). Written as
scaling.md, scaling.csv and one scaling_<env>.png with return, srank and dormant ratio against
parameter count (log scale), a line per sparsity level.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparserl.envs import EnvInfo
from sparserl.runs.build import parameter_count
from sparserl.runs.files import read_status
from sparserl.runs.metrics import read_metrics
from sparserl.studies.collect import RunData, collect_runs, describe, unfinished_note
from sparserl.studies.report import _slug
from sparserl.studies.stats import mean_ci

DIAGNOSTICS = ("diag_critic_srank", "diag_actor_srank", "diag_critic_dormant_0.1", "diag_actor_dormant_0.1",
               "diag_critic_param_norm", "diag_critic_grad_norm")


def parameter_counts(run: RunData) -> tuple[int, int]:
    """(parameters of actor and critics, of which pruned) of a run, from the networks' descriptions
    (nothing is built) and the run's sparsity accounting."""
    env = read_status(run.path)["env"]
    info = EnvInfo(env["id"], env["obs_dim"], env["act_dim"], env["max_episode_steps"])
    total = parameter_count(run.config, info)
    pruned = 0
    if run.sparsity:
        pruned = sum(line["total"] - line["kept"] for line in run.sparsity["layers"])
    return total, pruned


def last_diagnostics(run: RunData) -> dict[str, float]:
    rows = read_metrics(run.path / "metrics.csv")
    out = {}
    for name in DIAGNOSTICS:
        values = [r[name] for r in rows if not math.isnan(r.get(name, math.nan))]
        out[name] = values[-1] if values else math.nan
    return out


@dataclass
class ScalingReport:
    rows: list[dict]
    note: str | None = None
    """What the table leaves out (runs not finished yet), or None."""

    def logged(self, key: str) -> bool:
        """Whether any row has a value for diagnostic `key` (streaming runs log none)."""
        return any(math.isfinite(r[key]) for r in self.rows)

    def markdown(self) -> str:
        columns = [(key, title, fmt) for key, title, fmt in (
            ("diag_critic_srank", "critic srank", ".1f"), ("diag_critic_dormant_0.1", "critic dormant (τ 0.1)", ".3f"),
            ("diag_actor_srank", "actor srank", ".1f"), ("diag_critic_grad_norm", "critic grad norm", ".3g"))
            if self.logged(key)]
        head = ["env", "network", "parameters", "after pruning", "seeds", "score: mean [95 % CI]", "per seed",
                "time per run (h)"]
        out = ["| " + " | ".join(head + [title for _, title, _ in columns]) + " |",
               "|" + "---|" * (len(head) + len(columns))]
        for r in self.rows:
            cells = [r["env"], r["variant"], f"{r['parameters']:,}", f"{r['nonzero']:,}", str(r["seeds"]),
                     f"{r['score_mean']:.1f} [{r['score_ci_low']:.1f}, {r['score_ci_high']:.1f}]", r["per_seed"],
                     f"{r['wall_time_h']:.2f}"]
            out.append("| " + " | ".join(cells + [format(r[key], fmt) for key, _, fmt in columns]) + " |")
        if self.note:
            out += ["", f"- {self.note}"]
        return "\n".join(out) + "\n"

    def write(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "scaling.md").write_text(self.markdown())
        with open(folder / "scaling.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return [folder / "scaling.md", folder / "scaling.csv", *self.plot(folder)]

    def plot(self, folder: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter

        paths = []
        panels = [("score_mean", "score_ci", "final return")] + [
            (key, None, title) for key, title in (("diag_critic_srank", "critic srank (δ 0.01)"),
                                                  ("diag_critic_dormant_0.1", "critic dormant ratio (τ 0.1)"))
            if self.logged(key)]
        for env in sorted({r["env"] for r in self.rows}):
            fig, axes = plt.subplots(1, len(panels), figsize=(max(4 * len(panels), 6), 3.6), dpi=120, squeeze=False)
            axes = axes[0]
            series = sorted({(r["sparsity"], r["variant"]) for r in self.rows if r["env"] == env})
            for _, name in series:
                rows = sorted((r for r in self.rows if r["env"] == env and r["variant"] == name),
                              key=lambda r: r["parameters"])
                x = [r["parameters"] for r in rows]
                for ax, (key, err, title) in zip(axes, panels):
                    yerr = [[r[key] - r[f"{err}_low"] for r in rows], [r[f"{err}_high"] - r[key] for r in rows]] \
                        if err else None
                    ax.errorbar(x, [r[key] for r in rows], yerr=yerr,
                                marker="o", capsize=3, label=name)
                    ax.set_title(title, fontsize=10)
            for ax in axes:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
                ax.set_xlabel("parameters (actor + critic, before pruning)")
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=8, frameon=False)
            fig.suptitle(f"{env}: scaling with and without sparsity (mean over seeds)", fontsize=11)
            fig.tight_layout()
            path = folder / f"scaling_{_slug(env)}.png"
            fig.savefig(path)
            plt.close(fig)
            paths.append(path)
        return paths


def variant(config) -> str:
    """A run's series in the report: its label without the algorithm (sparserl.studies.collect's
    describe: dense, the method and levels, SparseInit)."""
    return describe(config).split(" ", 1)[1]


def build_scaling_report(dirs: list[str | Path], last_k: int | None = None) -> ScalingReport:
    groups: dict[tuple, list] = {}
    unfinished: list[Path] = []
    for run in collect_runs(dirs, unfinished):
        level = run.config.sparsity.level("critic")
        total, pruned = parameter_counts(run)
        groups.setdefault((run.env, level, variant(run.config), total), []).append((run, pruned))
    rows = []
    for (env, level, name, total), members in sorted(groups.items()):
        scores = np.array([run.score(last_k) for run, _ in members])
        low, high = mean_ci(scores)
        diagnostics = [last_diagnostics(run) for run, _ in members]
        row = {"env": env, "sparsity": level, "variant": name, "parameters": total,
               "nonzero": total - int(np.mean([p for _, p in members])), "seeds": len(members),
               "score_mean": float(scores.mean()), "score_ci_low": low, "score_ci_high": high,
               "score_std": float(scores.std()), "per_seed": ", ".join(f"{v:.0f}" for v in scores),
               "wall_time_h": float(np.median([run.wall_time for run, _ in members])) / 3600.0}
        for name in DIAGNOSTICS:
            values = [d[name] for d in diagnostics if not math.isnan(d[name])]
            row[name] = float(np.mean(values)) if values else math.nan
        rows.append(row)
    return ScalingReport(rows, unfinished_note(unfinished))
