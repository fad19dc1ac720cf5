"""Import an OLMo-core checkpoint (``stepN/``: ``model_and_optim/`` written by
``torch.distributed.checkpoint``, ``train/rank0.pt``, ``config.json``) as our checkpoint, AdamW state
and counters included, so a re-run can start from an OLMo-core run's checkpoint.

Facts from ai2-olmo-core 2.4.0 (read, not copied): ``Checkpointer.save`` writes the train module's
state dict with DCP under ``model_and_optim/`` (keys ``model.<fqn>``; the optimizer flattened by
``get_optimizer_state_dict(flatten_optimizer_state_dict=True)``: ``optim.state.<fqn>.{step, exp_avg,
exp_avg_sq}`` and ``optim.param_groups.<fqn>.<field>``) and the trainer's ``state_dict()`` to
``train/rank{r}.pt`` (``global_step``, ``global_train_tokens_seen``, ``epoch`` (1-based),
``data_loader``: ``batches_processed`` this epoch, ...). Its OLMo 2 transformer
(``TransformerConfig.olmo2_*``: ``reordered_norm`` blocks = norms on the outputs of attention and
feed-forward, QK-norm over all heads, RMSNorm, no biases, untied head) has one tensor per HF
``Olmo2ForCausalLM`` tensor, so the mapping is a renaming (:data:`NAMES`); its feed-forward is
``w2(silu(w1(x)) * w3(x))`` (``nn/feed_forward.py``): w1 = gate, w3 = up, w2 = down.

DCP is read on one process with ``torch.distributed.checkpoint.load(..., no_dist=True)`` straight into
our model's parameters and our optimizer's moment tensors (no full copy of the checkpoint in
memory, no converted file on disk as ``format_utils.dcp_to_torch_save`` would write).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from intervene.train.checkpoint import save_checkpoint
from intervene.train.model import build_model
from intervene.train.optim import build_optimizer

log = logging.getLogger(__name__)

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
#: OLMo-core block tensor -> HF ``Olmo2DecoderLayer`` tensor (within ``model.layers.N.``)
NAMES = {
    "attention.w_q.weight": "self_attn.q_proj.weight",
    "attention.w_k.weight": "self_attn.k_proj.weight",
    "attention.w_v.weight": "self_attn.v_proj.weight",
    "attention.w_out.weight": "self_attn.o_proj.weight",
    "attention.q_norm.weight": "self_attn.q_norm.weight",
    "attention.k_norm.weight": "self_attn.k_norm.weight",
    "attention_norm.weight": "post_attention_layernorm.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward_norm.weight": "post_feedforward_layernorm.weight",
}
_TOP = {
    "embeddings.weight": "model.embed_tokens.weight",
    "lm_head.norm.weight": "model.norm.weight",
    "lm_head.w_out.weight": "lm_head.weight",
}


def olmo_core_to_hf(name: str) -> str:
    """The HF name of an OLMo-core transformer parameter (``blocks.3.attention.w_q.weight`` ->
    ``model.layers.3.self_attn.q_proj.weight``)."""
    if name in _TOP:
        return _TOP[name]
    m = _BLOCK.match(name)
    if m and m.group(2) in NAMES:
        return f"model.layers.{m.group(1)}.{NAMES[m.group(2)]}"
    raise KeyError(f"unknown OLMo-core parameter {name!r}")


def _cls(section: dict | None) -> str:
    return str((section or {}).get("_CLASS_", "")).rsplit(".", 1)[-1]


def _norm_eps(norm: dict | None, what: str, where: str) -> float:
    if not norm:
        raise ValueError(f"{where}: {what} is missing (OLMo 2 has RMSNorm there)")
    if norm.get("name", "rms") != "rms" or norm.get("bias") or norm.get("elementwise_affine") is False:
        raise ValueError(f"{where}: {what} {norm.get('name')!r} with bias/affine: only RMSNorm is supported")
    return float(norm.get("eps", 1e-5))


def _model_section(cfg: dict, where: str) -> dict:
    """OLMo-style ``model:`` section for an OLMo-core ``TransformerConfig`` (as a dict), refusing
    what HF ``Olmo2ForCausalLM`` does not compute."""
    m = cfg.get("model")
    if not isinstance(m, dict) or "block" not in m:
        raise ValueError(f"{where}: no model section with a block (not an OLMo-core run config?)")
    if m.get("name", "default") != "default" or m.get("block_overrides"):
        raise ValueError(f"{where}: model.name {m.get('name')!r} / block_overrides are not supported")
    b = m["block"]
    if b.get("name") != "reordered_norm":
        raise ValueError(
            f"{where}: model.block.name {b.get('name')!r}: only OLMo 2's 'reordered_norm' blocks are supported"
        )
    if b.get("feed_forward_moe") or float(b.get("dropout") or 0.0) != 0.0:
        raise ValueError(f"{where}: model.block: MoE feed-forward or dropout is not supported")
    a = b["attention"]
    if a.get("name", "default") != "default":
        raise ValueError(
            f"{where}: model.block.attention.name {a.get('name')!r}: only 'default' is supported"
        )
    if a.get("sliding_window"):
        raise ValueError(
            f"{where}: model.block.attention.sliding_window is set (OLMo 3): sliding-window attention is "
            "not implemented by the built-in trainer's model"
        )
    if a.get("bias") or a.get("clip_qkv") is not None or a.get("use_head_qk_norm"):
        raise ValueError(
            f"{where}: model.block.attention: bias, clip_qkv or use_head_qk_norm is not supported"
        )
    if float(a.get("dropout") or 0.0) != 0.0:
        raise ValueError(f"{where}: model.block.attention.dropout is not 0")
    rope = a.get("rope") or {}
    if not rope or rope.get("name", "default") != "default" or rope.get("scaling"):
        raise ValueError(
            f"{where}: model.block.attention.rope {rope.get('name')!r}: only the default (rotate-half) RoPE "
            "without scaling is supported"
        )
    ff = b.get("feed_forward") or {}
    if ff.get("name", "default") != "default" or ff.get("bias"):
        raise ValueError(f"{where}: model.block.feed_forward must be the default SwiGLU without bias")
    head = m.get("lm_head") or {}
    if head.get("bias"):
        raise ValueError(f"{where}: model.lm_head.bias is not supported")
    eps = {
        "block.layer_norm": _norm_eps(b.get("layer_norm"), "model.block.layer_norm", where),
        "attention.qk_norm": _norm_eps(a.get("qk_norm"), "model.block.attention.qk_norm", where),
        "lm_head.layer_norm": _norm_eps(head.get("layer_norm"), "model.lm_head.layer_norm", where),
    }
    if len(set(eps.values())) != 1:
        raise ValueError(f"{where}: norm eps differ {eps}: the HF model has one rms_norm_eps")
    tok = (cfg.get("dataset") or {}).get("tokenizer") or {}
    seq = (cfg.get("train_module") or {}).get("max_sequence_length") or (cfg.get("dataset") or {}).get(
        "sequence_length"
    )
    if seq is None:
        raise ValueError(f"{where}: train_module.max_sequence_length / dataset.sequence_length missing")
    n_heads = int(a["n_heads"])
    return {
        "d_model": int(m["d_model"]),
        "n_heads": n_heads,
        "n_kv_heads": int(a.get("n_kv_heads") or n_heads),
        "n_layers": int(m["n_layers"]),
        "mlp_hidden_size": 2 * int(ff["hidden_size"]),  # OLMo's convention: SwiGLU hidden = this // 2
        "vocab_size": int(tok.get("vocab_size") or m["vocab_size"]),
        "embedding_size": int(m["vocab_size"]),  # OLMo-core's vocab_size is the (padded) embedding size
        "max_sequence_length": int(seq),
        "rope_theta": float(rope.get("theta", 500_000)),
        "layer_norm_eps": next(iter(eps.values())),
        "include_bias": False,
        "weight_tying": False,
        "attention_dropout": 0.0,
        "residual_dropout": 0.0,
        "embedding_dropout": 0.0,
        "init_std": float(m.get("init_std", 0.02)),
        "eos_token_id": tok.get("eos_token_id"),
        "pad_token_id": tok.get("pad_token_id"),
    }


def _optimizer_section(cfg: dict, where: str, skip_step_as_adamw: bool) -> dict:
    o = (cfg.get("train_module") or {}).get("optim") or {}
    cls = _cls(o)
    if cls == "SkipStepAdamWConfig":
        if not skip_step_as_adamw:
            raise ValueError(
                f"{where}: train_module.optim is SkipStepAdamW: the built-in trainer's AdamW never skips a "
                "step (pass --skip-step-as-adamw to import its state as AdamW's)"
            )
        if o.get("step_increment_bugfix") is False or o.get("dtype") not in (None, "float32"):
            raise ValueError(
                f"{where}: SkipStepAdamW without step_increment_bugfix or with dtype is not supported"
            )
    elif cls != "AdamWConfig":
        raise ValueError(f"{where}: train_module.optim {cls or '?'}: only AdamW is supported")
    decay_embeddings = True
    for ov in o.get("group_overrides") or []:
        if list(ov.get("params") or []) != ["embeddings.weight"] or dict(ov.get("opts") or {}) != {
            "weight_decay": 0.0
        }:
            raise ValueError(
                f"{where}: train_module.optim.group_overrides {ov.get('params')} {ov.get('opts')}: only "
                "OLMo 2's no weight decay on embeddings.weight is supported"
            )
        decay_embeddings = False
    return {
        "name": "adamw",
        "learning_rate": float(o.get("lr", 1e-3)),
        "weight_decay": float(o.get("weight_decay", 1e-2)),
        "betas": [float(x) for x in o.get("betas", (0.9, 0.999))],
        "eps": float(o.get("eps", 1e-8)),
        "decay_embeddings": decay_embeddings,
        "decay_norm_and_bias": True,  # AdamWConfig decays every parameter not overridden
    }


def _run_length(cfg: dict, units: str, dur: dict, gbs_tokens: int, where: str) -> int | None:
    """The run's length in the schedule's units, as OLMo-core's trainer gives it to the scheduler
    (``Scheduler.set_lr``: ``trainer.max_steps`` or ``trainer.max_tokens``). ai2-olmo-core 2.4.0's
    ``Trainer._get_max_steps`` for a token duration is ``global_step + ceil((max_tokens - tokens_seen)
    / tokens_per_batch)``, which with a constant batch (``tokens_seen = global_step * batch``) is
    ``ceil(max_tokens / batch)`` at every step (and ``_get_max_tokens`` of a step duration is
    ``max_steps * batch``). A batch-size schedule breaks that, so it is refused. None: an epoch
    duration (its length needs the data), kept unresolved."""
    unit, value = dur.get("unit"), dur.get("value")
    if unit is None or value is None or unit == units:
        return value
    callbacks = ((cfg.get("trainer") or {}).get("callbacks")) or {}
    for name, cb in callbacks.items():
        if "BatchSizeScheduler" in _cls(cb) or name == "batch_size_scheduler":
            raise ValueError(
                f"{where}: trainer.callbacks.{name}: a batch-size schedule makes the run's length in "
                f"{units} depend on it; only a constant batch size is supported"
            )
    if (units, unit) == ("steps", "tokens"):
        return -(-int(value) // gbs_tokens)
    if (units, unit) == ("tokens", "steps"):
        return int(value) * gbs_tokens
    return None


def olmo_style_config(cfg: dict, where: str = "config", *, skip_step_as_adamw: bool = False) -> dict:
    """The OLMo-style train config our model and optimizer read (``model``, ``optimizer``,
    ``scheduler``, batch size in instances, clipping, z-loss) for an OLMo-core run config; the
    original is kept whole under ``olmo_core``. No ``data`` section: the run's order is OLMo-core's
    (:mod:`intervene.olmo_core_order` reads the original config), never OLMo's."""
    out: dict = {"model": _model_section(cfg, where)}
    out["optimizer"] = _optimizer_section(cfg, where, skip_step_as_adamw)
    seq = out["model"]["max_sequence_length"]
    gbs_tokens = int((cfg.get("data_loader") or {}).get("global_batch_size") or 0)
    if gbs_tokens <= 0 or gbs_tokens % seq:
        raise ValueError(f"{where}: data_loader.global_batch_size {gbs_tokens} is not a multiple of {seq}")
    out["global_train_batch_size"] = gbs_tokens // seq
    tm = cfg.get("train_module") or {}
    micro_tokens = tm.get("rank_microbatch_size")
    if micro_tokens is not None:  # in tokens there; OLMo's device_train_microbatch_size is instances
        if int(micro_tokens) < seq or int(micro_tokens) % seq:
            raise ValueError(
                f"{where}: train_module.rank_microbatch_size {micro_tokens} is not a multiple of {seq}"
            )
        out["device_train_microbatch_size"] = int(micro_tokens) // seq
    sch = tm.get("scheduler") or {}
    units = sch.get("units", "steps")
    dur = (cfg.get("trainer") or {}).get("max_duration") or {}
    t_max = sch.get("t_max")
    if t_max is None:  # OLMo-core: t_max defaults to the run's length (Trainer.max_steps / max_tokens)
        t_max = _run_length(cfg, units, dur, gbs_tokens, where)
    warmup = sch.get("warmup")
    if warmup is None:  # releases before 2.0 (OLMo 2 32B's run) name it warmup_steps
        warmup = sch.get("warmup_steps")
    if warmup is None and sch.get("warmup_fraction") is not None and t_max is not None:
        warmup = round(int(t_max) * float(sch["warmup_fraction"]))  # CosWithWarmup.get_lr
    if _cls(sch) == "CosWithWarmup" and warmup is not None and t_max is not None:
        per = gbs_tokens if units == "steps" else 1  # steps -> tokens (constant batch size)
        out["scheduler"] = {
            "name": "cosine_with_warmup",
            "units": "tokens",
            "t_warmup": int(warmup) * per,
            "t_max": int(t_max) * per,
            "alpha_f": float(sch.get("alpha_f", 0.1)),
            "warmup_min_lr": float(sch.get("warmup_min_lr", 0.0)),
        }
    else:  # kept by name: optim.scheduled_lr refuses it with its name rather than guessing
        out["scheduler"] = {"name": f"olmo_core:{_cls(sch) or 'none'}", "units": units}
    out["max_grad_norm"] = tm.get("max_grad_norm")
    z = tm.get("z_loss_multiplier")
    out["softmax_auxiliary_loss"] = z is not None
    if z is not None:
        out["auxiliary_loss_multiplier"] = float(z)
    out["seed"] = int((cfg.get("data_loader") or {}).get("seed") or 0)
    out["olmo_core"] = cfg
    return out


