"""Data order: ``global_indices`` built in a memmap vs OLMo's way (in memory, then copied to a memmap).

Same permutation (asserted); the point is that ours never holds a second in-memory copy, and that
the shuffle runs numpy's fast in-place path on the mapping (on the ``np.memmap`` subclass itself it
falls back to an element-wise path about 50x slower).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import SCALE, best_of, report


def _olmo_way(n: int, seed: int, path: Path) -> None:
    indices = np.arange(n, dtype=np.uint32)
    np.random.Generator(np.random.PCG64(seed)).shuffle(indices)
    mm = np.memmap(path, dtype=np.uint32, mode="w+", shape=(n,))
    mm[:] = indices
    mm.flush()
    del mm


def run() -> str:
    from intervene.olmo import global_indices

    n = int(20_000_000 * SCALE)
    d = Path(tempfile.mkdtemp(prefix="bench-order-"))
    base_s, _ = best_of(lambda: _olmo_way(n, 6198, d / "olmo.npy"), 2)
    ours_s, _ = best_of(lambda: global_indices(n, 6198, out=d / "ours.npy"), 2)
    assert (d / "olmo.npy").read_bytes() == (d / "ours.npy").read_bytes()
    return report(
        "data_order",
        "olmo_in_memory_then_memmap",
        base_s,
        ours_s,
        [
            ("instances", f"{n:,}"),
            ("OLMo's way (arange, shuffle, copy)", f"{base_s:.2f} s, peak extra memory {n * 4 / 1e6:.0f} MB"),
            ("ours (in the memmap)", f"{ours_s:.2f} s, no in-memory copy"),
        ],
    )


if __name__ == "__main__":
    run()
