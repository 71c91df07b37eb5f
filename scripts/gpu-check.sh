#!/bin/bash
# The GPU figures of docs/figures.md in one run, for a machine with a real GPU (the project's
# development machines have none): every runtime on the test set, the WGSL kernels and whole
# training and search steps, and the PyTorch anchor on the same GPU when ANCHOR is set.
#
#   BNAS=target/release/bnas DATA=/usr/share/datasets/fashion-mnist \
#   ANCHOR=../shared/anchors/pytorch_bnas.py OUT=runs/gpu-check bash scripts/gpu-check.sh
#
# Each step has a time cap, so one slow step cannot eat a short lease; everything goes to
# $OUT/log.txt. Sizes: N test images, TRAIN training images, SEARCH search images.
N=${N:-10000}; TRAIN=${TRAIN:-12800}; SEARCH=${SEARCH:-3200}; REPS=${REPS:-5}; STEPS=${STEPS:-30}
BNAS=${BNAS:-target/release/bnas}; DATA=${DATA:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-runs/gpu-check}; mkdir -p "$OUT"
L=$OUT/log.txt
export BNAS_BACKEND=gpu
log() { echo "### $(date +%T) $*" | tee -a "$L"; }
quiet() { tr '\r' '\n' | grep -v '^\s*$'; }
nvidia-smi -L 2>&1 | tee -a "$L"
log "smoke test: every runtime on 8 images"
timeout 120 "$BNAS" verify --model models/fmnist-demo --data "$DATA" --n 8 2>&1 | tail -8 | tee -a "$L"
[ "${PIPESTATUS[0]}" -eq 0 ] || { log "the smoke test failed; stopping"; exit 3; }
log "verify: all $N test images, every runtime"
timeout 240 "$BNAS" verify --model models/fmnist-demo --data "$DATA" --n "$N" \
  --predictions "$OUT/predictions.csv" 2>&1 | quiet | tail -8 | tee -a "$L"
log "bench: the binary conv op and whole steps on the GPU"
timeout 120 "$BNAS" bench --only gpu --reps "$REPS" 2>&1 | tee -a "$L"
for g in bnas-imagenet bnas-a; do
  log "train $g, 8 x 16, $TRAIN images, one epoch"
  timeout 120 "$BNAS" train --genotype $g --layers 8 --channels 16 --epochs 1 --warmup-epochs 0.2 \
    --train-subset "$TRAIN" --eval-subset 2000 --data "$DATA" --out "$OUT/train-$g" 2>&1 | quiet | tail -3 | tee -a "$L"
done
log "search, 8 x 16, $SEARCH images, one epoch"
timeout 120 "$BNAS" search --epochs 1 --train-subset "$SEARCH" --val-subset 500 --data "$DATA" \
  --out "$OUT/search" 2>&1 | quiet | tail -3 | tee -a "$L"
if [ -n "$ANCHOR" ]; then
  log "the PyTorch anchor on the same GPU"
  here=$(dirname "$0")
  timeout 90 python3 "$here/anchor_cuda.py" "$ANCHOR" --data "$DATA" step-train --warmup 5 --steps "$STEPS" 2>&1 \
    | grep -E "^anchor|train step median" | tee -a "$L"
  timeout 90 python3 "$here/anchor_cuda.py" "$ANCHOR" --data "$DATA" step-search --warmup 3 --steps "$STEPS" 2>&1 \
    | grep -E "^anchor|search step:" | tee -a "$L"
fi
log "the device crate vs tract on this machine's CPU, one thread each"
timeout 60 "$BNAS" bench --tract-model models/fmnist-demo --data "$DATA" 2>&1 | tail -5 | tee -a "$L"
log done
