"""Byte comparison of two result trees, or of a tree with a digest recorded earlier.

The pipeline promises byte-identical outputs for the same config and seed on CPU; a refactoring
is checked by running the demo before and after and comparing ``results/``. Running the old code
again is slow, so the "before" side can be a digest (``intervene digest-results results/ >
before.tsv``): one row per file with its size and sha256, compared later with ``intervene
compare-results before.tsv results/``.

Everything is compared byte for byte except what legitimately differs between two runs, listed
here and nowhere else:

* paths (:data:`EXCLUDED_PATHS`, matched against the path relative to the root): hidden files and
  folders (Snakemake's ``.snakemake/`` and ``.snakemake_timestamp`` markers, the temporaries of
  :mod:`intervene.atomic`, whose names carry a pid and a host name), ``*.log`` and ``*.lock``
  files, and ``benchmarks/`` and ``logs/`` folders (Snakemake's ``benchmark:`` files hold
  wall-clock seconds, memory and load);
* JSON keys (:data:`EXCLUDED_JSON_KEYS`, at any depth of a ``.json`` or ``.jsonl`` file): wall-clock
  times, dates and host names. The demo's JSON outputs hold none of them today (their files are
  compared byte for byte); a file that does is compared as its parsed document without those keys,
  and its digest row says so.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from intervene.manifest import HASH, file_hash

#: fnmatch patterns of the relative POSIX path (``*`` also matches ``/``) that are not compared
EXCLUDED_PATHS: tuple[str, ...] = (
    ".*",
    "*/.*",
    "*.log",
    "*.lock",
    "benchmarks/*",
    "*/benchmarks/*",
    "logs/*",
    "*/logs/*",
)
#: keys dropped at any depth of a JSON document before it is compared
EXCLUDED_JSON_KEYS: frozenset[str] = frozenset(
    {
        "seconds",
        "elapsed",
        "elapsed_s",
        "wall_s",
        "wall_time",
        "time",
        "timestamp",
        "processing_time",
        "date",
        "current_date",
        "started",
        "finished",
        "host",
        "hostname",
    }
)
_JSON_SUFFIXES = (".json", ".jsonl")
_HEADER = ["path", "bytes", HASH, "compared"]
BYTES = "bytes"
JSON_WITHOUT = "json-without-excluded-keys"


class ResultsDiffer(ValueError):
    """Two result trees differ (the message counts the files; the rows name them)."""


@dataclass(frozen=True)
class Entry:
    """One file's digest: its size and hash of what is compared (the bytes, or the JSON without
    the excluded keys), and which of the two."""

    bytes: int
    digest: str
    compared: str = BYTES


def excluded(rel: str) -> bool:
    """Whether a relative POSIX path is left out of the comparison (:data:`EXCLUDED_PATHS`)."""
    return any(fnmatch.fnmatchcase(rel, pat) for pat in EXCLUDED_PATHS)


def _drop_keys(doc: object) -> tuple[object, bool]:
    """The document without :data:`EXCLUDED_JSON_KEYS` at any depth, and whether any was dropped."""
    if isinstance(doc, dict):
        out, dropped = {}, False
        for k, v in doc.items():
            if k in EXCLUDED_JSON_KEYS:
                dropped = True
                continue
            out[k], d = _drop_keys(v)
            dropped |= d
        return out, dropped
    if isinstance(doc, list):
        items = [_drop_keys(v) for v in doc]
        return [v for v, _ in items], any(d for _, d in items)
    return doc, False


def _json_without_keys(path: Path) -> bytes | None:
    """The canonical text of a JSON (lines) file without the excluded keys, or None when it holds
    none of them (or is not JSON: then its bytes are compared)."""
    try:
        text = path.read_text(encoding="utf-8")
        docs = (
            [json.loads(ln) for ln in text.splitlines() if ln.strip()]
            if path.suffix == ".jsonl"
            else [json.loads(text)]
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    stripped = [_drop_keys(d) for d in docs]
    if not any(d for _, d in stripped):
        return None
    return "".join(json.dumps(d, sort_keys=True, ensure_ascii=False) + "\n" for d, _ in stripped).encode()


def file_entry(path: str | os.PathLike) -> Entry:
    """The digest of one file as :func:`digest_tree` records it."""
    p = Path(path)
    if p.suffix in _JSON_SUFFIXES:
        body = _json_without_keys(p)
        if body is not None:
            return Entry(len(body), hashlib.new(HASH, body).hexdigest(), JSON_WITHOUT)
    return Entry(p.stat().st_size, file_hash(p))


def tree_files(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of the regular files under ``root`` that are compared, sorted.
    Symbolic links are followed to files (the demo links nothing; a link is what it points to)."""
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: folder not found")
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = Path(dirpath).relative_to(base).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not excluded(prefix + d + "/x"))
        out += [
            prefix + f for f in filenames if not excluded(prefix + f) and os.path.isfile(Path(dirpath, f))
        ]
    return sorted(out)


