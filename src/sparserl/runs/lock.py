"""One owner per run directory: a trainer holds an exclusive OS lock on ``RUN_DIR/.lock`` from
before it writes anything until it ends. The kernel releases the lock when the process dies, however
it dies, so a crash never leaves a stale lock; a second trainer (`train` into the directory, a
second `--resume`, a sweep worker next to an orphan of an earlier sweep) is refused at once with the
holder's PID. The lock file itself stays (removing it would race with a process about to lock it).

On platforms without `fcntl` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparserl.errors import RunBusy

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

LOCK_FILE = ".lock"


def holder(run_dir: Path) -> int | None:
    """The PID recorded by the process that holds (or last held) `run_dir`'s lock, if any."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds `run_dir`'s lock now."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return False
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the body of the `with` (the directory must exist); RunBusy if a live
    process holds it. Opening the file does not change it, so a refused trainer changes nothing."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder(run_dir)
            by = f"process {pid}" if pid is not None else "another process"
            raise RunBusy(f"run directory {run_dir} is in use by {by} (a trainer is writing it); wait for it "
                          f"to end or stop it, or choose another --run-dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
