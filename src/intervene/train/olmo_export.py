"""Export our checkpoint as an OLMo unsharded checkpoint (``stepN-unsharded/``: ``model.pt``,
``optim.pt``, ``train.pt``, ``config.yaml``), so the OLMo fork (``train.backend: olmo``) can start a
re-run from a checkpoint our trainer wrote, with its optimizer state and counters.

The inverse of :mod:`intervene.train.olmo_import` (weight names from
``scripts/convert_olmo2_to_hf.py``): q/k/v are concatenated into ``att_proj`` ``[d, d_kv, d_kv]``,
(up, gate) into ``ff_proj`` in that order, and the AdamW moments the same way. What OLMo's
``FullCheckpointer`` reads (facts from ``olmo/checkpoint.py``, ``olmo/optim.py``, ``olmo/train.py``):

- ``optim.pt``: under DDP a plain ``Optimizer.load_state_dict``, which matches parameters by
  position and *replaces* every group's fields with the saved ones. So the groups are OLMo's
  (``get_param_groups``: decay, then no-decay, each sorted by parameter name) and carry OLMo's own
  fields ``max_grad_norm`` / ``max_grad_norm_ratio`` / ``sharded`` (without ``max_grad_norm``
  OLMo's first step would not clip) and ``param_names`` (FSDP maps the state by these names).
  ``fused``/``foreach`` are left to torch's defaults, as OLMo builds its AdamW.
- ``train.pt``: ``load_trainer_state_dict`` needs ``checkpoints`` and ``unsharded_checkpoints``
  besides the counters; no RNG state (OLMo then keeps its own: the models have no dropout).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import yaml

from intervene.atomic import atomic_path

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)\.weight$")
_SIMPLE = {
    "model.embed_tokens.weight": "transformer.wte.weight",
    "model.norm.weight": "transformer.ln_f.weight",
    "lm_head.weight": "transformer.ff_out.weight",
}
#: HF sub-module -> OLMo block parameter, for the one-to-one tensors.
_BLOCK = {
    "self_attn.o_proj": "attn_out",
    "mlp.down_proj": "ff_out",
    "self_attn.q_norm": "q_norm",
    "self_attn.k_norm": "k_norm",
    "post_attention_layernorm": "attn_norm",
    "post_feedforward_layernorm": "ff_norm",
}
#: OLMo's fused block parameters and the HF tensors they concatenate, in order (dim 0).
_FUSED = {
    "att_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "ff_proj": ("mlp.up_proj", "mlp.gate_proj"),
}


def olmo_name(hf_name: str) -> str:
    """The OLMo parameter an HF tensor belongs to (fused ones: shared by their parts)."""
    if hf_name in _SIMPLE:
        return _SIMPLE[hf_name]
    m = _LAYER.match(hf_name)
    if m:
        i, part = m.group(1), m.group(2)
        if part in _BLOCK:
            return f"transformer.blocks.{i}.{_BLOCK[part]}.weight"
        for fused, parts in _FUSED.items():
            if part in parts:
                return f"transformer.blocks.{i}.{fused}.weight"
    raise KeyError(f"no OLMo parameter for {hf_name!r}")


def _parts(name: str) -> list[str]:
    """The HF tensors of one OLMo parameter, in concatenation order."""
    inverse = {v: k for k, v in _SIMPLE.items()}
    if name in inverse:
        return [inverse[name]]
    m = re.match(r"^transformer\.blocks\.(\d+)\.(\w+)\.weight$", name)
    if not m:
        raise KeyError(f"unknown OLMo parameter {name!r}")
    i, part = m.group(1), m.group(2)
    if part in _FUSED:
        return [f"model.layers.{i}.{p}.weight" for p in _FUSED[part]]
    table = {v: k for k, v in _BLOCK.items()}
    return [f"model.layers.{i}.{table[part]}.weight"]


def hf_to_olmo(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF tensors (weights or one AdamW moment) as OLMo's; every tensor of a fused parameter must
    be there. Raises on a tensor OLMo has no place for."""
    names = sorted({olmo_name(k) for k in hf})
    out = {}
    for name in names:
        parts = _parts(name)
        missing = [p for p in parts if p not in hf]
        if missing:
            raise KeyError(f"{name}: missing {missing}")
        out[name] = hf[parts[0]].clone() if len(parts) == 1 else torch.cat([hf[p] for p in parts], dim=0)
    return out


def _param_order(raw: dict) -> list[list[str]]:
    """Our optimizer's groups as parameter names, in ``optim.pt``'s order (the model built on the
    meta device: names without allocating weights)."""
    from transformers import Olmo2ForCausalLM

    from intervene.train.model import olmo2_config
    from intervene.train.optim import param_groups

    with torch.device("meta"):
        model = Olmo2ForCausalLM(olmo2_config(raw))
    names = {p: n for n, p in model.named_parameters()}
    opt = raw["optimizer"]
    groups = param_groups(
        model,
        float(opt.get("weight_decay", 0.0)),
        bool(opt.get("decay_embeddings", False)),
        bool(opt.get("decay_norm_and_bias", True)),
    )
    return [[names[p] for p in g["params"]] for g in groups]


