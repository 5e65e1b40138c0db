#!/usr/bin/env bash
# Times `alexnet bench` in fp32 and in bf16 on this machine, one after the other and twice each
# (bf16, fp32, bf16, fp32, so a machine that slows down during the run shows as a spread, not as a
# ratio), and prints the bf16/fp32 ratios and both peak resident memories. bf16 needs a CPU with
# AVX-512 BF16 or AMX: elsewhere `alexnet bench --precision bf16` refuses, and so does this script,
# at once (bf16 runs first), with its reason.
# Usage: scripts/compare_precision.sh [--batch 128] [--iters 5] [--variant paper]
set -euo pipefail
cd "$(dirname "$0")/.."
batch=128 iters=5 variant=paper
while (($#)); do
    case "$1" in
        --batch) batch="$2"; shift 2 ;;
        --iters) iters="$2"; shift 2 ;;
        --variant) variant="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -x .build/release/alexnet ] || swift build -c release
runs=()
for precision in bf16 fp32 bf16 fp32; do
    echo "== $precision"
    out=$(.build/release/alexnet bench --variant "$variant" --batch "$batch" --iters "$iters" --precision "$precision" --json)
    echo "$out"
    runs+=("$(echo "$out" | tail -n 1)")
done
RUNS="$(printf '%s\n' "${runs[@]}")" python3 - <<'PY'
import json, os
runs = [json.loads(line) for line in os.environ["RUNS"].splitlines()]
for i in (0, 1):
    b, f = runs[2 * i], runs[2 * i + 1]
    pair = f"[pair {i + 1}]"
    print(f"{pair} training   : fp32 {f['train_images_per_second']:.2f} img/s, bf16 {b['train_images_per_second']:.2f} img/s, ratio {b['train_images_per_second'] / f['train_images_per_second']:.2f}x")
    print(f"{pair} inference  : fp32 {f['inference_images_per_second']:.2f} img/s, bf16 {b['inference_images_per_second']:.2f} img/s, ratio {b['inference_images_per_second'] / f['inference_images_per_second']:.2f}x")
    print(f"{pair} latency b=1: fp32 {f['latency_ms_batch1']:.1f} ms, bf16 {b['latency_ms_batch1']:.1f} ms, ratio {f['latency_ms_batch1'] / b['latency_ms_batch1']:.2f}x")
    print(f"{pair} peak memory (each precision in a child process): fp32 {f['peak_rss_bytes_fp32'] / 1e9:.2f} GB, bf16 {f['peak_rss_bytes_bf16'] / 1e9:.2f} GB")
PY
