#!/bin/bash
# Fetch, on this machine, what the GPU machine lacks for gpu_check.sh (it reaches no package
# registry): the Python wheels its image does not hold (it has torch, numpy, scipy, rich, pyyaml,
# tensorboard, safetensors, matplotlib, lxml, absl-py and etils), at this checkout's .venv versions,
# into .whl/, and the GL loader packages EGL rendering needs there into .gl/ (both git-ignored
# through .git/info/exclude). Name `.whl` and `.gl` in the device tool's `carry`; gpu_check.sh
# installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
for folder in /.whl/ /.gl/; do grep -qx "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude; done
mkdir -p .gl /tmp/amd64/partial
apt_options="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64"
apt-get $apt_options update > /dev/null
(cd .gl && apt-get $apt_options download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
names="gymnasium farama-notifications cloudpickle mujoco dm-control dm-tree labmaze glfw pyopengl shimmy tyro
       docstring-parser typeguard"
for name in $names; do
    version=$(.venv/bin/pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$name==$version"
done
# dm_control's wheel (56 MB) carries the locomotion assets (82 MB unpacked), which no DMC suite task
# uses (shimmy registers the locomotion tasks only if they import): dropped, to fit the 64 MiB carry
wheel=$(ls .whl/dm_control-*.whl)
work=$(mktemp -d)
(cd "$work" && python3 -m zipfile -e "$OLDPWD/$wheel" . && rm -rf dm_control/locomotion \
    && sed -i '/^dm_control\/locomotion\//d' dm_control-*.dist-info/RECORD && rm "$OLDPWD/$wheel" \
    && python3 -c "import shutil, sys; shutil.make_archive(sys.argv[1], 'zip', '.')" "$work-wheel" \
    && mv "$work-wheel.zip" "$OLDPWD/$wheel")
rm -rf "$work"
du -sh .whl .gl