#: Group fields not copied from our optim.pt: OLMo builds its AdamW with torch's default
#: implementation choice. Every other field is kept: a missing one takes Adam's default on load
#: (``decoupled_weight_decay`` False turns AdamW into Adam with L2 decay).
_IMPLEMENTATION = {"fused": None, "foreach": None}


def _olmo_optim(ours: dict, raw: dict) -> dict:
    order = _param_order(raw)
    if len(order) != len(ours["param_groups"]) or [len(g) for g in order] != [
        len(g["params"]) for g in ours["param_groups"]
    ]:
        raise ValueError("optim.pt: its parameter groups do not fit the config's model")
    hf_id = {
        n: i
        for g, og in zip(order, ours["param_groups"], strict=True)
        for n, i in zip(g, og["params"], strict=True)
    }
    groups, state, next_id = [], {}, 0
    for names, og in zip(order, ours["param_groups"], strict=True):
        olmo_names = sorted({olmo_name(n) for n in names})
        ids = list(range(next_id, next_id + len(olmo_names)))
        next_id += len(olmo_names)
        for pid, name in zip(ids, olmo_names, strict=True):
            parts = _parts(name)
            if any(p not in hf_id for p in parts):
                raise ValueError(f"optim.pt: {name} is split over parameter groups")
            sts = [ours["state"].get(hf_id[p]) for p in parts]
            if all(s is None for s in sts):
                continue
            if any(s is None for s in sts) or len({float(s["step"]) for s in sts}) != 1:
                raise ValueError(f"optim.pt: the parts of {name} have different AdamW steps")
            entry = {"step": sts[0]["step"].detach().to("cpu", torch.float32).clone()}
            for key in ("exp_avg", "exp_avg_sq"):
                entry[key] = torch.cat([s[key].detach().cpu() for s in sts], dim=0)
            state[pid] = entry
        group = {k: v for k, v in og.items() if k != "params"}
        group.update(
            **_IMPLEMENTATION,
            params=ids,
            param_names=olmo_names,
            sharded=False,
            max_grad_norm=raw.get("max_grad_norm"),
            max_grad_norm_ratio=raw.get("max_grad_norm_ratio"),
        )
        groups.append(group)
    return {"state": state, "param_groups": groups}


def export_olmo_checkpoint(
    ckpt_dir: str | os.PathLike, out_dir: str | os.PathLike, train_config: str | os.PathLike | None = None
) -> Path:
    """Write ``out_dir`` (OLMo's unsharded layout; its name must end in ``-unsharded``, as the fork
    restores any other path as a sharded checkpoint) from our checkpoint folder ``ckpt_dir``."""
    from safetensors.torch import load_file

    src, out = Path(ckpt_dir), Path(out_dir)
    if not out.name.endswith("-unsharded"):
        raise ValueError(f"{out}: an OLMo unsharded checkpoint folder's name ends in -unsharded")
    for f in ("model.safetensors", "optim.pt", "train.pt"):
        if not (src / f).exists():
            raise FileNotFoundError(f"{src / f}: missing (not a checkpoint of our trainer)")
    cfg_path = Path(train_config) if train_config else src / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path}: the train config is missing")
    raw = yaml.safe_load(cfg_path.read_text())
    hf = load_file(str(src / "model.safetensors"))
    if bool(raw["model"].get("weight_tying", False)):
        hf.pop("lm_head.weight", None)
    model_sd = hf_to_olmo(hf)
    ours = torch.load(src / "optim.pt", map_location="cpu", weights_only=True)
    optim_sd = _olmo_optim(ours, raw)
    ours_train = torch.load(src / "train.pt", map_location="cpu", weights_only=False)
    train_sd = {
        "epoch": int(ours_train.get("epoch") or 0),
        "global_step": int(ours_train["global_step"]),
        "global_train_examples_seen_this_epoch": int(ours_train["global_train_examples_seen_this_epoch"]),
        "global_train_tokens_seen": int(ours_train["global_train_tokens_seen"]),
        "world_size": int(ours_train.get("world_size", 1)),
        "checkpoints": [],
        "unsharded_checkpoints": [],
        "ephemeral_checkpoints": [],
    }
    with atomic_path(out, is_dir=True) as tmp:
        torch.save(model_sd, tmp / "model.pt")
        torch.save(optim_sd, tmp / "optim.pt")
        torch.save(train_sd, tmp / "train.pt")
        (tmp / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return out
