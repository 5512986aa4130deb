"""Learning parity of bf16 autocast against float32: the final returns of the bf16-parity study.

The study (benchmarks/bf16_parity.yaml) trains TD3 on HalfCheetah-v5 for 100 000 steps, 5 seeds in
each precision. A run's final return is the mean of its last `score_window` evaluations. Parity
holds when each precision's mean final return lies within the other's seed spread (between its
lowest and highest seed), i.e. the precision moves the result less than the seed does.

    sparserl sweep benchmarks/bf16_parity.yaml
    python benchmarks/bf16_parity.py [studies/bf16-parity]
"""

from __future__ import annotations

import argparse
import statistics

from sparserl import hardware
from sparserl.studies.collect import collect_runs


def final_returns(study: str) -> dict[str, dict[int, float]]:
    """Per precision: each seed's final return, for the finished runs under `study` (collect_runs
    leaves out those still training)."""
    out: dict[str, dict[int, float]] = {}
    for run in collect_runs([study]):
        out.setdefault(run.config.precision, {})[run.config.seed] = run.score(None)
    return out


def within_spread(value: float, others: list[float]) -> bool:
    return min(others) <= value <= max(others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", nargs="?", default="studies/bf16-parity", help="the study's output folder")
    args = parser.parse_args()
    print(hardware.describe())
    scores = final_returns(args.study)
    missing = [p for p in ("fp32", "bf16") if len(scores.get(p, {})) < 2]
    if missing:
        raise SystemExit(f"bf16_parity: {', '.join(missing)} has fewer than 2 finished seeds in {args.study}")
    means = {}
    for precision in ("fp32", "bf16"):
        values = list(scores[precision].values())
        means[precision] = statistics.mean(values)
        seeds = ", ".join(f"{seed}: {score:.1f}" for seed, score in sorted(scores[precision].items()))
        print(f"{precision}: mean {means[precision]:.1f} ± {statistics.stdev(values):.1f} (std over "
              f"{len(values)} seeds), range {min(values):.1f} to {max(values):.1f}; per seed {seeds}")
    parity = all(within_spread(means[a], list(scores[b].values())) for a, b in (("fp32", "bf16"), ("bf16", "fp32")))
    print(f"parity (each mean inside the other's seed range): {'yes' if parity else 'no'}")
    print(f"RESULT bf16_parity_mean_fp32 {means['fp32']:.1f}")
    print(f"RESULT bf16_parity_mean_bf16 {means['bf16']:.1f}")
    print(f"RESULT bf16_parity_holds {int(parity)}")


if __name__ == "__main__":
    main()
