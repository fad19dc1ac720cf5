"""Memory of a job that holds a whole checkpoint in one process (``import-olmo``,
``import-olmo-core``, ``export-olmo``): fp32 weights and AdamW's two fp32 moments are 12 bytes a
parameter, and the source and the converted copy are alive together: measured 24.0 bytes a
parameter for ``export-olmo`` and for ``import-olmo`` (``benchmarks/bench_checkpoint_memory.py``, a
134M-parameter OLMo 2 shape, above the processes' baseline; ``import-olmo-core`` reads DCP straight
into our tensors and is taken to need no more), with 25 % headroom. A fixed request was 256 GB for
every size: more than a 1B job needs and less than a 32B one does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

BYTES_PER_PARAMETER = 24
HEADROOM = 1.25
MIN_MB = 8000


def olmo2_parameters(model: Mapping) -> int:
    """Parameters of an OLMo 2 transformer from an OLMo-style ``model:`` section (the keys
    :func:`intervene.train.model.olmo2_config` reads; ``mlp_hidden_size`` is OLMo's fused
    up+gate width, so the SwiGLU width is half of it)."""
    d = int(model["d_model"])
    layers = int(model["n_layers"])
    heads = int(model["n_heads"])
    kv = int(model.get("n_kv_heads") or heads)
    head_dim = d // heads
    inter = int(model.get("mlp_hidden_size") or d * int(model.get("mlp_ratio", 4))) // 2
    vocab = int(model.get("embedding_size") or model["vocab_size"])
    attention = 2 * d * d + 2 * d * kv * head_dim + d + kv * head_dim  # q, o, k, v; q/k norms
    block = attention + 3 * d * inter + 2 * d  # SwiGLU; the two post-norms
    embeddings = vocab * d * (1 if model.get("weight_tying") else 2)
    return layers * block + embeddings + d  # + the final norm


def checkpoint_mem_mb(model: Mapping) -> int:
    """The ``mem_mb`` a whole-checkpoint job asks for (before the Slurm attempt's factor)."""
    need = olmo2_parameters(model) * BYTES_PER_PARAMETER * HEADROOM / 1e6
    return max(MIN_MB, int(math.ceil(need / 1000.0)) * 1000)
