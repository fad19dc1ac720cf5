"""The paper's ParaRel selection strategies (notebooks/create-doc-idxs-*-pararel-12rel.ipynb),
written as functions of matrices: rm_coocc, rm_occ, add_coocc (SPEC §5).

Instances are rows of the stacked relations (the labels' order); a relation's pair matrix has one
row per instance of the relation and its term matrix one row per term-file line. ``K`` is the
window length (the checkpoint interval): window(c) = batches [c - K, c), the data trained between
checkpoints c - K and c; the target instances I_c are those learned at checkpoint c that co-occur
in window(c) (the paper's second filter), J = I_{c+K}.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def any_rows(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Columns (documents) where any of ``rows`` is nonzero."""
    if len(rows) == 0:
        return np.zeros(m.shape[1], dtype=bool)
    return np.asarray((m[rows] != 0).sum(axis=0)).ravel() > 0


def with_cooccurrence(pair: sp.csr_matrix, insts: np.ndarray) -> np.ndarray:
    """The instances among ``insts`` that co-occur in at least one document of ``pair``'s window."""
    return insts[np.diff(pair[insts].indptr) > 0] if len(insts) else insts


def rm_coocc(pair_c: sp.csr_matrix, pair_next: sp.csr_matrix, i_c: np.ndarray, j_next: np.ndarray) -> dict:
    """orig = window(c) documents co-occurring for any of I_c; extra = window(c+K) documents that
    co-occur for neither I_c nor J."""
    orig = np.flatnonzero(any_rows(pair_c, i_c))
    extra = np.flatnonzero(~(any_rows(pair_next, i_c) | any_rows(pair_next, j_next)))
    return {
        "orig": orig,
        "orig_inst": i_c,
        "new": np.zeros(0, np.int64),
        "new_inst": np.zeros(0, np.int64),
        "extra": extra,
    }


def rm_occ(
    term_c: sp.csr_matrix,
    term_next: sp.csr_matrix,
    subj: np.ndarray,
    obj: np.ndarray,
    i_c: np.ndarray,
    n_drop: int = 5,
) -> dict:
    """orig = window(c) documents holding the subject or the object of any remaining instance of
    I_c, after dropping the ``n_drop`` instances whose terms occur in the most documents (ties: the
    earlier instance, as repeated argmax does); extra = documents of the next windows (``term_next``
    spans two windows in the paper) where none of those subjects or objects occurs.

    ``subj``/``obj``: per instance of ``i_c``, its rows in ``term_c``/``term_next`` (stacked terms)."""
    occ_docs = [(term_c[[s]] + term_c[[o]]) for s, o in zip(subj, obj, strict=True)]
    counts = np.array([m.nnz for m in occ_docs], dtype=np.int64)
    keep = np.ones(len(i_c), dtype=bool)
    for _ in range(min(n_drop, len(i_c))):
        cand = np.flatnonzero(keep)
        keep[cand[np.argmax(counts[cand])]] = False
    kept = np.flatnonzero(keep)
    rows = np.concatenate([subj[kept], obj[kept]]) if len(kept) else np.zeros(0, np.int64)
    orig = np.flatnonzero(any_rows(term_c, rows))
    extra = np.flatnonzero(~any_rows(term_next, rows))
    return {
        "orig": orig,
        "orig_inst": i_c[kept],
        "new": np.zeros(0, np.int64),
        "new_inst": np.zeros(0, np.int64),
        "extra": extra,
    }


def add_coocc(pair_c: sp.csr_matrix, pair_next: sp.csr_matrix, j_next: np.ndarray) -> dict:
    """new = window(c+K) documents co-occurring for J (to move earlier); orig = window(c) documents
    that co-occur for none of J (safe to replace)."""
    new = np.flatnonzero(any_rows(pair_next, j_next))
    orig = np.flatnonzero(~any_rows(pair_c, j_next))
    return {
        "orig": orig,
        "orig_inst": np.zeros(0, np.int64),
        "new": new,
        "new_inst": j_next,
        "extra": np.zeros(0, np.int64),
    }
