"""The sparserl command: bad input is refused before any training, with a message saying why."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sparserl.algos import ALGORITHMS
from sparserl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *args) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # tyro's own argument errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


BAD_INPUTS = [
    (["--env", "Hoper-v5"], r"unknown environment id 'Hoper-v5'\. Did you mean: .*Hopper-v5"),
    (["--total-steps", "0"], r"total_steps must be a positive integer, got 0"),
    (["--eval-every", "-5"], r"eval_every must be a positive integer, got -5"),
    (["--checkpoint-every", "0"], r"checkpoint_every must be a positive integer, got 0"),
    (["--batch-size", "512", "--buffer-size", "100"], r"batch_size \(512\) must not exceed buffer_size \(100\)"),
    (["--algo", "ppo"], rf"algo must be one of {re.escape(', '.join(ALGORITHMS.names()))}; got 'ppo'"),
    (["--preset", "quikstart"], r"unknown preset 'quikstart'. Did you mean quickstart"),
    (["--total-steps", "many"], r"--total-steps"),
    (["--preset", "rlx2-td3", "--env", "Humanoid-v5"],
     r"preset 'rlx2-td3' has no settings for Humanoid-v5; it has them for HalfCheetah-v5, Hopper-v5, "
     r"Walker2d-v5, Ant-v5"),
    (["--nstep", "0"], r"nstep must be an integer >= 1, got 0"),
    (["--network", "simba", "--critic-width", "0"], r"critic_width must be an integer >= 1, got 0"),
    (["--network", "simba", "--actor-blocks", "0"], r"actor_blocks must be an integer >= 1, got 0"),
    (["--action-repeat", "0"], r"action_repeat must be an integer >= 1, got 0"),
    (["--env", "dm_control/humanoid-rnu-v0"], r"Did you mean: .*dm_control/humanoid-run-v0"),
    (["--diagnostics-every", "-1"], r"diagnostics_every must be an integer >= 0 \(0 = off\), got -1"),
    (["--delay-nstep", "-1"], r"delay_nstep must be an integer >= 0"),
    (["--dynamic-buffer", "--buffer-threshold", "0"], r"buffer_threshold must be a positive number, got 0.0"),
    (["--dynamic-buffer", "--buffer-min-size", "2000", "--buffer-size", "1000"],
     r"buffer_min_size \(2000\) must be positive and at most buffer_size \(1000\)"),
    (["--seed", "-1"], r"seed must be an integer in \[0, 2\*\*32\), got -1"),
    (["--seed", str(2**64)], r"seed must be an integer in \[0, 2\*\*32\), got 18446744073709551616"),
    (["--eval-seed", "-3"], r"eval_seed must be an integer in \[0, 2\*\*32\) or None"),
    (["--stop-at-return", "nan"], r"stop_at_return must be a finite number or None, got nan"),
    (["--total-steps", str(10**30)], r"total_steps \(1e\+30\) is more than a run can take; at most 10,000,000,000"),
    (["--total-steps", "1000", "--start-steps", "5000"],
     r"start_steps \(5000\) exceeds total_steps \(1000\): the run would end before it learns"),
    (["--actor-sparsity", "0.5"], r"actor_sparsity \(0.5\) has no effect on a dense run: give a sparsity method"),
    (["--env", "Pendulum-v1", "--buffer-size", str(10**12)],
     r"buffer_size 1,000,000,000,000 needs 40978.* GiB for the replay buffer \(3 observations, 1 actions per "
     r"transition\), but .* GiB of memory is available; lower --buffer-size"),
]


@pytest.mark.parametrize("args,pattern", BAD_INPUTS)
def test_bad_input_is_refused_before_training(tmp_path, capsys, args, pattern):
    run_dir = tmp_path / "run"
    code, output = run_main(capsys, "train", "--run-dir", str(run_dir), *args)
    assert code == 2
    assert re.search(pattern, " ".join(output.split())), output
    assert not run_dir.exists()  # nothing was started


def test_malformed_yaml_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: Pendulum-v1\ntotal_steps: [1000\n")
    code, output = run_main(capsys, "train", "--config", str(bad))
    assert code == 2 and re.search(r"is not valid YAML at line \d+, column \d+", " ".join(output.split()))


def test_unknown_yaml_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evel_every: 100\n")
    code, output = run_main(capsys, "train", "--config", str(bad))
    assert code == 2 and "unknown config key 'evel_every'; did you mean eval_every" in " ".join(output.split())


def test_unknown_command(capsys):
    code, output = run_main(capsys, "trian")
    assert code == 2 and "did you mean 'train'" in output


def test_resume_refuses_changed_settings(tmp_path, capsys, make_config):
    from sparserl.runs.api import train
    result = train(make_config(total_steps=400))
    code, output = run_main(capsys, "train", "--resume", str(result.run_dir), "--batch-size", "64")
    assert code == 2 and "cannot change --batch-size when resuming" in " ".join(output.split())


def test_train_eval_and_resume_end_to_end(tmp_path):
    """The real entry point: train, extend with --resume, then re-evaluate the saved policy."""
    run_dir = tmp_path / "run"
    common = ["--env", "Pendulum-v1", "--start-steps", "200", "--batch-size", "32", "--hidden", "32", "32",
              "--eval-every", "200", "--eval-episodes", "2", "--checkpoint-every", "200", "--threads", "1"]
    out = subprocess.run([sys.executable, "-m", "sparserl", "train", "--total-steps", "400",
                          "--run-dir", str(run_dir), *common], check=True, capture_output=True, text=True).stdout
    assert f"Run saved to {run_dir}" in out and "Final evaluation at step 400" in out
    out = subprocess.run([sys.executable, "-m", "sparserl", "train", "--resume", str(run_dir), "--total-steps",
                          "600"], check=True, capture_output=True, text=True).stdout
    assert "Final evaluation at step 600" in out
    final = re.search(r"Final evaluation at step 600: (\S+) ± (\S+)", out).groups()
    out = subprocess.run([sys.executable, "-m", "sparserl", "eval", str(run_dir)], check=True,
                         capture_output=True, text=True).stdout
    assert "policy saved at step 600" in out
    assert re.search(r": (\S+) ± (\S+) over 2 episodes", out).groups() == final  # same seed, same numbers
    for name in ("config.yaml", "run.json", "metrics.csv", "policy.safetensors"):
        assert (run_dir / name).is_file()
    assert list((run_dir / "tb").iterdir())


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    train_cmd, test_cmd = commands
    assert "sparserl train" in train_cmd and "pytest" in test_cmd
    assert "torch==2.13.0" in train_cmd and "torch==2.13.0" in test_cmd
    assert test_cmd in (ROOT / ".ci" / "run").read_text()


SPARSITY_BAD_INPUTS = [
    (["--sparsity", "nm:4:4"], r"nm:4:4: N must be smaller than M"),
    (["--sparsity", "nm:0:4"], r"nm:0:4: N must be at least 1"),
    (["--sparsity", "nm:1:1"], r"nm:1:1: M must be at least 2"),
    (["--sparsity", "nm:2"], r"N:M sparsity is written nm:N:M"),
    (["--sparsity", "rigl", "--actor-sparsity", "1.0"], r"actor_sparsity must be in \[0, 1\), got 1.0"),
    (["--sparsity", "static", "--critic-sparsity", "-0.1"], r"critic_sparsity must be in \[0, 1\), got -0.1"),
    (["--sparsity", "magic"], r"unknown sparsity method 'magic'; allowed: dense, static, rigl, set, gmp, nm:N:M"),
    (["--sparsity", "rigl:2:4"], r"only nm takes numbers"),
    (["--sparsity", "nm:2:4", "--actor-sparsity", "0.9"], r"actor_sparsity does not apply to nm:2:4"),
    (["--sparsity", "rigl", "--distribution", "erdos"], r"invalid choice 'erdos' for argument '--distribution'"),
    (["--sparsity", "rigl", "--nm-gradient", "magic"], r"invalid choice 'magic' for argument '--nm-gradient'"),
    (["--sparsity", "static", "--actor-sparsity", "0.99", "--keep-first-dense", "--keep-last-dense",
      "--distribution", "uniform"], r"actor: sparsity 0.99 cannot be met: the parts kept dense alone hold"),
    (["--sparsity", "static", "--actor-sparsity", "0.9999", "--distribution", "uniform"],
     r"actor: layer net.net.layers.\d.weight \(\d+x\d+\) would keep no weight"),
    (["--network", "simba", "--sparsity", "static", "--actor-sparsity", "0.9999", "--distribution", "uniform"],
     r"actor: layer net.net.\w+.weight \(\d+x\d+\) would keep no weight"),
]


@pytest.mark.parametrize("args,pattern", SPARSITY_BAD_INPUTS)
def test_bad_sparsity_input_is_refused_before_training(tmp_path, capsys, args, pattern):
    run_dir = tmp_path / "run"
    code, output = run_main(capsys, "train", "--env", "Pendulum-v1", "--hidden", "16", "16", "--run-dir",
                            str(run_dir), *args)
    assert code == 2
    assert re.search(pattern, " ".join(output.split())), output
    assert not run_dir.exists()


def test_sparsity_in_yaml_section_shorthand_and_flat_keys(tmp_path):
    from sparserl.config import load_yaml
    path = tmp_path / "s.yaml"
    path.write_text("sparsity: {method: rigl, actor_sparsity: 0.8}\ncritic_sparsity: 0.7\n")
    values = load_yaml(path)
    assert values["sparsity"].method == "rigl" and values["sparsity"].actor_sparsity == 0.8
    assert values["sparsity"].critic_sparsity == 0.7
    path.write_text("sparsity: nm:1:4\n")
    assert load_yaml(path)["sparsity"].method == "nm:1:4"


def test_presets_lists_descriptions_sources_and_tasks(capsys):
    code, out = run_main(capsys, "presets")
    assert code == 0
    block = out[out.index("rlx2-td3 "):]
    assert "source: Tan et al., ICLR 2023" in block.splitlines()[1]
    assert "envs: HalfCheetah-v5, Hopper-v5, Walker2d-v5, Ant-v5" in block.splitlines()[2]


def test_a_preset_takes_the_env_flag_and_per_field_overrides(capsys):
    from sparserl.cli import _parse_train

    args = _parse_train(["--preset", "rlx2-td3", "--env", "Ant-v5", "--critic-sparsity", "0.5", "--nstep", "2"])
    s = args.settings
    assert (s.env, s.sparsity.actor_sparsity, s.sparsity.critic_sparsity, s.nstep) == ("Ant-v5", 0.96, 0.5, 2)


def test_reproduce_dry_run_and_bad_paper(capsys):
    code, out = run_main(capsys, "reproduce", "rlx2-td3", "--dry-run")
    assert code == 0 and "9 runs" in out and "env=Hopper-v5_preset=rlx2-td3_seed=2" in out
    code, out = run_main(capsys, "reproduce", "rlx3-td3")
    assert code != 0 and "unknown paper 'rlx3-td3'" in out


def test_reproduce_pack_size_lists_the_populations_it_would_train(capsys):
    code, out = run_main(capsys, "reproduce", "rlx2-td3", "--pack-size", "2", "--dry-run")
    assert code == 0 and "9 runs: 0 finished, 9 to train as 6 populations or runs" in out
    assert "env=Hopper-v5_preset=rlx2-td3_seed=0+1 " in out and "2 agents)" in out
    assert "env=Hopper-v5_preset=rlx2-td3_seed=2 " in out
    code, out = run_main(capsys, "reproduce", "rlx2-td3", "--pack-size", "0", "--dry-run")
    assert code == 2 and "pack_size must be a positive integer" in out
