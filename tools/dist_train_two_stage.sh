#!/usr/bin/env bash
# The two-stage DAS schedule on several GPUs or nodes, through torchrun (as mmdet's
# tools/dist_train.sh runs tools/train.py):
#   bash tools/dist_train_two_stage.sh WARMUP_CONFIG FINETUNE_CONFIG GPUS --work-dir DIR \
#       [--stage1-load-from CKPT] [--amp] [--auto-scale-lr] [train_two_stage.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (tools/misc/torchrun.sh); the work dir must
# be on storage every node mounts (checked). Without CUDA the processes train on CPU with gloo.
WARMUP_CONFIG=$1
FINETUNE_CONFIG=$2
GPUS=$3
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH exec bash "$(dirname "$0")/misc/torchrun.sh" \
    "$GPUS" "$(dirname "$0")/train_two_stage.py" "$WARMUP_CONFIG" "$FINETUNE_CONFIG" \
    --launcher pytorch "${@:4}"
