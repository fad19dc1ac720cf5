"""Term x document counts and instance x document co-occurrence, per relation, from occurrences.

Columns are the group's doc-info rows. Rows of the term matrix are the relation's term-file lines in
order, always all of them: a term with no occurrence (or a failed search) is an empty row, never a
shifted one (the paper's build_term_doc_matrix.py indexed rows by the position among the JSON files
it could parse). A pair (subject, object) co-occurs in a document when some subject match and some
object match are such that neither span contains the other (build_term_pair_doc_matrix.py's rule).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from intervene.search.find import is_plain


def term_doc_matrix(occ: dict, rel_terms: np.ndarray) -> sp.csr_matrix:
    """(relation terms x documents) match counts; ``rel_terms`` = vocabulary index per row."""
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
    return ((a0 >= b0) & (a1 <= b1)) | ((b0 >= a0) & (b1 <= a1))


def pair_doc_matrix(
    occ: dict,
    vocab: list[str],
    rel_terms: np.ndarray,
    pairs: np.ndarray,
    term_counts: sp.csr_matrix | None = None,
) -> sp.csr_matrix:
    """(instances x documents) 0/1 co-occurrence; ``pairs`` = per instance the relation rows of its
    subject and object."""
    t = term_counts if term_counts is not None else term_doc_matrix(occ, rel_terms)
    present = (t > 0).astype(np.int8).tocsr()
    s_rows, o_rows = pairs[:, 0], pairs[:, 1]
    cand = present[s_rows].multiply(present[o_rows]).tocsr()  # both occur in the document
    cand.eliminate_zeros()
    # containment is possible only when one matched text can be a substring of the other
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
                nested = _contains(s0[:, None], s1[:, None], o0[None, :], o1[None, :])
                if nested.all():
                    cand[i, d] = 0
        cand = cand.tocsr()
        cand.eliminate_zeros()
    out = cand.astype(np.int64)
    out.sort_indices()
    return out
