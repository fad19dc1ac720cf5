"""Checked reading of the ``.npz`` files one stage hands the next (selections, mappings, learned
instances): every key a stage reads is there with the right kind of values, and every document row
points inside its window, else one line naming the file and the key.

Without these checks a negative row silently wrapped around to the window's last documents, a row
outside the window was never replaced (and the swap's check then failed on a temporary path), and
a file lacking a key gave a ``KeyError`` traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

#: Kinds of array a key may hold (numpy dtype kinds): integers, strings, booleans, numbers, 0/1 flags.
KINDS = {"int": "iu", "str": "U", "bool": "b", "number": "iuf", "flag": "iub"}


class InputError(ValueError):
    """An input file a stage cannot use; the message names the file and the key."""


def load_npz(
    path: str | os.PathLike, required: dict[str, str], optional: dict[str, str] | None = None
) -> dict:
    """The arrays of ``path`` as a dict, after checking that each ``required`` key is present and
    every present key of ``required``/``optional`` holds its kind (``int``, ``str``, ``bool``,
    ``number``); ``allow_pickle`` stays off (an input file never runs code)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable .npz ({e})") from None
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise InputError(f"{path}: lacks {', '.join(missing)} (keys: {', '.join(sorted(arrays)) or 'none'})")
    for key, kind in {**(optional or {}), **required}.items():
        if key in arrays and arrays[key].size and arrays[key].dtype.kind not in KINDS[kind]:
            raise InputError(f"{path}: {key} holds {arrays[key].dtype} values, not {kind}")
    return arrays


def check_rows(path, key: str, rows: np.ndarray, n: int | None, what: str = "") -> np.ndarray:
    """``rows`` as int64 after checking they are a 1-D list of rows in ``[0, n)`` (``what`` says
    of which table, for the message; ``n`` None: only that none is negative)."""
    if rows.ndim != 1:
        raise InputError(f"{path}: {key} has shape {rows.shape}, not a list of rows")
    bad = rows[(rows < 0) | (rows >= n)] if n is not None else rows[rows < 0]
    if bad.size:
        where = f"outside the {n} rows of {what}" if n is not None else "negative"
        raise InputError(f"{path}: {key} holds row {int(bad[0])}, {where}")
    return rows.astype(np.int64)


def window_of(path, key: str, value: np.ndarray) -> tuple[int, int]:
    """A ``[first, last)`` batch window stored as two integers."""
    if value.shape != (2,) or value.dtype.kind not in "iu" or not 0 <= value[0] < value[1]:
        raise InputError(f"{path}: {key} is {value.tolist()}, not a window [first, last) of batches")
    return int(value[0]), int(value[1])


def group_numbers(path, key: str, value: np.ndarray) -> list[int]:
    """Group folder names (``"002"``) as 1-based numbers."""
    names = [str(g) for g in np.atleast_1d(value).tolist()]
    if not all(g.isdigit() for g in names):
        raise InputError(f"{path}: {key} is {names}, not group folder names like '002'")
    return [int(g) for g in names]


def check_window_groups(path, window_key: str, groups_key: str, z: dict, group_batches: Mapping) -> None:
    """The groups must be exactly those the window touches: rows are rows of their concatenated doc
    info, so other groups would make every row point at another document. ``group_batches``: the
    batch numbers (an array) of each decoded group given, by group name, in batch order."""
    first, last = window_of(path, window_key, z[window_key])
    have = group_numbers(path, groups_key, z[groups_key])
    want = [int(g) for g, b in group_batches.items() if ((b >= first) & (b < last)).any()]
    if have != want:
        raise InputError(
            f"{path}: {groups_key} {[f'{g:03d}' for g in have]} are not the groups of {window_key}"
            f" [{first}, {last}) among the decoded groups given ({[f'{g:03d}' for g in want]})"
        )


#: The doc-indices file of a selection (SPEC §3) or a mapping, as `intervene swap` reads it.
INDICES_KEYS = {"orig_idxs": "int", "new_idxs": "int", "orig_window": "int", "orig_groups": "str"}
INDICES_OPTIONAL = {"extra_idxs": "int", "new_window": "int", "new_groups": "str"}


