#!/usr/bin/env bash
# The two-stage DAS schedule on a slurm cluster (as mmdet's tools/slurm_train.sh):
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train_two_stage.sh PARTITION JOB_NAME WARMUP_CONFIG FINETUNE_CONFIG \
#       WORK_DIR [--stage1-load-from CKPT] [train_two_stage.py args...]
# The work dir must be on storage every node mounts (checked).
set -x

PARTITION=$1
JOB_NAME=$2
WARMUP_CONFIG=$3
FINETUNE_CONFIG=$4
WORK_DIR=$5
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

# SRUN_ARGS is split into words on purpose (several srun options in one variable).
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$(dirname "$0")/train_two_stage.py" "${WARMUP_CONFIG}" "${FINETUNE_CONFIG}" \
    --work-dir="${WORK_DIR}" --launcher="slurm" "${@:6}"
