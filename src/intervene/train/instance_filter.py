"""OLMo's instance filter: instances with a long periodic repetition get no loss.

OLMo 2's configs set ``data.instance_filter`` (``repetition_max_period: 13, repetition_min_period: 1,
repetition_max_count: 32``); ``MemMapDataset._validate_instance`` then masks an instance (all labels
-100, the slot stays in the batch) when ``olmo/data/util.py``'s periodic-sequence search reports a
repeat of ``times >= repetition_max_count`` for any period. The search's rule, reproduced here
(including its edge behaviour, so the same instances are masked): for each period p (at most
len/3), lay the tokens out in rows of p (the last row padded with a value not in the data, a full
padding row when len % p == 0), mark rows equal to the previous row (row 0 compared with the last
row), and for each run of such rows extend it by the matching tail of the row before the run and
the matching head of the row after it (rows wrap around); ``times = (end - start) // p``.
"""

from __future__ import annotations

import numpy as np


def _head_true(row: np.ndarray) -> int:
    """Length of the leading run of True."""
    nz = np.flatnonzero(~row)
    return int(nz[0]) if nz.size else row.size


def _tail_start(row: np.ndarray) -> int:
    """Start of the trailing run of True (-1 if the row ends in False)."""
    n = _head_true(row[::-1])
    return row.size - n if n > 0 else -1


def max_repetitions(tokens: np.ndarray, max_period: int, min_period: int = 1) -> int:
    """The largest ``times`` of any periodic run the search reports (runs with times <= 2 are not reported)."""
    arr = np.asarray(tokens).astype(np.int64)
    pad_value = -1
    best = 0
    for p in range(min_period, min(max_period, arr.size // 3) + 1):
        rows = np.concatenate([arr, np.full(p - arr.size % p, pad_value)]).reshape(-1, p)
        eq = rows == np.roll(rows, 1, axis=0)
        full = np.flatnonzero(eq.all(axis=1))
        if full.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(full) != 1) + 1
        for run in np.split(full, breaks):
            first, last = int(run[0]), int(run[-1])
            ts = _tail_start(eq[first - 1])
            start_off = p - ts if ts > 0 else 0
            end_off = _head_true(eq[(last + 1) % eq.shape[0]])
            start = (first - 1) * p - start_off
            end = (last + 1) * p + end_off
            times = (end - start) // p
            if times > 2:
                best = max(best, times)
    return best


def instance_mask(batch: np.ndarray, cfg: dict | None) -> np.ndarray | None:
    """Per instance True = keep its loss (OLMo's ``instance_mask``), or None without a filter."""
    if not cfg:
        return None
    mx, mn, count = (
        int(cfg["repetition_max_period"]),
        int(cfg.get("repetition_min_period", 1)),
        int(cfg["repetition_max_count"]),
    )
    return np.array([max_repetitions(row, mx, mn) < count for row in batch], dtype=bool)
