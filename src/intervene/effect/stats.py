"""Bootstrap over instances, the unit the paper's claims are about (facts, questions).

Runs are few (the paper: 3), so they are averaged per instance rather than resampled; instances are
resampled with replacement, the same draw for every row given together, so differences between
intervention and control (or targeted and other instances' rows) are paired.
"""

from __future__ import annotations

import numpy as np


def bootstrap_means(rows: np.ndarray, *, n_boot: int, seed: int, chunk: int = 256) -> np.ndarray:
    """``[n_boot, m]`` means of ``rows`` (``[m, n]``: m quantities over the same n instances), each
    bootstrap sample drawing n instance indices with replacement (PCG64(seed): reproducible).

    Chunked so memory stays ``O(chunk * n)`` for any ``n_boot``."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    m, n = rows.shape
    if n == 0:
        return np.full((n_boot, m), np.nan)
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty((n_boot, m))
    for lo in range(0, n_boot, chunk):
        k = min(chunk, n_boot - lo)
        idx = rng.integers(0, n, size=(k, n))
        out[lo : lo + k] = rows[:, idx].mean(axis=2).T
    return out


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` at ``level`` (NaN when there are none)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0 or np.isnan(samples).all():
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [a, 1.0 - a])
    return (float(lo), float(hi))