@dataclass
class _StorageInfo:
    """Where one stored item is (the fields torch's ``FileSystemReader`` reads)."""

    relative_path: str
    offset: int
    length: int
    transform_descriptors: tuple | None = None


class _MetadataUnpickler(pickle.Unpickler):
    """OLMo-core's writer pickles its own ``_StorageInfo`` into ``.metadata``: read it as ours, so
    neither ai2-olmo-core is needed nor torch's reader misses ``transform_descriptors`` on it."""

    def find_class(self, module, name):
        if module == "olmo_core.distributed.checkpoint.filesystem" and name == "_StorageInfo":
            return _StorageInfo
        if module.startswith("olmo_core"):
            raise pickle.UnpicklingError(f"unexpected OLMo-core class {module}.{name} in the metadata")
        return super().find_class(module, name)


def _reader(path: Path):
    """torch's ``FileSystemReader`` for an OLMo-core ``model_and_optim/`` folder."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.storage import StorageMeta

    class Reader(FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            with open(path / ".metadata", "rb") as f:
                metadata = _MetadataUnpickler(f).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return Reader(str(path))


def storage_files(metadata: str | os.PathLike) -> list[str]:
    """The data files a DCP checkpoint's ``.metadata`` names (``__R_N.distcp``: one or more per rank
    that wrote it), so that a checkpoint folder behind a URL can be fetched file by file."""
    with open(metadata, "rb") as f:
        meta = _MetadataUnpickler(f).load()
    return sorted({info.relative_path for info in meta.storage_data.values()})


def _read_config(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (pass the run's config.json with --train-config)")
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def _bytes_value(v):
    return v.getvalue() if hasattr(v, "getvalue") else v


def import_olmo_core_checkpoint(
    ckpt_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_config: str | os.PathLike | None = None,
    *,
    skip_step_as_adamw: bool = False,
) -> Path:
    """Write ``out_dir`` (our checkpoint layout) from an OLMo-core checkpoint folder ``stepN/``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

    src = Path(ckpt_dir)
    mo, train_pt = src / "model_and_optim", src / "train" / "rank0.pt"
    for f in (mo / ".metadata", train_pt):
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing (not an OLMo-core checkpoint folder stepN/)")
    cfg_path = Path(train_config) if train_config else src / "config.json"
    cfg = _read_config(cfg_path)
    raw = olmo_style_config(cfg, str(cfg_path), skip_step_as_adamw=skip_step_as_adamw)

    reader = _reader(mo)
    meta = reader.read_metadata().state_dict_metadata

    def tensor_meta(key: str, like: torch.Tensor) -> None:
        md = meta.get(key)
        if not isinstance(md, TensorStorageMetadata):
            raise ValueError(f"{mo}: {key} missing")
        if tuple(md.size) != tuple(like.shape) or md.properties.dtype != like.dtype:
            raise ValueError(
                f"{mo}: {key} is {md.properties.dtype} {tuple(md.size)}, the config's model wants "
                f"{like.dtype} {tuple(like.shape)}"
            )

    model = build_model(raw, seed=0)
    ours = dict(model.named_parameters())
    ckpt_names = sorted(k[len("model.") :] for k in meta if k.startswith("model."))
    hf_of = {n: olmo_core_to_hf(n) for n in ckpt_names}
    if sorted(hf_of.values()) != sorted(ours):
        extra = sorted(set(hf_of.values()) - set(ours))[:3]
        missing = sorted(set(ours) - set(hf_of.values()))[:3]
        raise ValueError(f"{mo}: does not fit the config (missing {missing}, unexpected {extra})")
    sd: dict = {}
    for n, hf in hf_of.items():
        tensor_meta(f"model.{n}", ours[hf])
        sd[f"model.{n}"] = ours[hf].data
    optimizer = build_optimizer(model, raw["optimizer"])
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    has_state = any(k.startswith("optim.state.") for k in meta)
    if not has_state:
        raise ValueError(f"{mo}: no optimizer state (optim.state.*) in the checkpoint")
    fields = ("initial_lr", "betas", "eps", "weight_decay")
    for n, hf in hf_of.items():
        p = ours[hf]
        st = optimizer.state[p]
        st["step"] = torch.zeros((), dtype=torch.float32)
        st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for k in ("step", "exp_avg", "exp_avg_sq"):
            key = f"optim.state.{n}.{k}"
            tensor_meta(key, st[k])
            sd[key] = st[k]
        for f in fields:
            key = f"optim.param_groups.{n}.{f}"
            if not isinstance(meta.get(key), BytesStorageMetadata):
                raise ValueError(
                    f"{mo}: {key} missing (an unflattened optimizer state dict is not supported)"
                )
            sd[key] = None
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(sd, storage_reader=reader, no_dist=True)

    for n, hf in hf_of.items():  # the checkpoint's hyperparameters must be the config's
        g = group_of[id(ours[hf])]
        got = {f: _bytes_value(sd[f"optim.param_groups.{n}.{f}"]) for f in fields}
        want = {
            "initial_lr": g["lr"],
            "betas": tuple(g["betas"]),
            "eps": g["eps"],
            "weight_decay": g["weight_decay"],
        }
        got["betas"] = tuple(got["betas"])
        if any(float(got[f]) != float(want[f]) for f in ("initial_lr", "eps", "weight_decay")) or tuple(
            map(float, got["betas"])
        ) != tuple(map(float, want["betas"])):
            raise ValueError(f"{mo}: {n}'s optimizer group {got} differs from the config's {want}")

    tr = torch.load(train_pt, map_location="cpu", weights_only=False)
    dl = tr.get("data_loader") or {}
    inst_per_batch = int(raw["global_train_batch_size"])
    state = {
        "global_step": int(tr["global_step"]),
        "global_train_tokens_seen": int(tr["global_train_tokens_seen"]),
        # instances of this epoch: OLMo-core counts batches per epoch (NumpyDataLoaderBase)
        "global_train_examples_seen_this_epoch": int(dl.get("batches_processed", 0)) * inst_per_batch,
        "epoch": int(tr.get("epoch") or 1),  # OLMo-core's epochs are 1-based
        "world_size": int(tr.get("world_size", 1)),
        "run_start_step": int(tr["global_step"]),
    }
    log.info("imported %s: step %d, %d tensors", src, state["global_step"], len(hf_of))
    return save_checkpoint(out_dir, model, optimizer, state, raw)


