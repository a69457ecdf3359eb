#!/usr/bin/env bash
# Train on a slurm cluster (as mmdet's tools/slurm_train.sh):
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# (srun's options: tools/misc/srun.sh)
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH exec bash "$(dirname "$0")/misc/srun.sh" \
    "$PARTITION" "$JOB_NAME" "$(dirname "$0")/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher="slurm" "${@:5}"
