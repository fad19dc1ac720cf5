#!/usr/bin/env bash
# Several GPUs of one host, in one time-boxed device session:
#  1. weak scaling of the trainer's step at the OLMo 2 1B shape on 1 and NGPU GPUs, DDP and FSDP2,
#     each rank with one GPU's batch of the paper's run (benchmarks/gpu_scaling.py);
#  2. the GPU demo through Snakemake with every training job under torchrun on NGPU processes
#     (config/gpu-demo.yaml + config/gpu-demo-2gpu.yaml), checked as the one-GPU demo
#     (benchmarks/gpu_demo_summary.py) and by each training run's recorded world size.
# The demo's CPU-only jobs (world, decode, doc_info, ...) run during part 1 on cores of their own.
#  0. (optional, MFU_OURS / MFU_PEER set) the one-GPU trainer against OLMo-core (benchmarks/gpu_train.py):
#     the MFU_OURS then the MFU_PEER variants, one after the other on GPU 0, e.g.
#     MFU_OURS=ours_whole_plain_causal_rtable_shead:8 MFU_PEER=olmo_core:8,olmo_core:4
#     (side by side on two GPUs, one call saw ours fail for memory held by another process on its GPU)
# Usage (repository root, a machine with 2 GPUs and no package index; wheels: device_setup.sh):
#   bash benchmarks/device_multigpu.sh OUTDIR [WHEELS]
# SCALE_END / DEMO_END: seconds after the start by which part 1 / Snakemake are stopped.
# SCALE: the scaling runs, "GPUS:STRATEGY ..." (default: 1:ddp 1:fsdp NGPU:ddp NGPU:fsdp; the
# one-GPU runs go side by side, a GPU each).
set -u
OUT=${1:?OUTDIR}
mkdir -p "$OUT"
T0=$(date +%s)
SCALE_END=${SCALE_END:-280}
DEMO_END=${DEMO_END:-480}
NGPU=${NGPU:-2}
elapsed() { echo $(($(date +%s) - T0)); }
# seconds until mark $1, at most $2
budget() {
    local l=$(($1 - $(elapsed)))
    [ "$l" -gt "$2" ] && l=$2
    echo "$l"
}
# NVLink multicast stays off (it can take a shared host's GPUs out of service)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
source benchmarks/device_setup.sh "${2:-.device_wheels}" || exit 1
command -v torchrun > /dev/null || {
    printf '#!/bin/sh\nexec python3 -m torch.distributed.run "$@"\n' > "$SITE/bin/torchrun"
    chmod +x "$SITE/bin/torchrun"
}
{
    echo "setup: $(elapsed) s"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nvidia-smi topo -m
    python3 -c "import torch, transformers, snakemake; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version(), 'transformers', transformers.__version__, 'snakemake', snakemake.__version__)"
    echo "cores $(nproc)"
} 2>&1 | tee "$OUT/machine.txt"
CORES=$(nproc)
PIN_FG="" PIN_BG=""
if command -v taskset > /dev/null && [ "$CORES" -ge 16 ]; then
    PIN_FG="taskset -c 0-$((CORES * 3 / 4 - 1))" PIN_BG="taskset -c $((CORES * 3 / 4))-$((CORES - 1))"
fi
SMK=(snakemake --configfile config/gpu-demo.yaml config/gpu-demo-2gpu.yaml --rerun-incomplete -p)

# the demo's jobs that need no GPU, meanwhile, on the last quarter of the cores
timeout "$(budget "$DEMO_END" 600)" $PIN_BG "${SMK[@]}" --cores $((CORES / 4)) --omit-from pretrain_original \
    > "$OUT/snakemake_cpu.log" 2>&1 &
BG=$!

