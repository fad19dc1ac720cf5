"""Released OLMo checkpoints as the original run: where they are and what they are called.

OLMo publishes unsharded checkpoints (``stepN-unsharded/``: ``config.yaml``, ``model.pt``,
``optim.pt``, ``train.pt``; e.g. ``https://olmo-checkpoints.org/ai2-llm/peteish7/step3000-unsharded/``)
and HF revisions of the same steps. A re-run needs the former (the optimizer state); evaluation only
the latter, which are far smaller (no optimizer moments).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from intervene.atomic import atomic_path

UNSHARDED_FILES = ("config.yaml", "model.pt", "optim.pt", "train.pt")


def hf_revision(step: int, global_batch_size: int, seq_len: int, stage: str = "stage1") -> str:
    """The HF revision OLMo 2 gives checkpoint ``step``: ``stage1-step{N}-tokens{T}B`` with T the
    tokens seen in billions, rounded up (allenai/OLMo ``scripts/upload_checkpoints.py``; e.g. 1B
    step 10000 = ``stage1-step10000-tokens21B``)."""
    tokens_b = math.ceil(step * global_batch_size * seq_len / 1e9)
    return f"{stage}-step{step}-tokens{tokens_b}B"


def fetch_unsharded(url: str, out: str | os.PathLike, files: tuple[str, ...] = UNSHARDED_FILES) -> Path:
    """Download an unsharded checkpoint folder (``url`` ends with ``stepN-unsharded/``) into ``out``;
    each file resumable (``download_file``), the folder renamed into place once all are there."""
    from intervene.download import download_file

    out = Path(out)
    base = url if url.endswith("/") else url + "/"
    with atomic_path(out, is_dir=True) as tmp:
        for name in files:
            download_file(base + name, tmp / name)
    return out


def fetch_olmo_core(url: str, out: str | os.PathLike) -> Path:
    """Download an OLMo-core checkpoint folder ``stepN/`` (e.g. OLMo 2 32B's
    ``https://olmo-checkpoints.org/ai2-llm/peteish32/step1000/``) into ``out``: what
    ``intervene import-olmo-core`` reads, ``model_and_optim/`` (its ``.metadata`` first, then the
    ``.distcp`` files it names: an HTTP folder cannot be listed) and ``train/rank0.pt``. Each file is
    resumable (``download_file``); the folder is renamed into place once all are there."""
    from intervene.download import download_file
    from intervene.train.olmo_core_import import storage_files

    out = Path(out)
    base = url if url.endswith("/") else url + "/"
    with atomic_path(out, is_dir=True) as tmp:
        download_file(base + "model_and_optim/.metadata", tmp / "model_and_optim" / ".metadata")
        for name in storage_files(tmp / "model_and_optim" / ".metadata"):
            if "/" in name or name.startswith("."):  # names come from a downloaded file
                raise ValueError(f"{base}model_and_optim/.metadata: unexpected storage file {name!r}")
            download_file(base + "model_and_optim/" + name, tmp / "model_and_optim" / name)
        download_file(base + "train/rank0.pt", tmp / "train" / "rank0.pt")
    return out
