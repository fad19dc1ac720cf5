"""Reading decoded batch groups (``{b}.json.gz`` JSON lines) as texts, in doc-info row order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def read_decoded(path: str | os.PathLike) -> bytes:
    """A decoded file's JSON-lines bytes (ISA-L: several times faster than zlib)."""
    from isal import igzip

    p = Path(path)
    try:
        return igzip.decompress(p.read_bytes())
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{p}: not a complete gzip file ({e})") from None


def parse_texts(data: bytes, path: str | os.PathLike) -> list[str]:
    """The ``"text"`` of every line of a decoded file's bytes (orjson: the parse costs several times
    less than json). A line without a string ``text`` is an error naming the file and line (WIMBD
    skips missing/null text but still counts the line; the decoder never writes such lines, so here
    it means the file is not ours)."""
    import orjson

    body = data[:-1] if data.endswith(b"\n") else data
    if not body:
        return []
    try:  # JSON lines hold no raw newline: one array parse instead of one call per line
        rows = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
        out = [r["text"] for r in rows]
        if all(type(t) is str for t in out):
            return out
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    out = []  # something is wrong: find the line and say so
    for i, line in enumerate(body.split(b"\n"), start=1):
        try:
            t = orjson.loads(line)["text"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{i}: not a JSON line with a text field ({e})") from None
        if not isinstance(t, str):
            raise ValueError(f"{path}:{i}: text is not a string")
        out.append(t)
    return out


def read_texts(path: str | os.PathLike) -> list[str]:
    """The ``"text"`` of every line of a gzipped JSON-lines file."""
    return parse_texts(read_decoded(path), path)


def batch_files(group_dir: str | os.PathLike) -> list[Path]:
    """The group's ``{b}.json.gz`` files in batch order, after checking the group's files against the
    sizes its ``manifest.tsv`` records (every reader of a group comes through here)."""
    from intervene.manifest import verify_manifest

    files = sorted(Path(group_dir).glob("*.json.gz"), key=lambda f: int(f.name.split(".")[0]))
    if not files:
        raise FileNotFoundError(f"{group_dir}: no decoded batches (*.json.gz)")
    verify_manifest(group_dir)  # one stat per file: a truncated or grown file is an error, not a wrong result
    return files


def group_texts(
    group_dir: str | os.PathLike, doc_info: np.ndarray | None = None
) -> tuple[list[str], list[Path], np.ndarray]:
    """All documents of a group (row i = doc info row i), the batch files, and each file's first
    row. With ``doc_info`` the per-batch line counts are checked against it."""
    files = batch_files(group_dir)
    texts: list[str] = []
    first = []
    for f in files:
        first.append(len(texts))
        texts += read_texts(f)
    first_row = np.array(first + [len(texts)], dtype=np.int64)
    if doc_info is not None:
        check_line_counts(group_dir, files, first_row, doc_info)
    return texts, files, first_row


def check_line_counts(group_dir, files: list[Path], first_row: np.ndarray, doc_info: np.ndarray) -> None:
    """Each batch file has as many lines as the doc info has rows for its batch."""
    counts = np.bincount(doc_info[:, 0], minlength=len(files)) if len(doc_info) else np.zeros(len(files), int)
    lines = np.diff(first_row)
    if counts.size != len(files) or not np.array_equal(counts, lines):
        bad = next((i for i in range(min(counts.size, len(files))) if counts[i] != lines[i]), None)
        where = files[bad].name if bad is not None else f"{len(files)} files vs {counts.size} batches"
        raise ValueError(f"{group_dir}: text lines and doc info rows disagree ({where})")


def group_text_stream(group_dir: str | os.PathLike) -> tuple[int, Iterator[str]]:
    """The number of documents of a group and an iterator over them, reading one batch file at a
    time (a stage that streams, e.g. dense encoding, then holds one file's texts, not the group's).
    The count costs one decompression per file (ISA-L, small next to any per-document work)."""
    files = batch_files(group_dir)
    n = sum(read_decoded(f).count(b"\n") for f in files)
    return n, (t for f in files for t in read_texts(f))
