#!/usr/bin/env bash
# torchrun with mmdet's variables, the one launcher of tools/dist_*.sh:
#   bash tools/misc/torchrun.sh NPROC_PER_NODE SCRIPT [ARGS...]
# NNODES, NODE_RANK, MASTER_ADDR, PORT as in mmdet's scripts; PYTHON, the interpreter.
NPROC_PER_NODE=$1
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC_PER_NODE" --master_port="$PORT" "${@:2}"
