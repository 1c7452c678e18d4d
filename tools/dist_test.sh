#!/usr/bin/env bash
# Evaluate a transfer checkpoint on GPUS processes of this machine (torchrun, the "pytorch" launcher).
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options ...]
# NNODES, NODE_RANK, MASTER_ADDR, PORT work as in the OpenMMLab scripts.
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [options for tools/test.py]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
exec "${PYTHON:-python}" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
  --nproc_per_node="$GPUS" --master_port="$PORT" \
  "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
