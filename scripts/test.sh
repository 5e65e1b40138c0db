#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script). It needs nothing beside the
# clone: the golden files, PyTorch files and photos the tests read are in Tests/Fixtures.
#  1. set-up (system packages, release build);
#  2. a Python with safetensors, numpy, tensorboard, onnx and onnxruntime from PyPI for the
#     read-back tests (.build/pyenv);
#  3. the XCTest suite in release mode: layers against plain-Swift references, initialisation
#     statistics, SGD rules, safetensors, golden files, and the real binary's output and exit codes;
#  4. `alexnet verify` on the golden sets in Tests/Fixtures (golden, golden-alt) and, when one is
#     named, on the project's full golden set (the same files at full size): `--golden DIR` (DIR
#     holds the golden .safetensors files) or ALEXNET_SHARED=DIR (DIR holds golden/).
# Usage: scripts/test.sh [--golden DIR]
set -euo pipefail
extra=()
[ -z "${ALEXNET_SHARED:-}" ] || extra+=("$ALEXNET_SHARED/golden")
while (($#)); do
    case "$1" in
        --golden) [ $# -ge 2 ] || { echo "test: --golden needs a folder" >&2; exit 64; }; extra+=("$2"); shift 2 ;;
        --golden=*) extra+=("${1#--golden=}"); shift ;;
        *) echo "usage: scripts/test.sh [--golden DIR]" >&2; exit 64 ;;
    esac
done
# Named folders are made absolute before the cd below.
for i in "${!extra[@]}"; do
    [ -d "${extra[$i]}" ] || { echo "test: golden folder ${extra[$i]} not found" >&2; exit 1; }
    extra[$i]="$(cd "${extra[$i]}" && pwd)"
done
cd "$(dirname "$0")/.."

scripts/setup.sh

if [ ! -x .build/pyenv/bin/python ] || ! .build/pyenv/bin/python -c "import safetensors, numpy, tensorboard, onnx, onnxruntime" 2>/dev/null; then
    python3 -m venv .build/pyenv
    .build/pyenv/bin/pip install --quiet --disable-pip-version-check safetensors numpy tensorboard onnx onnxruntime
fi

ALEXNET_TEST_PYTHON="$(pwd)/.build/pyenv/bin/python" CI="${CI:-true}" swift test -c release --skip-build

.build/release/alexnet verify --quiet Tests/Fixtures/golden Tests/Fixtures/golden-alt "${extra[@]}"
