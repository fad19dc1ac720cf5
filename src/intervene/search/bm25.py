"""BM25 scores of many queries against a corpus as one sparse matrix product.

Default: rank_bm25 ``BM25Okapi`` exactly (rank_bm25 0.2.2, BM25Okapi._calc_idf / get_scores):
``idf(t) = ln(N - n_t + 0.5) - ln(n_t + 0.5)``, negative idfs replaced by ``epsilon`` x the mean
idf over the corpus vocabulary; score(q, d) = sum over the query's tokens (repeats count) of
``idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))``; tokens absent from the corpus add 0.
rank_bm25 loops over queries and over every document per query token (O(queries x tokens x docs)
in Python); here the per-(document, token) weights are one sparse matrix W and the scores are
``Q @ W.T`` with Q the queries' token counts.

``method`` in {"robertson", "lucene", "atire"} gives bm25s's variants instead (bm25s 0.3
scoring.py: Lucene idf ``ln(1 + (N - n + 0.5)/(n + 0.5))`` with tf component
``tf / (k1 (1 - b + b |d|/avgdl) + tf)`` — bm25s's default, which the paper's calc_bm25_scores.py
used; Robertson idf clipped at 0; ATIRE idf ``ln(N / n)`` with the (k1 + 1) tf component).
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp

METHODS = ("okapi", "robertson", "lucene", "atire")
#: entries of one query slice's product over a chunk (~12 bytes each) in the streamed scores
SLICE_ENTRIES = 1 << 21
#: entries a row block of the running top k holds before it is merged (~20 bytes each)
MERGE_ENTRIES = 1 << 22


def term_matrix(docs: Sequence[Sequence[str]], vocab: dict[str, int] | None = None, *, grow: bool = True):
    """(docs x vocabulary) token counts as CSR, and the vocabulary (extended when ``grow``).

    The ids come from C-level ``map`` over one flattened token list (several times faster than a
    per-token Python loop), duplicates within a document summed by the CSR conversion."""
    vocab = {} if vocab is None else vocab
    lens = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    flat = list(itertools.chain.from_iterable(docs))
    if grow:
        for w in dict.fromkeys(flat):
            if w not in vocab:
                vocab[w] = len(vocab)
        ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(len(docs)), lens)
    else:
        got = np.fromiter(map(vocab.get, flat, itertools.repeat(-1)), dtype=np.int64, count=len(flat))
        keep = got >= 0
        ids, rows = got[keep], np.repeat(np.arange(len(docs)), lens)[keep]
    m = sp.coo_matrix(
        (np.ones(ids.size, dtype=np.float64), (rows, ids)), shape=(len(docs), len(vocab))
    ).tocsr()  # sums repeated tokens into counts
    m.sum_duplicates()
    return m, vocab


def _idf(df: np.ndarray, n: int, method: str, epsilon: float) -> np.ndarray:
    df = df.astype(np.float64)
    if method == "okapi":
        idf = np.log(n - df + 0.5) - np.log(df + 0.5)
        eps = epsilon * idf.mean() if idf.size else 0.0  # rank_bm25: average over the vocabulary
        return np.where(idf < 0, eps, idf)
    if method == "lucene":
        return np.log(1 + (n - df + 0.5) / (df + 0.5))
    if method == "robertson":
        return np.log(np.maximum((n - df + 0.5) / (df + 0.5), 1.0))
    if method == "atire":
        return np.log(n / df)
    raise ValueError(f"BM25 method must be one of {METHODS}, not {method!r}")


def bm25_weights(
    tf: sp.csr_matrix, *, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25, method: str = "okapi"
):
    """Per (document, token) BM25 weight (idf x tf component) as a CSR matrix like ``tf``."""
    n = tf.shape[0]
    if n == 0:
        raise ValueError("BM25 needs at least one document")
    dl = np.asarray(tf.sum(axis=1)).ravel()
    avgdl = dl.sum() / n
    if avgdl == 0:
        raise ValueError("BM25 needs a corpus with at least one token")
    df = np.bincount(tf.indices, minlength=tf.shape[1])  # (row, col) entries are unique in a CSR
    return _weigh(tf, dl, avgdl, _idf(df, n, method, epsilon), k1=k1, b=b, method=method)


def _weigh(tf: sp.csr_matrix, dl: np.ndarray, avgdl: float, idf: np.ndarray, *, k1, b, method):
    """BM25 weights of ``tf``'s entries given each row's length and each column's idf; the one
    place both the in-memory and the streamed scores take their arithmetic from (bit-equal)."""
    w = tf.copy().astype(np.float64)
    rows = np.repeat(np.arange(tf.shape[0]), np.diff(w.indptr))
    norm = k1 * (1 - b + b * dl[rows] / avgdl)
    t = w.data
    comp = t / (norm + t) if method in ("lucene", "robertson") else t * (k1 + 1) / (t + norm)
    w.data = comp * idf[w.indices]
    return w


def bm25_scores(
    corpus_tokens: Sequence[Sequence[str]],
    query_tokens: Sequence[Sequence[str]],
    k1: float = 1.5,
    b: float = 0.75,
    epsilon: float = 0.25,
    *,
    method: str = "okapi",
) -> sp.csr_matrix:
    """(queries x documents) BM25 scores; zero where a document shares no token with the query."""
    tf, vocab = term_matrix(corpus_tokens)
    w = bm25_weights(tf, k1=k1, b=b, epsilon=epsilon, method=method)
    q, _ = term_matrix(query_tokens, vocab, grow=False)
    out = (q @ w.T).tocsr()
    out.sort_indices()
    return out


def top_k(scores: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties: the lower document index)."""
    scores = scores.tocsr()
    indptr = [0]
    cols, vals = [], []
    for r in range(scores.shape[0]):
        lo, hi = scores.indptr[r], scores.indptr[r + 1]
        c, v = scores.indices[lo:hi], scores.data[lo:hi]
        if v.size > k:
            order = np.lexsort((c, -v))[:k]
            c, v = c[order], v[order]
        o = np.argsort(c, kind="stable")
        cols.append(c[o])
        vals.append(v[o])
        indptr.append(indptr[-1] + c.size)
    return sp.csr_matrix(
        (np.concatenate(vals) if vals else [], np.concatenate(cols) if cols else [], indptr),
        shape=scores.shape,
    )


