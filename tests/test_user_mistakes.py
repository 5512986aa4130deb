"""A user's mistake is one clear message (exit code 2) and leaves nothing behind; an unexpected error
is a short report pointing at a log (the traceback only with --debug)."""

from __future__ import annotations

import re

import pytest

from sparserl import cli
from sparserl.cli import main
from sparserl.errors import CheckpointError
from sparserl.runs import files

SMALL = ["--env", "Pendulum-v1", "--total-steps", "300", "--start-steps", "100", "--batch-size", "32", "--hidden",
         "16", "16", "--eval-every", "300", "--eval-episodes", "1", "--checkpoint-every", "300", "--threads", "1",
         "--no-progress", "--no-tensorboard"]


def run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_a_run_dir_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, err = run(capsys, "train", *SMALL, "--run-dir", str(target))
    assert code == 2 and f"--run-dir {target} is a file, not a directory" in err, err
    assert target.read_text() == "mine"


def test_a_binary_config_file_is_refused(tmp_path, capsys):
    blob = tmp_path / "model.bin"
    blob.write_bytes(bytes(range(256)))
    code, err = run(capsys, "train", "--config", str(blob))
    assert code == 2 and "is not a text file (byte 128 is not UTF-8): give a YAML file" in err, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *SMALL, "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_export_into_a_missing_folder_or_onto_a_directory_is_refused(finished, tmp_path, capsys):
    code, err = run(capsys, "export", str(finished), "--out", str(tmp_path / "no" / "such" / "p.safetensors"))
    assert code == 2 and f"the folder {tmp_path / 'no' / 'such'} does not exist; create it first" in err, err
    code, err = run(capsys, "export", str(finished), "--out", str(tmp_path))
    assert code == 2 and f"--out {tmp_path} is a directory; give a file name" in err, err
    assert not (tmp_path / "no").exists()


def test_a_damaged_run_json_is_named_with_its_line(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / files.STATUS_FILE).write_text('{"status": "finished",\n "step": 3')
    with pytest.raises(CheckpointError, match=rf"{copy / files.STATUS_FILE} is damaged at line 2, column 11"):
        files.read_status(copy)


def test_an_unexpected_error_is_a_short_report_with_the_traceback_in_a_log(monkeypatch, capsys):
    def broken(argv):
        raise RuntimeError("something inside broke")

    monkeypatch.setitem(cli.COMMANDS, "presets", broken)
    code, err = run(capsys, "presets")
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: unexpected RuntimeError: something inside broke") and "--debug" in err
    log = re.search(r"the traceback is in (\S+);", err).group(1)
    with open(log) as f:
        text = f.read()
    assert "Traceback (most recent call last)" in text and "something inside broke" in text
    code, err = run(capsys, "presets", "--debug")
    assert code == 1 and "Traceback (most recent call last)" in err and 'raise RuntimeError("something' in err


def test_a_setting_the_algorithm_does_not_read_is_named_in_a_warning():
    from sparserl.algos import DDPG, SAC, TD3
    from sparserl.config import Config
    from sparserl.errors import ConfigWarning

    with pytest.warns(ConfigWarning, match=r"policy_noise = 0.3 has no effect on sac \(it is read by td3\)"):
        Config(algo="sac", policy_noise=0.3).validate()
    with pytest.warns(ConfigWarning, match=r"init_alpha = 0.1 has no effect on ddpg \(it is read by sac\)"):
        Config(algo="ddpg", init_alpha=0.1).validate()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what an algorithm reads draws nothing
        Config(algo="td3", policy_noise=0.3, exploration_noise=0.2).validate()
        Config(algo="sac", init_alpha=0.1).validate()
    assert set(DDPG.settings) < set(TD3.settings) and not set(SAC.settings) & set(TD3.settings)


def test_a_damaged_config_yaml_is_named_with_its_line(finished, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / files.CONFIG_FILE).write_text("env: Pendulum-v1\ntotal_steps: [300\n")
    code, err = run(capsys, "train", "--resume", str(copy))
    assert code == 2 and f"{copy / files.CONFIG_FILE}" in err and "is not valid YAML at line 3" in err, err
    assert len(err.splitlines()) == 1


def test_echoed_values_are_printed_as_given(capsys):
    """No markup or emoji codes are interpreted in a user's value (``:smile:``, ``[bold]``)."""
    for value in (":smile:", "nm:a:b", "[bold]x[/bold]"):
        code, err = run(capsys, "train", "--sparsity", value)
        assert code == 2 and repr(value) in err, err


def test_an_interrupted_run_names_its_own_directory_in_the_hint(make_config, monkeypatch, capsys):
    from sparserl.runs.api import train
    from sparserl.runs.learner import OffPolicyLearner

    calls = {"n": 0}
    observe = OffPolicyLearner.observe

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 250:
            raise KeyboardInterrupt
        return observe(self, *args, **kwargs)

    monkeypatch.setattr(OffPolicyLearner, "observe", interrupting)
    config = make_config()
    monkeypatch.setitem(cli.COMMANDS, "train", lambda argv: train(config))
    code, err = run(capsys, "train")
    assert code == 130 and err == f"interrupted: continue with `sparserl train --resume {config.run_dir}`"
    assert files.read_status(config.run_dir)["status"] == "interrupted"
