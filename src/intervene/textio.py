"""Reading and writing the decoded-text files (``{b}.json.gz``: JSONL, one ``{"text": ...}`` per line).

Lines are written as the paper's ``decode_batches.py`` wrote them (``json.dumps`` defaults:
ASCII-escaped, ``", "``/``": "`` separators), so files are interchangeable with the paper's. Gzip
goes through ISA-L (``isal``), several times faster than zlib at equal output format; the header
carries no file name or time stamp, so outputs are byte-reproducible.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from isal import igzip, isal_zlib

from intervene.atomic import atomic_path


def encode_lines(texts: Iterable[str]) -> bytes:
    return "".join(json.dumps({"text": t}) + "\n" for t in texts).encode("ascii")


def gzip_bytes(data: bytes, level: int = 3) -> bytes:
    """Gzip (RFC 1952, mtime 0, no name) with ISA-L; ``level`` 0-3 (isal's scale)."""
    c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def write_jsonl_gz(path: str | os.PathLike, texts: Iterable[str], level: int = 3) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip_bytes(encode_lines(texts), level))


def read_jsonl_gz(path: str | os.PathLike) -> list[str]:
    """The ``text`` field of every line; a clear error naming the file for corrupt input."""
    p = Path(path)
    try:
        raw = igzip.decompress(p.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error, isal_zlib.error) as e:
        raise ValueError(f"{p}: corrupt or truncated gzip: {e}") from None
    out = []
    for ln, line in enumerate(io.BytesIO(raw), start=1):
        try:
            out.append(json.loads(line)["text"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f'{p}:{ln}: not a JSON line with a "text" field: {e}') from None
    return out
