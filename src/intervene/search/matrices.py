"""Term x document counts and instance x document co-occurrence, per relation, from occurrences.

Columns are the group's doc-info rows. Rows of the term matrix are the relation's term-file lines in
order, always all of them: a term with no occurrence (or a failed search) is an empty row, never a
shifted one (the paper's build_term_doc_matrix.py indexed rows by the position among the JSON files
it could parse). A pair (subject, object) co-occurs in a document when some subject match and some
object match are such that neither span contains the other (build_term_pair_doc_matrix.py's rule).
Containment is checked only where it is possible: one term a substring of the other, or either a
regex (WIMBD mode); elsewhere every document holding both terms qualifies.

Scale: a group of 1000 batches holds 10^8-10^9 occurrences; everything here is array operations,
linear in the occurrences but for sorts, in bounded blocks. The stage counts every term of the
group at once (:func:`term_counts`: one sort of ``term * n_docs + doc`` keys, by blocks of terms)
and gives each relation its rows (:func:`relation_rows`). A pair matrix intersects each instance's
two document lists from the rarer term's side; then, only for instances whose terms can contain
one another and only in their candidate documents, it collects the two terms' spans and compares
span pairs only where every subject span touches every object span (otherwise a disjoint pair
exists, so the pair co-occurs), which for literal terms bounds the pairs compared by the terms'
lengths. The occurrences file is memory-mapped (:func:`map_occurrences`).
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from intervene.search.find import is_plain

#: Rows of an occurrence column handled at once (bounds every temporary to a few hundred MB).
CHUNK = 1 << 24
#: (instance, document) candidates or span pairs handled at once (~8 int64 temporaries each).
BLOCK = 1 << 22
#: Keys sorted at once when counting every term of a group (int64: 512 MB).
SORT_BLOCK = 1 << 26
_NEED = ("term", "doc", "start", "end", "n_docs")


def map_occurrences(path: str | os.PathLike) -> dict:
    """The columns of an occurrences file, memory-mapped (read-only) where the member is stored
    uncompressed, as ``np.savez`` writes them; other members are loaded.

    Why by hand: ``np.load`` maps ``.npy`` files but never the members of an ``.npz``; a group's
    occurrences (up to ~28 bytes x 10^9 rows) need not fit in memory when each relation reads only
    its own terms' rows, and mapped pages can be dropped by the kernel. The zip layout (local file
    header: 30 bytes + name + extra field) is from the ZIP application note (APPNOTE.TXT 4.3.7).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: occurrences file not found")
    out: dict = {}
    try:
        with zipfile.ZipFile(p) as zf, open(p, "rb") as fh:
            for info in zf.infolist():
                name = info.filename.removesuffix(".npy")
                arr = _mapped_member(p, fh, info) if info.compress_type == zipfile.ZIP_STORED else None
                out[name] = arr if arr is not None else _read_member(zf, info)
    except zipfile.BadZipFile:
        raise ValueError(f"{p}: not an occurrences file (not an .npz archive)") from None
    if not set(_NEED) <= set(out):
        raise ValueError(f"{p}: not an occurrences file (needs {sorted(_NEED)}, has {sorted(out)})")
    return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as m:
        return np.lib.format.read_array(m, allow_pickle=False)


def _mapped_member(p: Path, fh, info: zipfile.ZipInfo) -> np.ndarray | None:
    """A stored ``.npy`` member as a read-only memmap; ``None`` where it cannot be mapped (a
    scalar, an object array, a header version numpy does not publish a reader for)."""
    fh.seek(info.header_offset)
    head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        return None
    n_name, n_extra = struct.unpack("<HH", head[26:30])
    fh.seek(info.header_offset + 30 + n_name + n_extra)
    version = np.lib.format.read_magic(fh)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        return None
    shape, fortran, dtype = readers[version](fh)
    if dtype.hasobject or not shape or 0 in shape:
        return None
    return np.memmap(p, dtype=dtype, mode="r", offset=fh.tell(), shape=shape, order="F" if fortran else "C")


def _n_docs(occ: dict) -> int:
    return int(occ["n_docs"])


