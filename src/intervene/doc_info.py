"""Doc info: where every document of a batch group sits (batch, sequence, start, end inclusive).

Rows line up one-to-one with the lines of the decoded ``{b}.json.gz`` files (see
:func:`intervene._docinfo.build_rows` for the exact rule, which reproduces the paper's
``get_doc_info_from_batch.py`` including its empty-document rows, generalised to every run of EOS).
EOS strings that were tokenized as ordinary tokens count as EOS, found from a token pattern derived
from the tokenizer and confirmed by decoding the window, as the paper did for dolma2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intervene._docinfo import build_rows, scan_batch
from intervene.atomic import write_npy
from intervene.tokenizer import SplitEos, load_tokenizer, split_eos_pattern

#: Column order of a doc-info row.
COLUMNS = ("batch", "seq", "start", "end")


def _split_eos_units(batch: np.ndarray, cand: np.ndarray, pat: SplitEos, tok) -> list[tuple[int, int]]:
    """Confirmed split-EOS windows (flat inclusive spans), clipped to their sequence.

    Candidates are positions of the core's first token; the rest of the core is compared
    vectorised, and only full matches are decoded (the paper's check that the window's text holds
    the EOS string).
    """
    S, L = batch.shape
    k = len(pat.core)
    flat = batch.reshape(-1)
    cand = cand[(cand % L) + k <= L]
    for j in range(1, k):
        cand = cand[flat[cand + j] == pat.core[j]]
    out = []
    backend = tok.backend_tokenizer  # the Rust decoder: the same text, without the Python wrapper
    for p in cand.tolist():
        s, i = divmod(p, L)
        a, e = max(0, i - pat.before), min(L, i + k + pat.after)
        if pat.eos_text in backend.decode(batch[s, a:e].tolist(), skip_special_tokens=False):
            out.append((s * L + a, s * L + e - 1))
    return out


def batch_doc_info(batch: np.ndarray, batch_index: int, pat: SplitEos, tok) -> np.ndarray:
    """Rows of one ``[S, L]`` token batch."""
    batch = np.ascontiguousarray(batch, dtype=np.uint32)
    if batch.ndim != 2:
        raise ValueError(f"batch {batch_index}: expected a 2-D [sequences, tokens] array, got {batch.shape}")
    S, L = batch.shape
    eos_pos, cand = scan_batch(batch, np.uint32(pat.eos_id), np.uint32(pat.core[0]))
    starts, ends = eos_pos, eos_pos
    if cand.size:
        split = _split_eos_units(batch, cand, pat, tok)
        if split:
            sp = np.asarray(split, dtype=np.int64)
            starts = np.concatenate([eos_pos, sp[:, 0]])
            ends = np.concatenate([eos_pos, sp[:, 1]])
            order = np.argsort(starts, kind="stable")
            starts, ends = np.ascontiguousarray(starts[order]), np.ascontiguousarray(ends[order])
    return build_rows(starts, ends, S, L, int(batch_index))


def doc_info(batches: Sequence[np.ndarray], tokenizer_dir: str | os.PathLike) -> np.ndarray:
    """``[n, 4]`` int64 rows (batch index within the group, sequence, start, end inclusive) for the
    ``[GBS, L]`` token arrays of one batch group, in order."""
    tok = load_tokenizer(tokenizer_dir)
    pat = split_eos_pattern(tok)
    parts = [batch_doc_info(b, i, pat, tok) for i, b in enumerate(batches)]
    return np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)


_BATCH_FILE = re.compile(r"^(\d+)\.npy$")


def group_batch_files(group_dir: str | os.PathLike) -> list[Path]:
    """The ``{b}.npy`` token batches of a group folder, in batch order (numeric, not lexicographic),
    after checking the group's files against the sizes its ``manifest.tsv`` records."""
    from intervene.manifest import verify_manifest

    d = Path(group_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: batch group folder not found")
    files = [(int(m.group(1)), p) for p in d.iterdir() if (m := _BATCH_FILE.match(p.name))]
    if not files:
        raise FileNotFoundError(f"{d}: no {{b}}.npy token batches in the folder")
    verify_manifest(d)  # one stat per file: a truncated or grown file is an error, not a wrong result
    return [p for _, p in sorted(files)]


def write_group_doc_info(
    group_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    check_text: bool = False,
) -> np.ndarray:
    """Doc info of every batch file in ``group_dir``, saved as a real ``.npy`` (int64 ``[n, 4]``).

    With ``check_text`` the rows are first checked against the line counts of the ``{b}.json.gz``
    files beside the token batches; nothing is written when they disagree.
    """
    tok = load_tokenizer(tokenizer_dir)
    pat = split_eos_pattern(tok)
    parts = []
    for i, f in enumerate(group_batch_files(group_dir)):
        try:
            b = np.load(f, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{f}: not a readable .npy token batch: {e}") from None
        if b.ndim != 2 or b.dtype.kind not in "ui":
            raise ValueError(f"{f}: expected a 2-D integer token array, got {b.dtype} {b.shape}")
        parts.append(batch_doc_info(np.asarray(b), i, pat, tok))
    rows = np.concatenate(parts)
    if check_text:
        check_against_text(rows, group_dir)
    write_npy(out, rows)
    return rows


def check_against_text(rows: np.ndarray, group_dir: str | os.PathLike) -> None:
    """Raise if the rows of a batch do not match the line count of its ``{b}.json.gz``."""
    from intervene.textio import read_jsonl_gz

    files = group_batch_files(group_dir)
    counts = np.bincount(rows[:, 0], minlength=len(files)) if len(rows) else np.zeros(len(files), int)
    for i, f in enumerate(files):
        t = f.with_name(f.name[: -len(".npy")] + ".json.gz")
        n = len(read_jsonl_gz(t))
        if n != counts[i]:
            raise ValueError(f"{t}: {n} documents, but doc info has {counts[i]} rows for this batch")
