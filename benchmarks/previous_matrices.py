"""The term and pair matrices as the package built them before they were vectorised (one Python
loop per candidate (instance, document), four ``searchsorted`` over the whole term column and a LIL
assignment each).

Kept, unchanged, as the oracle of the current construction: ``tests/test_matrices.py`` asserts
the current matrices are byte-identical to these, and ``benchmarks/bench_matrices.py`` times them
as its baseline. One copy for both.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from intervene.search.find import is_plain


def previous_term_doc(occ: dict, rel_terms: np.ndarray) -> sp.csr_matrix:
    """[len(rel_terms), n_docs] occurrence counts of a relation's terms."""
    n_docs = int(occ["n_docs"])
    row_of = np.full(int(max(rel_terms.max(initial=-1), occ["term"].max(initial=-1))) + 1, -1, dtype=np.int64)
    row_of[rel_terms] = np.arange(rel_terms.size)
    rows = row_of[occ["term"]] if occ["term"].size else np.zeros(0, dtype=np.int64)
    keep = rows >= 0
    m = sp.coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int64), (rows[keep], occ["doc"][keep])),
        shape=(rel_terms.size, n_docs),
    ).tocsr()
    m.sum_duplicates()
    return m


def _contains(a0, a1, b0, b1):
    """Span a inside span b, or b inside a."""
    return ((a0 >= b0) & (a1 <= b1)) | ((b0 >= a0) & (b1 <= a1))


def previous_pair_doc(occ, vocab, rel_terms, pairs, term_counts=None) -> sp.csr_matrix:
    """[n_pairs, n_docs] co-occurrence of each pair's subject and object terms, a document not
    counted where every subject occurrence nests with every object occurrence (or vice versa)."""
    t = term_counts if term_counts is not None else previous_term_doc(occ, rel_terms)
    present = (t > 0).astype(np.int8).tocsr()
    s_rows, o_rows = pairs[:, 0], pairs[:, 1]
    cand = present[s_rows].multiply(present[o_rows]).tocsr()
    cand.eliminate_zeros()
    strs = [vocab[i] for i in rel_terms]
    check = np.array(
        [
            (strs[a] in strs[b]) or (strs[b] in strs[a]) or not (is_plain(strs[a]) and is_plain(strs[b]))
            for a, b in zip(s_rows, o_rows, strict=True)
        ],
        dtype=bool,
    )
    if check.any():
        cand = cand.tolil()
        order = np.lexsort((occ["doc"], occ["term"]))
        term_s, doc_s = occ["term"][order], occ["doc"][order]
        st, en = occ["start"][order], occ["end"][order]

        def spans(v, d):
            lo = np.searchsorted(term_s, v, "left")
            hi = np.searchsorted(term_s, v, "right")
            a = lo + np.searchsorted(doc_s[lo:hi], d, "left")
            b = lo + np.searchsorted(doc_s[lo:hi], d, "right")
            return st[a:b], en[a:b]

        for i in np.flatnonzero(check):
            vs, vo = rel_terms[s_rows[i]], rel_terms[o_rows[i]]
            for d in list(cand.rows[i]):
                s0, s1 = spans(vs, d)
                o0, o1 = spans(vo, d)
                if _contains(s0[:, None], s1[:, None], o0[None, :], o1[None, :]).all():
                    cand[i, d] = 0
        cand = cand.tocsr()
        cand.eliminate_zeros()
    out = cand.astype(np.int64)
    out.sort_indices()
    return out
