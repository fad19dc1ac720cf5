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
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

METHODS = ("okapi", "robertson", "lucene", "atire")


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
    idf = _idf(df, n, method, epsilon)
    w = tf.copy().astype(np.float64)
    rows = np.repeat(np.arange(n), np.diff(w.indptr))
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
