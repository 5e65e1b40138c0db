#!/usr/bin/env bash
# Runs PyTorch's side (../shared/bench/torch_anchor.py) and `alexnet bench` one after the other on
# this machine and prints the ratios, so every speed claim is measured in one run.
# Usage: scripts/compare_torch.sh PYTHON_WITH_TORCH [--batch 128] [--iters 5]
# (PyTorch lives in a virtual environment outside the repo; see ../shared/bench/README.md.)
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
shared="${ALEXNET_SHARED:-../shared}"
[ -x .build/release/alexnet ] || swift build -c release
torch_out=$(/usr/bin/time -f "torch peak rss kbytes: %M" "$python" "$shared/bench/torch_anchor.py" --batch "$batch" --iters "$iters" 2>&1)
echo "$torch_out"
# The anchor times the seed's network (its LRN constant, final ReLU); bench the same variant.
ours=$(.build/release/alexnet bench --variant seed --batch "$batch" --iters "$iters" --json)
echo "$ours"
TORCH="$torch_out" OURS="$(echo "$ours" | tail -n 1)" python3 - <<'PY'
import json, os, re
t, o = os.environ["TORCH"], json.loads(os.environ["OURS"])
train = float(re.search(r"train step batch \d+: [\d.]+ ms, ([\d.]+) img/s", t).group(1))
infer = float(re.search(r"inference batch \d+: [\d.]+ ms, ([\d.]+) img/s", t).group(1))
lat = float(re.search(r"batch 1 latency: ([\d.]+) ms", t).group(1))
rss = int(re.search(r"peak rss kbytes: (\d+)", t).group(1)) * 1024
print(f"training   : ours {o['train_images_per_second']:.2f} img/s, torch {train:.2f} img/s, ratio {o['train_images_per_second'] / train:.2f}x")
print(f"inference  : ours {o['inference_images_per_second']:.2f} img/s, torch {infer:.2f} img/s, ratio {o['inference_images_per_second'] / infer:.2f}x")
print(f"latency b=1: ours {o['latency_ms_batch1']:.1f} ms, torch {lat:.1f} ms, ratio {lat / o['latency_ms_batch1']:.2f}x")
print(f"peak memory: ours {o['peak_rss_bytes'] / 1e9:.2f} GB, torch {rss / 1e9:.2f} GB")
PY
