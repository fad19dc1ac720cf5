"""Score-based document mapping for the MCQA interventions (the paper's
scripts/create_doc_idx_mapping_from_scores.py, with its hazards removed).

Target documents: per target instance its ``per_inst`` highest-scoring documents of the target
window (capped at its nonzero scores; ties: the lower document index). They are matched in order of
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


def top_docs(scores: sp.csr_matrix, per_inst: int) -> np.ndarray:
    """Union over rows of each row's ``per_inst`` best nonzero columns (ties: lower column)."""
    scores = scores.tocsr()
    out = []
    for r in range(scores.shape[0]):
        lo, hi = scores.indptr[r], scores.indptr[r + 1]
        c, v = scores.indices[lo:hi], scores.data[lo:hi]
        nz = v != 0
        c, v = c[nz], v[nz]
        out.append(c[np.lexsort((c, -v))[:per_inst]])
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


def map_by_scores(
    target_scores: sp.csr_matrix,
    source_scores: sp.csr_matrix,
    target_sizes: np.ndarray,
    source_sizes: np.ndarray,
    *,
    per_inst: int,
    shuffle_candidates: bool = False,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """(target docs, their source replacements), window-relative, target ascending."""
    t_scores, s_scores = target_scores.tocsr(), source_scores.tocsr()
    if t_scores.shape[0] != s_scores.shape[0]:
        raise ValueError(
            f"target scores have {t_scores.shape[0]} instances, source scores {s_scores.shape[0]}"
        )
    rng = np.random.default_rng(seed)
    targets = top_docs(t_scores, per_inst)
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
