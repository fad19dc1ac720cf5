"""Fetch the pretraining data files listed in a config: multi-GB raw token files from plain HTTP(S) servers.

Downloads this large hit dropped connections, 5xx answers and killed jobs, so a file is written to
``<dest>.part``, resumed with a ``Range`` request after any failure, checked against the size the server
announced and only then renamed onto ``dest``. A file at ``dest`` is therefore always complete, and a
re-run only fetches what is missing.

At the level of a train config (the ``download`` and ``localize`` stages): the config's URLs, one
shard of them per job (:func:`download_train_config`), and a copy of the config that points at the
mirrored files (:func:`localize_train_config`).
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests
import urllib3
import yaml
from tqdm import tqdm

from intervene.atomic import write_text
from intervene.data_order import is_url
from intervene.olmo import DataError, load_train_config

__all__ = [
    "DownloadError",
    "config_urls",
    "download_all",
    "download_file",
    "download_train_config",
    "local_path_for",
    "localize_train_config",
    "remote_size",
    "shard_of",
    "write_manifest",
]

Progress = Callable[[int], object]

# Statuses worth retrying: server-side trouble and rate limits. Other 4xx answers will not fix themselves.
_RETRY_4XX = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)
# What a body read can raise when the connection breaks: requests does not wrap reads of ``resp.raw``.
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)
# Ask for the bytes as stored: a compressed transfer would make Content-Length disagree with the file.
_IDENTITY = {"Accept-Encoding": "identity"}


class DownloadError(RuntimeError):
    """A file could not be fetched completely; the message names the URL and what went wrong."""


class _Transient(Exception):
    """A failure worth retrying (connection lost, body cut short, 5xx): resume from what is on disk."""


class _Cancelled(Exception):
    """download_all was interrupted: stop at the next chunk instead of finishing a multi-GB file."""


def local_path_for(url: str, root: str | os.PathLike) -> Path:
    """Mirror ``url`` under ``root`` as ``root/<host>/<url path>``, so every file has one obvious place.

    The path is percent-decoded; a query string is ignored. URLs without a file path or with ``..``
    segments are rejected, since they would name a directory or escape ``root``.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = unquote(parts.path)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if not segments or path.endswith("/"):
        raise ValueError(f"URL has no file path: {url!r}")
    if ".." in segments or any("\\" in s or "\x00" in s for s in segments):
        raise ValueError(f"URL path may not contain '..' (or backslash/NUL) segments: {url!r}")
    return Path(root, host, *PurePosixPath(*segments).parts)


def remote_size(url: str, session: requests.Session | None = None, timeout: float = 60) -> int:
    """Size of the file at ``url`` from a HEAD request (redirects followed): sizes the progress bar and
    tells whether a local copy is complete."""
    own = session is None
    s = requests.Session() if own else session
    try:
        return _head_size(s, url, timeout)
    except _Transient as e:
        raise DownloadError(f"{url}: {e}") from e
    finally:
        if own:
            s.close()


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    session: requests.Session | None = None,
    retries: int = 5,
    backoff_s: float = 0.5,
    chunk_bytes: int = 1 << 20,
    timeout: float = 60,
    progress: Progress | None = None,
) -> int:
    """Download ``url`` to ``dest`` resumably and atomically; return the file size in bytes.

    Bytes go to ``dest + ".part"``; after a failure (connection error, truncated body, 5xx) the next
    attempt resumes from the end of the ``.part`` with ``Range: bytes=N-`` after ``backoff_s * 2**k``
    seconds. ``retries`` bounds the failed attempts without progress: an attempt that left the ``.part``
    longer than ever before resets the count (so a long download survives sporadic drops), and
    ``DownloadError`` is raised once ``retries`` retries after the last progress also failed. The
    ``.part`` is renamed onto ``dest`` only when its size equals the size the server announced. A
    ``dest`` that exists with the size HEAD reports is kept (no GET); one with another size is deleted
    first, so an incomplete file is never left at ``dest``.

    ``progress(n)`` is called as bytes are accounted for this file: with each chunk as it arrives, once
    with the bytes already on disk when a ``.part`` is resumed or ``dest`` is kept, and with a negative
    ``n`` when a ``.part`` is discarded. The calls sum to the bytes held, i.e. to the file size on success,
    which keeps a shared tqdm bar over many files exact.
    """
    own = session is None
    s = requests.Session() if own else session
    try:
        return _download(
            url,
            Path(dest),
            session=s,
            retries=retries,
            backoff_s=backoff_s,
            chunk_bytes=chunk_bytes,
            timeout=timeout,
            progress=progress,
            stop=None,
        )
    finally:
        if own:
            s.close()


