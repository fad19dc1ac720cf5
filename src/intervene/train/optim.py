"""OLMo's optimizer: AdamW with two parameter groups, and its LR schedule in token units.

``olmo/optim.py`` (``get_param_groups``): with ``decay_norm_and_bias: true`` and
``decay_embeddings: false`` every parameter decays except the input embedding (``wte``, here
``model.embed_tokens.weight``). The LR is set on every group before each step from
:func:`intervene.olmo.lr_at`.
"""

from __future__ import annotations

import torch

from intervene.olmo import lr_at

EMBEDDING = "model.embed_tokens.weight"


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    decay_embeddings: bool = False,
    decay_norm_and_bias: bool = True,
) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_norm_or_bias = name.endswith(".bias") or "norm" in name
        if (name == EMBEDDING and not decay_embeddings) or (is_norm_or_bias and not decay_norm_and_bias):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "param_names": "decay"}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "param_names": "no_decay"})
    return groups


def build_optimizer(model: torch.nn.Module, opt: dict, *, fused: bool | None = None) -> torch.optim.AdamW:
    if opt.get("name", "adamw") != "adamw":
        raise ValueError(f"optimizer {opt.get('name')!r} not supported (OLMo 2 uses adamw)")
    groups = param_groups(
        model,
        float(opt.get("weight_decay", 0.0)),
        bool(opt.get("decay_embeddings", False)),
        bool(opt.get("decay_norm_and_bias", True)),
    )
    for g in groups:
        g.pop("param_names")
    return torch.optim.AdamW(
        groups,
        lr=float(opt["learning_rate"]),
        betas=tuple(opt.get("betas", (0.9, 0.999))),
        eps=float(opt.get("eps", 1e-8)),
        fused=fused,
    )


def scheduled_lr(raw: dict, step: int, tokens_seen: int | None = None) -> float:
    """The LR OLMo uses at optimizer step ``step`` for this config (``cosine_with_warmup``, tokens)."""
    sch = raw.get("scheduler") or {}
    name = sch.get("name", "cosine_with_warmup")
    if name != "cosine_with_warmup" or sch.get("units", "steps") != "tokens":
        raise ValueError(f"scheduler {name} in {sch.get('units')} units is not supported")
    tokens_per_step = int(raw["global_train_batch_size"]) * int(raw["model"]["max_sequence_length"])
    t_max = sch.get("t_max")
    if t_max is None:
        dur = str(raw.get("max_duration", ""))
        if not dur.endswith("T"):
            raise ValueError("scheduler.t_max unset and max_duration not in tokens")
        t_max = float(dur[:-1])
    core_units = (((raw.get("olmo_core") or {}).get("train_module") or {}).get("scheduler") or {}).get(
        "units", "steps"
    )
    if "olmo_core" in raw and core_units == "steps":
        # OLMo-core schedules in steps of its trainer's global_step (``Scheduler.set_lr``,
        # ``CosWithWarmup.get_lr``: the same formula); in steps the LR is its LR bit for bit, where the
        # tokens the config was translated to would round differently unless a step's tokens are a
        # power of two
        return lr_at(
            step,
            lr0=float(raw["optimizer"]["learning_rate"]),
            warmup_tokens=int(sch["t_warmup"]) // tokens_per_step,
            t_max_tokens=int(t_max) // tokens_per_step,
            alpha_f=float(sch.get("alpha_f", 0.1)),
            tokens_per_step=1,
            warmup_min_lr=None if sch.get("warmup_min_lr") is None else float(sch["warmup_min_lr"]),
        )
    return lr_at(
        step,
        lr0=float(raw["optimizer"]["learning_rate"]),
        warmup_tokens=float(sch["t_warmup"]),
        t_max_tokens=float(t_max),
        alpha_f=float(sch.get("alpha_f", 0.1)),
        tokens_per_step=tokens_per_step,
        tokens_seen=tokens_seen,
        warmup_min_lr=None if sch.get("warmup_min_lr") is None else float(sch["warmup_min_lr"]),
    )
