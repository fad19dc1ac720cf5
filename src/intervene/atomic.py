"""Write outputs so that a crash or Ctrl-C never leaves a file that looks complete.

Every writer in the package goes through :func:`atomic_path`: it hands out a temporary path in the
destination's directory (same filesystem, so the final ``os.replace`` is atomic) and only renames it
into place when the block finished without an exception.

A hard kill (SIGKILL, a lost node) leaves the temporary behind. Its name says who wrote it:
``.{name}.tmp-{pid}@{host}-{random}``, so the next writer of the same target removes it when that
process is gone (:func:`is_stale`), and :func:`remove_stale_temporaries` sweeps a whole tree (the
workflow does so when it starts).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("intervene.atomic")

#: ``.{name}.tmp-{pid}[@{host}]-{8 hex}`` (names without ``@host`` come from older versions)
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9._-]*))?-[0-9a-f]{8}$")
#: Slack for clocks and timestamp granularity when comparing a temporary's mtime with a process's
#: start (network filesystems take mtimes from the server's clock).
_CLOCK_SLACK_S = 2.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", socket.gethostname())[:64]


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}@{_host()}-{uuid.uuid4().hex[:8]}")


def _process_start(pid: int | None = None) -> float | None:
    """Start time (epoch seconds) of a live process, None when there is none (zombies count as gone)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's live process
        return 0.0


def is_stale(tmp: str | os.PathLike, *, since: float | None = None) -> bool:
    """True when ``tmp`` is a temporary of :func:`atomic_path` whose writer can no longer finish it.

    Written on this host: its process is gone, or the pid now belongs to a process started after the
    temporary was last written (pid reuse). Written elsewhere (or by an older version, which did not
    record the host): it was last written before ``since`` (default: this process's start). That is
    safe because one target has one writer at a time (Snakemake runs one job per output and locks
    its working directory), so a temporary older than the current writer is a dead job's.
    """
    p = Path(tmp)
    m = _TMP_NAME.match(p.name)
    if m is None:
        return False
    try:
        mtime = p.lstat().st_mtime
    except FileNotFoundError:
        return False
    pid = int(m["pid"])
    if m["host"] is not None and m["host"] == _host():
        if pid == os.getpid():
            return False
        started = _process_start(pid)
        return started is None or started > mtime + _CLOCK_SLACK_S
    if since is None:
        since = _process_start() or time.time()
    return mtime < since - _CLOCK_SLACK_S


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        log.info("removed %s, left by a killed job", p)
    except FileNotFoundError:
        pass
    except OSError as e:  # a leftover temporary is never read: warn, do not fail the write
        log.warning("could not remove the stale temporary %s: %s", p, e)


def _remove_stale_siblings(path: Path) -> None:
    """Remove stale temporaries of ``path`` itself (never other targets': their writers may be live)."""
    prefix = f".{path.name}.tmp-"
    try:
        with os.scandir(path.parent) as it:
            candidates = [Path(e.path) for e in it if e.name.startswith(prefix)]
    except FileNotFoundError:
        return
    for c in candidates:
        m = _TMP_NAME.match(c.name)
        if m is not None and m["name"] == path.name and is_stale(c):
            _remove(c)


def remove_stale_temporaries(
    root: str | os.PathLike, *, recursive: bool = True, since: float | None = None
) -> list[Path]:
    """Remove every stale temporary (:func:`is_stale`) under ``root``; returns what was removed.

    For a sweep while no job writes under ``root`` (the workflow's start, under its lock) or of a
    folder owned by the caller. ``since``: see :func:`is_stale`.
    """
    if since is None:
        since = _process_start() or time.time()
    removed: list[Path] = []
    stack = [Path(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for e in entries:
            p = Path(e.path)
            if _TMP_NAME.match(e.name):
                if is_stale(p, since=since):
                    _remove(p)
                    removed.append(p)
            elif recursive and e.is_dir(follow_symlinks=False):
                stack.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` on success, remove it on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(path)
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
