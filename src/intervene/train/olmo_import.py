"""Import an OLMo unsharded checkpoint (``stepN-unsharded/``: ``config.yaml``, ``model.pt``,
``optim.pt``, ``train.pt``) as our checkpoint, optimizer state included, so a re-run can start from
the released OLMo checkpoints exactly.

Weight names follow ``scripts/convert_olmo2_to_hf.py`` (facts, see the design notes):
``att_proj`` splits ``[d, d_kv, d_kv]`` into q/k/v; ``ff_proj`` chunks into (up, gate) in that order;
``attn_out`` -> o_proj; block ``ff_out`` -> down_proj; ``attn_norm`` -> post_attention_layernorm;
``ff_norm`` -> post_feedforward_layernorm; ``q_norm``/``k_norm``; ``wte`` -> embed_tokens;
``ln_f`` -> model.norm; ``transformer.ff_out`` -> lm_head. AdamW moments are split the same way.
OLMo's ``optim.pt`` groups carry ``param_names`` (``olmo/optim.py``: sorted names per group); where
they are missing the sorted-name order is assumed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import yaml

from intervene.train.checkpoint import save_checkpoint
from intervene.train.model import build_model
from intervene.train.optim import build_optimizer

_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "module.", "model.")
_BLOCK = re.compile(r"^transformer\.blocks\.(\d+)\.(\w+)\.weight$")


def _clean(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if name.startswith(p) and not name.startswith("model.layers"):
                name, changed = name[len(p) :], True
    return name


def olmo_to_hf(name: str, t: torch.Tensor, d_model: int, d_kv: int) -> dict[str, torch.Tensor]:
    """One OLMo tensor (a weight or one of its AdamW moments) as the HF tensors it becomes."""
    name = _clean(name)
    simple = {
        "transformer.wte.weight": "model.embed_tokens.weight",
        "transformer.ln_f.weight": "model.norm.weight",
        "transformer.ff_out.weight": "lm_head.weight",
    }
    if name in simple:
        return {simple[name]: t}
    m = _BLOCK.match(name)
    if not m:
        raise KeyError(f"unknown OLMo parameter {name!r}")
    i, part = m.group(1), m.group(2)
    pre = f"model.layers.{i}"
    if part == "att_proj":
        q, k, v = torch.split(t, [d_model, d_kv, d_kv], dim=0)
        return {
            f"{pre}.self_attn.q_proj.weight": q,
            f"{pre}.self_attn.k_proj.weight": k,
            f"{pre}.self_attn.v_proj.weight": v,
        }
    if part == "ff_proj":
        up, gate = torch.chunk(t, 2, dim=0)
        return {f"{pre}.mlp.up_proj.weight": up, f"{pre}.mlp.gate_proj.weight": gate}
    table = {
        "attn_out": "self_attn.o_proj",
        "ff_out": "mlp.down_proj",
        "q_norm": "self_attn.q_norm",
        "k_norm": "self_attn.k_norm",
        "attn_norm": "post_attention_layernorm",
        "ff_norm": "post_feedforward_layernorm",
    }
    if part not in table:
        raise KeyError(f"unknown OLMo block parameter {name!r}")
    return {f"{pre}.{table[part]}.weight": t}


def import_olmo_checkpoint(
    olmo_dir: str | os.PathLike, out_dir: str | os.PathLike, train_config: str | os.PathLike | None = None
) -> Path:
    """Write ``out_dir`` (our checkpoint layout) from an OLMo unsharded checkpoint folder."""
    src = Path(olmo_dir)
    for f in ("model.pt", "optim.pt", "train.pt"):
        if not (src / f).exists():
            alt = src / f.replace(".pt", ".safetensors")
            hint = " (OLMo's safetensors encoding is not supported: unshard to .pt)" if alt.exists() else ""
            raise FileNotFoundError(f"{src / f}: missing{hint}")
    cfg_path = Path(train_config) if train_config else src / "config.yaml"
    raw = yaml.safe_load(cfg_path.read_text())
    m = raw["model"]
    d_model = int(m["d_model"])
    d_kv = d_model // int(m["n_heads"]) * int(m.get("n_kv_heads") or m["n_heads"])

    model = build_model(raw, seed=0)
    olmo_sd = torch.load(src / "model.pt", map_location="cpu", weights_only=True)
    hf_sd: dict[str, torch.Tensor] = {}
    for k, v in olmo_sd.items():
        hf_sd.update(olmo_to_hf(k, v, d_model, d_kv))
    missing, unexpected = model.load_state_dict(hf_sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{src / 'model.pt'}: does not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )

    optimizer = build_optimizer(model, raw["optimizer"])
    olmo_opt = torch.load(src / "optim.pt", map_location="cpu", weights_only=False)
    names: list[str] = []
    for g in olmo_opt["param_groups"]:
        if "param_names" not in g:
            raise ValueError(f"{src / 'optim.pt'}: param groups carry no param_names")
        names += [_clean(n) for n in g["param_names"]]
    ids = [i for g in olmo_opt["param_groups"] for i in g["params"]]
    by_hf: dict[str, dict[str, torch.Tensor]] = {}
    for pid, name in zip(ids, names, strict=True):
        st = olmo_opt["state"].get(pid)
        if st is None:
            continue
        parts = {key: olmo_to_hf(name, st[key], d_model, d_kv) for key in ("exp_avg", "exp_avg_sq")}
        for hf_name in parts["exp_avg"]:
            by_hf[hf_name] = {
                "step": st["step"].clone()
                if torch.is_tensor(st["step"])
                else torch.tensor(float(st["step"])),
                "exp_avg": parts["exp_avg"][hf_name].clone(),
                "exp_avg_sq": parts["exp_avg_sq"][hf_name].clone(),
            }
    ours = optimizer.state_dict()
    param_name = {id(p): n for n, p in model.named_parameters()}
    order = [param_name[id(p)] for g in optimizer.param_groups for p in g["params"]]
    ours["state"] = {i: by_hf[n] for i, n in enumerate(order) if n in by_hf}
    optimizer.load_state_dict(ours)

    olmo_train = torch.load(src / "train.pt", map_location="cpu", weights_only=False)
    state = {
        "global_step": int(olmo_train["global_step"]),
        "global_train_tokens_seen": int(olmo_train["global_train_tokens_seen"]),
        "global_train_examples_seen_this_epoch": int(
            olmo_train.get("global_train_examples_seen_this_epoch", 0)
        ),
        "epoch": int(olmo_train.get("epoch") or 0),
        "world_size": int(olmo_train.get("world_size", 1)),
        "run_start_step": int(olmo_train["global_step"]),
    }
    return save_checkpoint(out_dir, model, optimizer, state, raw)