def download_all(
    urls: Sequence[str],
    dests: Sequence[str | os.PathLike],
    *,
    workers: int = 4,
    retries: int = 5,
    backoff_s: float = 0.5,
    progress: bool = True,
) -> list[int]:
    """Download ``urls[i]`` to ``dests[i]`` in parallel; return the sizes in input order.

    Repeated (url, dest) pairs are fetched once (the OLMo 2 file list names some files twice). Each worker
    thread keeps one ``requests.Session`` for connection reuse. With ``progress`` one tqdm bar on stderr
    counts bytes against the sum of HEAD sizes. A failing file does not stop the others; once all are done,
    one ``DownloadError`` lists every failed URL. Ctrl-C makes the workers stop at their next chunk, leaving
    ``.part`` files to resume from.
    """
    if len(urls) != len(dests):
        raise ValueError(f"{len(urls)} urls but {len(dests)} destinations")
    pairs = [(url, Path(dest)) for url, dest in zip(urls, dests, strict=True)]
    unique = list(dict.fromkeys(pairs))
    owner: dict[Path, str] = {}
    for url, dest in unique:
        if owner.setdefault(dest, url) != url:
            raise ValueError(f"{owner[dest]} and {url} would both be written to {dest}")

    local = threading.local()
    sessions: list[requests.Session] = []
    sessions_lock = threading.Lock()
    stop = threading.Event()

    def thread_session() -> requests.Session:
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = requests.Session()
            with sessions_lock:
                sessions.append(s)
        return s

    bar: tqdm | None = None
    report: Progress | None = None
    results: dict[tuple[str, Path], int] = {}
    errors: list[tuple[str, BaseException]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="download")
    try:
        if progress:
            # One HEAD per file, no retries: a failed HEAD only leaves the bar without a total.
            sizes = list(pool.map(lambda p: _size_or_none(p[0], thread_session()), unique))
            total = None if any(size is None for size in sizes) else sum(sizes)
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                desc=f"download {len(unique)} files",
            )
            bar_lock = threading.Lock()

            def report(n: int) -> None:
                with bar_lock:
                    bar.update(n)

        def fetch(url: str, dest: Path) -> int:
            return _download(
                url,
                dest,
                session=thread_session(),
                retries=retries,
                backoff_s=backoff_s,
                chunk_bytes=1 << 18,  # small enough that Ctrl-C stops a worker promptly
                timeout=60,
                progress=report,
                stop=stop,
            )

        futures: dict[Future[int], tuple[str, Path]] = {pool.submit(fetch, *pair): pair for pair in unique}
        for future in as_completed(futures):
            pair = futures[future]
            try:
                results[pair] = future.result()
            except Exception as e:  # collected and reported together below
                errors.append((pair[0], e))
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        if bar is not None:
            bar.close()
        for s in sessions:
            s.close()

    if errors:
        lines = [str(e) if isinstance(e, DownloadError) else f"{url}: {e!r}" for url, e in errors]
        first = errors[0][1]
        raise DownloadError(
            f"{len(errors)} of {len(unique)} downloads failed:\n" + "\n".join(f"  {line}" for line in lines)
        ) from first
    return [results[pair] for pair in pairs]


def write_manifest(
    urls: Sequence[str],
    dests: Sequence[str | os.PathLike],
    sizes: Sequence[int],
    path: str | os.PathLike,
) -> None:
    """Record what was downloaded where as a TSV (header ``url path bytes``), written atomically so a
    crash never leaves a half manifest. Repeated rows are written once."""
    if not len(urls) == len(dests) == len(sizes):
        raise ValueError(f"lengths differ: {len(urls)} urls, {len(dests)} dests, {len(sizes)} sizes")
    rows = dict.fromkeys(
        (url, str(dest), int(size)) for url, dest, size in zip(urls, dests, sizes, strict=True)
    )
    lines = ["url\tpath\tbytes"]
    for url, dest, size in rows:
        if any(c in field for field in (url, dest) for c in "\t\r\n"):
            raise ValueError(f"tab or newline in manifest field: {url!r} -> {dest!r}")
        lines.append(f"{url}\t{dest}\t{size}")
    write_text(path, "\n".join(lines) + "\n")


