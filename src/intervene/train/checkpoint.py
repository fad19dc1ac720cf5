"""Checkpoints: an HF model folder plus what OLMo's unsharded checkpoints add, so runs resume exactly.

``step{N}/`` = ``config.json`` + ``model.safetensors`` (``save_pretrained``, loadable by
``Olmo2ForCausalLM.from_pretrained`` and by the evaluator), ``optim.pt`` (the AdamW state dict),
``train.pt`` (OLMo's trainer-state keys: ``global_step``, ``global_train_tokens_seen``,
``global_train_examples_seen_this_epoch``, ``epoch``, ``world_size``, plus where a re-run started),
``config.yaml`` (the train config) and the tokenizer's files.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
import yaml

from intervene.atomic import atomic_path

_STEP_DIR = re.compile(r"^step(\d+)$")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The HF model inside DDP and/or the training objective."""
    if hasattr(model, "module"):
        model = model.module
    return model.model if model.__class__.__name__ == "OlmoObjective" else model


def save_checkpoint(
    path: str | os.PathLike,
    model,
    optimizer,
    state: dict,
    raw_config: dict,
    tokenizer_dir: str | os.PathLike | None = None,
    *,
    model_state: dict | None = None,
    optimizer_state: dict | None = None,
) -> Path:
    """``model_state``/``optimizer_state``: the unsharded states when the live ones are sharded (FSDP)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(path)
    with atomic_path(path, is_dir=True) as tmp:
        unwrap(model).save_pretrained(str(tmp), safe_serialization=True, state_dict=model_state)
        torch.save(optimizer.state_dict() if optimizer_state is None else optimizer_state, tmp / "optim.pt")
        torch.save(state, tmp / "train.pt")
        (tmp / "config.yaml").write_text(yaml.safe_dump(raw_config, sort_keys=False, allow_unicode=True))
        if tokenizer_dir is not None and Path(tokenizer_dir).is_dir():
            for f in sorted(Path(tokenizer_dir).iterdir()):
                if f.is_file():
                    shutil.copyfile(f, tmp / f.name)
    return path


def load_model_weights(path: str | os.PathLike, model: torch.nn.Module) -> None:
    """Load ``model.safetensors`` into an existing model exactly (no re-initialisation)."""
    from safetensors.torch import load_file

    f = Path(path) / "model.safetensors"
    if not f.exists():
        raise FileNotFoundError(f"{f}: checkpoint has no model.safetensors")
    sd = load_file(str(f))
    missing, unexpected = unwrap(model).load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and unwrap(model).config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(
            f"{f}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def load_training_state(path: str | os.PathLike, optimizer, load_optimizer=None) -> dict:
    """Load ``optim.pt`` into ``optimizer`` (or through ``load_optimizer(state_dict)``, e.g. into a
    sharded one) and return ``train.pt``'s counters."""
    path = Path(path)
    for name in ("optim.pt", "train.pt"):
        if not (path / name).exists():
            raise FileNotFoundError(
                f"{path / name}: checkpoint lacks {name} (cannot resume training from it)"
            )
    sd = torch.load(path / "optim.pt", map_location="cpu", weights_only=True)
    (load_optimizer or optimizer.load_state_dict)(sd)
    return torch.load(path / "train.pt", map_location="cpu", weights_only=False)


def checkpoints(run_dir: str | os.PathLike) -> dict[int, Path]:
    d = Path(run_dir)
    if not d.is_dir():
        return {}
    return {int(m.group(1)): p for p in d.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()}