def _lookup(values: np.ndarray) -> np.ndarray:
    """term -> position in ``values`` (-1: not there), with one spare last slot that terms beyond
    the table are clipped to. Repeated values keep the last position (as fancy assignment does)."""
    size = int(values.max(initial=-1)) + 2
    table = np.full(size, -1, dtype=np.int32 if values.size < 2**31 else np.int64)
    table[values] = np.arange(values.size, dtype=table.dtype)
    table[-1] = -1
    return table


def _chunk_terms(occ: dict, table: np.ndarray, a: int):
    """Rows ``a`` to ``a + CHUNK`` of the term column mapped through ``table`` (checked)."""
    t = np.asarray(occ["term"][a : a + CHUNK])
    if t.size and int(t.min()) < 0:
        raise ValueError(f"occurrences: negative term index {int(t.min())}")
    return table[np.minimum(t, table.size - 1)]


def _check_docs(d: np.ndarray, n_docs: int) -> None:
    if d.size and (int(d.min()) < 0 or int(d.max()) >= n_docs):
        bad = int(d.min()) if int(d.min()) < 0 else int(d.max())
        raise ValueError(f"occurrences: document {bad} outside the group's {n_docs} documents")


def _relation_keys(occ: dict, table: np.ndarray, n_docs: int) -> np.ndarray:
    """``row * n_docs + doc`` of every occurrence whose term has a row, sorted. Two passes over
    the term column (count, then fill) so the only full-size array is the result."""
    n = int(occ["term"].shape[0])
    counts = [int(np.count_nonzero(_chunk_terms(occ, table, a) >= 0)) for a in range(0, n, CHUNK)]
    keys = np.empty(sum(counts), dtype=np.int64)
    at = 0
    for i, a in enumerate(range(0, n, CHUNK)):
        if not counts[i]:
            continue
        rows = _chunk_terms(occ, table, a)
        k = np.flatnonzero(rows >= 0)
        d = np.asarray(occ["doc"][a : a + CHUNK])[k]
        _check_docs(d, n_docs)
        np.multiply(rows[k], n_docs, out=keys[at : at + k.size], dtype=np.int64)
        keys[at : at + k.size] += d
        at += k.size
    keys.sort()
    return keys


