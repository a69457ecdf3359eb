#!/usr/bin/env bash
# Evaluate a checkpoint on several GPUs or nodes through torchrun (as mmdet's tools/dist_test.sh):
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (tools/misc/torchrun.sh). Without CUDA: CPU
# processes with gloo.
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH exec bash "$(dirname "$0")/misc/torchrun.sh" \
    "$GPUS" "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
