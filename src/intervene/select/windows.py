"""A window of batches [first, last) as documents: doc-info rows of the groups it touches.

Document indices in the selection files are rows of the *concatenated* doc info of the groups the
window touches, starting at its first group: for a window inside one group (the paper's case) they
are rows of that group's doc-info file, exactly the paper's ``orig_idxs`` convention
(notebooks/create-doc-idxs-*: window-relative index + the window's first row in the file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from intervene.layout import doc_info_file, group_name, window_groups


@dataclass
class Window:
    first: int
    last: int
    groups: list[str]  # group folder names, e.g. "002"
    rows: np.ndarray  # concatenated-doc-info rows of the window's documents, ascending
    sizes: np.ndarray  # token count of each window document (end - start + 1, as the paper)
    group_sizes: list[int]  # documents per group (columns of each group's matrices)


def window(doc_info_dir: str | os.PathLike, first: int, last: int, batches_per_group: int) -> Window:
    if not 0 <= first < last:
        raise ValueError(f"window [{first}, {last}) is empty or negative")
    span = window_groups(first, last, batches_per_group)
    g0, groups = span[0], [group_name(g) for g in span]
    rows, sizes, counts, base = [], [], [], 0
    for k, name in enumerate(groups):
        p = doc_info_file(doc_info_dir, name)
        if not p.exists():
            raise FileNotFoundError(f"{p}: doc info of group {name} (window [{first}, {last})) not found")
        info = np.load(p).astype(np.int64)
        batch = info[:, 0] + (g0 + k) * batches_per_group  # the group's first batch + local index
        m = (batch >= first) & (batch < last)
        rows.append(base + np.flatnonzero(m))
        sizes.append(info[m, 3] - info[m, 2] + 1)
        counts.append(len(info))
        base += len(info)
    return Window(first, last, groups, np.concatenate(rows), np.concatenate(sizes), counts)


def window_matrix(matrix_dir: str | os.PathLike, rel: str, w: Window) -> sp.csr_matrix:
    """A relation's matrix restricted to the window's documents (columns in window order)."""
    mats = []
    for name, n in zip(w.groups, w.group_sizes, strict=True):
        p = Path(matrix_dir) / name / f"{rel}.npz"
        if not p.exists():
            raise FileNotFoundError(f"{p}: matrix not found")
        m = sp.load_npz(p).tocsr()
        if m.shape[1] != n:
            raise ValueError(f"{p}: {m.shape[1]} columns, but group {name} has {n} documents")
        mats.append(m)
    return sp.hstack(mats, format="csr")[:, w.rows]