def _runs(keys: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``row * n_cols + col`` keys (sorted) as (rows, cols, multiplicities); the
    temporaries freed as soon as used (this runs on the largest arrays of the stage)."""
    if not keys.size:
        return (np.zeros(0, dtype=np.int64),) * 3
    new = np.empty(keys.size, dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    first = np.flatnonzero(new)
    del new
    data = np.diff(first, append=keys.size)
    cols = keys[first]
    del first
    rows = cols // n_cols
    cols -= rows * n_cols
    return rows, cols, data


def _csr(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR from entries sorted by (row, col), no repeats."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    # the constructor narrows the indices to int32 where they fit, as the sparse ops do
    return sp.csr_matrix((data.astype(np.int64, copy=False), cols, indptr), shape=shape)


def term_doc_matrix(occ: dict, rel_terms: np.ndarray) -> sp.csr_matrix:
    """(relation terms x documents) match counts; ``rel_terms`` = vocabulary index per row.

    A vocabulary index listed on several rows counts on the last of them (the others stay empty).
    One relation on its own; for all relations of a group, :func:`term_counts` once and
    :func:`relation_rows` per relation (the same matrices) is cheaper.
    """
    rel_terms = np.asarray(rel_terms, dtype=np.int64)
    if rel_terms.size and rel_terms.min() < 0:
        raise ValueError("rel_terms: a negative vocabulary index")
    n_docs = _n_docs(occ)
    keys = _relation_keys(occ, _lookup(rel_terms), n_docs)
    return _csr(*_runs(keys, n_docs), (rel_terms.size, n_docs))


def term_counts(occ: dict, n_terms: int = 0) -> sp.csr_matrix:
    """(terms x documents) match counts of every term of the group (at least ``n_terms`` rows;
    int32 counts where they fit): one sort of ``term * n_docs + doc`` keys, by ranges of terms of
    at most :data:`SORT_BLOCK` occurrences (one term may exceed it), so at most that many keys are
    held at once."""
    n_docs = _n_docs(occ)
    n = int(occ["term"].shape[0])
    per_term = np.zeros(n_terms, dtype=np.int64)
    for a in range(0, n, CHUNK):
        t = np.asarray(occ["term"][a : a + CHUNK])
        if t.size and int(t.min()) < 0:
            raise ValueError(f"occurrences: negative term index {int(t.min())}")
        c = np.bincount(t)
        if c.size > per_term.size:
            per_term = np.concatenate([per_term, np.zeros(c.size - per_term.size, dtype=np.int64)])
        per_term[: c.size] += c
    idx = np.int32 if n_docs < 2**31 else np.int64
    cnt = np.int32 if n < 2**31 else np.int64
    ends = np.cumsum(per_term)
    bounds = [0]
    while bounds[-1] < per_term.size:
        lo = bounds[-1]
        done = int(ends[lo - 1]) if lo else 0
        bounds.append(max(lo + 1, int(np.searchsorted(ends, done + SORT_BLOCK, side="right"))))
    bounds[-1] = min(bounds[-1], per_term.size)
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        keys = np.empty(int(ends[hi - 1]) - (int(ends[lo - 1]) if lo else 0), dtype=np.int64)
        at = 0
        for a in range(0, n if keys.size else 0, CHUNK):
            t = np.asarray(occ["term"][a : a + CHUNK])
            d = np.asarray(occ["doc"][a : a + CHUNK])
            if lo > 0 or hi < per_term.size:  # a range of terms: its rows only
                k = np.flatnonzero((t >= lo) & (t < hi))
                t, d = t[k], d[k]
            _check_docs(d, n_docs)
            np.multiply(t, n_docs, out=keys[at : at + t.size], dtype=np.int64)
            keys[at : at + t.size] += d - lo * n_docs
            at += t.size
        keys.sort()
        rows, cols, data = _runs(keys, n_docs)
        del keys
        # 8 bytes per (term, document) kept: int32 documents and counts where they fit
        parts.append((np.bincount(rows, minlength=hi - lo), cols.astype(idx), data.astype(cnt)))
        del rows, cols, data
    indptr = np.zeros(per_term.size + 1, dtype=np.int64)
    if parts:
        np.cumsum(np.concatenate([p[0] for p in parts]), out=indptr[1:])
    cols, data = (np.concatenate([p[j] for p in parts]) if parts else np.zeros(0, idx) for j in (1, 2))
    return sp.csr_matrix((data.astype(cnt, copy=False), cols, indptr), shape=(per_term.size, n_docs))


def relation_rows(counts: sp.csr_matrix, rel_terms: np.ndarray) -> sp.csr_matrix:
    """The relation's :func:`term_doc_matrix` from the group's :func:`term_counts`: row ``j`` is
    the counts of vocabulary index ``rel_terms[j]`` (empty where the index is listed again later,
    or has no row in ``counts``)."""
    rel_terms = np.asarray(rel_terms, dtype=np.int64)
    if rel_terms.size and rel_terms.min() < 0:
        raise ValueError("rel_terms: a negative vocabulary index")
    counts = counts.tocsr()
    n_rows = rel_terms.size
    line = np.arange(n_rows)
    holds = (_lookup(rel_terms)[rel_terms] == line) & (rel_terms < counts.shape[0])
    src = np.where(holds, rel_terms, 0)
    indptr = counts.indptr.astype(np.int64)
    lens = (
        np.where(holds, indptr[src + 1] - indptr[src], 0) if counts.shape[0] else np.zeros(n_rows, np.int64)
    )
    out_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(lens, out=out_ptr[1:])
    pos = np.repeat(indptr[src] - out_ptr[:-1], lens) + np.arange(out_ptr[-1], dtype=np.int64)
    m = sp.csr_matrix(
        (counts.data[pos].astype(np.int64, copy=False), counts.indices[pos], out_ptr),
        shape=(n_rows, counts.shape[1]),
    )
    return m


def _contains(a0, a1, b0, b1):
    return ((a0 >= b0) & (a1 <= b1)) | ((b0 >= a0) & (b1 <= a1))


def _needs_check(vocab: list[str], rel_terms: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per instance: can a subject match and an object match contain one another? Only when one
    text is a substring of the other, or either is a regex."""
    memo: dict[tuple[int, int], bool] = {}
    out = np.zeros(len(pairs), dtype=bool)
    for i, (a, b) in enumerate(
        zip(rel_terms[pairs[:, 0]].tolist(), rel_terms[pairs[:, 1]].tolist(), strict=True)
    ):
        if (a, b) not in memo:
            x, y = vocab[a], vocab[b]
            memo[(a, b)] = (x in y) or (y in x) or not (is_plain(x) and is_plain(y))
        out[i] = memo[(a, b)]
    return out


class _Spans:
    """The spans of some terms, grouped by (term, document) under the key ``term * n_key + doc``:
    per group its offset and size in ``start``/``end``, the latest start, the earliest end, and
    whether it holds a malformed span (start > end)."""

    def __init__(self, occ: dict, wanted: np.ndarray, n_key: int):
        """``wanted``: the sorted distinct group keys to collect (other rows are skipped: the
        cheap tests first, term then document, then the key itself)."""
        self.n_key = n_key
        table = _lookup(np.unique(wanted // n_key))
        in_doc = np.zeros(n_key, dtype=bool)
        in_doc[wanted % n_key] = True
        n = int(occ["term"].shape[0])
        parts = []
        for a in range(0, n if wanted.size else 0, CHUNK):
            k = np.flatnonzero(_chunk_terms(occ, table, a) >= 0)
            d = np.asarray(occ["doc"][a : a + CHUNK])[k]
            _check_docs(d, n_key)
            k, d = k[in_doc[d]], d[in_doc[d]]
            key = np.asarray(occ["term"][a : a + CHUNK])[k].astype(np.int64) * n_key + d
            at = np.minimum(np.searchsorted(wanted, key), wanted.size - 1)
            ok = wanted[at] == key
            k = k[ok]
            s, e = (np.asarray(occ[c][a : a + CHUNK])[k].astype(np.int64) for c in ("start", "end"))
            parts.append((key[ok], s, e))
        key, s, e = (
            np.concatenate([p[j] for p in parts]) if parts else np.zeros(0, np.int64) for j in range(3)
        )
        order = np.argsort(key, kind="stable")
        key, self.start, self.end = key[order], s[order], e[order]
        del order, s, e
        new = np.ones(key.size, dtype=bool)
        new[1:] = key[1:] != key[:-1]
        self.offset = np.flatnonzero(new)
        self.key = key[self.offset]
        self.size = np.diff(self.offset, append=key.size)
        if key.size:
            self.max_start = np.maximum.reduceat(self.start, self.offset)
            self.min_end = np.minimum.reduceat(self.end, self.offset)
            self.malformed = np.logical_or.reduceat(self.start > self.end, self.offset)
        else:
            self.max_start = self.min_end = np.zeros(0, dtype=np.int64)
            self.malformed = np.zeros(0, dtype=bool)

    def find(self, terms: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """Group of each (term, doc); -1 where none."""
        if not self.key.size:
            return np.full(docs.size, -1, dtype=np.int64)
        k = terms * self.n_key + docs
        g = np.minimum(np.searchsorted(self.key, k), self.key.size - 1)
        ok = (self.key[g] == k) & (docs < self.n_key)
        return np.where(ok, g, -1)

    def any_uncontained(self, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
        """Per (group a, group b): is there a span of a and a span of b neither containing the
        other? Well-formed spans that do not overlap cannot nest, so only groups whose every span
        touches every span of the other (or with a malformed span) compare span pairs, by blocks."""
        out = ~(
            self.malformed[ga]
            | self.malformed[gb]
            | ((self.max_start[ga] <= self.min_end[gb]) & (self.max_start[gb] <= self.min_end[ga]))
        )
        todo = np.flatnonzero(~out)
        if not todo.size:
            return out
        na, nb = self.size[ga[todo]], self.size[gb[todo]]
        n_pairs = na * nb
        ends = np.cumsum(n_pairs)
        lo = 0
        while lo < todo.size:
            base = ends[lo - 1] if lo else 0
            hi = max(lo + 1, int(np.searchsorted(ends, base + BLOCK, side="right")))
            sl = slice(lo, hi)
            rep = np.repeat(np.arange(hi - lo), n_pairs[sl])
            k = np.arange(rep.size, dtype=np.int64) - np.repeat(ends[sl] - n_pairs[sl] - base, n_pairs[sl])
            q, r = np.divmod(k, nb[sl][rep])
            ia = self.offset[ga[todo[sl]]][rep] + q
            ib = self.offset[gb[todo[sl]]][rep] + r
            loose = ~_contains(self.start[ia], self.end[ia], self.start[ib], self.end[ib])
            out[todo[sl]] = np.bincount(rep[loose], minlength=hi - lo) > 0
            lo = hi
        return out


def pair_doc_matrix(
    occ: dict,
    vocab: list[str],
    rel_terms: np.ndarray,
    pairs: np.ndarray,
    term_counts: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    """(instances x documents) 0/1 co-occurrence; ``pairs`` = per instance the relation rows of its
    subject and object. ``term_counts``: the relation's :func:`term_doc_matrix`, if at hand."""
    rel_terms = np.asarray(rel_terms, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    t = term_counts if term_counts is not None else term_doc_matrix(occ, rel_terms)
    n_rows, n_docs = t.shape
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n_rows):
        raise ValueError(f"pairs: a row outside the relation's {n_rows} terms")
    present = (t > 0).tocsr()
    present.sum_duplicates()
    present.eliminate_zeros()
    indptr = present.indptr.astype(np.int64)
    cols = present.indices.astype(np.int64)
    df = np.diff(indptr)
    pkeys = np.repeat(np.arange(n_rows, dtype=np.int64), df) * n_docs + cols
    s_rows, o_rows = pairs[:, 0], pairs[:, 1]
    # each instance's documents: the rarer term's list, looked up in the other's
    by_s = df[s_rows] <= df[o_rows]
    drive, other = np.where(by_s, s_rows, o_rows), np.where(by_s, o_rows, s_rows)
    lens = df[drive]
    ends = np.cumsum(lens)
    kept_i, kept_d = [], []
    lo = 0
    while lo < pairs.shape[0]:
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + BLOCK, side="right")))
        sl = slice(lo, hi)
        inst = np.repeat(np.arange(lo, hi, dtype=np.int64), lens[sl])
        pos = np.arange(inst.size, dtype=np.int64) + np.repeat(
            indptr[drive[sl]] - (ends[sl] - lens[sl] - base), lens[sl]
        )
        docs = cols[pos]
        del pos
        k = other[inst] * n_docs + docs
        at = np.minimum(np.searchsorted(pkeys, k), max(pkeys.size - 1, 0))
        hit = pkeys[at] == k if pkeys.size else np.zeros(k.size, dtype=bool)
        del k, at
        kept_i.append(inst[hit])
        kept_d.append(docs[hit])
        lo = hi
    i = np.concatenate(kept_i) if kept_i else np.zeros(0, dtype=np.int64)
    d = np.concatenate(kept_d) if kept_d else np.zeros(0, dtype=np.int64)
    del kept_i, kept_d
    # where a match of one term can contain a match of the other, compare the spans in the document
    check = _needs_check(vocab, rel_terms, pairs)
    c = np.flatnonzero(check[i])
    if c.size:
        n_key = _n_docs(occ)
        vs, vo, cd = rel_terms[s_rows[i[c]]], rel_terms[o_rows[i[c]]], d[c]
        inside = cd < n_key  # spans exist only for the occurrences' documents
        wanted = np.unique(np.concatenate([vs[inside] * n_key + cd[inside], vo[inside] * n_key + cd[inside]]))
        spans = _Spans(occ, wanted, n_key)
        ga, gb = spans.find(vs, cd), spans.find(vo, cd)
        both = (ga >= 0) & (gb >= 0)
        ok = np.zeros(c.size, dtype=bool)  # a side without spans: no co-occurrence
        ok[both] = spans.any_uncontained(ga[both], gb[both])
        keep = np.ones(i.size, dtype=bool)
        keep[c] = ok
        i, d = i[keep], d[keep]
    indptr_out = np.zeros(pairs.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=pairs.shape[0]), out=indptr_out[1:])
    return sp.csr_matrix((np.ones(i.size, dtype=np.int64), d, indptr_out), shape=(pairs.shape[0], n_docs))
