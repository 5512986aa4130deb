#!/bin/bash
# The prepared GPU check (at most 8 minutes on one GPU): the CUDA path's equivalence with the CPU, a
# short population run, K = 32 TD3 agent-steps/s and a 17M-parameter SimBa critic's update time.
# Run from the repository root on the GPU machine; its output goes into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 python benchmarks/gpu_check.py --device cuda "$@"
