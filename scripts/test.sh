#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#  1. set-up (system packages, release build);
#  2. a Python with safetensors, numpy, tensorboard, onnx and onnxruntime from PyPI for the
#     read-back tests (.build/pyenv);
#  3. the XCTest suite in release mode: layers against plain-Swift references, initialisation
#     statistics, SGD rules, safetensors, golden files, and the real binary's output and exit codes;
#  4. `alexnet verify` on ../shared/golden and on the second golden set in Tests/Fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${ALEXNET_SHARED:-../shared}"
[ -d "$shared/golden" ] || { echo "test: $shared/golden not found (../shared must sit beside the clone)" >&2; exit 1; }

scripts/setup.sh

if [ ! -x .build/pyenv/bin/python ] || ! .build/pyenv/bin/python -c "import safetensors, numpy, tensorboard, onnx, onnxruntime" 2>/dev/null; then
    python3 -m venv .build/pyenv
    .build/pyenv/bin/pip install --quiet --disable-pip-version-check safetensors numpy tensorboard onnx onnxruntime
fi

ALEXNET_TEST_PYTHON="$(pwd)/.build/pyenv/bin/python" CI="${CI:-true}" swift test -c release

.build/release/alexnet verify --quiet "$shared/golden" Tests/Fixtures/golden-alt
