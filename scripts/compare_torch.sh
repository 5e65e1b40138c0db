#!/usr/bin/env bash
# Runs PyTorch's side (bench/torch_anchor.py in the project's reference folder) and `alexnet
# bench` one after the other on this machine and prints the ratios, so every speed claim is
# measured in one run: once at the CPU's best ISA and once limited to AVX2.
# Usage: ALEXNET_SHARED=REFERENCE_DIR scripts/compare_torch.sh PYTHON_WITH_TORCH [--batch 128]
#        [--iters 5]
# (REFERENCE_DIR holds bench/torch_anchor.py; PyTorch lives in a virtual environment outside the
# repo: docs/PERFORMANCE.md, Method.)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:?usage: scripts/compare_torch.sh PYTHON_WITH_TORCH [--batch B] [--iters N]}"
shift
batch=128 iters=5
while (($#)); do
    case "$1" in
        --batch) batch="$2"; shift 2 ;;
        --iters) iters="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
ref="${ALEXNET_SHARED:?set ALEXNET_SHARED to the reference folder with bench/torch_anchor.py}"
[ -x .build/release/alexnet ] || swift build -c release
# Both sides run twice: with oneDNN free to use the CPU's best ISA, and limited to AVX2
# (ONEDNN_MAX_CPU_ISA=AVX2, what Zen 2/3 EPYCs and many Intel CPUs give; PyTorch's convolutions
# run on oneDNN too). On a CPU without AVX-512 the two runs are the same ISA.
compare() {
    local label="$1"; shift
    echo "== ISA: $label"
    torch_out=$(env "$@" /usr/bin/time -f "torch peak rss kbytes: %M" "$python" "$ref/bench/torch_anchor.py" --batch "$batch" --iters "$iters" 2>&1)
    echo "$torch_out"
    # The anchor times the seed's network (its LRN constant, final ReLU); bench the same variant.
    ours=$(env "$@" .build/release/alexnet bench --variant seed --batch "$batch" --iters "$iters" --json)
    echo "$ours"
    LABEL="$label" TORCH="$torch_out" OURS="$(echo "$ours" | tail -n 1)" python3 - <<'PY'
import json, os, re
t, o, label = os.environ["TORCH"], json.loads(os.environ["OURS"]), os.environ["LABEL"]
train = float(re.search(r"train step batch \d+: [\d.]+ ms, ([\d.]+) img/s", t).group(1))
infer = float(re.search(r"inference batch \d+: [\d.]+ ms, ([\d.]+) img/s", t).group(1))
lat = float(re.search(r"batch 1 latency: ([\d.]+) ms", t).group(1))
rss = int(re.search(r"peak rss kbytes: (\d+)", t).group(1)) * 1024
print(f"[{label}] training   : ours {o['train_images_per_second']:.2f} img/s, torch {train:.2f} img/s, ratio {o['train_images_per_second'] / train:.2f}x")
print(f"[{label}] inference  : ours {o['inference_images_per_second']:.2f} img/s, torch {infer:.2f} img/s, ratio {o['inference_images_per_second'] / infer:.2f}x")
print(f"[{label}] latency b=1: ours {o['latency_ms_batch1']:.1f} ms, torch {lat:.1f} ms, ratio {lat / o['latency_ms_batch1']:.2f}x")
print(f"[{label}] peak memory: ours {o['peak_rss_bytes'] / 1e9:.2f} GB, torch {rss / 1e9:.2f} GB")
PY
}
compare native -u ONEDNN_MAX_CPU_ISA
compare AVX2 ONEDNN_MAX_CPU_ISA=AVX2
