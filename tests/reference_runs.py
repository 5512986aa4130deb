"""Five short fixed-seed runs whose metrics.csv rows are recorded in tests/data/reference_runs/.

They pin sparserl's behaviour: a change that alters what any of them computes (a loss, a mask, a
sampled batch, an evaluation) changes their rows, which test_reference_runs.py compares with the
recorded files, every column but the wall-clock ones. Regenerate the files only on a deliberate
behaviour change, and say so in the commit:

    python tests/reference_runs.py            # re-record every run
    python tests/reference_runs.py td3_dense  # or some of them

Each run executes in a fresh process with one thread and with the CPU kernels pinned to their AVX2
versions (PyTorch's ATen dispatch, MKL's code path, NumPy's dispatch), so that machines with and
without AVX-512 compute the same floats.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "reference_runs"

#: The same kernels on AVX2-only and AVX-512 machines (set before torch and numpy are imported).
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
              "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": "disable", "SPARSERL_NATIVE": "0"}

_COMMON = dict(env="Hopper-v5", seed=3, total_steps=3000, start_steps=1000, batch_size=64, buffer_size=20_000,
               eval_every=500, eval_episodes=2, checkpoint_every=10**9, threads=1, progress=False,
               tensorboard=False, diagnostics_every=0)

#: name -> (preset, config keys on top of it)
RUNS: dict[str, tuple[str | None, dict]] = {
    "td3_dense": (None, dict(algo="td3", hidden=[64, 64])),
    "sac_dense": (None, dict(algo="sac", hidden=[64, 64])),
    "td3_nm24_srste": (None, dict(algo="td3", hidden=[64, 64], sparsity="nm:2:4", nm_gradient="srste")),
    # RLx2-TD3 with its schedule shortened so the 3-step target, topology updates and buffer shrinks all happen
    "rlx2_td3": ("rlx2-td3", dict(delay_nstep=600, update_interval=300, buffer_check_every=500, buffer_min_size=800,
                                  buffer_size=20_000)),
    "sac_simba_static_er80": (None, dict(algo="sac", network="simba", actor_width=32, actor_blocks=1,
                                         critic_width=64, critic_blocks=1, critics=2, obs_norm=True,
                                         optimizer="adamw", weight_decay=0.01, actor_lr=1e-4, critic_lr=1e-4,
                                         sparsity="static", actor_sparsity=0.8, critic_sparsity=0.8,
                                         distribution="er", budget_scope="all", diagnostics_every=1000)),
}


def flags(name: str, run_dir: Path) -> list[str]:
    """The `sparserl train` command line of run `name` (the CLI's flags are its most stable interface)."""
    preset, keys = RUNS[name]
    argv = ["train"] + (["--preset", preset] if preset else [])
    for key, value in {**_COMMON, **keys, "run_dir": str(run_dir)}.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, *map(str, value if isinstance(value, list) else [value])]
    return argv


def _run_here(name: str, run_dir: Path) -> None:
    from sparserl.cli import main

    code = main(flags(name, run_dir))
    if code != 0:
        raise SystemExit(code)


def run(name: str, run_dir: Path) -> Path:
    """Run `name` into `run_dir` in a pinned subprocess; returns its metrics.csv."""
    env = {**os.environ, **PINNED_ENV}
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import reference_runs as r; " \
           f"r._run_here({name!r}, r.Path({str(run_dir)!r}))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run {name} failed:\n{proc.stdout}\n{proc.stderr}")
    return run_dir / "metrics.csv"


def fingerprint() -> dict:
    """Versions of what the recorded floats depend on besides sparserl."""
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "numpy", "gymnasium", "mujoco")}


def main(names: list[str]) -> None:
    import shutil
    import tempfile

    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(RUNS):
            metrics = run(name, Path(tmp) / name)
            shutil.copy(metrics, DATA / f"{name}.csv")
            print(f"recorded {DATA / f'{name}.csv'}")
    (DATA / "fingerprint.json").write_text(json.dumps(fingerprint(), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
