"""Runs one sweep run in its own process: reads the run's config as JSON on stdin, writes one JSON
line with the outcome on stdout (the run's console output goes to its output.log).

On Linux the worker asks the kernel to kill it when the sweep that started it dies
(PR_SET_PDEATHSIG), so killing the sweep process alone leaves no orphan training on; the run
continues from its last checkpoint when the sweep is run again. Elsewhere an orphan keeps its run
directory's lock (sparserl.runs.lock), so a rerun's worker is refused instead of training beside it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux); exit at once if it already has."""
    parent = os.getppid()
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the sweep died before the request took effect
        os._exit(1)


def main() -> None:
    die_with_parent()
    from sparserl.studies.sweep import execute

    outcome = execute(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