#: the translated keys that decide a re-run's model, optimizer, schedule and loss
RERUN_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "global_train_batch_size",
    "max_grad_norm",
    "softmax_auxiliary_loss",
    "auxiliary_loss_multiplier",
)


def rerun_config(cfg: dict, where: str, load_path: str | os.PathLike | None, data_list) -> dict:
    """The train config of a built-in re-run of an OLMo-core run: that of the imported checkpoint
    ``load_path`` (:func:`olmo_style_config` of the run's config, stored by
    :func:`import_olmo_core_checkpoint`), checked against the run config ``cfg`` given to the
    trainer. Training an OLMo-core run itself from its config (its data order, its initialisation)
    is not supported: only re-runs over given batch files from an imported checkpoint."""
    if load_path is None or data_list is None:
        raise ValueError(
            f"{where}: an OLMo-core run's config: the built-in trainer only re-runs such runs from a "
            "checkpoint imported by intervene import-olmo-core (load_path) over given batch files (data_list)"
        )
    ds = cfg.get("dataset") or {}
    if ds.get("generate_doc_lengths"):
        raise ValueError(
            f"{where}: dataset.generate_doc_lengths (intra-document attention masking) is not implemented "
            "by the built-in trainer's model"
        )
    ckpt_cfg = Path(load_path) / "config.yaml"
    if not ckpt_cfg.exists():
        raise FileNotFoundError(f"{ckpt_cfg}: missing (load_path must be a checkpoint folder)")
    raw = yaml.safe_load(ckpt_cfg.read_text())
    if not isinstance(raw, dict) or "olmo_core" not in raw:
        raise ValueError(
            f"{ckpt_cfg}: not a checkpoint of an OLMo-core run (write one with intervene import-olmo-core)"
        )
    derived = olmo_style_config(cfg, where, skip_step_as_adamw=True)
    for k in RERUN_KEYS:
        if derived.get(k) != raw.get(k):
            raise ValueError(
                f"{where}: {k} translates to {derived.get(k)!r}, but the checkpoint {ckpt_cfg} holds "
                f"{raw.get(k)!r} (imported from another run's config?)"
            )
    if "device_train_microbatch_size" in derived:
        raw["device_train_microbatch_size"] = derived["device_train_microbatch_size"]
    return raw
