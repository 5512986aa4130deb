"""Runs one sweep run in its own process: reads the run's config as JSON on stdin, writes one JSON
line with the outcome on stdout (the run's console output goes to its output.log)."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from sparserl.studies.sweep import execute

    outcome = execute(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(outcome) + "\n")


if __name__ == "__main__":
    main()
