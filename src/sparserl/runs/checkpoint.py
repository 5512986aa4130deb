"""Atomic, self-verifying checkpoint files.

A checkpoint is a ``torch.save`` archive followed by a 40-byte trailer: the SHA-256 of the archive
and a magic tag. It is written to a temporary file in the same folder, fsynced, renamed over its
final name and the folder fsynced, so a crash leaves either the old set of checkpoints or the new
one, never a half-written file under a checkpoint name. Loading checks the tag and the digest
before unpickling (with ``weights_only=True``), so truncation or corruption is reported, not
silently loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import torch

from sparserl.errors import CheckpointError

MAGIC = b"SPRLCKP1"
CHECKPOINT_FORMAT = 3
"""3: the learner's state in one section, critic MLPs under `body.`; 2 (sparserl 0.1.0 before the
restructuring) is upgraded on load."""
_DIGEST = 32
_PATTERN = re.compile(r"^ckpt_(\d+)\.pt$")


class _HashingWriter:
    def __init__(self, file):
        self.file, self.hash = file, hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Call write(file) on a temporary sibling of `path`, fsync it and rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write `payload` atomically with a digest trailer."""

    def write(f) -> None:
        writer = _HashingWriter(f)
        torch.save(payload, writer)
        f.write(writer.hash.digest())
        f.write(MAGIC)

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {path}: {exc}; earlier checkpoints are kept") from exc


def load_checkpoint(path: Path) -> dict:
    """Read and verify a checkpoint; CheckpointError if it is missing, truncated or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    trailer = _DIGEST + len(MAGIC)
    if len(data) < trailer or data[-len(MAGIC):] != MAGIC:
        raise CheckpointError(f"checkpoint {path} is truncated or not a sparserl checkpoint "
                              f"({len(data)} bytes, no end marker)")
    body, digest = memoryview(data)[:-trailer], data[-trailer:-len(MAGIC)]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt: its SHA-256 does not match the one "
                              f"written with it")
    try:
        return torch.load(io.BytesIO(body), weights_only=True, map_location="cpu")  # any device loads it
    except Exception as exc:  # a verified file that still fails to load: wrong version or format
        raise CheckpointError(f"checkpoint {path} could not be loaded: {exc}") from None


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:010d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in `folder`, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        match = _PATTERN.match(p.name)
        if match:
            found.append((int(match.group(1)), p))
    return sorted(found, reverse=True)


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the `keep` newest checkpoints, and stale temporary files."""
    for _, path in list_checkpoints(folder)[keep:]:
        path.unlink(missing_ok=True)
    for stale in Path(folder).glob(".ckpt_*.tmp-*"):
        stale.unlink(missing_ok=True)


def upgrade_payload(payload: dict) -> dict:
    """A checkpoint payload in the current format: format 2 is converted (its agent, replay and
    warm-up RNG become the learner's section; an MLP critic's layers move under `body.`); any other
    format is refused, naming it."""
    version = payload.get("format")
    if version == CHECKPOINT_FORMAT:
        return payload
    if version != 2:
        raise CheckpointError(f"checkpoint format {version} is not supported (this sparserl reads formats 2 and "
                              f"{CHECKPOINT_FORMAT})")
    agent = dict(payload["agent"])
    agent["networks"] = {name: {(f"body.{k}" if name.startswith("critic") and k.startswith("layers.") else k): v
                                for k, v in state.items()} for name, state in agent["networks"].items()}
    upgraded = {k: v for k, v in payload.items() if k not in ("agent", "replay", "replay_capacity")}
    upgraded["learner"] = {"agent": agent, "replay": payload["replay"],
                           "replay_capacity": payload.get("replay_capacity"), "warmup_rng": payload["rng"]["numpy"]}
    upgraded["format"] = CHECKPOINT_FORMAT
    return upgraded
