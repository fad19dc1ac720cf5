"""Score-based document mapping for the MCQA interventions (the paper's
scripts/create_doc_idx_mapping_from_scores.py, with its hazards removed).

Target documents: per target instance its ``per_inst`` (or its own count, e.g. the number of
target-window documents where its pair co-occurs: ``--coocc_matrix_fmt``) highest-scoring documents
of the target window (capped at its nonzero scores; ties: the lower document index); with a total to
match (``--match_total_doc_count``) every count grows by ``offset_shift`` until their union holds that
many documents, or every instance has taken all its scored documents (the paper's loop would then
run forever; here the union stops there and the caller warns). They are matched in order of
how many instances score them (most first; ties: lower index). Each takes a source-window document
of equal token count, else of the next larger count that has one left (the paper's search wrapped
around at 65,535 tokens or looped forever; here no larger document left is an error naming the
size), choosing among them the one with the lowest mean score over the target document's instances
(ties: the first in candidate order, which is ascending document index, or a seeded shuffle with
``shuffle_candidates``). Sources are used at most once. ``swap_direction`` swaps the roles in the
output (promote instead of suppress).
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import scipy.sparse as sp


def top_docs(scores: sp.csr_matrix, per_inst: int | np.ndarray) -> np.ndarray:
    """Union over rows of each row's ``per_inst`` (one count, or one per row) best nonzero columns
    (ties: lower column)."""
    return target_documents(scores, per_inst)[0]


def _ranked(scores: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every nonzero entry as (row, column, rank of the column in its row: 0 = best score; ties:
    lower column first)."""
    m = sp.coo_matrix(scores)
    nz = m.data != 0
    r, c, v = m.row[nz].astype(np.int64), m.col[nz].astype(np.int64), m.data[nz]
    order = np.lexsort((c, -v, r))  # by row, then score descending, then column
    r, c = r[order], c[order]
    starts = np.searchsorted(r, np.arange(scores.shape[0]))
    return r, c, np.arange(r.size) - starts[r]


