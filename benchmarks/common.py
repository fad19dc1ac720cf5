"""Shared helpers: timing, the result line format, a tokenizer to benchmark with."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Scale factor for workload sizes (BENCH_SCALE=0.25 for a quick look).
SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Fastest wall time of ``repeat`` runs (and the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def report(name: str, baseline: str, baseline_s: float, ours_s: float, table: list[tuple[str, str]]) -> str:
    for k, v in table:
        print(f"  {k:<38} {v}")
    line = (
        f"BENCH name={name} baseline={baseline} baseline_s={baseline_s:.4f} "
        f"ours_s={ours_s:.4f} ratio={baseline_s / ours_s:.1f}"
    )
    print(line, flush=True)
    return line


_WORLD: Path | None = None


def bench_world() -> Path:
    """A small toy world (tokenizer + corpus) built once per benchmark run in a temp folder."""
    global _WORLD
    if _WORLD is None:
        from intervene.world.build import build_world

        out = Path(tempfile.mkdtemp(prefix="intervene-bench-")) / "world"
        build_world(
            out, {"facts_per_relation": 10, "num_steps": 200, "global_batch_size": 64, "seq_len": 512}
        )
        _WORLD = out
    return _WORLD