# ---- streaming: the same scores over a corpus read one chunk of documents at a time ----------------


@dataclass(frozen=True)
class Tokenizer:
    """A document's BM25 tokens: ``split`` of the (lower-cased) text, minus ``stopwords``.

    ``bm25s_en`` is bm25s.tokenize(stopwords="en") (bm25s 0.3 tokenization.py: ``text.lower()``,
    ``re.findall(r"(?u)\\b\\w\\w+\\b")``, English stopwords dropped). Its matches are the maximal runs
    of two or more word characters, which ``\\w\\w+`` alone finds too (a greedy run that starts where
    the scan stands, after a run or a one-character run, always ends at a boundary): the same tokens
    without the boundary tests (the findall alone 2.7x faster on realistic text; the tokenizer vs
    bm25s.tokenize: benchmarks/bench_bm25.py; equal tokens property-tested against bm25s.tokenize
    in tests/test_bm25_stream.py). A hand-written tokenizer because bm25s.tokenize also builds ids
    and re-maps them to strings, work the stream does its own way."""

    name: str
    lower: bool
    pattern: str | None  # None: str.split
    stopwords: frozenset[str]

    def raw(self, texts: Iterable[str]) -> list[list[str]]:
        """Every document's tokens, stopwords included (the stream drops them by dictionary lookup,
        cheaper than a Python-level filter per token)."""
        split = str.split if self.pattern is None else re.compile(self.pattern).findall
        return list(map(split, map(str.lower, texts) if self.lower else texts))

    def __call__(self, texts: Iterable[str]) -> list[list[str]]:
        stop = self.stopwords
        return [[w for w in d if w not in stop] for d in self.raw(texts)] if stop else self.raw(texts)


