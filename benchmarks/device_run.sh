#!/usr/bin/env bash
# One device session: GPU evaluation speed, GPU replay with a training config, trainer MFU variants.
# Usage (repository root, on a machine with 2 GPUs): bash benchmarks/device_run.sh OUTDIR [parts]
set -u
OUT=${1:?OUTDIR}
PARTS=${2:-eval,replay,mfu}
export PYTHONPATH=src:. PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpus.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpus.txt"
# extra pure-Python wheels (the device has no index): unpacked onto PYTHONPATH
for w in .device_wheels/*.whl; do [ -e "$w" ] && python3 -m zipfile -e "$w" "$OUT/pylib"; done
export PYTHONPATH=$PYTHONPATH:$OUT/pylib
python3 -c "import liger_kernel; print('liger_kernel ok')" 2>&1 | tail -1
case ,$PARTS, in *,eval,*) CUDA_VISIBLE_DEVICES=0 timeout 240 python3 benchmarks/gpu_eval.py 2>&1 | tee "$OUT/eval.txt" | grep -v Warning ;; esac
case ,$PARTS, in *,dense,*) CUDA_VISIBLE_DEVICES=0 timeout 300 python3 benchmarks/gpu_dense.py .device_wheels/bert_tok 2>&1 | grep -v Warning | tee "$OUT/dense.txt" ;; esac
case ,$PARTS, in *,replay,*) timeout 300 python3 benchmarks/gpu_replay.py --out "$OUT/replay" --nproc "${NPROC:-2}" 2>&1 | tail -5 | tee "$OUT/replay.txt" ;; esac
case ,$PARTS, in *,mfu,*) timeout 560 python3 benchmarks/gpu_train.py --out "$OUT/train" --parts 2 --seqs-per-step "${SEQS:-8}" ${PROFILE:+--profile} --variants "${VARIANTS:-ours_whole_plain:4,ours_liger:2,ours_liger:4}" 2>&1 | tail -12 | tee "$OUT/mfu.txt" ;; esac
