#!/usr/bin/env bash
# One device session: GPU evaluation speed, GPU replay with a training config, trainer MFU variants
# (ours and OLMo-core's: VARIANTS="ours_whole_plain_causal:4,olmo_core:4,olmo_core_fsdp:4").
# Usage (repository root, on a machine with 1-2 GPUs): bash benchmarks/device_run.sh OUTDIR [parts]
# (dense: a BERT tokenizer in .device_wheels/bert_tok when there, else one built by gpu_dense.py; DENSE_ARGS)
# Carried wheels (.device_wheels, see benchmarks/device_setup.sh) are installed first when present.
set -u
OUT=${1:?OUTDIR}
PARTS=${2:-eval,replay,mfu}
export PYTHONPATH=src:. PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpus.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpus.txt"
# wheels the machine lacks (it has no index): installed into a folder on PYTHONPATH
if ls .device_wheels/*.whl > /dev/null 2>&1; then source benchmarks/device_setup.sh .device_wheels; fi
python3 -c "from importlib.metadata import version; print('ai2-olmo-core', version('ai2-olmo-core'))" 2>&1 | tail -1 | tee -a "$OUT/gpus.txt"
case ,$PARTS, in *,eval,*) CUDA_VISIBLE_DEVICES=0 timeout 240 python3 benchmarks/gpu_eval.py ${EVAL_SIZES:+--sizes $EVAL_SIZES} 2>&1 | tee "$OUT/eval.txt" | grep -v Warning ;; esac
case ,$PARTS, in *,dense,*) CUDA_VISIBLE_DEVICES=0 timeout "${DENSE_TIMEOUT:-300}" python3 benchmarks/gpu_dense.py $([ -d .device_wheels/bert_tok ] && echo --tokenizer .device_wheels/bert_tok) ${DENSE_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/dense.txt" ;; esac
case ,$PARTS, in *,replay,*) timeout 300 python3 benchmarks/gpu_replay.py --out "$OUT/replay" --nproc "${NPROC:-2}" 2>&1 | tail -5 | tee "$OUT/replay.txt" ;; esac
case ,$PARTS, in *,mfu,*) timeout 560 python3 benchmarks/gpu_train.py --out "$OUT/train" --parts 2 --seqs-per-step "${SEQS:-8}" ${PROFILE:+--profile} --variants "${VARIANTS:-ours_whole_plain:4,ours_liger:2,ours_liger:4}" 2>&1 | tail -12 | tee "$OUT/mfu.txt" ;; esac
