#!/usr/bin/env bash
# One torchrun per node of a Slurm allocation: run as `srun --ntasks-per-node=1 bash torchrun_node.sh
# NPROC ARGS...`. The rendezvous is the allocation's first node, on a port derived from the job id
# (so two jobs sharing a node do not collide); every node's torchrun starts NPROC workers running
# `python -m intervene.cli ARGS...`.
set -euo pipefail
nproc=$1
shift
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
port=$((29500 + SLURM_JOB_ID % 1000))
exec torchrun --nnodes="$SLURM_NNODES" --nproc-per-node="$nproc" --rdzv-backend=c10d \
  --rdzv-endpoint="$head:$port" --rdzv-id="$SLURM_JOB_ID" -m intervene.cli "$@"