def load_doc_indices(path, group_batches: Mapping) -> dict:
    """A selection's or mapping's ``.npz`` with its keys and windows checked against the decoded
    groups given (``group_batches``: each one's batch numbers by group name; the rows are checked
    against the doc info by :func:`check_doc_indices`)."""
    z = load_npz(path, {**INDICES_KEYS, "new_groups": "str"}, INDICES_OPTIONAL)
    check_window_groups(path, "orig_window", "orig_groups", z, group_batches)
    if "new_window" in z:
        check_window_groups(path, "new_window", "new_groups", z, group_batches)
    else:
        group_numbers(path, "new_groups", z["new_groups"])
    return z


def check_doc_indices(path, z: dict, orig_info: np.ndarray, new_info: np.ndarray) -> dict:
    """The rows of ``z`` as int64 after checking them against the windows' doc info (``[n, 4]``,
    global batch numbers): every row exists, the originals lie in ``orig_window`` and the new
    documents in ``new_window`` (when stored), no original is listed twice, and a mapping (no
    ``extra_idxs``) pairs each original with one distinct new document."""
    out = {
        "orig_idxs": check_rows(path, "orig_idxs", z["orig_idxs"], len(orig_info), "orig_groups' doc info"),
        "new_idxs": check_rows(path, "new_idxs", z["new_idxs"], len(new_info), "new_groups' doc info"),
    }
    if "extra_idxs" in z:
        out["extra_idxs"] = check_rows(
            path, "extra_idxs", z["extra_idxs"], len(new_info), "new_groups' doc info"
        )
    windows = [("orig_idxs", orig_info, "orig_window")]
    if "new_window" in z:
        windows += [(k, new_info, "new_window") for k in ("new_idxs", "extra_idxs") if k in out]
    for key, info, wkey in windows:
        first, last = window_of(path, wkey, z[wkey])
        batches = info[out[key], 0]
        outside = (batches < first) | (batches >= last)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise InputError(
                f"{path}: {key} row {int(out[key][i])} is a document of batch {int(batches[i])},"
                f" outside {wkey} [{first}, {last})"
            )
    for key in ("orig_idxs",) if "extra_idxs" in z else ("orig_idxs", "new_idxs"):
        uniq, counts = np.unique(out[key], return_counts=True)
        if (counts > 1).any():
            raise InputError(f"{path}: {key} lists row {int(uniq[counts > 1][0])} more than once")
    if "extra_idxs" not in z and len(out["orig_idxs"]) != len(out["new_idxs"]):
        raise InputError(
            f"{path}: a mapping pairs orig_idxs ({len(out['orig_idxs'])}) with new_idxs"
            f" ({len(out['new_idxs'])}) one to one, and their lengths differ"
        )
    return out


def _per_instance(path, z: dict, keys: list[str], n: int) -> None:
    """Each of ``keys`` has one entry (row) per instance."""
    for key in keys:
        if z[key].ndim < 1 or len(z[key]) != n:
            raise InputError(
                f"{path}: {key} has {len(z[key]) if z[key].ndim else 0} rows, not one per instance ({n})"
            )


def load_labels(path: str | os.PathLike) -> dict:
    """A correctness-labels file (``labels.npz``: ``steps``, ``dataset_labels``, ``labels``
    [instances, steps] 0/1), shapes checked: a file from another run or stage is an error naming the
    key, never a ``KeyError`` or a silently misaligned column."""
    z = load_npz(path, {"steps": "int", "dataset_labels": "str", "labels": "flag"})
    n = len(z["dataset_labels"])
    if z["labels"].shape != (n, len(z["steps"])):
        raise InputError(
            f"{path}: labels has shape {z['labels'].shape}, not (instances {n}, steps {len(z['steps'])})"
        )
    return z


def load_run_labels(path: str | os.PathLike) -> dict:
    """Multi-run labels (``steps``, ``dataset_labels``, ``run1..runN`` [instances, steps])."""
    import re

    z = load_npz(path, {"steps": "int", "dataset_labels": "str"})
    runs = [k for k in z if re.fullmatch(r"run\d+", k)]
    n, s = len(z["dataset_labels"]), len(z["steps"])
    for k in runs:
        if z[k].dtype.kind not in KINDS["flag"] or z[k].shape != (n, s):
            raise InputError(f"{path}: {k} holds {z[k].dtype} {z[k].shape}, not 0/1 of shape ({n}, {s})")
    return z


def load_learned(path: str | os.PathLike) -> dict:
    """A learned-instances file (``learned.npz``: ``steps``, ``dataset_labels``, ``learned_step``)."""
    z = load_npz(path, {"steps": "int", "dataset_labels": "str", "learned_step": "int"})
    _per_instance(path, z, ["learned_step"], len(z["dataset_labels"]))
    return z
