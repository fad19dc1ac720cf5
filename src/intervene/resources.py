"""Memory and runtime of the CPU stages' jobs as functions of their input size, from the scale
benchmark's measurements (``make bench-scale``), so a cluster run asks for what a job needs: enough
not to be killed, not so much that it queues for nothing.

``resources_fit.json`` (written by the benchmark) holds, per stage, the growth of CPU seconds and
peak memory (the job's anonymous memory: pages of the files it maps are reclaimed under its limit)
with the tokens a job reads: the line ``a + b * tokens`` through the two largest measured sizes and
the log-log exponent between them. A projection takes the larger of the line and the power law
through the largest measurement, so a stage that grows faster than linearly is not under-estimated
far beyond the sizes measured. The rules' ``resources:`` call :func:`estimate`.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

FIT_FILE = Path(__file__).with_name("resources_fit.json")


def fit_growth(x, y) -> dict:
    """The growth of ``y`` (a stage's CPU seconds or peak memory) with ``x`` (tokens read) over the
    measured sizes: the line through the two largest sizes (``a + b x``, ``b >= 0``; where ``y`` does
    not grow, the largest value), the log-log exponent between them (``exponent``, in [0, 3]) and
    over all sizes (``exponent_all``), and the largest measurement (the power law's reference).

    The two largest sizes, not a least-squares line over all: small sizes carry start-up costs and a
    curvature that a stage's growth at scale no longer has (a least-squares line through a concave
    series over-projects it, through a convex one under-projects it)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError("a growth fit needs two or more distinct sizes")
    o = np.argsort(x, kind="stable")
    x, y = x[o], np.maximum(y[o], 1e-9)
    if x[-1] == x[-2]:
        raise ValueError("a growth fit needs two or more distinct sizes")
    b = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
    if b > 0:
        a = float(y[-1] - b * x[-1])
    else:  # no growth measured: the largest value is the level
        a, b = float(y.max()), 0.0
    slope_all = float(np.polyfit(np.log(x), np.log(y), 1)[0])
    last = float(np.log(y[-1] / y[-2]) / np.log(x[-1] / x[-2]))
    return {
        "a": a,
        "b": b,
        "exponent_all": round(slope_all, 3),
        "exponent": round(min(max(last, 0.0), 3.0), 3),
        "x_ref": float(x[-1]),
        "y_ref": float(y[-1]),
    }


def project(g: dict, x: float) -> float:
    """A fitted growth at ``x`` (the larger of the line and the power law through the reference)."""
    line = g["a"] + g["b"] * x
    power = g["y_ref"] * (x / g["x_ref"]) ** g["exponent"]
    return float(max(line, power))


@cache
def load_fit(path: str | None = None) -> dict:
    p = Path(path) if path else FIT_FILE
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: resource fit not found (make bench-scale writes it)") from None


def estimate(
    stage: str, n_batches: int, gbs: int, seq_len: int, attempt: int = 1, *, fit: dict | None = None
) -> tuple[int, int]:
    """``(mem_mb, runtime_min)`` for a job of ``stage`` reading ``n_batches`` batches of ``gbs`` x
    ``seq_len`` tokens, at Slurm attempt ``attempt`` (1, 2, ...): the projected peak memory and CPU time
    with the fit's headroom (runtime from CPU time: the stages run on one core), at least the fit's
    floors, times ``attempt`` (a retry after an out-of-memory or time-limit kill asks for more)."""
    f = fit or load_fit()
    if stage not in f["stages"]:
        raise ValueError(f"no resource fit for stage {stage!r} (known: {', '.join(sorted(f['stages']))})")
    if n_batches < 0 or gbs <= 0 or seq_len <= 0 or attempt < 1:
        raise ValueError(f"bad job size: {n_batches} batches of {gbs} x {seq_len}, attempt {attempt}")
    s, h = f["stages"][stage], f["headroom"]
    tokens = float(n_batches) * gbs * seq_len
    mem = max(f["floors"]["mem_mb"], math.ceil(project(s["mem_mb"], tokens) * h["mem"]))
    runtime = max(f["floors"]["runtime_min"], math.ceil(project(s["cpu_s"], tokens) / 60 * h["time"]))
    return int(mem * attempt), int(runtime * attempt)
