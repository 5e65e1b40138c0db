#!/usr/bin/env bash
# Builds each library target alone, each in a build folder of its own, so that a target that
# imports a module it does not declare in Package.swift fails here (in one shared build folder
# the other targets' modules would be found). Debug builds; several minutes in all.
#   scripts/check_targets.sh [TARGET...]   (default: every library target and the executable)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
((${#targets[@]})) || targets=(AlexNetProtos AlexNetCore AlexNetInterop AlexNetKernels AlexNetData AlexNetModel AlexNetTraining AlexNetTools alexnet)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    start=$SECONDS
    # Resolved packages are copied, not fetched again.
    mkdir -p "$scratch/$t"
    [ -d .build/checkouts ] && cp -r .build/checkouts .build/repositories "$scratch/$t/" 2>/dev/null || true
    if swift build --target "$t" --scratch-path "$scratch/$t" >"$scratch/$t.log" 2>&1; then
        echo "check_targets: $t builds alone ($((SECONDS - start)) s)"
    else
        grep -E "error:" "$scratch/$t.log" | head -20 >&2
        echo "check_targets: $t does not build alone (log above)" >&2
        exit 1
    fi
    rm -rf "${scratch:?}/$t"
done