def get_tokenizer(name: str) -> Tokenizer:
    if name == "whitespace":
        return Tokenizer(name, False, None, frozenset())
    if name == "bm25s_en":
        from bm25s.stopwords import STOPWORDS_EN

        return Tokenizer(name, True, r"\w\w+", frozenset(STOPWORDS_EN))
    raise ValueError(f"tokenizer must be bm25s_en or whitespace, not {name!r}")


def _flatten(docs: list[list[str]]) -> tuple[list[str], np.ndarray]:
    lens = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
    return list(itertools.chain.from_iterable(docs)), lens


@dataclass
class CorpusStats:
    """What the scores need of the whole corpus: the vocabulary in order of first appearance (the
    in-memory ``term_matrix``'s ids: the order of the okapi idf mean and of each score's sum),
    document frequencies and lengths, and the documents per chunk."""

    vocab: dict[str, int]  # token -> id
    df: np.ndarray  # int64 [tokens]
    dl: np.ndarray  # int64 [documents]
    chunks: list[int]  # documents per chunk


def corpus_stats(
    chunks: Iterable[list[list[str]]],
    stopwords: frozenset[str] = frozenset(),
    *,
    query_tokens: Sequence[str] = (),
    spill: BinaryIO | None = None,
) -> CorpusStats:
    """One pass over the chunks of documents' raw tokens (stopwords included): token ids,
    document frequencies and lengths, one chunk in memory at a time (memory: the vocabulary dict, 8
    bytes per token type and per document). With ``spill``, each chunk's counts of the tokens in
    ``query_tokens`` are appended to it (``np.save`` of document-in-chunk, index in
    ``query_tokens``, count; int32), so the scores need not tokenize the corpus again."""
    lookup: dict[str, int] = dict.fromkeys(stopwords, -1)  # stopwords never take an id
    qindex = {w: j for j, w in enumerate(query_tokens)}
    n_types = 0
    df = np.zeros(1 << 16, dtype=np.int64)
    qmark = np.full(df.size, -1, dtype=np.int32)  # token id -> index in query_tokens, or -1
    dls, sizes = [], []
    for docs in chunks:
        flat, lens = _flatten(docs)
        ids = np.fromiter(map(lookup.get, flat, itertools.repeat(-2)), dtype=np.int64, count=len(flat))
        unseen = np.flatnonzero(ids == -2)
        if unseen.size:  # new tokens take the next ids in order of first appearance
            new = list(dict.fromkeys(flat[i] for i in unseen.tolist()))
            lookup.update(zip(new, range(n_types, n_types + len(new)), strict=True))
            ids[unseen] = np.fromiter(map(lookup.__getitem__, (flat[i] for i in unseen.tolist())), np.int64)
            if n_types + len(new) > df.size:
                grow = max(n_types + len(new), 2 * df.size) - df.size
                df = np.r_[df, np.zeros(grow, dtype=np.int64)]
                qmark = np.r_[qmark, np.full(grow, -1, dtype=np.int32)]
            qmark[n_types : n_types + len(new)] = np.fromiter(
                map(qindex.get, new, itertools.repeat(-1)), dtype=np.int32, count=len(new)
            )
            n_types += len(new)
        del flat
        nd = max(len(docs), 1)
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lens)
        keep = ids >= 0
        pairs = ids[keep] * nd + rows[keep]
        del ids, rows, keep
        pairs.sort()
        first = _starts(pairs)  # one per (token, document), sorted by token
        tf = np.diff(np.r_[first, pairs.size])
        pairs = pairs[first]
        tok, doc = pairs // nd, pairs % nd
        dls.append(np.bincount(doc, weights=tf, minlength=len(docs)).astype(np.int64))
        starts = _starts(tok)
        df[tok[starts]] += np.diff(np.r_[starts, tok.size])
        if spill is not None:
            qi = qmark[tok]
            m = qi >= 0
            for a in (doc[m].astype(np.int32), qi[m], tf[m].astype(np.int32)):
                np.save(spill, a, allow_pickle=False)
        sizes.append(len(docs))
    for w in stopwords:
        del lookup[w]
    dl = np.concatenate(dls) if dls else np.zeros(0, dtype=np.int64)
    return CorpusStats(lookup, df[:n_types].copy(), dl, sizes)


