"""Decode: materialise the training batches of a step window, as token arrays and as text.

Batch ``b`` (optimizer step ``b + 1``) is instances ``global_indices[b*GBS:(b+1)*GBS]``, read straight
from the raw memmaps. Token arrays are saved as real ``.npy`` ``[GBS, L]`` uint32 (``{b}.npy``);
text follows the paper's ``decode_batches.py``: decode each sequence with special tokens kept, join
the sequences with the EOS string, collapse each doubled EOS string (``str.replace``, left to right)
and split on the EOS string, one JSON line per document (``{b}.json.gz``). Batches are grouped in
folders of ``batches_per_group`` named ``001``, ``002``, ... (1-based, as the paper's). Each folder
ends with ``manifest.tsv`` (every file's size and SHA-256, :mod:`intervene.manifest`), which the
stages reading the group check before use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path
from intervene.data_order import check_data_files, data_files, is_url, load_order
from intervene.layout import group_batches, group_name  # noqa: F401 (re-exported: the CLI, tests)
from intervene.manifest import write_manifest
from intervene.olmo import DataError, InstanceReader, load_train_config
from intervene.textio import write_jsonl_gz


def split_documents(decoded: list[str], eos_text: str) -> list[str]:
    """The paper's text rule (join with EOS, collapse doubled EOS, split)."""
    return eos_text.join(decoded).replace(eos_text + eos_text, eos_text).split(eos_text)


class BatchSource:
    """Training batches of an OLMo config + data order, with the integrity checks done once."""

    def __init__(
        self,
        train_config: str | os.PathLike,
        order_path: str | os.PathLike,
        manifest: str | os.PathLike | None = None,
        *,
        world_size: int = 1,
        local_paths: list[str] | None = None,
    ):
        self.spec = load_train_config(train_config)
        paths = local_paths or data_files(self.spec)
        remote = [p for p in paths if is_url(p)]
        if remote:
            raise DataError(
                f"{train_config}: data paths are URLs ({remote[0]} ...); download them first "
                "(intervene download) and use the local config it writes"
            )
        check_data_files(self.spec, paths, manifest)
        self.reader = InstanceReader(paths, self.spec.dtype, self.spec.seq_len, self.spec.max_target_seq_len)
        self.order = load_order(
            order_path, self.reader.num_instances, world_size, self.spec.drop_last, loader=self.spec.loader
        )
        self.gbs = self.spec.global_batch_size
        self.num_batches = len(self.order) // self.gbs

    def batch(self, b: int) -> np.ndarray:
        if not 0 <= b < self.num_batches:
            raise DataError(f"batch {b} out of range: the data order holds {self.num_batches} batches")
        idx = np.asarray(self.order[b * self.gbs : (b + 1) * self.gbs])
        return self.reader.read(idx)


def decode_group(
    train_config: str | os.PathLike,
    order_path: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    batches: range,
    *,
    manifest: str | os.PathLike | None = None,
    world_size: int = 1,
    keep_tokens: bool = True,
    write_text: bool = True,
    gzip_level: int = 3,
    progress: bool = False,
) -> Path:
    """Write ``{b}.npy`` and ``{b}.json.gz`` for ``batches`` into the folder ``out_dir``, then its
    ``manifest.tsv`` (atomically: the folder appears only when every batch and the manifest are
    written)."""
    from intervene.tokenizer import decode_batch, load_tokenizer

    if len(batches) == 0:
        raise ValueError(f"{out_dir}: no batches to decode (the group lies outside the configured window)")
    src = BatchSource(train_config, order_path, manifest, world_size=world_size)
    tok = load_tokenizer(tokenizer_dir) if write_text else None
    it = batches
    if progress:
        from tqdm import tqdm

        it = tqdm(batches, desc=f"decode {Path(out_dir).name}", unit="batch")
    out = Path(out_dir)
    with atomic_path(out, is_dir=True) as tmp:
        for b in it:
            tokens = src.batch(b)
            if keep_tokens:
                with open(tmp / f"{b}.npy", "wb") as fh:
                    np.save(fh, tokens)
            if tok is not None:
                decoded = decode_batch(tok, tokens.tolist())
                write_jsonl_gz(tmp / f"{b}.json.gz", split_documents(decoded, tok.eos_token), gzip_level)
        write_manifest(tmp)  # last: sizes and hashes of the files as written
    return out