def digest_tree(root: str | os.PathLike) -> dict[str, Entry]:
    """{relative path: :class:`Entry`} of every compared file under ``root``."""
    return {rel: file_entry(Path(root) / rel) for rel in tree_files(root)}


def format_digest(entries: dict[str, Entry]) -> str:
    """The digest as TSV (``path bytes sha256 compared``), sorted by path: no time stamps, so the
    digests of two identical trees are identical files."""
    rows = ["\t".join(_HEADER)]
    rows += [f"{rel}\t{e.bytes}\t{e.digest}\t{e.compared}" for rel, e in sorted(entries.items())]
    return "\n".join(rows) + "\n"


def read_digest(path: str | os.PathLike) -> dict[str, Entry]:
    """A digest written by :func:`format_digest` (``intervene digest-results``)."""
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0].split("\t") != _HEADER:
        raise ValueError(f"{path}: not a results digest (expected the header {' '.join(_HEADER)})")
    out: dict[str, Entry] = {}
    for ln, line in enumerate(lines[1:], start=2):
        f = line.split("\t")
        if len(f) != 4 or not f[1].isdigit() or f[3] not in (BYTES, JSON_WITHOUT):
            raise ValueError(
                f"{path}:{ln}: expected path, bytes, {HASH}, compared ({BYTES} or {JSON_WITHOUT})"
            )
        out[f[0]] = Entry(int(f[1]), f[2], f[3])
    return out


def _first_difference(a: Path, b: Path, chunk: int = 1 << 20) -> int | None:
    """Offset of the first differing byte of two files (the shorter one's end when one is a prefix)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        offset = 0
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                n = min(len(x), len(y))
                return offset + next((i for i in range(n) if x[i] != y[i]), n)
            if not x:
                return None
            offset += len(x)


def _side(source: str | os.PathLike) -> tuple[dict[str, Entry], Path | None]:
    """A tree's digest and root, or a digest file's rows (no root: byte offsets unknown)."""
    p = Path(source)
    if p.is_dir():
        return digest_tree(p), p
    if not p.exists():
        raise FileNotFoundError(f"{p}: neither a results folder nor a digest file")
    return read_digest(p), None


def compare_results(before: str | os.PathLike, after: str | os.PathLike) -> list[str]:
    """One line per differing file (missing, extra, or different content); empty when the two
    agree. Each side is a results folder or a digest file of one."""
    a, root_a = _side(before)
    b, root_b = _side(after)
    diffs = [f"missing\t{rel}\t(in {before}, not in {after})" for rel in sorted(a.keys() - b.keys())]
    diffs += [f"extra\t{rel}\t(in {after}, not in {before})" for rel in sorted(b.keys() - a.keys())]
    for rel in sorted(a.keys() & b.keys()):
        x, y = a[rel], b[rel]
        if x == y:
            continue
        what = f"{x.bytes} -> {y.bytes} bytes" if x.bytes != y.bytes else f"same size ({x.bytes} bytes)"
        if x.compared != y.compared:
            what += f", compared as {x.compared} -> {y.compared}"
        elif root_a is not None and root_b is not None and x.compared == BYTES:
            what += f", first difference at byte {_first_difference(root_a / rel, root_b / rel)}"
        diffs.append(f"differs\t{rel}\t({what})")
    return sorted(diffs, key=lambda d: d.split("\t")[1])
