#!/usr/bin/env bash
# The paper's OLMo fork against our trainer on one GPU (benchmarks/fork_vs_ours.py), on a machine with
# PyTorch and CUDA but no package index. Repository root; arguments:
#   FORK    the fork's source (rahuln/OLMo, branch mod-pretrain: olmo/, hf_olmo/, scripts/train.py,
#           olmo_data/*.py; its git archive or a checkout)
#   WHEELS  wheels of the fork's pure-Python dependencies the machine lacks (omegaconf, cached_path,
#           boto3/botocore, google-cloud-storage and what they import, datasets, dill, multiprocess)
#   WORLD   an `intervene world` folder (train_config.yaml, data/, tokenizer/)
#   OUT     where the results go (fork_vs_ours.json, loss_table.md, logs.txt)
# wandb is replaced by benchmarks/fork_stubs/wandb (it records the fork's metrics at full precision).
#   bash benchmarks/fork_vs_ours.sh FORK WHEELS WORLD OUT [--steps N --half K]
set -euo pipefail
FORK=$1 WHEELS=$2 WORLD=$3 OUT=$4
shift 4
SITE=${SITE:-/tmp/fork-site}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
export PYTHONPATH="$PWD/src:$PWD/benchmarks/fork_stubs:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, numpy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'numpy', numpy.__version__)"
(cd "$FORK" && python3 -c "import olmo.train, olmo.checkpoint; print('fork imports ok')")
python3 benchmarks/fork_vs_ours.py --fork "$FORK" --world "$WORLD" --work "${WORK:-/tmp/fork_vs_ours}" --out "$OUT" "$@"
