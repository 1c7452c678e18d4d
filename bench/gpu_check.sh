#!/usr/bin/env bash
# Is this project ready for a GPU? One command on one H100/H200, under 8 minutes, one JSON file:
#   bash bench/gpu_check.sh [--out work_dirs/bench/gpu_check.json] [--parts doctor ops vs_timm overhead finetune]
# the doctor with CUDA; mmcv's (or the lite stack's torchvision) ops on CUDA against the CPU; a ResNet-50
# pre-training step at 224 px, bf16 autocast, channels_last, ours against timm's train.py; DaR and online
# step overheads on the GPU; one fine-tuning iteration of each recipe on CUDA. See bench/gpu_check.py.
#   GPU_CHECK_DRY=1 bash bench/gpu_check.sh   (or --dry): the same on the CPU in well under a minute (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" bench/gpu_check.py "$@"
