#!/usr/bin/env bash
# Multi-GPU / multi-node training through torchrun and mmengine's pytorch launcher.
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (tools/misc/torchrun.sh). Without CUDA the
# processes train on CPU with gloo (tools/train.py sets that up).
CONFIG=$1
GPUS=$2
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH exec bash "$(dirname "$0")/misc/torchrun.sh" \
    "$GPUS" "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
