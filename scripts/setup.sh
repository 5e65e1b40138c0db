#!/usr/bin/env bash
# Set-up on a fresh Debian 12 machine: installs the system packages the build needs (oneDNN's C
# API with its OpenMP runtime, libjpeg-turbo, libpng, zlib, Open MPI for distributed training, and
# Debian's Fashion-MNIST for the demo), then builds `alexnet` in release mode (.build/release/alexnet),
# with the tests: `swift build` and `swift test` build with different settings, so building both
# here makes scripts/test.sh reuse this build instead of compiling every module a second time.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libdnnl-dev libturbojpeg0-dev libpng-dev zlib1g-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6 toolchain needed)" >&2; exit 1; }
swift build -c release --build-tests
echo "setup: built $(pwd)/.build/release/alexnet" >&2
