"""Decode: batches in OLMo's order, paper-format text, integrity checks on the inputs."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from intervene.data_order import build_data_order, read_manifest
from intervene.decode import decode_group, group_batches, group_name, split_documents
from intervene.doc_info import write_group_doc_info
from intervene.olmo import DataError, InstanceReader, load_train_config
from intervene.textio import read_jsonl_gz
from intervene.tokenizer import TokenizerError


def test_group_naming_and_window():
    assert group_name(0) == "001" and group_name(12) == "013"
    assert list(group_batches(1, 10)) == list(range(10, 20))
    assert list(group_batches(1, 10, first=15, last=18)) == [15, 16, 17]
    assert list(group_batches(0, 10, first=15)) == []


def test_split_documents_paper_rule():
    E = "<E>"
    assert split_documents(["a<E>", "<E>b"], E) == ["a", "", "b"]
    assert split_documents(["a<E><E>b", "c"], E) == ["a", "b", "c"]
    assert split_documents(["<E>a", "b<E>"], E) == ["", "a", "b", ""]


def test_data_order_manifest(small_world, small_data):
    cfg = load_train_config(small_world / "train_config.yaml")
    rows = read_manifest(small_data["manifest"])
    assert [p for p, _ in rows] == [str(small_world / p) for p in cfg.paths]
    assert [b for _, b in rows] == [(small_world / p).stat().st_size for p in cfg.paths]
    reader = InstanceReader([p for p, _ in rows], cfg.dtype, cfg.seq_len)
    assert small_data["n"] == reader.num_instances  # world size 1: nothing dropped


@pytest.fixture(scope="module")
def decoded(small_world, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("dec") / "001"
    decode_group(
        small_world / "train_config.yaml",
        small_data["order"],
        small_world / "tokenizer",
        out,
        range(0, 12),
        manifest=small_data["manifest"],
    )
    return out


def test_decoded_tokens_follow_the_data_order(small_world, small_data, decoded):
    cfg = load_train_config(small_world / "train_config.yaml")
    order = np.fromfile(small_data["order"], dtype=np.uint32)
    reader = InstanceReader([small_world / p for p in cfg.paths], cfg.dtype, cfg.seq_len)
    G = cfg.global_batch_size
    for b in (0, 5, 11):
        arr = np.load(decoded / f"{b}.npy")
        assert arr.dtype == np.uint32 and arr.shape == (G, cfg.seq_len)
        for r, inst in enumerate(order[b * G : (b + 1) * G]):
            # independent path: slice the raw file by hand
            k = int(np.searchsorted(np.cumsum(reader.counts), inst, side="right"))
            j = int(inst - reader.starts[k])
            raw = np.fromfile(small_world / cfg.paths[k], dtype=np.uint32)
            np.testing.assert_array_equal(arr[r], raw[j * cfg.seq_len : (j + 1) * cfg.seq_len])
    assert sorted(p.name for p in decoded.iterdir()) == sorted(
        [f"{b}.npy" for b in range(12)] + [f"{b}.json.gz" for b in range(12)] + ["manifest.tsv"]
    )


def test_decoded_text_is_the_paper_format(small_world, decoded):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(small_world / "tokenizer"))
    for b in (0, 7):
        arr = np.load(decoded / f"{b}.npy")
        texts = [tok.decode(seq.tolist(), skip_special_tokens=False) for seq in arr]
        docs = (
            "<|endoftext|>".join(texts).replace("<|endoftext|>" * 2, "<|endoftext|>").split("<|endoftext|>")
        )
        raw = gzip.decompress((decoded / f"{b}.json.gz").read_bytes())
        assert raw == "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()


def test_decode_is_deterministic(small_world, small_data, decoded, tmp_path):
    out = tmp_path / "001"
    decode_group(
        small_world / "train_config.yaml", small_data["order"], small_world / "tokenizer", out, range(0, 12)
    )
    for p in decoded.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes(), p.name


def test_doc_info_lines_up_with_every_decoded_batch(small_world, small_data, tmp_path):
    """On the whole small world (split EOS strings, long documents, non-ASCII): rows == lines."""
    cfg = load_train_config(small_world / "train_config.yaml")
    n_batches = small_data["n"] // cfg.global_batch_size
    out = tmp_path / "all"
    decode_group(
        small_world / "train_config.yaml",
        small_data["order"],
        small_world / "tokenizer",
        out,
        range(n_batches),
    )
    rows = write_group_doc_info(out, small_world / "tokenizer", tmp_path / "di.npy", check_text=True)
    assert np.load(tmp_path / "di.npy").tolist() == rows.tolist()
    assert set(rows[:, 0].tolist()) == set(range(n_batches))


# ---- bad input: clear errors, nothing half-written ----


def _copy_world(small_world, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(small_world, w)
    return w


def test_truncated_token_file_is_detected(small_world, tmp_path):
    w = _copy_world(small_world, tmp_path)
    build_data_order(w / "train_config.yaml", tmp_path / "gi.npy", tmp_path / "files.tsv")
    victim = w / "data" / "part-001.npy"
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size - 64 * 4 * 3)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"part-001\.npy.*built for"):
        decode_group(
            w / "train_config.yaml",
            tmp_path / "gi.npy",
            w / "tokenizer",
            out,
            range(2),
            manifest=tmp_path / "files.tsv",
        )
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size - 2)
    with pytest.raises(DataError, match=r"part-001\.npy.*whole number"):
        decode_group(w / "train_config.yaml", tmp_path / "gi.npy", w / "tokenizer", out, range(2))
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_global_indices_of_other_data_is_rejected(small_world, small_data, tmp_path):
    bad = tmp_path / "gi.npy"
    np.fromfile(small_data["order"], dtype=np.uint32)[:-8].tofile(bad)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"gi\.npy: holds .* indices"):
        decode_group(small_world / "train_config.yaml", bad, small_world / "tokenizer", out, range(2))
    (tmp_path / "odd.npy").write_bytes(b"\x00" * 7)
    with pytest.raises(DataError, match="whole number of uint32"):
        decode_group(
            small_world / "train_config.yaml", tmp_path / "odd.npy", small_world / "tokenizer", out, range(2)
        )
    assert not out.exists()


def test_missing_tokenizer_is_a_clear_error(small_world, small_data, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TokenizerError, match="no-such-tokenizer"):
        decode_group(
            small_world / "train_config.yaml",
            small_data["order"],
            tmp_path / "no-such-tokenizer",
            out,
            range(2),
        )
    assert not out.exists()


def test_corrupt_text_file_fails_the_doc_info_check(small_world, decoded, tmp_path):
    g = tmp_path / "001"
    shutil.copytree(decoded, g)
    data = (g / "3.json.gz").read_bytes()
    (g / "3.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"3\.json\.gz: corrupt or truncated gzip"):
        read_jsonl_gz(g / "3.json.gz")
    out = tmp_path / "di.npy"
    with pytest.raises(ValueError, match=r"3\.json\.gz"):
        write_group_doc_info(g, small_world / "tokenizer", out, check_text=True)
    assert not out.exists()


def test_corrupt_token_batch_is_a_clear_error(small_world, decoded, tmp_path):
    g = tmp_path / "001"
    shutil.copytree(decoded, g)
    (g / "2.npy").write_bytes(b"garbage")
    out = tmp_path / "di.npy"
    with pytest.raises(ValueError, match=r"2\.npy"):
        write_group_doc_info(g, small_world / "tokenizer", out)
    assert not out.exists()


def test_cli_reports_bad_input_in_one_line(small_world, small_data, tmp_path):
    from intervene.cli import main

    out = tmp_path / "009"
    args = [
        "decode",
        "--train-config",
        str(small_world / "train_config.yaml"),
        "--order",
        str(small_data["order"]),
        "--tokenizer",
        str(small_world / "tokenizer"),
        "--out",
        str(out),
        "--quiet",
    ]
    assert main([*args, "--group", "9", "--batches-per-group", "10", "--last-batch", "30"]) == 1
    assert main([*args, "--batches", "0:999"]) == 1  # beyond the data order
    assert not out.exists()
    assert main([*args, "--batches", "0:2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "0.json.gz",
        "0.npy",
        "1.json.gz",
        "1.npy",
        "manifest.tsv",
    ]


def test_fast_decode_equals_transformers_batch_decode(small_world, decoded):
    from transformers import AutoTokenizer

    from intervene.tokenizer import decode_batch

    tok = AutoTokenizer.from_pretrained(str(small_world / "tokenizer"))
    rows = np.concatenate([np.load(decoded / f"{b}.npy") for b in range(12)]).tolist()
    assert decode_batch(tok, rows) == tok.batch_decode(rows, skip_special_tokens=False)
    tok.clean_up_tokenization_spaces = True  # the clean-up path too
    rows = [tok.encode("a , b . c 's", add_special_tokens=False)] + rows[:5]
    assert decode_batch(tok, rows) == tok.batch_decode(rows, skip_special_tokens=False)
