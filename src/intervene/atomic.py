"""Write outputs so that a crash or Ctrl-C never leaves a file that looks complete.

Every writer in the package goes through :func:`atomic_path`: it hands out a temporary path in the
destination's directory (same filesystem, so the final ``os.replace`` is atomic) and only renames it
into place when the block finished without an exception.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` on success, remove it on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_npz(path: str | os.PathLike, **arrays) -> None:
    """``np.savez`` into place atomically (the arrays' names are the keys)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_sparse(path: str | os.PathLike, matrix) -> None:
    """``scipy.sparse.save_npz`` into place atomically."""
    import scipy.sparse as sp

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sp.save_npz(fh, matrix)
