#!/usr/bin/env bash
# Training on a slurm cluster, OpenMMLab style (one task per GPU via srun), requeued after preemption.
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [TIME=2-00:00:00] [SIGNAL=USR1] [SIGNAL_LEAD_S=300] \
#   [SRUN_ARGS=...] [SBATCH_ARGS=...] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#
# From a login node this submits itself with sbatch --signal=USR1@300 --requeue (output:
# WORK_DIR/slurm-<job>.out). In the job, srun runs tools/train.py --launcher slurm --resume (the newest
# checkpoint of WORK_DIR, or a fresh start). A pre-training that gets the signal before the time limit
# (or slurm's SIGTERM on preemption) writes a checkpoint and exits 75 (pre-training, and fine-tuning through
# transfer/mm/resume.py's PreemptionHook); the job then requeues itself
# (scontrol requeue) and resumes where it stopped. Inside salloc it runs srun in the foreground.
# The command lines are built (and unit-tested) in pretrain/launch.py.
set -euo pipefail
ROOT="${DAR_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"  # sbatch runs a spooled copy: DAR_ROOT says where
PYTHON=${PYTHON:-python}
export PYTHONPATH="$ROOT:${PYTHONPATH:-}"
exec "$PYTHON" -m pretrain.launch "$ROOT/tools/slurm_train.sh" "$@"
