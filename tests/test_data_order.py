"""The data-order stage (intervene.data_order): global_indices.npy from the token files' sizes and
the config's seed, its manifest of files, and the checks that the files are still the ones it was
built for. OLMo's semantics (SPEC "Data order"): N = sum of floor(tokens / L) over the files as
listed (duplicates included, trailing tokens ignored); arange(N, uint32) shuffled by
PCG64(seed + epoch); with drop_last truncated to a multiple of the world size, else padded by
repeating the head; saved raw uint32 without a header."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from intervene import data_order
from intervene.data_order import (
    MANIFEST_HEADER,
    build_data_order,
    check_data_files,
    data_files,
    file_sizes,
    load_order,
    read_manifest,
)
from intervene.olmo import DataError, load_train_config
from tests.test_olmo import _olmo_reference

L = 8  # tokens per instance


def _config(tmp_path, paths, *, seed=11, epoch=0, drop_last=True, dtype="uint16"):
    cfg = {
        "global_train_batch_size": 4,
        "epoch": epoch,
        "model": {"max_sequence_length": L},
        "data": {"paths": paths, "seed": seed, "drop_last": drop_last, "memmap_dtype": dtype},
    }
    p = tmp_path / "cfg" / "train.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture()
def files(tmp_path):
    """Three raw uint16 token files of 5, 3 (+ 5 trailing tokens) and 7 instances of L tokens."""
    d = tmp_path / "cfg" / "data"
    d.mkdir(parents=True)
    out = {}
    for name, tokens in [("a.npy", 5 * L), ("b.npy", 3 * L + 5), ("c.npy", 7 * L)]:
        np.arange(tokens, dtype=np.uint16).tofile(d / name)
        out[name] = d / name
    return out


def test_order_is_olmos_over_the_files_as_listed(tmp_path, files):
    """Relative paths resolve against the config's folder; a file listed twice counts twice."""
    cfg = _config(tmp_path, ["data/a.npy", "data/b.npy", str(files["c.npy"]), "data/a.npy"], seed=11, epoch=2)
    order = build_data_order(cfg, tmp_path / "gi.npy", tmp_path / "files.tsv")
    n = 5 + 3 + 7 + 5
    raw = np.fromfile(tmp_path / "gi.npy", dtype=np.uint32)
    assert (tmp_path / "gi.npy").stat().st_size == 4 * n  # raw uint32, no header
    np.testing.assert_array_equal(raw, _olmo_reference(n, 11, 2, 1, True))
    np.testing.assert_array_equal(np.asarray(order), raw)
    rows = [ln.split("\t") for ln in (tmp_path / "files.tsv").read_text().splitlines()]
    assert rows[0] == MANIFEST_HEADER.split("\t")
    want = [
        ["0", str(files["a.npy"]), str(5 * L * 2), "5", "0"],
        ["1", str(files["b.npy"]), str((3 * L + 5) * 2), "3", "5"],
        ["2", str(files["c.npy"]), str(7 * L * 2), "7", "8"],
        ["3", str(files["a.npy"]), str(5 * L * 2), "5", "15"],
    ]
    assert rows[1:] == want
    assert read_manifest(tmp_path / "files.tsv") == [(r[1], int(r[2])) for r in want]


