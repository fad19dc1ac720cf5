#!/usr/bin/env bash
# The GPU demo (config/gpu-demo.yaml) through Snakemake on a machine with one CUDA GPU and no package
# index: installs the carried wheels (benchmarks/device_setup.sh), runs the whole experiment, and
# writes under OUTDIR Snakemake's log, a summary (headline with CIs, how the repeated runs differ,
# wall time per rule: benchmarks/gpu_demo_summary.py), the report's Markdown and the replay check.
# Usage (repository root): bash benchmarks/device_demo.sh OUTDIR [WHEELS]
# With the venv of `make setup` instead (a GPU machine with an index): make demo-gpu
set -u
OUT=${1:?OUTDIR}
mkdir -p "$OUT"
t0=$(date +%s)
source benchmarks/device_setup.sh "${2:-.device_wheels}" || exit 1
echo "setup: $(($(date +%s) - t0)) s"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, transformers, snakemake; print('torch', torch.__version__, 'transformers', transformers.__version__, 'snakemake', snakemake.__version__)"
    echo "cores $(nproc)"
} | tee "$OUT/machine.txt"
t1=$(date +%s)
# GPU_JOBS: training and evaluation jobs sharing the one GPU at a time (each declares gpu=1); with
# all 16 cores' worth of them at once, CUDA initialisation failed with "out of memory" on an H200
snakemake --configfile config/gpu-demo.yaml --cores "${CORES:-$(nproc)}" --resources gpu="${GPU_JOBS:-6}" \
    --rerun-incomplete ${SNAKEMAKE_ARGS:-} > "$OUT/snakemake.log" 2>&1
rc=$?
echo "snakemake exit $rc after $(($(date +%s) - t1)) s" | tee -a "$OUT/machine.txt"
if [ $rc -ne 0 ]; then
    tail -40 "$OUT/snakemake.log"
    for f in $(grep -ho "logs/[^ ]*\.log" "$OUT/snakemake.log" | sort -u | head -5); do
        echo "== $f"; tail -15 "$f"
    done
fi
python3 -m benchmarks.gpu_demo_summary --results results --log "$OUT/snakemake.log" --out "$OUT/summary.md" \
    | tail -60
cp results/report/summary.md "$OUT/report_summary.md" 2> /dev/null
# the small outputs for the record: report, replay check, labels, learned instances, job logs
tar czf "$OUT/results_small.tgz" results/report results/train/replay_check.json results/eval/original/*.json \
    results/eval/original/*.npz results/eval/reruns/*/labels.npz results/benchmarks logs 2> /dev/null
exit $rc
