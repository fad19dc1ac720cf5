"""A window of batches [first, last) as documents: doc-info rows of the groups it touches.

Document indices in the selection files are rows of the *concatenated* doc info of the groups the
window touches, starting at its first group: for a window inside one group (the paper's case) they
are rows of that group's doc-info file, exactly the paper's ``orig_idxs`` convention
(notebooks/create-doc-idxs-*: window-relative index + the window's first row in the file).

The stages get the decoded group folders and their doc-info files as explicit inputs; a group's
batch numbers are the names of its files (the decode stage writes batch ``b`` as ``{b}.npy`` and
``{b}.json.gz``), and a doc-info row's batch column indexes them in order (as the doc-info stage
numbered them), so no grouping arithmetic is needed here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

_BATCH_NAME = re.compile(r"^(\d+)\.(?:npy|json\.gz)$")


@dataclass(frozen=True)
class Group:
    """A decoded batch group as the window stages read it."""

    name: str  # the folder name, e.g. "002" (the name the selection files record)
    folder: Path
    doc_info: Path
    batches: np.ndarray  # global batch number of each of its batches, ascending (doc info's index)


def batch_numbers(folder: str | os.PathLike) -> np.ndarray:
    """The global numbers of the batches decoded into ``folder`` (``{b}.npy`` / ``{b}.json.gz``)."""
    d = Path(folder)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: decoded batch group folder not found")
    found = {int(m.group(1)) for p in d.iterdir() if (m := _BATCH_NAME.match(p.name))}
    if not found:
        raise FileNotFoundError(f"{d}: no decoded batches ({{b}}.npy or {{b}}.json.gz) in the folder")
    return np.array(sorted(found), dtype=np.int64)


def read_groups(doc_info: Sequence, group_dirs: Sequence) -> list[Group]:
    """The groups of doc-info files ``doc_info`` and decoded folders ``group_dirs``, paired in
    order (``002.npy`` with folder ``002``), in ascending batch order."""
    if len(doc_info) != len(group_dirs):
        raise ValueError(f"{len(doc_info)} doc-info files for {len(group_dirs)} decoded group folders")
    groups = []
    for info, folder in zip(doc_info, group_dirs, strict=True):
        info, folder = Path(info), Path(folder)
        if info.name != f"{folder.name}.npy":
            raise ValueError(f"{info}: not the doc info of decoded group folder {folder} ({folder.name}.npy)")
        groups.append(Group(folder.name, folder, info, batch_numbers(folder)))
    for a, b in zip(groups, groups[1:], strict=False):
        if a.batches[-1] >= b.batches[0]:
            raise ValueError(f"{a.folder}, {b.folder}: decoded group folders not in batch order")
    return groups


@dataclass
class Window:
    first: int
    last: int
    groups: list[str]  # group folder names, e.g. "002"
    rows: np.ndarray  # concatenated-doc-info rows of the window's documents, ascending
    sizes: np.ndarray  # token count of each window document (end - start + 1, as the paper)
    group_sizes: list[int]  # documents per group (columns of each group's matrices)


def window_groups(groups: Sequence[Group], first: int, last: int) -> list[Group]:
    """The groups holding batches of ``[first, last)``, after checking every batch is in one."""
    if not 0 <= first < last:
        raise ValueError(f"window [{first}, {last}) is empty or negative")
    span = [g for g in groups if ((g.batches >= first) & (g.batches < last)).any()]
    have = sum(int(((g.batches >= first) & (g.batches < last)).sum()) for g in span)
    if have != last - first:
        names = ", ".join(str(g.folder) for g in groups) or "none"
        raise FileNotFoundError(
            f"window [{first}, {last}): {last - first - have} of its batches are in none of the"
            f" decoded group folders given ({names})"
        )
    return span


def window(groups: Sequence[Group], first: int, last: int) -> Window:
    """The documents of batches ``[first, last)``: rows of the concatenated doc info of the groups
    holding them (only those groups, from the first)."""
    span = window_groups(groups, first, last)
    rows, sizes, counts, base = [], [], [], 0
    for g in span:
        if not g.doc_info.exists():
            raise FileNotFoundError(
                f"{g.doc_info}: doc info of group {g.name} (window [{first}, {last})) not found"
            )
        info = np.load(g.doc_info).astype(np.int64)
        local = info[:, 0]
        if len(info) and (local.min() < 0 or local.max() >= len(g.batches)):
            raise ValueError(
                f"{g.doc_info}: batch {int(local.max())} of the group, but {g.folder} holds"
                f" {len(g.batches)} decoded batches"
            )
        batch = g.batches[local]  # the doc info numbers the folder's batches in order
        m = (batch >= first) & (batch < last)
        rows.append(base + np.flatnonzero(m))
        sizes.append(info[m, 3] - info[m, 2] + 1)
        counts.append(len(info))
        base += len(info)
    return Window(first, last, [g.name for g in span], np.concatenate(rows), np.concatenate(sizes), counts)


def by_group(folders: Sequence) -> dict[str, Path]:
    """Per-group folders (``.../pair_doc/002``) by their group name."""
    return {Path(f).name: Path(f) for f in folders}


def window_matrix(matrix_dirs: dict[str, Path], rel: str, w: Window) -> sp.csr_matrix:
    """A relation's matrix restricted to the window's documents (columns in window order);
    ``matrix_dirs``: a group's matrix folder by group name."""
    mats = []
    for name, n in zip(w.groups, w.group_sizes, strict=True):
        if name not in matrix_dirs:
            raise FileNotFoundError(
                f"no matrix folder of group {name} among {sorted(map(str, matrix_dirs.values()))}"
            )
        p = matrix_dirs[name] / f"{rel}.npz"
        if not p.exists():
            raise FileNotFoundError(f"{p}: matrix not found")
        m = sp.load_npz(p).tocsr()
        if m.shape[1] != n:
            raise ValueError(f"{p}: {m.shape[1]} columns, but group {name} has {n} documents")
        mats.append(m)
    return sp.hstack(mats, format="csr")[:, w.rows]
