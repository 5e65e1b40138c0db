#!/usr/bin/env bash
# The input pipeline against the seed's (the peer scripts in the project's reference folder,
# bench/), on the same files in one run:
# preprocessing (peer_preprocess.py vs alexnet preprocess, default and --exact-rgb, same
# process/thread count) and the training / ten-crop validation loaders (peer_loader.py vs
# alexnet bench --data), per core.
# Usage: ALEXNET_SHARED=REFERENCE_DIR scripts/compare_data.sh PYTHON_WITH_PEERS [N_IMAGES=3000]
#        [WORK_DIR=/tmp/alexnet-compare]
# REFERENCE_DIR is the project's reference folder (bench/ with the peer scripts, images/ with the
# photos the corpus is cut from); PYTHON_WITH_PEERS has opencv, albumentations, jpeg4py, torch,
# torchvision and pillow (docs/PERFORMANCE.md, Method); CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:?usage: scripts/compare_data.sh PYTHON_WITH_PEERS [N] [WORK_DIR]}"
n="${2:-3000}"
work="${3:-/tmp/alexnet-compare}"
ref="${ALEXNET_SHARED:?set ALEXNET_SHARED to the reference folder with bench/ and images/}"
threads=$(nproc)
[ -x .build/release/alexnet ] || swift build -c release
mkdir -p "$work"
[ -d "$work/src" ] || "$python" "$ref/bench/make_corpus.py" "$ref/images" "$work/src" "$n"
export NO_ALBUMENTATIONS_UPDATE=1
# Disk writes dominate the noise here (deleting 3000 files just before a run slows it by up to
# 40 %), so each run writes a fresh folder after a sync and a pause, the two alternate, and the
# medians of 5 are compared. The last runs' outputs stay for the loader comparison.
if compgen -G "$work/ours-*" > /dev/null || compgen -G "$work/peer-*" > /dev/null; then
    rm -rf "$work"/ours-* "$work"/rgb-* "$work"/peer-*
    # ext4 skips inodes freed in the last 5–35 s when it allocates new ones, which slows whichever
    # run comes first after a big deletion: wait that out.
    sync; sleep 35
fi
ours=() rgb=() peer=()
rate() { sed -E 's/.*\(([0-9.]+) images\/s.*/\1/'; }
for round in 1 2 3 4 5; do
    sync; sleep 2
    ours+=("$(.build/release/alexnet preprocess -s "$work/src" -d "$work/ours-$round" -c --threads "$threads" 2>/dev/null | rate)")
    sync; sleep 2
    rgb+=("$(.build/release/alexnet preprocess -s "$work/src" -d "$work/rgb-$round" -c --exact-rgb --threads "$threads" 2>/dev/null | rate)")
    sync; sleep 2
    peer+=("$("$python" "$ref/bench/peer_preprocess.py" "$work/src" "$work/peer-$round" "$threads" | sed -E 's/images\/s: //')")
done
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
mo=$(median "${ours[@]}") mr=$(median "${rgb[@]}") mp=$(median "${peer[@]}")
echo "preprocess, $threads threads/processes, $n images: seed ${peer[*]} (median $mp) img/s"
echo "  ours (Y'CbCr planes) ${ours[*]} (median $mo) img/s: ratio $(python3 -c "print(f'{$mo/$mp:.2f}')")x"
echo "  ours (--exact-rgb)   ${rgb[*]} (median $mr) img/s: ratio $(python3 -c "print(f'{$mr/$mp:.2f}')")x"
loader=$(.build/release/alexnet bench --data "$work/ours-5" --json | tail -n 1)
peerloader=$("$python" "$ref/bench/peer_loader.py" "$work/ours-5" 2>/dev/null)
echo "$loader"
echo "$peerloader"
LOADER="$loader" PEER="$peerloader" python3 - <<'PY'
import json, os, re
o, p = json.loads(os.environ["LOADER"]), os.environ["PEER"]
t = float(re.search(r"train images/s per core: ([\d.]+)", p).group(1))
v = float(re.search(r"val images/s per core: ([\d.]+)", p).group(1))
print(f"training loader : ours {o['loader_train_images_per_second_per_core']:.0f}/core, seed {t:.0f}/core, ratio {o['loader_train_images_per_second_per_core'] / t:.1f}x")
print(f"ten-crop loader : ours {o['loader_val_images_per_second_per_core']:.0f}/core, seed {v:.0f}/core, ratio {o['loader_val_images_per_second_per_core'] / v:.1f}x")
PY
