#!/bin/bash
# The prepared GPU check (at most 8 minutes on one GPU): the CUDA path's equivalence with the CPU, a
# short population run, K = 32 TD3 agent-steps/s, a 17M-parameter SimBa critic's update time and the
# 2:4 semi-structured step (benchmarks/gpu_check.py, up to 5 minutes), then DrQ-v2 from pixels: the
# update at batch 256 on 84 x 84 stacks, dense and 90 % masked, and a training run on
# cartpole-swingup for as many frames as fit, its frames/s and peak GPU memory (benchmarks/visual.py,
# up to 2.5 minutes). Run from the repository root on the GPU machine; its output goes into BENCHMARKS.md.
# The GPU machine reaches no registry: benchmarks/gpu_wheels.sh fetches, here, the wheels and GL
# loaders it lacks into .whl/ and .gl/, carried with the run (device tool: carry [".whl", ".gl"]).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nvidia_egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$nvidia_egl"
export MUJOCO_GL=egl
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
status=0
timeout 300 python3 benchmarks/gpu_check.py --device cuda "$@" || status=$?
timeout 150 python3 benchmarks/visual.py --device cuda --parts update sparse run --rounds 2 --sparse-batch 256 \
    --run-decisions 3000 || status=$?
exit $status