@pytest.mark.parametrize("drop_last,world_size", [(True, 4), (False, 4), (True, 1), (False, 3)])
def test_world_size_truncates_or_pads(tmp_path, files, drop_last, world_size):
    cfg = _config(tmp_path, ["data/a.npy", "data/b.npy", "data/c.npy"], seed=3, drop_last=drop_last)
    build_data_order(cfg, tmp_path / "gi.npy", tmp_path / "files.tsv", world_size=world_size)
    raw = np.fromfile(tmp_path / "gi.npy", dtype=np.uint32)
    np.testing.assert_array_equal(raw, _olmo_reference(15, 3, 0, world_size, drop_last))
    assert len(raw) % world_size == 0
    assert len(raw) == (15 // world_size * world_size if drop_last else -(-15 // world_size) * world_size)
    loaded = load_order(tmp_path / "gi.npy", 15, world_size, drop_last)
    np.testing.assert_array_equal(loaded, raw)


def test_seed_changes_the_order(tmp_path, files):
    a = build_data_order(_config(tmp_path, ["data/c.npy"], seed=1), tmp_path / "1.npy", tmp_path / "1.tsv")
    b = build_data_order(_config(tmp_path, ["data/c.npy"], seed=2), tmp_path / "2.npy", tmp_path / "2.tsv")
    assert sorted(a.tolist()) == sorted(b.tolist()) == list(range(7)) and a.tolist() != b.tolist()


def test_load_order_refuses_an_order_of_other_data(tmp_path, files):
    build_data_order(_config(tmp_path, ["data/a.npy", "data/c.npy"]), tmp_path / "gi.npy", tmp_path / "f.tsv")
    with pytest.raises(DataError, match=r"holds 12 indices, but the config's token files give 13"):
        load_order(tmp_path / "gi.npy", 13, 1, True)
    (tmp_path / "odd.npy").write_bytes(b"\0" * 6)
    with pytest.raises(DataError, match="not a whole number of uint32"):
        load_order(tmp_path / "odd.npy", 1, 1, True)
    with pytest.raises(DataError, match="global indices file not found"):
        load_order(tmp_path / "none.npy", 1, 1, True)


def test_check_data_files_against_the_manifest(tmp_path, files):
    cfg = _config(tmp_path, ["data/a.npy", "data/b.npy"])
    build_data_order(cfg, tmp_path / "gi.npy", tmp_path / "f.tsv")
    spec = load_train_config(cfg)
    paths = data_files(spec)
    check_data_files(spec, paths, tmp_path / "f.tsv")  # unchanged: accepted
    with open(files["b.npy"], "ab") as fh:  # one more token: the same instance count, another file
        fh.write(b"\0\0")
    with pytest.raises(DataError, match=r"b\.npy: 60 bytes, but the data order was built for 58 bytes"):
        check_data_files(spec, paths, tmp_path / "f.tsv")
    check_data_files(spec, paths, None)  # without a manifest only whole tokens are checked
    with open(files["b.npy"], "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match=r"b\.npy: 61 bytes is not a whole number of uint16 tokens"):
        check_data_files(spec, paths, None)
    files["a.npy"].unlink()
    with pytest.raises(DataError, match=r"a\.npy: token file not found"):
        check_data_files(spec, paths, None)
    with pytest.raises(DataError, match=r"a\.npy: token file not found"):
        build_data_order(cfg, tmp_path / "gi2.npy", tmp_path / "f2.tsv")
    assert not (tmp_path / "gi2.npy").exists()


def test_read_manifest_errors_name_the_file(tmp_path):
    p = tmp_path / "f.tsv"
    with pytest.raises(DataError, match="data-order manifest not found"):
        read_manifest(p)
    p.write_text("path\tbytes\n")
    with pytest.raises(DataError, match=r"f\.tsv: not a data-order manifest"):
        read_manifest(p)
    p.write_text(MANIFEST_HEADER + "\n0\ta.npy\t10\t1\n")
    with pytest.raises(DataError, match=r"f\.tsv:2: expected 5 tab-separated fields"):
        read_manifest(p)


def test_urls_are_sized_once_each_with_a_head(tmp_path, files, monkeypatch):
    """URL paths stay URLs; each distinct URL is asked for its size once (the OLMo 2 list repeats
    files); local paths are stat'ed."""
    import intervene.download

    asked = []
    sizes = {"http://h/x.npy": 4 * L * 2, "https://h/y.npy": 2 * L * 2 + 1}

    def fake_remote_size(url, session=None, timeout=60):
        asked.append(url)
        return sizes[url]

    monkeypatch.setattr(intervene.download, "remote_size", fake_remote_size)
    urls = ["http://h/x.npy", "https://h/y.npy", "http://h/x.npy"]
    spec = load_train_config(_config(tmp_path, [*urls, "data/a.npy"]))
    paths = data_files(spec)
    assert paths == [*urls, str(files["a.npy"])]
    assert file_sizes(paths) == [sizes[urls[0]], sizes[urls[1]], sizes[urls[0]], 5 * L * 2]
    assert asked == urls[:2]
    assert data_order.is_url("https://h/y.npy") and not data_order.is_url("data/http.npy")
    order = build_data_order(
        _config(tmp_path, [*urls, "data/a.npy"]), tmp_path / "gi.npy", tmp_path / "f.tsv"
    )
    assert len(order) == 4 + 2 + 4 + 5
