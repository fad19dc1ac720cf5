"""The model an OLMo 2 train config describes, as a transformers ``Olmo2ForCausalLM``.

Config mapping and initialisation follow OLMo (``olmo/model.py``, ``olmo/initialization.py``,
``scripts/convert_olmo2_to_hf.py``): SwiGLU hidden = ``mlp_hidden_size // 2`` (or
``d_model * mlp_ratio // 2``), vocabulary = ``embedding_size``, untied LM head, RMSNorm eps 1e-6,
QK-norm, post-norm; weights of every Linear/Embedding ~ N(0, init_std) truncated at
``init_cutoff_factor`` standard deviations, norms at one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The trainer's attention: SDPA with ``is_causal=True`` and no mask tensor (see ``use_causal_attention``).
CAUSAL_SDPA = "intervene_causal_sdpa"


def olmo2_config(raw: dict):
    """``Olmo2Config`` from the ``model:`` section of an OLMo train config (a dict)."""
    from transformers import Olmo2Config

    m = raw["model"]
    d = int(m["d_model"])
    hidden = m.get("mlp_hidden_size") or d * int(m.get("mlp_ratio", 4))
    vocab = int(m.get("embedding_size") or m["vocab_size"])
    return Olmo2Config(
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=int(hidden) // 2,
        num_hidden_layers=int(m["n_layers"]),
        num_attention_heads=int(m["n_heads"]),
        num_key_value_heads=int(m.get("n_kv_heads") or m["n_heads"]),
        max_position_embeddings=int(m["max_sequence_length"]),
        rope_theta=float(m.get("rope_theta", 10000)),
        rms_norm_eps=float(m.get("layer_norm_eps", 1e-5)),
        attention_bias=bool(m.get("include_bias", False)),
        pad_token_id=m.get("pad_token_id"),
        eos_token_id=m.get("eos_token_id"),
        bos_token_id=None,
        tie_word_embeddings=bool(m.get("weight_tying", False)),
    )


@torch.no_grad()
def init_olmo_weights(model: nn.Module, std: float, cutoff_factor: float | None, seed: int) -> None:
    """OLMo's ``init_fn: normal`` on every Linear and Embedding weight (seeded, CPU generator)."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Embedding)):
            w = torch.empty(mod.weight.shape, dtype=torch.float32)
            if cutoff_factor is None:
                w.normal_(0.0, std, generator=g)
            else:
                nn.init.trunc_normal_(w, 0.0, std, -cutoff_factor * std, cutoff_factor * std, generator=g)
            mod.weight.copy_(w)
            if isinstance(mod, nn.Linear) and mod.bias is not None:
                mod.bias.zero_()


#: OLMo's ``ModelConfig`` dropout defaults (``olmo/config.py``): a config that leaves them unset trains
#: with dropout 0.1 under OLMo; OLMo 2's configs set all three to 0.0.
OLMO_DROPOUT_DEFAULTS = {"attention_dropout": 0.1, "residual_dropout": 0.1, "embedding_dropout": 0.1}


def check_no_dropout(raw: dict) -> None:
    """Refuse a config whose dropout, as OLMo reads it, is not 0: the trainer's model has none, so
    it would silently train another objective than OLMo on that config."""
    m = raw["model"]
    bad = {k: m.get(k, d) for k, d in OLMO_DROPOUT_DEFAULTS.items() if float(m.get(k, d)) != 0.0}
    if bad:
        shown = ", ".join(
            f"model.{k}={v}" + ("" if k in m else " (OLMo's default when unset)") for k, v in bad.items()
        )
        raise ValueError(
            f"{shown}: dropout is not implemented by the built-in trainer; set 0.0 as OLMo 2's configs do"
        )


def build_model(raw: dict, seed: int):
    """A freshly initialised model for the config, in fp32 (autocast gives bf16 compute on GPU)."""
    from transformers import Olmo2ForCausalLM

    check_no_dropout(raw)
    cfg = olmo2_config(raw)
    cfg._attn_implementation = "sdpa"
    model = Olmo2ForCausalLM(cfg)
    m = raw["model"]
    init_olmo_weights(model, float(m.get("init_std", 0.02)), m.get("init_cutoff_factor"), seed)
    return model


