"""Tests for intervene.download against a local HTTP server that can misbehave on purpose."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from intervene.download import (
    DownloadError,
    config_urls,
    download_all,
    download_file,
    download_train_config,
    local_path_for,
    localize_train_config,
    remote_size,
    shard_of,
    write_manifest,
)
from intervene.olmo import DataError, load_train_config

FAST = {"retries": 3, "backoff_s": 0.01}
SMALL_CHUNKS = {"chunk_bytes": 16 * 1024, **FAST}


class Behaviour:
    """What the server does per URL path; every request is logged as (method, path, Range header)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, str | None]] = []
        self.drop_first: dict[str, int] = {}  # (a) cut the connection mid-body on the first N GETs
        self.fail_first: dict[str, int] = {}  # (b) 503 for the first N requests
        self.ignore_range: set[str] = set()  # (c) answer 200 with the whole body to Range requests
        self.short_by: dict[str, int] = {}  # (d) always omit the file's last N bytes, full Content-Length

    def take(self, counters: dict[str, int], path: str) -> bool:
        with self.lock:
            if counters.get(path, 0) > 0:
                counters[path] -= 1
                return True
            return False

    def requests(self, method: str, path: str) -> list[str | None]:
        """Range headers of the logged requests with this method and path."""
        with self.lock:
            return [rng for m, p, rng in self.log if m == method and p == path]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _empty(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, send_body: bool) -> None:
        b: Behaviour = self.server.behaviour  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        rng = self.headers.get("Range")
        with b.lock:
            b.log.append((self.command, path, rng))
        if b.take(b.fail_first, path):
            return self._empty(503)
        file = b.root / path.lstrip("/")
        if not file.is_file():
            return self._empty(404)
        data = file.read_bytes()
        start = 0
        if rng is not None and path not in b.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            if m is None:
                return self._empty(400)
            start = int(m.group(1))
            if start >= len(data):
                return self._empty(416, Content_Range=f"bytes */{len(data)}")
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not send_body:
            return
        if b.take(b.drop_first, path):
            body = body[: len(body) // 2]
            self.close_connection = True
        elif path in b.short_by:
            body = data[start : max(start, len(data) - b.short_by[path])]
            self.close_connection = True
        self.wfile.write(body)


@dataclass
class Server:
    base: str
    root: Path
    behaviour: Behaviour

    def publish(self, rel: str, n_bytes: int = 300_000) -> tuple[str, bytes]:
        """Serve n_bytes of random data at /rel; return its URL and the data."""
        data = os.urandom(n_bytes)
        file = self.root / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        return f"{self.base}/{rel}", data


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "served"
    root.mkdir()
    behaviour = Behaviour(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = behaviour  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield Server(f"http://{host}:{port}", root, behaviour)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_plain_download_equals_source(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("preprocessed/a/part-0.npy")
    dest = tmp_path / "out" / "part-0.npy"
    seen: list[int] = []
    assert download_file(url, dest, progress=seen.append, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert not dest.with_name("part-0.npy.part").exists()
    assert sum(seen) == len(data) and len(seen) > 1  # reported chunk by chunk
    assert server.behaviour.requests("GET", "/preprocessed/a/part-0.npy") == [None]


def test_drop_mid_file_resumes_with_range(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("drop.npy")
    server.behaviour.drop_first["/drop.npy"] = 2
    dest = tmp_path / "drop.npy"
    seen: list[int] = []
    assert download_file(url, dest, progress=seen.append, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    ranges = server.behaviour.requests("GET", "/drop.npy")
    assert len(ranges) == 3 and ranges[0] is None
    offsets = [int(re.fullmatch(r"bytes=(\d+)-", r).group(1)) for r in ranges[1:]]  # type: ignore[union-attr]
    assert 0 < offsets[0] < offsets[1] < len(data)  # each retry resumed from further on
    assert sum(seen) == len(data)


def test_drops_with_progress_do_not_use_up_retries(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("flaky.npy")
    server.behaviour.drop_first["/flaky.npy"] = FAST["retries"] + 3  # each drop still gets further
    dest = tmp_path / "flaky.npy"
    assert download_file(url, dest, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert len(server.behaviour.requests("GET", "/flaky.npy")) == FAST["retries"] + 4


def test_range_ignored_and_short_body_gives_up(server: Server, tmp_path: Path) -> None:
    # Every attempt restarts from 0 and breaks off at the same byte: bytes arrive, but no progress.
    url, _ = server.publish("stuck.npy")
    server.behaviour.ignore_range.add("/stuck.npy")
    server.behaviour.short_by["/stuck.npy"] = 1000
    dest = tmp_path / "stuck.npy"
    with pytest.raises(DownloadError, match=re.escape(url)):
        download_file(url, dest, **SMALL_CHUNKS)
    assert not dest.exists()
    assert len(server.behaviour.requests("GET", "/stuck.npy")) == FAST["retries"] + 1


def test_503_is_retried(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("busy.npy")
    server.behaviour.fail_first["/busy.npy"] = 3
    dest = tmp_path / "busy.npy"
    assert download_file(url, dest, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert len(server.behaviour.requests("GET", "/busy.npy")) == 4


def test_503_beyond_retries_raises(server: Server, tmp_path: Path) -> None:
    url, _ = server.publish("down.npy")
    server.behaviour.fail_first["/down.npy"] = 100
    dest = tmp_path / "down.npy"
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        download_file(url, dest, **SMALL_CHUNKS)
    assert "503" in str(info.value)
    assert len(server.behaviour.requests("GET", "/down.npy")) == FAST["retries"] + 1
    assert not dest.exists()


def test_404_is_not_retried(server: Server, tmp_path: Path) -> None:
    url = f"{server.base}/missing.npy"
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        download_file(url, tmp_path / "missing.npy", **SMALL_CHUNKS)
    assert "404" in str(info.value)
    assert len(server.behaviour.requests("GET", "/missing.npy")) == 1


def test_range_ignored_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("norange.npy")
    server.behaviour.ignore_range.add("/norange.npy")
    dest = tmp_path / "norange.npy"
    part = tmp_path / "norange.npy.part"
    part.write_bytes(b"\xff" * 100_000)  # junk: kept, it would corrupt the result
    seen: list[int] = []
    assert download_file(url, dest, progress=seen.append, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert server.behaviour.requests("GET", "/norange.npy") == ["bytes=100000-"]
    assert seen[0] == 100_000 and -100_000 in seen and sum(seen) == len(data)


def test_complete_part_is_finalised(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("done.npy")
    dest = tmp_path / "done.npy"
    (tmp_path / "done.npy.part").write_bytes(data)
    assert download_file(url, dest, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert server.behaviour.requests("GET", "/done.npy") == [f"bytes={len(data)}-"]  # answered 416


def test_persistent_short_body_fails_without_dest(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("short.npy")
    server.behaviour.short_by["/short.npy"] = 1000
    dest = tmp_path / "short.npy"
    with pytest.raises(DownloadError, match=re.escape(url)):
        download_file(url, dest, **SMALL_CHUNKS)
    assert not dest.exists()
    part = tmp_path / "short.npy.part"
    assert part.read_bytes() == data[:-1000]  # kept for a later resume
    # First GET made progress; then retries + 1 more attempts made none.
    assert len(server.behaviour.requests("GET", "/short.npy")) == FAST["retries"] + 1
    assert sorted(os.listdir(tmp_path)) == ["served", "short.npy.part"]


def test_existing_complete_file_skipped(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("have.npy")
    dest = tmp_path / "have.npy"
    dest.write_bytes(data)
    seen: list[int] = []
    assert download_file(url, dest, progress=seen.append, **SMALL_CHUNKS) == len(data)
    assert server.behaviour.requests("HEAD", "/have.npy") == [None]
    assert server.behaviour.requests("GET", "/have.npy") == []
    assert seen == [len(data)]


def test_existing_wrong_size_file_replaced(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("stale.npy")
    dest = tmp_path / "stale.npy"
    dest.write_bytes(data[:1234])
    assert download_file(url, dest, **SMALL_CHUNKS) == len(data)
    assert dest.read_bytes() == data
    assert server.behaviour.requests("GET", "/stale.npy") == [None]


def test_failed_download_removes_stale_dest(server: Server, tmp_path: Path) -> None:
    url, data = server.publish("gone.npy")
    server.behaviour.short_by["/gone.npy"] = 1000  # HEAD reports the size; no GET ever completes
    dest = tmp_path / "gone.npy"
    dest.write_bytes(data[:1234])
    with pytest.raises(DownloadError, match=re.escape(url)):
        download_file(url, dest, **SMALL_CHUNKS)
    assert not dest.exists()  # the truncated old copy must not survive looking complete


def test_remote_size(server: Server) -> None:
    url, data = server.publish("sized.npy", 12_345)
    assert remote_size(url) == len(data)
    missing = f"{server.base}/nope.npy"
    with pytest.raises(DownloadError, match=re.escape(missing) + r".*404"):
        remote_size(missing)


def test_download_all_with_duplicate(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        server.publish(f"preprocessed/{name}.npy", n)
        for name, n in [("x", 200_000), ("y", 300_000), ("z", 1)]
    ]
    server.behaviour.drop_first["/preprocessed/y.npy"] = 1
    urls = [url for url, _ in files] + [files[0][0]]
    root = tmp_path / "mirror"
    dests = [local_path_for(url, root) for url in urls]
    sizes = download_all(urls, dests, workers=3, backoff_s=0.01, progress=True)
    assert sizes == [200_000, 300_000, 1, 200_000]
    for (_, data), dest in zip(files, dests[:3], strict=True):
        assert dest.read_bytes() == data
    assert len(server.behaviour.requests("GET", "/preprocessed/x.npy")) == 1  # duplicate fetched once
    assert len(server.behaviour.requests("GET", "/preprocessed/y.npy")) == 2  # dropped once, resumed
    assert "100%" in capsys.readouterr().err  # one bar on stderr, sized by HEAD, ended full
    assert not list(root.rglob("*.part"))


def test_download_all_lists_every_failure(server: Server, tmp_path: Path) -> None:
    good, data = server.publish("good.npy")
    bad1, bad2 = f"{server.base}/bad1.npy", f"{server.base}/bad2.npy"
    urls = [bad1, good, bad2]
    dests = [tmp_path / "bad1.npy", tmp_path / "good.npy", tmp_path / "bad2.npy"]
    with pytest.raises(DownloadError) as info:
        download_all(urls, dests, workers=2, backoff_s=0.01, progress=False)
    message = str(info.value)
    assert bad1 in message and bad2 in message and good not in message
    assert (tmp_path / "good.npy").read_bytes() == data  # the others still finished


def test_download_all_rejects_two_urls_for_one_dest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        download_all(["http://h/a", "http://h/b"], [tmp_path / "f", tmp_path / "f"], progress=False)


def test_manifest(tmp_path: Path) -> None:
    urls = ["http://h/a.npy", "http://h/b.npy", "http://h/a.npy"]
    dests = [tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "a.npy"]
    path = tmp_path / "meta" / "manifest.tsv"
    write_manifest(urls, dests, [10, 20, 10], path)
    assert path.read_text().splitlines() == [
        "url\tpath\tbytes",
        f"http://h/a.npy\t{tmp_path / 'a.npy'}\t10",
        f"http://h/b.npy\t{tmp_path / 'b.npy'}\t20",
    ]
    assert os.listdir(path.parent) == ["manifest.tsv"]  # no temporary file left behind


def test_local_path_for(tmp_path: Path) -> None:
    url = "http://olmo-data.org/preprocessed/a/b.npy"
    assert local_path_for(url, tmp_path) == tmp_path / "olmo-data.org" / "preprocessed" / "a" / "b.npy"
    assert local_path_for("https://h:8080/x%20y.npy?sig=1", "r") == Path("r", "h:8080", "x y.npy")
    for bad in [
        "http://olmo-data.org/preprocessed/../../etc/passwd",
        "http://olmo-data.org/a/%2e%2e/b.npy",
        "http://olmo-data.org",
        "http://olmo-data.org/",
        "http://olmo-data.org/dir/",
        "/no/host.npy",
    ]:
        with pytest.raises(ValueError, match=re.escape(bad)):
            local_path_for(bad, tmp_path)


def test_train_config_shards_download_and_localize(server: Server, tmp_path: Path) -> None:
    """A config's URLs (repeats once), split over two shards, mirrored, and a localized config
    whose paths are the mirrored files; a local path stays local; localizing before the download is
    an error naming the file."""
    urls = [server.publish(f"pre/part-{i}.npy", 4096)[0] for i in range(3)]
    local = tmp_path / "own" / "part-x.npy"
    local.parent.mkdir()
    local.write_bytes(b"\0" * 4096)
    cfg = {
        "global_train_batch_size": 2,
        "model": {"max_sequence_length": 8},
        "data": {"paths": [*urls, urls[0], str(local)], "seed": 1},
    }
    src = tmp_path / "cfg.yaml"
    src.write_text(yaml.safe_dump(cfg))
    assert config_urls(src) == urls
    assert shard_of(urls, 1, 2) == [urls[1]]
    with pytest.raises(ValueError, match="shard 2 not in"):
        shard_of(urls, 2, 2)
    root, out = tmp_path / "mirror", tmp_path / "run" / "local.yaml"
    with pytest.raises(DataError, match="not downloaded yet"):
        localize_train_config(src, root, out)
    got = [download_train_config(src, root, shard=k, num_shards=2, progress=False) for k in (0, 1)]
    assert got == [
        [local_path_for(urls[0], root), local_path_for(urls[2], root)],
        [local_path_for(urls[1], root)],
    ]
    manifest = tmp_path / "m.tsv"
    download_train_config(src, root, out, shard=1, num_shards=2, manifest=manifest, progress=False)
    assert manifest.read_text().splitlines()[1].split("\t")[::2] == [urls[1], "4096"]
    paths = [(out.parent / p).resolve() for p in load_train_config(out).paths]  # relative to out
    assert paths == [local_path_for(u, root).resolve() for u in [*urls, urls[0]]] + [local.resolve()]
    assert paths[1].read_bytes() == (server.root / "pre" / "part-1.npy").read_bytes()