# --- a train config's data files: shard its URLs, mirror them, localize the config ---------------------


def config_urls(train_config: str | os.PathLike) -> list[str]:
    """The config's URL data paths, de-duplicated in first-seen order (the OLMo 2 list repeats 5)."""
    spec = load_train_config(train_config)
    return list(dict.fromkeys(p for p in spec.paths if is_url(p)))


def shard_of(items: list[str], shard: int, num_shards: int) -> list[str]:
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} not in [0, {num_shards})")
    return items[shard::num_shards]


def download_train_config(
    train_config: str | os.PathLike,
    root: str | os.PathLike,
    out_config: str | os.PathLike | None = None,
    *,
    shard: int = 0,
    num_shards: int = 1,
    workers: int = 4,
    manifest: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download one shard of the config's data files into the mirror under ``root``."""
    urls = shard_of(config_urls(train_config), shard, num_shards)
    dests = [local_path_for(u, root) for u in urls]
    sizes = download_all(urls, dests, workers=workers, progress=progress)
    if manifest:
        write_manifest(urls, dests, sizes, manifest)
    if out_config:
        localize_train_config(train_config, root, out_config)
    return dests


def localize_train_config(
    train_config: str | os.PathLike, root: str | os.PathLike, out: str | os.PathLike
) -> Path:
    """Copy the train config with every URL path replaced by its mirrored file (relative to ``out``'s
    folder, which is how :func:`intervene.olmo.load_train_config` resolves relative paths)."""
    src = Path(train_config)
    cfg = yaml.safe_load(src.read_text())
    out = Path(out)
    base = Path(src).parent
    from intervene.olmo_core_order import is_olmo_core_config

    if is_olmo_core_config(cfg):
        # OLMo-core: its resolved file list (globs expanded, files permuted by
        # source_permutation_seed), so the copy must not expand or permute again
        section, paths = cfg["dataset"], list(load_train_config(src).paths)
        section.pop("expand_glob", None)
        section.pop("source_permutation_seed", None)
    else:
        section, paths = cfg["data"], cfg["data"]["paths"]
    new_paths = []
    for p in paths:
        if is_url(p):
            local = local_path_for(p, root)
            if not local.exists():
                raise DataError(f"{local}: not downloaded yet (from {p})")
        else:
            local = Path(p) if Path(p).is_absolute() else base / p
        new_paths.append(os.path.relpath(local.resolve(), out.parent.resolve()))
    section["paths"] = new_paths
    write_text(out, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    load_train_config(out)  # what we wrote must read back
    return out


# --- internals -------------------------------------------------------------------------------------------


def _download(
    url: str,
    dest: Path,
    *,
    session: requests.Session,
    retries: int,
    backoff_s: float,
    chunk_bytes: int,
    timeout: float,
    progress: Progress | None,
    stop: threading.Event | None,
) -> int:
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)

    def report(n: int) -> None:
        if progress is not None and n:
            progress(n)

    if dest.exists():
        size = _retrying(lambda: _head_size(session, url, timeout), url, retries, backoff_s, stop)
        if dest.stat().st_size == size:
            part.unlink(missing_ok=True)
            report(size)
            return size
        dest.unlink()  # stale or truncated: it must not keep looking like a finished download

    furthest = _size(part)
    report(furthest)
    failures = 0
    while True:
        try:
            total = _fetch_once(
                session, url, part, chunk_bytes=chunk_bytes, timeout=timeout, report=report, stop=stop
            )
            have = _size(part)
            if have == total:
                break
            if have > total:
                report(-have)
                part.unlink()
            raise _Transient(f"body ended with {have} of {total} bytes on disk")
        except _Transient as e:
            # Progress means a .part longer than ever before in this call, not merely bytes received: a
            # server that ignores Range and breaks off at the same point must not be retried forever.
            have = _size(part)
            failures = 1 if have > furthest else failures + 1
            furthest = max(furthest, have)
            if failures > retries:
                raise DownloadError(f"{url}: giving up after {failures} failed attempts in a row: {e}") from e
            _sleep(backoff_s * 2 ** (failures - 1), stop)

    with open(part, "rb+") as f:  # data on disk before the rename makes it visible as complete
        os.fsync(f.fileno())
    os.replace(part, dest)
    return total


def _fetch_once(
    session: requests.Session,
    url: str,
    part: Path,
    *,
    chunk_bytes: int,
    timeout: float,
    report: Progress,
    stop: threading.Event | None,
) -> int:
    """One GET that appends to ``part`` (or restarts it); returns the total file size the server announced."""
    offset = _size(part)
    headers = dict(_IDENTITY)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
    except requests.RequestException as e:
        raise _Transient(f"GET failed: {e}") from e
    with resp:
        status = resp.status_code
        if status == 416 and offset:
            m = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            total = int(m.group(1)) if m else None
            if total == offset:  # the .part already holds the whole file
                return total
            report(-offset)
            part.unlink()
            raise _Transient(f"server refused a range from byte {offset} (size {total}); restarting")
        if _retryable(status):
            raise _Transient(f"GET returned HTTP {status}")
        if status == 206 and offset:
            start, total = _parse_content_range(resp, url)
            length = _content_length(resp)
            if start != offset or (length is not None and length != total - start):
                report(-offset)
                part.unlink()
                raise _Transient(
                    f"asked for bytes {offset}- of the file, got {start}- with Content-Length {length} "
                    f"and total {total}; restarting"
                )
            mode = "ab"
        elif 200 <= status < 300 and status != 206:
            total = _content_length(resp)
            if total is None:
                raise DownloadError(f"{url}: GET response has no Content-Length, cannot verify the download")
            report(-offset)  # a full body: whatever the .part held is replaced
            mode = "wb"
        else:
            raise DownloadError(f"{url}: GET returned HTTP {status}")
        with open(part, mode) as f:
            for chunk in _chunks(resp, chunk_bytes, stop):
                f.write(chunk)
                report(len(chunk))
    return total


def _chunks(resp: requests.Response, chunk_bytes: int, stop: threading.Event | None) -> Iterator[bytes]:
    """Body bytes as sent (not decoded, so they add up to Content-Length); read errors become _Transient."""
    stream = resp.raw.stream(chunk_bytes, decode_content=False)
    while True:
        if stop is not None and stop.is_set():
            raise _Cancelled("download interrupted")
        try:
            chunk = next(stream)
        except StopIteration:
            return
        except _NETWORK_ERRORS as e:
            raise _Transient(f"connection lost mid-body: {e}") from e
        if chunk:
            yield chunk


def _head_size(session: requests.Session, url: str, timeout: float) -> int:
    try:
        resp = session.head(url, headers=_IDENTITY, allow_redirects=True, timeout=timeout)
    except requests.RequestException as e:
        raise _Transient(f"HEAD failed: {e}") from e
    with resp:
        if _retryable(resp.status_code):
            raise _Transient(f"HEAD returned HTTP {resp.status_code}")
        if not 200 <= resp.status_code < 300:
            raise DownloadError(f"{url}: HEAD returned HTTP {resp.status_code}")
        size = _content_length(resp)
        if size is None:
            raise DownloadError(f"{url}: HEAD response has no usable Content-Length")
        return size


def _size_or_none(url: str, session: requests.Session) -> int | None:
    try:
        return remote_size(url, session)
    except DownloadError:
        return None


def _retrying(
    fn: Callable[[], int], url: str, retries: int, backoff_s: float, stop: threading.Event | None
) -> int:
    for attempt in range(retries + 1):
        try:
            return fn()
        except _Transient as e:
            if attempt == retries:
                raise DownloadError(f"{url}: {e} (after {attempt + 1} attempts)") from e
            _sleep(backoff_s * 2**attempt, stop)
    raise AssertionError("unreachable")


def _parse_content_range(resp: requests.Response, url: str) -> tuple[int, int]:
    """(first byte, total size) of a 206 answer; the total falls back to start + Content-Length."""
    header = resp.headers.get("Content-Range", "").strip()
    m = _CONTENT_RANGE.fullmatch(header)
    if m is None:
        raise DownloadError(f"{url}: 206 answer with unusable Content-Range {header!r}")
    start = int(m.group(1))
    if m.group(3) != "*":
        return start, int(m.group(3))
    length = _content_length(resp)
    if length is None:
        raise DownloadError(f"{url}: 206 answer gives neither a total size nor a Content-Length")
    return start, start + length


def _content_length(resp: requests.Response) -> int | None:
    value = resp.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_4XX


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise _Cancelled("download interrupted")
