#!/usr/bin/env bash
# Is this project ready for a GPU? One command on one H100/H200, under 8 minutes, one JSON file:
#   bash bench/gpu_check.sh [--wheels .gpu/wheels] [--out work_dirs/bench/gpu_check.json] [--parts ...]
# the doctor with CUDA; mmcv's (or the lite stack's torchvision) ops on CUDA against the CPU; pre-training
# throughput, ours against timm's train.py (ResNet-50 at 224 px, bf16 autocast, channels_last, with and
# without torch.compile; the A3 recipe where its config exists); the step overheads of DaR, online, Selective
# Backprop and InfoBatch against uniform on the GPU; one fine-tuning iteration of each recipe on CUDA.
# See bench/gpu_check.py.
#   bash bench/gpu_check.sh --dry-run   (or --dry, GPU_CHECK_DRY=1): lists every measurement and checks it on
#   the CPU (CI runs this).
# Interpreter: $PYTHON if set, else .venv/bin/python if present, else python3 (the bare GPU machine's).
# --wheels DIR (bench/prepare_gpu.py's DEST/wheels): installs those wheels with pip --no-index --no-deps into
# a target folder ($GPU_SITE, default /tmp/dar-gpu-site) and puts it and the repository on PYTHONPATH; a
# source release in DIR/../sdist (xtcocotools, when prepare_gpu.py had no local Python of the machine's
# version) is built there first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels)
      [ $# -ge 2 ] || { echo "error: --wheels needs a folder (bench/prepare_gpu.py's DEST/wheels)" >&2; exit 2; }
      WHEELS="$2"; shift 2 ;;
    --wheels=*) WHEELS="${1#--wheels=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -n "${WHEELS:-}" ]; then
  ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "error: no wheels in $WHEELS (run bench/prepare_gpu.py first)" >&2; exit 2; }
  SITE="${GPU_SITE:-/tmp/dar-gpu-site}"
  built=()
  if ls "$WHEELS"/../sdist/*.tar.gz >/dev/null 2>&1; then
    mkdir -p "$SITE.build"
    PIP_ROOT_USER_ACTION=ignore "$PY" -m pip wheel -q --no-index --no-deps --no-build-isolation -w "$SITE.build" "$WHEELS"/../sdist/*.tar.gz \
      || { echo "error: building $(ls "$WHEELS"/../sdist) failed (needs cython, numpy, setuptools and a C compiler)" >&2; exit 2; }
    built=("$SITE.build"/*.whl)
  fi
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl "${built[@]}" \
    || { echo "error: installing the wheels of $WHEELS into $SITE failed" >&2; exit 2; }
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "[gpu_check] $(ls "$WHEELS"/*.whl | wc -l) wheels installed into $SITE for $("$PY" --version 2>&1)"
fi
exec "$PY" bench/gpu_check.py ${args[@]+"${args[@]}"}