# 1. scaling: the one-GPU runs of both strategies side by side (a GPU each), then NGPU-GPU runs
scale() { # GPUS STRATEGY VISIBLE CAP
    local t
    t=$(budget "$SCALE_END" "$4")
    if [ "$t" -lt 30 ]; then
        echo "scaling $1 GPU $2: not run (time box)" | tee -a "$OUT/machine.txt"
        return
    fi
    CUDA_VISIBLE_DEVICES=$3 timeout "$t" $PIN_FG torchrun --standalone --nproc_per_node="$1" \
        benchmarks/gpu_scaling.py --strategy "$2" --out "$OUT/scaling_${1}gpu_$2.json" \
        > "$OUT/scaling_${1}gpu_$2.log" 2>&1
    echo "scaling $1 GPU $2: exit $? at $(elapsed) s (limit $t s)" | tee -a "$OUT/machine.txt"
}
# 0. the trainer against OLMo-core, one after the other on one GPU (same call)
if [ -n "${MFU_OURS:-}" ] && [ -n "${MFU_PEER:-}" ]; then
    CUDA_VISIBLE_DEVICES=0 timeout "$(budget "$SCALE_END" 500)" $PIN_FG python3 benchmarks/gpu_train.py \
        --out "$OUT/mfu_gpu0" --parts 2 --seqs-per-step 32 --profile --variants "$MFU_OURS,$MFU_PEER" \
        > "$OUT/mfu_gpu0.log" 2>&1
    echo "mfu GPU 0 ($MFU_OURS,$MFU_PEER): exit $? at $(elapsed) s" | tee -a "$OUT/machine.txt"
    grep -h "^|" "$OUT/mfu_gpu0.log" | tee "$OUT/mfu.md"
fi
ALL=$(seq -s, 0 $((NGPU - 1)))
SCALE=${SCALE:-"1:ddp 1:fsdp $NGPU:ddp $NGPU:fsdp"}
pids=() gpu=0
for r in $SCALE; do # the one-GPU runs side by side
    [ "${r%%:*}" = 1 ] || continue
    scale 1 "${r#*:}" "$gpu" 130 &
    pids+=($!) gpu=$((gpu + 1))
done
[ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
for r in $SCALE; do
    [ "${r%%:*}" = 1 ] && continue
    scale "${r%%:*}" "${r#*:}" "$ALL" 150
done
python3 benchmarks/gpu_scaling.py --table "$OUT"/scaling_*gpu_*.json | tee "$OUT/scaling.md"

# 2. the demo: the rest of the DAG, one intervention and its control first
wait $BG
echo "snakemake (CPU jobs) exit $? at $(elapsed) s" | tee -a "$OUT/machine.txt"
t1=$(date +%s)
timeout "$(budget "$DEMO_END" 600)" "${SMK[@]}" --cores "$CORES" --resources gpu="${GPU_JOBS:-8}" \
    -P results/eval/reruns/rm_coocc_200/labels.npz results/eval/reruns/control_160_200/labels.npz \
    > "$OUT/snakemake.log" 2>&1
rc=$?
echo "snakemake exit $rc after $(($(date +%s) - t1)) s, at $(elapsed) s" | tee -a "$OUT/machine.txt"
[ $rc -ne 0 ] && tail -30 "$OUT/snakemake.log"
cat "$OUT/snakemake_cpu.log" "$OUT/snakemake.log" > "$OUT/snakemake_all.log"
# every training run's processes: its summary.json records the world size it trained with
python3 - << 'EOF' | tee "$OUT/nproc_check.txt"
import glob
import json

for f in sorted(glob.glob("results/train/original/summary.json") + glob.glob("results/reruns/*/run*/summary.json")):
    d = json.load(open(f))
    print(f, "world_size", d["world_size"], d["strategy"], "final_step", d["final_step"])
EOF
echo "torchrun launches in the log: $(grep -c "torchrun --standalone --nproc_per_node=$NGPU" "$OUT/snakemake_all.log")" \
    | tee -a "$OUT/nproc_check.txt"
python3 -m benchmarks.gpu_demo_summary --results results --log "$OUT/snakemake_all.log" --out "$OUT/summary.md" \
    | tail -50
tar czf "$OUT/logs.tgz" -C "$OUT" --remove-files $(cd "$OUT" && ls -d *.log mfu_gpu* scaling_*.json 2> /dev/null)
tar czf "$OUT/results_small.tgz" results/report results/train/replay_check.json results/eval/reruns/*/labels.npz \
    results/reruns/*/run*/summary.json results/train/original/summary.json logs/train logs/reruns 2> /dev/null
echo "done at $(elapsed) s" | tee -a "$OUT/machine.txt"
exit $rc
