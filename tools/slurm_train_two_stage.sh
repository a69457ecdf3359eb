#!/usr/bin/env bash
# The two-stage DAS schedule on a slurm cluster (as mmdet's tools/slurm_train.sh):
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train_two_stage.sh PARTITION JOB_NAME WARMUP_CONFIG FINETUNE_CONFIG \
#       WORK_DIR [--stage1-load-from CKPT] [train_two_stage.py args...]
# (srun's options: tools/misc/srun.sh). The work dir must be on storage every node mounts
# (checked).
PARTITION=$1
JOB_NAME=$2
WARMUP_CONFIG=$3
FINETUNE_CONFIG=$4
WORK_DIR=$5
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH exec bash "$(dirname "$0")/misc/srun.sh" \
    "$PARTITION" "$JOB_NAME" "$(dirname "$0")/train_two_stage.py" "$WARMUP_CONFIG" \
    "$FINETUNE_CONFIG" --work-dir="$WORK_DIR" --launcher="slurm" "${@:6}"
