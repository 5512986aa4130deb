"""Checkpoints are atomic and self-verifying; a corrupt one is reported and older ones are kept."""

from __future__ import annotations

import pytest
import torch

from sparserl.errors import CheckpointError
from sparserl.runs.api import resume, train
from sparserl.runs.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    payload = {"w": torch.randn(5), "n": 3, "rng": torch.get_rng_state(), "big": 2**100}
    save_checkpoint(tmp_path / "ckpt_0000000001.pt", payload)
    loaded = load_checkpoint(tmp_path / "ckpt_0000000001.pt")
    assert torch.equal(loaded["w"], payload["w"]) and loaded["n"] == 3 and loaded["big"] == 2**100


def test_flipped_byte_is_detected(tmp_path):
    path = tmp_path / "ckpt_0000000001.pt"
    save_checkpoint(path, {"w": torch.zeros(1000)})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="is corrupt: its SHA-256 does not match"):
        load_checkpoint(path)


def test_truncation_is_detected(tmp_path):
    path = tmp_path / "ckpt_0000000001.pt"
    save_checkpoint(path, {"w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_crash_while_writing_leaves_old_checkpoints_untouched(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt_0000000001.pt", {"w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    expected = "could not write checkpoint .*No space left.*earlier checkpoints are kept"
    with pytest.raises(CheckpointError, match=expected):
        save_checkpoint(tmp_path / "ckpt_0000000002.pt", {"w": torch.zeros(3)})
    assert [p.name for _, p in list_checkpoints(tmp_path)] == ["ckpt_0000000001.pt"]
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is removed
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(tmp_path / "ckpt_0000000001.pt")["w"], torch.ones(3))


def test_prune_keeps_newest(tmp_path):
    for step in (10, 30, 20, 40):
        save_checkpoint(tmp_path / f"ckpt_{step:010d}.pt", {"s": step})
    prune_checkpoints(tmp_path, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [40, 30]


def test_resume_from_corrupt_checkpoint_names_the_good_one(make_config):
    config = make_config(total_steps=800, keep_checkpoints=3)
    result = train(config)
    checkpoints = list_checkpoints(result.run_dir / "checkpoints")
    (_, newest), (previous_step, previous) = checkpoints[0], checkpoints[1]
    data = bytearray(newest.read_bytes())
    data[100] ^= 0x01
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        resume(result.run_dir, total_steps=1000)
    message = str(info.value)
    assert "is corrupt" in message and str(previous) in message and "--checkpoint" in message
    assert previous.exists() and load_checkpoint(previous)["trainer"]["step"] == previous_step
    # following the advice works, and the corrupt file is set aside rather than deleted
    resumed = resume(result.run_dir, checkpoint=previous, total_steps=1000)
    assert resumed.step == 1000
    assert newest.with_name(newest.name + ".abandoned").exists()
    assert list_checkpoints(result.run_dir / "checkpoints")[0][0] == 1000
