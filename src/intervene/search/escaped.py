"""Literal term search straight on the JSON-escaped bytes of decoded files, without parsing them.

The decoded files hold one ``{"text": "..."}`` per line written by ``json.dumps`` with its defaults
(the paper's ``decode_batches.py``; :func:`intervene.textio.encode_lines`): pure ASCII, every other
character escaped in one canonical way. Escaping is then a per-character code that no token is a
prefix of another, so a term occurs in a text exactly where the term's own ``json.dumps`` escaping
occurs in the line at a token boundary. Searching the escaped bytes skips the JSON parse, the
250k Python strings per 100 MB and their re-encoding and joining. Per file: :func:`escape_layout`
lists the escape tokens (one ``memchr`` walk of the Cython kernel ``intervene._escapes``), then
:func:`scan_file` finds every match of the escaped terms and maps its offsets back to bytes of
the UTF-8 text in one pass of the kernel's many-literal search (:func:`literal_set`).

A file that is not in exactly this form (other separators or fields, raw non-ASCII, ``\\/``,
upper-case hex, a lone surrogate, ...) gets ``None`` from :func:`escape_layout` or
:func:`scan_file`; the caller then parses it (:func:`intervene.search.corpus.read_texts`) and
searches the texts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


def escape_term(term: str) -> bytes:
    """The term as ``json.dumps`` writes it inside a string (the bytes to search for)."""
    return json.dumps(term)[1:-1].encode("ascii")


@dataclass
class EscapeLayout:
    """Where each line's text lies in the file and what its escape tokens shrink to.

    ``text_start``/``text_end``: byte range of line i's escaped text; ``tok_start``/``tok_end``:
    escape tokens (``\\n``, ``\\u00e9``, a surrogate pair as one token); ``shrink_before[k]``: the
    bytes lost to unescaping in tokens 0..k-1 (escaped length minus UTF-8 length).
    """

    text_start: np.ndarray
    text_end: np.ndarray
    tok_start: np.ndarray
    tok_end: np.ndarray
    shrink_before: np.ndarray

    @property
    def n_lines(self) -> int:
        return int(self.text_start.size)


def escape_layout(data: bytes, *, check_bytes: bool = True) -> EscapeLayout | None:
    """The layout of a decoded file's bytes, or ``None`` where they are not canonical
    ``json.dumps`` lines of a single ``"text"`` field (then parse the file instead).

    ``check_bytes=False`` leaves out the check that every byte is printable ASCII or a line end,
    for a caller that checks it in its own pass (:func:`scan_file` does)."""
    from intervene._escapes import escape_scan

    if not data:
        empty = np.zeros(0, dtype=np.int64)
        return EscapeLayout(empty, empty, empty, empty, np.zeros(1, dtype=np.int64))
    a = np.frombuffer(data, dtype=np.uint8)
    # pure ASCII (no raw DEL either) and no raw control character but the line ends (one per
    # line): two vectorised passes; the kernel walks the structure
    if check_bytes and int(a.max()) >= 0x7F:
        return None
    scan = escape_scan(a)
    if scan is None or (check_bytes and np.count_nonzero(a < 0x20) != scan[0].size):
        return None
    return EscapeLayout(*scan)


def literal_set(patterns: list[bytes]):
    """The patterns prepared for :func:`scan_file` (the many-literal kernel of
    :mod:`intervene._escapes`; its comment says why not an Aho-Corasick library)."""
    from intervene._escapes import LiteralSet

    return LiteralSet(patterns)


def locate(layout: EscapeLayout, start: np.ndarray, end: np.ndarray):
    """Map matches of escaped terms (file byte offsets) to ``(line, start, end, valid)`` with
    offsets into the line's UTF-8 text; ``valid`` is false for a match outside a text or cutting
    an escape token (e.g. ``n`` inside ``\\n``). The vectorised form of what :func:`scan_file`'s
    kernel does per match (kept as its reference in the tests)."""
    line = np.searchsorted(layout.text_end, start, side="left")
    line = np.minimum(line, max(layout.n_lines - 1, 0))
    ts = layout.text_start[line]
    valid = (start >= ts) & (end <= layout.text_end[line])
    if layout.tok_start.size:
        for x in (start, end):
            k = np.maximum(np.searchsorted(layout.tok_start, x, side="right") - 1, 0)
            valid &= ~((x > layout.tok_start[k]) & (x < layout.tok_end[k]))

    def shrink(x):
        return layout.shrink_before[np.searchsorted(layout.tok_end, x, side="right")]

    base = shrink(ts)
    return line, start - ts - (shrink(start) - base), end - ts - (shrink(end) - base), valid


def scan_file(data: bytes, lits, layout: EscapeLayout):
    """Every (overlapping) match of the escaped patterns of ``lits`` (:func:`literal_set`) in one
    file's texts: ``(pattern, line, start, end)`` sorted by line, start, end, with UTF-8 byte
    offsets; ``None`` where a byte of the file is neither printable ASCII nor a line end (not
    ``json.dumps``'s form: parse the file instead). One pass of the kernel: match, drop matches
    that cut an escape, map offsets to the text."""
    from intervene._escapes import find_escaped

    z = np.zeros(0, dtype=np.int64)
    if not data:
        return z.astype(np.int32), z, z, z
    lay = layout
    return find_escaped(
        lits, data, lay.text_start, lay.text_end, lay.tok_start, lay.tok_end, lay.shrink_before
    )