def target_documents(
    scores: sp.csr_matrix,
    counts: int | np.ndarray,
    total: int | None = None,
    offset_shift: int = 10,
) -> tuple[np.ndarray, int]:
    """(the target documents, the offset used): the union over rows (instances) of each row's
    ``min(nonzero scores, count + offset)`` best columns (ties: lower column), offset 0, or with a
    ``total`` the first of 0, ``offset_shift``, 2 ``offset_shift``, ... whose union holds at least
    ``total`` documents (the paper's loop); when even every scored document falls short, the union
    of all of them and the offset that first reaches it (the caller compares the count to the total).

    Rather than re-taking top lists per offset (the paper's loop), each document gets the smallest
    offset at which some row takes it (its rank + 1 - that row's count): the union at offset o is the
    documents whose offset is <= o, so one sort finds the offset the loop would stop at."""
    scores = scores.tocsr()
    n = scores.shape[0]
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), (n,))
    if (counts < 0).any():
        raise ValueError(f"document counts must not be negative (instance {int(np.argmin(counts))})")
    if offset_shift < 1:
        raise ValueError(f"offset_shift must be positive, not {offset_shift}")
    r, c, rank = _ranked(scores)
    need = rank + 1 - counts[r]  # the offset at which row r takes column c
    if r.size == 0:
        return np.zeros(0, np.int64), 0
    docs, inv = np.unique(c, return_inverse=True)
    first = np.full(docs.size, np.iinfo(np.int64).max)
    np.minimum.at(first, inv, need)  # each document: the smallest offset at which it is taken
    if total is None:
        offset = 0
    else:
        ordered = np.sort(first)
        k = min(int(total), ordered.size)
        enough = int(ordered[k - 1]) if k > 0 else 0
        offset = -(-max(enough, 0) // offset_shift) * offset_shift  # the loop's first offset >= it
    return docs[first <= offset], offset


def map_by_scores(
    target_scores: sp.csr_matrix,
    source_scores: sp.csr_matrix,
    target_sizes: np.ndarray,
    source_sizes: np.ndarray,
    *,
    per_inst: int,
    shuffle_candidates: bool = False,
    seed: int = 42,
    targets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(target docs, their source replacements), window-relative, target ascending; ``targets``:
    the target documents (:func:`target_documents`), else each instance's ``per_inst`` best."""
    t_scores, s_scores = target_scores.tocsr(), source_scores.tocsr()
    if t_scores.shape[0] != s_scores.shape[0]:
        raise ValueError(
            f"target scores have {t_scores.shape[0]} instances, source scores {s_scores.shape[0]}"
        )
    rng = np.random.default_rng(seed)
    targets = top_docs(t_scores, per_inst) if targets is None else np.asarray(targets, dtype=np.int64)
    t_csc = t_scores.tocsc()
    t_csc.eliminate_zeros()  # an instance "scores" a document only with a nonzero score
    n_inst = np.diff(t_csc.indptr)[targets] if len(targets) else np.zeros(0, np.int64)
    order = targets[np.lexsort((targets, -n_inst))]
    # source documents by token count, each bucket in ascending document order
    by_size = np.lexsort((np.arange(len(source_sizes)), source_sizes))
    ss = np.asarray(source_sizes, dtype=np.int64)[by_size]
    cuts = np.flatnonzero(np.diff(ss)) + 1
    sizes = [int(x) for x in ss[np.concatenate([[0], cuts])]] if ss.size else []
    buckets = {sz: part.tolist() for sz, part in zip(sizes, np.split(by_size, cuts), strict=True)}
    size_of = np.asarray(source_sizes, dtype=np.int64)
    unused = np.ones(len(size_of), dtype=bool)
    # per instance: its scored source documents, their scores and token counts (sliced once)
    ip, ix, dv = s_scores.indptr, s_scores.indices, s_scores.data
    rows_of = [
        (ix[ip[i] : ip[i + 1]], dv[ip[i] : ip[i + 1]], size_of[ix[ip[i] : ip[i + 1]]])
        for i in range(s_scores.shape[0])
    ]
    mapping = {}
    for d in order.tolist():
        need = int(target_sizes[d])
        k = bisect_left(sizes, need)
        while k < len(sizes) and not buckets[sizes[k]]:
            k += 1
        if k == len(sizes):
            raise ValueError(f"no unused source document of >= {need} tokens left for target document {d}")
        cands = buckets[sizes[k]]
        insts = t_csc.indices[t_csc.indptr[d] : t_csc.indptr[d + 1]]
        if shuffle_candidates:
            rng.shuffle(cands)
            mean = (
                np.asarray(s_scores[insts][:, cands].mean(axis=0)).ravel()
                if len(insts)
                else np.zeros(len(cands))
            )
            mapping[d] = cands.pop(int(np.argmin(mean)))
        else:  # candidates in ascending order: only their nonzero scores need summing
            pick = _lowest_mean(rows_of, insts, cands, unused, sizes[k])
            mapping[d] = pick
            del cands[bisect_left(cands, pick)]
            unused[pick] = False
    keys = np.array(sorted(mapping), dtype=np.int64)
    return keys, np.array([mapping[k] for k in keys.tolist()], dtype=np.int64)


def _lowest_mean(rows_of: list, insts: np.ndarray, cands: list[int], unused: np.ndarray, size: int) -> int:
    """The candidate (ascending list: the unused documents of token count ``size``) with the lowest
    mean score over ``insts``, the first on ties: sums only over the candidates' nonzero entries
    (``rows_of[i]`` = instance i's scored documents, scores, token counts); every other candidate
    scores 0."""
    if len(insts) == 0:
        return cands[0]
    if len(insts) == 1:
        cols, vals, sz = rows_of[insts[0]]
    else:
        cols, vals, sz = (np.concatenate(x) for x in zip(*(rows_of[i] for i in insts), strict=True))
    keep = (sz == size) & unused[cols]  # entries of still-unused candidates
    if not keep.any():
        return cands[0]
    cols, vals = cols[keep], vals[keep]
    uniq, inv = np.unique(cols, return_inverse=True)
    sums = np.bincount(inv, weights=vals, minlength=uniq.size)
    best = sums.min()
    first_scored = int(uniq[np.flatnonzero(sums == best)[0]])
    if uniq.size == len(cands) or best < 0:
        return first_scored
    # some candidate has no entry (sum 0): the first such, unless a scored one comes earlier at 0
    scored = set(uniq.tolist())
    first_zero = next(c for c in cands if c not in scored)
    if best > 0:
        return first_zero
    return min(first_zero, first_scored)