def _starts(a: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts."""
    return np.flatnonzero(np.r_[True, a[1:] != a[:-1]]) if a.size else np.zeros(0, dtype=np.int64)


class _RunningTopK:
    """The ``k`` best (score, document) of each query over documents seen in increasing index
    order; ties: the lower document index (``top_k``'s rule). Candidates go to a pending buffer if
    they beat the row's current k-th score (a later document with an equal score can never enter:
    its index is larger); a block of rows is merged when its pending buffer outgrows what it keeps,
    so merging costs O(candidates log candidates) in all and memory stays O(queries x k + the
    candidates of a chunk)."""

    def __init__(self, n_rows: int, n_cols: int, k: int):
        self.n, self.n_cols, self.k = n_rows, n_cols, k
        self.doc_dtype = _index_dtype(n_cols)
        self.rows_per_block = max(1, MERGE_ENTRIES // k)  # a block keeps <= MERGE_ENTRIES
        self.thr = np.full(n_rows, -np.inf)
        nb = -(-n_rows // self.rows_per_block) if n_rows else 0
        empty = (np.zeros(0, np.int32), np.zeros(0, self.doc_dtype), np.zeros(0, np.float64))
        self.kept = [empty] * nb
        self.pending: list[list[tuple]] = [[] for _ in range(nb)]
        self.n_pending = np.zeros(nb, dtype=np.int64)
        self.min_pending = MERGE_ENTRIES // 8  # pending of all blocks <= kept + (queries x k) / 8

    def add(self, lo: int, base: int, s: sp.csr_matrix) -> None:
        """The scores ``s`` of queries ``lo``.. against the documents ``base``..."""
        rows = np.repeat(np.arange(lo, lo + s.shape[0], dtype=np.int32), np.diff(s.indptr))
        docs, scores = s.indices.astype(self.doc_dtype) + self.doc_dtype(base), s.data
        keep = scores > self.thr[rows]
        rows, docs, scores = rows[keep], docs[keep], scores[keep]
        if not rows.size:
            return
        blk = rows // self.rows_per_block
        cut = np.flatnonzero(np.r_[True, blk[1:] != blk[:-1], True])
        for lo, hi in zip(cut[:-1].tolist(), cut[1:].tolist(), strict=True):
            b = int(blk[lo])
            self.pending[b].append((rows[lo:hi], docs[lo:hi], scores[lo:hi]))
            self.n_pending[b] += hi - lo
            if self.n_pending[b] > max(self.kept[b][0].size // 2, self.min_pending):
                self._merge(b)

    def _merge(self, b: int) -> None:
        parts = [self.kept[b], *self.pending[b]]
        r, d, s = (np.concatenate([p[i] for p in parts]) for i in range(3))
        self.pending[b], self.n_pending[b] = [], 0
        row0 = b * self.rows_per_block
        cnt = np.bincount(r - row0, minlength=self.rows_per_block)
        over = (cnt > self.k)[r - row0]
        if over.any():  # only rows holding more than k need ordering
            o = np.flatnonzero(over)
            order = o[np.lexsort((d[o], -s[o], r[o]))]
            ro = r[order]
            first = _starts(ro)
            rank = np.arange(ro.size) - np.repeat(first, np.diff(np.r_[first, ro.size]))
            sel = np.concatenate([np.flatnonzero(~over), order[rank < self.k]])
            r, d, s = r[sel], d[sel], s[sel]
            cnt = np.minimum(cnt, self.k)
        self.kept[b] = (r, d, s)
        full = (cnt == self.k)[r - row0]  # rows holding k: their k-th score is the bar to pass
        kth = np.full(self.rows_per_block, np.inf)
        np.minimum.at(kth, r[full] - row0, s[full])
        rows = np.flatnonzero(cnt == self.k)
        self.thr[rows + row0] = kth[rows]

    def result(self) -> sp.csr_matrix:
        """The kept entries as ``top_k`` builds its matrix (columns ascending within a row), filled
        one row block at a time."""
        counts = np.zeros(self.n, dtype=np.int64)
        for b in range(len(self.kept)):
            if self.pending[b]:
                self._merge(b)
            np.add.at(counts, self.kept[b][0], 1)
        indptr = np.r_[0, np.cumsum(counts)]
        data, indices = np.empty(indptr[-1], dtype=np.float64), np.empty(indptr[-1], dtype=self.doc_dtype)
        for b in range(len(self.kept)):
            r, d, s = self.kept[b]
            self.kept[b] = ()
            row0 = min(b * self.rows_per_block, self.n)
            at = indptr[row0]  # a block's rows are contiguous
            order = np.argsort((r.astype(np.int64) - row0) * self.n_cols + d)  # (row, doc): unique
            data[at : at + r.size], indices[at : at + r.size] = s[order], d[order]
        return _csr(data, indices, indptr, (self.n, self.n_cols))


class _AllScores:
    """Every score (no top k): the products kept as they come, then laid out row by row."""

    def __init__(self, n_rows: int, n_cols: int):
        self.n, self.n_cols, self.parts = n_rows, n_cols, []
        self.doc_dtype = _index_dtype(n_cols)

    def add(self, lo: int, base: int, s: sp.csr_matrix) -> None:
        s.sort_indices()
        self.parts.append((lo, base, s))

    def result(self) -> sp.csr_matrix:
        counts = np.zeros(self.n, dtype=np.int64)
        for lo, _, s in self.parts:
            counts[lo : lo + s.shape[0]] += np.diff(s.indptr)
        indptr = np.r_[0, np.cumsum(counts)]
        data, indices = np.empty(indptr[-1], dtype=np.float64), np.empty(indptr[-1], dtype=self.doc_dtype)
        cursor = indptr[:-1].copy()
        for lo, base, s in self.parts:  # in document order: each row's columns ascend
            hi, n = lo + s.shape[0], np.diff(s.indptr)
            at = np.repeat(cursor[lo:hi] - s.indptr[:-1], n) + np.arange(s.nnz)
            data[at], indices[at] = s.data, s.indices.astype(self.doc_dtype) + self.doc_dtype(base)
            cursor[lo:hi] += n
        self.parts = []
        return _csr(data, indices, indptr, (self.n, self.n_cols))


def _index_dtype(n_cols: int):
    """Document indices in 4 bytes while they fit (a group's ~10-20 million documents do), else 8;
    row pointers (entry counts) are always int64."""
    return np.int32 if n_cols < 2**31 else np.int64


def _csr(data, indices, indptr, shape) -> sp.csr_matrix:
    """A CSR matrix whose index dtype scipy picks from the contents (int32 where they fit), as the
    in-memory path's matrices: saved outputs are byte-identical."""
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def query_matrix(query_tokens: Sequence[Sequence[str]], vocab: dict[str, int]):
    """The queries' token counts over the query vocabulary: (queries x used tokens) CSR with columns
    in corpus-id order (so each score sums its tokens in the in-memory product's order) and the
    corpus ids of the columns. Tokens absent from the corpus are dropped (they add 0)."""
    flat, lens = _flatten([list(q) for q in query_tokens])
    ids = np.fromiter(map(vocab.get, flat, itertools.repeat(-1)), dtype=np.int64, count=len(flat))
    rows = np.repeat(np.arange(len(query_tokens), dtype=np.int64), lens)
    keep = ids >= 0
    used, cols = np.unique(ids[keep], return_inverse=True)
    q = sp.coo_matrix(
        (np.ones(cols.size, dtype=np.float64), (rows[keep], cols.ravel())),
        shape=(len(query_tokens), used.size),
    ).tocsr()
    q.sum_duplicates()
    return q, used


def bm25_stream(
    chunks: Iterable[list[list[str]]],
    query_tokens: Sequence[Sequence[str]],
    *,
    k: int | None = None,
    stopwords: frozenset[str] = frozenset(),
    k1: float = 1.5,
    b: float = 0.75,
    epsilon: float = 0.25,
    method: str = "okapi",
    budget: int | None = None,
    tmp_dir: str | os.PathLike | None = None,
) -> sp.csr_matrix:
    """``top_k(bm25_scores(corpus, queries), k)`` (every score when ``k`` is 0 or None), equal to
    the last bit, from the corpus as ``chunks`` of documents' raw tokens (``Tokenizer.raw``), read
    once, one chunk in memory at a time. The pass (``corpus_stats``) counts, and spills each chunk's
    counts of the query tokens to an unnamed temporary file in ``tmp_dir`` (12 bytes per (document,
    query token); the rest of a document's tokens only count in its length and in the document
    frequencies); then each chunk's spilled counts are weighed, multiplied by the queries in slices
    whose products hold at most ``budget`` entries, and merged into a running top k per query.
    Memory: the vocabulary, one chunk, and the kept scores (queries x k at most)."""
    if k is not None and k < 0:
        raise ValueError(f"--k must be >= 0 (0 or none keeps every score), not {k}")
    if method not in METHODS:
        raise ValueError(f"BM25 method must be one of {METHODS}, not {method!r}")
    budget = budget or SLICE_ENTRIES
    qtok = list(dict.fromkeys(w for q in query_tokens for w in q))
    with tempfile.TemporaryFile(dir=tmp_dir) as spill:
        st = corpus_stats(chunks, stopwords, query_tokens=qtok, spill=spill)
        n = st.dl.size
        if n == 0:
            raise ValueError("BM25 needs at least one document")
        dl = st.dl.astype(np.float64)
        avgdl = dl.sum() / n
        if avgdl == 0:
            raise ValueError("BM25 needs a corpus with at least one token")
        q, used = query_matrix(query_tokens, st.vocab)
        idf = _idf(st.df, n, method, epsilon)[used]
        # index in qtok -> column of q (columns in corpus-id order); absent tokens are never spilled
        perm = np.searchsorted(used, [st.vocab.get(w, -1) for w in qtok]).astype(np.int64)
        sizes = st.chunks
        del st
        qb = q.copy()
        qb.data[:] = 1.0  # bound of a product's row: the documents holding any of its tokens
        top = _RunningTopK(q.shape[0], n, k) if k else _AllScores(q.shape[0], n)
        spill.seek(0)
        base = 0
        for nd in sizes:
            doc, qi, tf = (np.load(spill, allow_pickle=False) for _ in range(3))
            tf = sp.coo_matrix(
                (tf.astype(np.float64), (doc, perm[qi])), shape=(nd, used.size)
            ).tocsr()  # sorted, as the in-memory term matrix
            tf.sum_duplicates()
            w = _weigh(tf, dl[base : base + nd], avgdl, idf, k1=k1, b=b, method=method)
            wt = w.T.tocsr()
            bound = qb @ np.diff(wt.indptr).astype(np.float64)
            lo = 0
            for hi in _slices(bound, budget):
                top.add(lo, base, q[lo:hi] @ wt)  # the in-memory product's sums, these queries x docs
                lo = hi
            base += nd
    return top.result()


def _slices(bound: np.ndarray, budget: int) -> list[int]:
    """Ends of consecutive query slices whose products hold at most about ``budget`` entries each
    (``bound``: each query's bound; a slice ends where the running sum crosses a multiple of
    ``budget``, so a slice holds < 2 budgets, or one query alone)."""
    if not bound.size:
        return [0]
    g = np.cumsum(bound) // budget
    return [*(np.flatnonzero(g[1:] != g[:-1]) + 1).tolist(), bound.size]