def causal_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Causal self-attention of full sequences (no padding, no cache), as transformers' ``sdpa``
    computes it when it can skip the mask: the same ``scaled_dot_product_attention`` call."""
    if attention_mask is not None:
        raise ValueError("the trainer's causal attention takes no attention mask")
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat the key/value heads
        n = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(n, dim=1), value.repeat_interleave(n, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=scaling, is_causal=True)
    return out.transpose(1, 2).contiguous(), None


def use_causal_attention(model) -> bool:
    """Make the model attend through :func:`causal_sdpa_attention`: for the trainer only, which
    never pads (transformers builds no mask for an attention it does not know, so a padding mask
    passed to such a model would be dropped; evaluation loads its own model with ``sdpa``).

    Why: under ``torch.compile`` transformers cannot prove the mask away (before torch 2.14 it
    treats compiling as exporting) and hands SDPA a materialised ``seq x seq`` mask, so the kernel
    does the full square instead of the causal half: on an H100 with the OLMo 2 1B shape, attention
    then takes 30 % of the step (benchmarks/results/gpu_train_h100.md). Eager on CPU, transformers
    already skips the mask, and the call here is the same, so results are bit-identical (tested).
    Returns False (and leaves ``sdpa``) where transformers has no attention registry.
    """
    try:
        from transformers import AttentionInterface
    except ImportError:  # transformers < 4.48
        return False
    AttentionInterface.register(CAUSAL_SDPA, causal_sdpa_attention)
    model.config._attn_implementation = CAUSAL_SDPA
    return True


class RotaryTable(nn.Module):
    """A model's rotary embedding read from a table of every position's (cos, sin) instead of
    computed per call: what its own module returns for positions ``0..length-1``, gathered by
    ``position_ids``, so the values are those of the module on the device the table was made on.

    Why: compiled, inductor fuses transformers' ``cos``/``sin`` of ``positions x inv_freq`` into every
    layer's rotary kernels and evaluates them per element, per layer and micro-batch. On an H200 at
    the OLMo 2 1B shape (micro-batch 8) those kernels took 62 ms of a 2.07 s step, 28 ms with the
    table, 30 ms in OLMo-core (benchmarks/results/gpu_train_h200.md). Used by the trainer when it
    compiles on a GPU."""

    def __init__(self, rotary: nn.Module, length: int, device: torch.device) -> None:
        super().__init__()
        self.rotary = rotary
        positions = torch.arange(length, device=device)[None]
        #: hidden-state dtype -> (buffer name, the dtype the module returned): some transformers
        #: versions cast (cos, sin) to the hidden states' dtype, others keep float32
        self.tables: dict[torch.dtype, tuple[str, torch.dtype]] = {}
        for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            with torch.no_grad():
                cos, sin = rotary(torch.empty(0, dtype=dtype, device=device), positions)
            self.register_buffer(f"cos_{name}", cos[0].clone(), persistent=False)
            self.register_buffer(f"sin_{name}", sin[0].clone(), persistent=False)
            self.tables[dtype] = (name, cos.dtype)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        name, dtype = self.tables.get(x.dtype, ("", None))
        cos = getattr(self, f"cos_{name}", None)
        if cos is None or cos.dtype != dtype:  # another dtype, or the model was cast since
            return self.rotary(x, position_ids)
        return cos[position_ids], getattr(self, f"sin_{name}")[position_ids]


def use_rotary_table(model) -> bool:
    """Give ``model`` (an ``Olmo2ForCausalLM`` on its device) a :class:`RotaryTable` for positions up
    to its ``max_position_embeddings``; False where its layout is not the expected one."""
    inner = getattr(model, "model", None)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None or isinstance(rotary, RotaryTable):
        return isinstance(rotary, RotaryTable)
    device = next(model.parameters()).device
    inner.rotary_emb = RotaryTable(rotary, int(model.config.max_position_embeddings), device)
    return True
