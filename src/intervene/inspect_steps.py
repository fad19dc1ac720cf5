"""What did step N read? Per instance of a training batch: its token file and offset, the documents
in it (split at EOS as decode and doc info split them), each document's id from the token file's
side-car metadata, token counts and a text preview; and the inverse, which steps read a document.

Only the step's own instances are read from the memmaps (``global_indices[b*GBS:(b+1)*GBS]``, one
gather per file touched) and only the first tokens of each document are decoded, so one step of a
7B-shaped run answers in seconds (``benchmarks/bench_inspect.py``).

Side-car metadata: the dolma tokenizer (``dolma tokens``, allenai/dolma
``python/dolma/tokenizer/memmap_writer.py``) writes beside each ``X.npy`` a ``X.csv.gz`` with one CSV
row per document, ``start,end,id,src,loc`` (token offsets in the file, end exclusive, the EOS
included; no header). The toy world writes the same with a header row; both are read. Without a
side-car a document is named by its file and the token after the last EOS token before it
(``FILE@START``), found by scanning the memmap, so every piece of one document gets one name.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path, write_text
from intervene.data_order import build_order, check_data_files, data_files, is_url, load_order
from intervene.olmo import DataError, InstanceReader, load_train_config

log = logging.getLogger(__name__)

SIDECAR_COLUMNS = ("start", "end", "id", "src", "loc")
FORMATS = ("jsonl", "tsv", "html")
#: tokens read per block when scanning a token file for the EOS before or after a document
_SCAN_BLOCK = 1 << 14


# --- side-car metadata -------------------------------------------------------------------------


def sidecar_path(token_file: str | os.PathLike) -> Path:
    """``X.csv.gz`` beside ``X.npy`` (dolma's MemmapWriter names both from one base path)."""
    p = str(token_file)
    return Path((p[: -len(".npy")] if p.endswith(".npy") else p) + ".csv.gz")


@dataclass(frozen=True)
class Sidecar:
    """One token file's documents: ``starts``/``ends`` (int64, token offsets, end exclusive) sorted
    by start, and their ``ids`` (str)."""

    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray

    def rows_of(self, offsets: np.ndarray) -> np.ndarray:
        """The row holding each token offset, -1 where no document of the side-car does."""
        off = np.asarray(offsets, dtype=np.int64)
        r = np.searchsorted(self.starts, off, side="right") - 1
        ok = r >= 0
        ok[ok] = off[ok] < np.asarray(self.ends)[r[ok]]
        return np.where(ok, r, -1)


def read_sidecar(path: str | os.PathLike) -> Sidecar:
    """Parse a ``.csv.gz`` side-car (pyarrow's CSV reader: it comes with ``datasets`` and parses the
    gzip stream in C++, ~10x Python's csv module); a header row ``start,end,...`` is skipped."""
    import gzip

    import pyarrow as pa
    import pyarrow.csv as pacsv

    p = Path(path)
    try:
        with gzip.open(p, "rt", encoding="utf-8", newline="") as fh:
            first = fh.readline()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not a readable gzip side-car: {e}") from None
    header = first.strip().split(",")[:2] == ["start", "end"]
    if not first.strip():
        empty = np.zeros(0, np.int64)
        return Sidecar(empty, empty, np.zeros(0, dtype="U1"))
    try:
        t = pacsv.read_csv(
            p,
            read_options=pacsv.ReadOptions(column_names=list(SIDECAR_COLUMNS), skip_rows=int(header)),
            convert_options=pacsv.ConvertOptions(
                column_types={"start": pa.int64(), "end": pa.int64(), "id": pa.string(), "src": pa.string()},
                include_columns=["start", "end", "id"],
            ),
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{p}: not a side-car CSV of {','.join(SIDECAR_COLUMNS)}: {e}") from None
    starts = t["start"].to_numpy()
    ends = t["end"].to_numpy()
    ids = np.asarray(t["id"].to_pylist(), dtype=str) if t.num_rows else np.zeros(0, dtype="U1")
    bad = np.flatnonzero((starts < 0) | (ends <= starts))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{p}: row {i + 1}: start {starts[i]}, end {ends[i]} is not a document span")
    if starts.size > 1 and (np.diff(starts) < 0).any():
        i = int(np.flatnonzero(np.diff(starts) < 0)[0]) + 1
        raise DataError(f"{p}: row {i + 1}: starts are not in file order")
    return Sidecar(np.ascontiguousarray(starts), np.ascontiguousarray(ends), ids)


def cached_sidecar(path: str | os.PathLike, cache_dir: str | os.PathLike | None) -> Sidecar:
    """The side-car, from ``cache_dir`` when an index of this exact file (path, size, mtime) is
    there, else parsed and (with ``cache_dir``) indexed as two memory-mappable ``.npy`` files:
    later look-ups touch a few pages instead of parsing the whole CSV."""
    p = Path(path)
    if cache_dir is None:
        return read_sidecar(p)
    st = p.stat()
    key = hashlib.sha256(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    d = Path(cache_dir)
    bounds_f, ids_f = d / f"{key}.bounds.npy", d / f"{key}.ids.npy"
    if bounds_f.exists() and ids_f.exists():
        b = np.load(bounds_f, mmap_mode="r")
        return Sidecar(b[0], b[1], np.load(ids_f, mmap_mode="r"))
    sc = read_sidecar(p)
    d.mkdir(parents=True, exist_ok=True)
    for f, arr in ((ids_f, sc.ids), (bounds_f, np.stack([sc.starts, sc.ends]))):  # bounds last
        with atomic_path(f) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    return sc


# --- the run's data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """One document (or the part of it) inside one instance."""

    seq: int  # row of the batch
    start: int  # token offsets in the instance, end exclusive
    end: int


def document_spans(batch: np.ndarray, pat, tok) -> list[Piece]:
    """The documents of a ``[S, L]`` block of instances: maximal runs of tokens outside EOS units
    (EOS tokens and EOS strings tokenized as text, as :mod:`intervene.doc_info` finds them), per
    instance, in order. These are doc info's non-empty rows and decode's non-empty lines."""
    from intervene._docinfo import scan_batch
    from intervene.doc_info import _split_eos_units

    batch = np.ascontiguousarray(batch, dtype=np.uint32)
    S, L = batch.shape
    eos_pos, cand = scan_batch(batch, np.uint32(pat.eos_id), np.uint32(pat.core[0]))
    unit = np.zeros(S * L, dtype=bool)
    unit[eos_pos] = True
    if cand.size:
        for a, e in _split_eos_units(batch, cand, pat, tok):
            unit[a : e + 1] = True
    # runs of non-EOS tokens: +1 where a run starts, -1 one past where it ends
    inside = np.zeros((S, L + 2), dtype=np.int8)
    inside[:, 1:-1] = ~unit.reshape(S, L)
    d = np.diff(inside, axis=1)
    s_seq, s_pos = np.nonzero(d == 1)
    _, e_pos = np.nonzero(d == -1)
    return [Piece(int(s), int(a), int(e)) for s, a, e in zip(s_seq, s_pos, e_pos, strict=True)]


def _preview(tok, rows: list[np.ndarray], chars: int | None) -> list[tuple[str, bool]]:
    """(text, truncated) of each token row: the whole text with ``chars`` None, else its first
    ``chars`` characters, decoding only as many tokens as that needs (doubling from a guess; a cut
    token at the end decodes to replacement characters, so a few characters more are required)."""
    from intervene.tokenizer import decode_batch

    if chars is None:
        return [(t, False) for t in decode_batch(tok, [r.tolist() for r in rows])]
    out: list[tuple[str, bool] | None] = [None] * len(rows)
    todo = list(range(len(rows)))
    budget = chars // 2 + 8
    while todo:
        texts = decode_batch(tok, [rows[i][:budget].tolist() for i in todo])
        left = []
        for i, t in zip(todo, texts, strict=True):
            whole = budget >= len(rows[i])
            if whole or len(t) >= chars + 4:
                out[i] = (t[:chars], len(t) > chars or not whole)
            else:
                left.append(i)
        todo, budget = left, budget * 2
    return out  # type: ignore[return-value]


class RunData:
    """A run's token files, data order and side-cars, opened once; steps and documents are looked
    up without reading anything else.

    ``order``: ``global_indices.npy`` as the workflow wrote it (memory-mapped); None builds the
    order from the files' sizes and the config's seed (the whole array: ~4 GB and a minute at the
    7B shape, so pass the file when there is one).
    """

    def __init__(
        self,
        train_config: str | os.PathLike,
        order: str | os.PathLike | None = None,
        manifest: str | os.PathLike | None = None,
        *,
        world_size: int = 1,
        tokenizer: str | os.PathLike | None = None,
        sidecars: bool = True,
        sidecar_cache: str | os.PathLike | None = None,
    ):
        self.spec = load_train_config(train_config)
        self.paths = data_files(self.spec)
        remote = [p for p in self.paths if is_url(p)]
        if remote:
            raise DataError(
                f"{train_config}: data paths are URLs ({remote[0]} ...); download them first "
                "(intervene download) and use the local config it writes"
            )
        check_data_files(self.spec, self.paths, manifest)
        self.names = list(self.spec.paths)  # as the config lists them (the files' names in outputs)
        self.reader = InstanceReader(
            self.paths, self.spec.dtype, self.spec.seq_len, self.spec.max_target_seq_len
        )
        n = self.reader.num_instances
        if order is not None:
            self.order = load_order(order, n, world_size, self.spec.drop_last, loader=self.spec.loader)
        else:
            log.warning("no --order: building the whole data order of %d instances in memory", n)
            self.order = build_order(self.spec, n, world_size)
        self.L = self.spec.seq_len
        self.gbs = self.spec.global_batch_size
        self.num_batches = len(self.order) // self.gbs
        self.tokens_per_file = self.reader.sizes // self.reader.dtype.itemsize
        self._tok_dir = tokenizer
        self._tok = self._pat = None
        self.use_sidecars = sidecars
        self.sidecar_cache = sidecar_cache
        self._sidecars: dict[int, Sidecar | None] = {}
        self._flat: dict[int, np.ndarray] = {}

    # tokenizer and EOS -----------------------------------------------------------------------

    def tokenizer(self):
        if self._tok is None:
            from intervene.tokenizer import load_tokenizer, split_eos_pattern

            if self._tok_dir is None:
                raise DataError("documents and previews need the run's tokenizer (--tokenizer)")
            self._tok = load_tokenizer(self._tok_dir)
            self._pat = split_eos_pattern(self._tok)
        return self._tok

    @property
    def eos_id(self) -> int:
        if self._tok_dir is not None:
            self.tokenizer()
            return int(self._pat.eos_id)
        if self.spec.eos_token_id is None:
            raise DataError(f"{self.spec.source}: model.eos_token_id unset; give the tokenizer")
        return int(self.spec.eos_token_id)

    # files ------------------------------------------------------------------------------------

    def sidecar(self, k: int) -> Sidecar | None:
        if k not in self._sidecars:
            p = sidecar_path(self.paths[k])
            self._sidecars[k] = (
                cached_sidecar(p, self.sidecar_cache) if self.use_sidecars and p.exists() else None
            )
        return self._sidecars[k]

    def flat(self, k: int) -> np.ndarray:
        """File ``k``'s tokens, all of them (trailing tokens past the last instance included)."""
        m = self._flat.get(k)
        if m is None:
            n = int(self.tokens_per_file[k])
            m = np.memmap(self.paths[k], dtype=self.reader.dtype, mode="r", shape=(n,)) if n else np.zeros(0)
            self._flat[k] = m
        return m

    def file_of(self, instance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file index, token offset in the file) of global instance indices."""
        g = np.asarray(instance, dtype=np.int64)
        k = np.searchsorted(self.reader.starts, g, side="right") - 1
        return k, (g - self.reader.starts[k]) * self.L

    def _eos_before(self, k: int, pos: int) -> int:
        """Offset just after the last EOS token before ``pos`` in file ``k`` (0 when none)."""
        f, eos, hi, block = self.flat(k), self.eos_id, pos, _SCAN_BLOCK
        while hi > 0:
            lo = max(0, hi - block)
            hit = np.flatnonzero(np.asarray(f[lo:hi]) == eos)
            if hit.size:
                return lo + int(hit[-1]) + 1
            hi, block = lo, block * 2
        return 0

    def _eos_from(self, k: int, pos: int) -> int:
        """Offset just after the first EOS token at or after ``pos`` (the file's end when none)."""
        f, eos, lo, block = self.flat(k), self.eos_id, pos, _SCAN_BLOCK
        n = len(f)
        while lo < n:
            hi = min(n, lo + block)
            hit = np.flatnonzero(np.asarray(f[lo:hi]) == eos)
            if hit.size:
                return lo + int(hit[0]) + 1
            lo, block = hi, block * 2
        return n

    def document_at(self, k: int, pos: int) -> tuple[int, int, str | None, int]:
        """(start, end, id, side-car row) of the document of file ``k`` holding token ``pos``: the
        side-car's row when there is one (id None, row -1 otherwise: EOS tokens delimit it)."""
        sc = self.sidecar(k)
        if sc is not None:
            r = int(sc.rows_of(np.array([pos]))[0])
            if r >= 0:
                return int(sc.starts[r]), int(sc.ends[r]), str(sc.ids[r]), r
        return self._eos_before(k, pos), self._eos_from(k, pos), None, -1

    def doc_name(self, k: int, start: int, doc_id: str | None) -> str:
        return doc_id if doc_id is not None else f"{self.names[k]}@{start}"

    # steps ------------------------------------------------------------------------------------

    def check_step(self, step: int) -> int:
        """The batch (0-based) of optimizer step ``step`` (1-based), checked against the order."""
        if not 1 <= step <= self.num_batches:
            raise DataError(f"step {step} out of range: the data order holds steps 1..{self.num_batches}")
        return step - 1

    def inspect_step(self, step: int, *, preview_chars: int | None = 200) -> list[dict]:
        """Per instance of step ``step`` (batch ``step - 1``), in batch order: where it comes from
        and its documents (see the module doc). ``preview_chars`` None: each document's whole text."""
        b = self.check_step(step)
        inst = np.asarray(self.order[b * self.gbs : (b + 1) * self.gbs], dtype=np.int64)
        tokens = self.reader.read(inst)
        tok = self.tokenizer()
        pieces = document_spans(tokens, self._pat, tok)
        files, offsets = self.file_of(inst)
        eos = self.eos_id
        texts = _preview(tok, [tokens[p.seq, p.start : p.end] for p in pieces], preview_chars)
        out = []
        for s in range(len(inst)):
            k, base = int(files[s]), int(offsets[s])
            out.append(
                {
                    "step": step,
                    "batch": b,
                    "row": s,
                    "instance": int(inst[s]),
                    "file": self.names[k],
                    "file_index": k,
                    "offset": base,
                    "tokens": self.L,
                    "documents": [],
                }
            )
        eos_rows = [np.flatnonzero(tokens[s] == eos) for s in range(len(inst))]
        for p, (text, cut) in zip(pieces, texts, strict=True):
            rec = out[p.seq]
            k, base = rec["file_index"], rec["offset"]
            start, end, doc_id, row = self._span(k, base, p, eos_rows[p.seq])
            rec["documents"].append(
                {
                    "start": p.start,
                    "end": p.end,
                    "tokens": p.end - p.start,
                    "id": self.doc_name(k, start, doc_id),
                    "sidecar_row": row,
                    "doc_start": start,
                    "doc_end": end,
                    "doc_tokens": end - start,
                    "preview": text,
                    "truncated": cut,
                }
            )
        return out

    def _span(self, k: int, base: int, p: Piece, eos_local: np.ndarray):
        sc = self.sidecar(k)
        if sc is not None:
            r = int(sc.rows_of(np.array([base + p.start]))[0])
            if r >= 0:
                return int(sc.starts[r]), int(sc.ends[r]), str(sc.ids[r]), r
        # EOS tokens of this instance first; the file only when the document crosses its edge
        i = int(np.searchsorted(eos_local, p.start))
        start = base + int(eos_local[i - 1]) + 1 if i > 0 else self._eos_before(k, base + p.start)
        j = int(np.searchsorted(eos_local, p.end))
        end = base + int(eos_local[j]) + 1 if j < eos_local.size else self._eos_from(k, base + p.end)
        return start, end, None, -1

    # the inverse: where a document was read ---------------------------------------------------

    def _files_named(self, name: str) -> list[int]:
        """Data files a name stands for: every index listing that path (a file may be listed twice),
        else a 0-based index."""
        ks = [k for k, n in enumerate(self.names) if name in (n, self.paths[k])]
        if not ks and name.isdigit() and int(name) < len(self.paths):
            ks = [int(name)]
        return ks

    def find_documents(self, query: str) -> list[dict]:
        """The document(s) ``query`` names: ``FILE@TOKEN`` (FILE a data path as the config lists it,
        or its 0-based index; TOKEN any token offset of the document in that file), else a
        side-car id, searched in every file's side-car (a file listed twice holds it twice)."""
        found = []
        m = re.fullmatch(r"(.+)@(\d+)", query)
        ks = self._files_named(m.group(1)) if m else []
        if ks:
            pos = int(m.group(2))
            for k in ks:
                if pos >= self.tokens_per_file[k]:
                    raise DataError(f"{query}: {self.names[k]} holds {self.tokens_per_file[k]} tokens")
                start, end, did, row = self.document_at(k, pos)
                found.append((k, start, end, did, row))
        else:
            have = [k for k in range(len(self.paths)) if self.sidecar(k) is not None]
            if not have:
                raise DataError(
                    f"{query}: no data file of {self.spec.source} has a side-car (.csv.gz) to look ids up"
                    " in; name the document as FILE@TOKEN"
                )
            for k in have:
                sc = self.sidecar(k)
                for r in np.flatnonzero(sc.ids == query):
                    found.append((k, int(sc.starts[r]), int(sc.ends[r]), query, int(r)))
            if not found:
                raise DataError(
                    f"{query}: no such document id in the side-cars of {self.spec.source}, and no FILE@TOKEN"
                )
        return [
            {
                "id": self.doc_name(k, s, d),
                "file": self.names[k],
                "file_index": k,
                "doc_start": s,
                "doc_end": e,
                "doc_tokens": e - s,
                "sidecar_row": r,
            }
            for k, s, e, d, r in found
        ]

    def where(self, doc: dict, *, chunk: int = 1 << 24) -> list[dict]:
        """Every read of document ``doc`` (a :meth:`find_documents` entry): per position of the
        order whose instance holds some of its tokens, the step, the row of the batch and the
        tokens of the document there (its closing EOS left out). One vectorised pass over the order: the instances holding a
        document are consecutive, so each chunk is tested with one subtraction and one compare."""
        k, s, e = doc["file_index"], doc["doc_start"], doc["doc_end"]
        if e > s and int(self.flat(k)[e - 1]) == self.eos_id:
            e -= 1  # its closing EOS alone is no read of the document (nor a document in a step)
        first_j, last_j = s // self.L, min((e - 1) // self.L, int(self.reader.counts[k]) - 1)
        if first_j > last_j:
            return []  # only in the file's trailing tokens, which no instance holds
        g0 = int(self.reader.starts[k]) + first_j
        width = np.uint32(last_j - first_j)
        hits: list[int] = []
        read = self.num_batches * self.gbs  # a last partial batch is never a step
        path = getattr(self.order, "filename", None)
        fh = open(path, "rb") if path else None  # plain reads: a mapping's pages would stay in RSS
        try:
            for lo in range(0, read, chunk):
                n = min(read, lo + chunk) - lo
                if fh is not None:
                    fh.seek(lo * 4)
                    c = np.fromfile(fh, dtype=np.uint32, count=n)
                else:
                    c = np.array(self.order[lo : lo + n])  # a copy: changed in place below
                c -= np.uint32(g0)  # in place: one temporary less (wraps below g0, so > width)
                hits.extend((lo + np.flatnonzero(c <= width)).tolist())
        finally:
            if fh is not None:
                fh.close()
        out = []
        for p in hits:
            g = int(self.order[p])
            base = (g - int(self.reader.starts[k])) * self.L
            out.append(
                {
                    "step": p // self.gbs + 1,
                    "batch": p // self.gbs,
                    "row": p % self.gbs,
                    "instance": g,
                    "start": max(s, base) - base,
                    "end": min(e, base + self.L) - base,
                }
            )
        return out


# --- outputs -----------------------------------------------------------------------------------


def _jsonl(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


_TSV_ESC = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
TSV_COLUMNS = ("step", "row", "instance", "file", "offset", "start", "end", "tokens", "id", "doc_start", "doc_end", "preview")  # fmt: skip


def _doc_rows(instances: Sequence[dict]) -> list[tuple]:
    rows = []
    for r in instances:
        for d in r["documents"]:
            rows.append(
                (r["step"], r["row"], r["instance"], r["file"], r["offset"], d["start"], d["end"],
                 d["tokens"], d["id"], d["doc_start"], d["doc_end"], d["preview"] + ("…" if d["truncated"] else ""))
            )  # fmt: skip
    return rows


def render(instances: Sequence[dict], fmt: str, title: str = "") -> str:
    """The inspected instances as ``jsonl`` (one instance per line, its documents nested), ``tsv``
    (one document per line; tabs, newlines and backslashes escaped) or ``html`` (one self-contained
    table, every cell escaped)."""
    if fmt == "jsonl":
        return _jsonl(instances)
    rows = _doc_rows(instances)
    if fmt == "tsv":
        lines = ["\t".join(TSV_COLUMNS)]
        lines += ["\t".join(str(x).translate(_TSV_ESC) for x in row) for row in rows]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in TSV_COLUMNS)
        body = "\n".join(
            "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>" for row in rows
        )
        t = html.escape(title)
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            f"{t}</title>\n<style>table{{border-collapse:collapse;font:12px monospace}}"
            "td,th{border:1px solid #ccc;padding:2px 4px;vertical-align:top}"
            "td:last-child{white-space:pre-wrap;max-width:60em}</style></head>\n"
            f"<body><h1>{t}</h1>\n<table>\n<tr>{head}</tr>\n{body}\n</table></body></html>\n"
        )  # fmt: skip
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def format_of(out: str | os.PathLike | None, fmt: str | None) -> str:
    """The explicit format, else the output's suffix (``.jsonl``, ``.tsv``/``.txt``, ``.html``), else tsv."""
    if fmt:
        return fmt
    suffix = Path(out).suffix.lower() if out else ""
    return {".jsonl": "jsonl", ".html": "html", ".htm": "html"}.get(suffix, "tsv")


def inspect_steps(
    train_config: str | os.PathLike,
    first: int,
    last: int | None = None,
    *,
    order: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike,
    world_size: int = 1,
    out: str | os.PathLike | None = None,
    fmt: str | None = None,
    preview_chars: int | None = 200,
    sidecars: bool = True,
    sidecar_cache: str | os.PathLike | None = None,
) -> str:
    """Steps ``first..last`` (1-based, inclusive; ``last`` None: one step) rendered in ``fmt``;
    written atomically to ``out`` when given. Returns the text."""
    last = first if last is None else last
    if last < first:
        raise ValueError(f"last step {last} is before first step {first}")
    t0 = time.perf_counter()
    run = RunData(
        train_config, order, manifest, world_size=world_size, tokenizer=tokenizer,
        sidecars=sidecars, sidecar_cache=sidecar_cache,
    )  # fmt: skip
    log.info("opened %d token files and the order in %.2f s", len(run.paths), time.perf_counter() - t0)
    run.check_step(last)
    t0 = time.perf_counter()
    run.tokenizer()
    log.info("loaded the tokenizer in %.2f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    recs = [r for step in range(first, last + 1) for r in run.inspect_step(step, preview_chars=preview_chars)]
    log.info(
        "inspected steps %d..%d (%d instances) in %.2f s", first, last, len(recs), time.perf_counter() - t0
    )
    title = f"step {first}" if first == last else f"steps {first}-{last}"
    text = render(recs, format_of(out, fmt), title)
    if out is not None:
        write_text(out, text)
    return text


def document_steps(
    train_config: str | os.PathLike,
    document: str,
    *,
    order: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    world_size: int = 1,
    out: str | os.PathLike | None = None,
    sidecar_cache: str | os.PathLike | None = None,
    sidecars: bool = True,
) -> list[dict]:
    """Where a document appears: per document ``document`` names (a side-car id or ``FILE@TOKEN``:
    :meth:`RunData.find_documents`) its span and every step that read some of it
    (:meth:`RunData.where`); JSON lines to ``out``."""
    run = RunData(
        train_config, order, manifest, world_size=world_size, sidecars=sidecars, sidecar_cache=sidecar_cache
    )
    docs = run.find_documents(document)
    t0 = time.perf_counter()
    for d in docs:
        d["reads"] = run.where(d)
        d["steps"] = sorted({h["step"] for h in d["reads"]})
    log.info("scanned the order (%d entries) in %.2f s", len(run.order), time.perf_counter() - t0)
    if out is not None:
        write_text(out, _jsonl(docs))
    return docs
