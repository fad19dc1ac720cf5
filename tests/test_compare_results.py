"""Byte comparison of result trees: one changed byte, a missing or an extra file is a listed
difference and exit 1; the excluded paths and JSON keys are not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from intervene.compare_results import (
    JSON_WITHOUT,
    compare_results,
    digest_tree,
    excluded,
    format_digest,
    read_digest,
)


@pytest.fixture()
def tree(tmp_path):
    """A small results-like tree: arrays, JSON, gzip-free text, a nested run folder."""
    r = tmp_path / "a"
    (r / "data" / "batches" / "001").mkdir(parents=True)
    np.save(r / "data" / "batches" / "001" / "0.npy", np.arange(64, dtype=np.uint32).reshape(4, 16))
    (r / "data" / "batches" / "001" / "manifest.tsv").write_text("name\tbytes\n0.npy\t384\n")
    (r / "train" / "original").mkdir(parents=True)
    (r / "train" / "original" / "summary.json").write_text(
        json.dumps({"final_step": 40, "checkpoints": [0, 40]})
    )
    (r / "train" / "original" / "metrics.jsonl").write_text(
        '{"step": 1, "ce_loss": 7.5}\n{"step": 2, "ce_loss": 7.4}\n'
    )
    (r / "report").mkdir()
    (r / "report" / "headline.txt").write_text("rm_occ_200: -0.12\n")
    return r


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_identical_trees_and_digest_roundtrip(tree, tmp_path):
    b = _copy(tree, tmp_path / "b")
    assert compare_results(tree, b) == []
    d = tmp_path / "before.tsv"
    d.write_text(format_digest(digest_tree(tree)))
    assert read_digest(d) == digest_tree(b)
    assert compare_results(d, b) == [] and compare_results(b, d) == []
    assert len(read_digest(d)) == 5


def test_one_changed_byte_is_a_difference(tree, tmp_path):
    b = _copy(tree, tmp_path / "b")
    d = tmp_path / "before.tsv"
    d.write_text(format_digest(digest_tree(tree)))
    f = b / "data" / "batches" / "001" / "0.npy"
    raw = bytearray(f.read_bytes())
    raw[200] ^= 1
    f.write_bytes(bytes(raw))
    diffs = compare_results(tree, b)
    assert diffs == ["differs\tdata/batches/001/0.npy\t(same size (384 bytes), first difference at byte 200)"]
    assert [x.split("\t")[:2] for x in compare_results(d, b)] == [["differs", "data/batches/001/0.npy"]]


def test_missing_and_extra_files_are_listed(tree, tmp_path):
    b = _copy(tree, tmp_path / "b")
    (b / "report" / "headline.txt").unlink()
    (b / "report" / "new.txt").write_text("x")
    (b / "train" / "original" / "summary.json").write_text('{"final_step": 40}')
    diffs = compare_results(tree, b)
    assert [d.split("\t")[:2] for d in diffs] == [
        ["missing", "report/headline.txt"],
        ["extra", "report/new.txt"],
        ["differs", "train/original/summary.json"],
    ]
    assert "bytes" in diffs[2] and "->" in diffs[2]


def test_excluded_paths_are_not_compared(tree, tmp_path):
    b = _copy(tree, tmp_path / "b")
    for rel in [
        "benchmarks/search/001.tsv",  # Snakemake benchmark: wall-clock seconds
        "data/batches/001/.snakemake_timestamp",
        ".snakemake/locks/0.input.lock",
        "train/original/.summary.json.tmp-123@host-0123abcd",
        "logs/train/original.log",
        "train/original/run.log",
        "x.lock",
    ]:
        (b / rel).parent.mkdir(parents=True, exist_ok=True)
        (b / rel).write_text("12.3 s on some-host\n")
        assert excluded(rel), rel
    assert compare_results(tree, b) == []
    assert not excluded("benchmarks_summary.tsv") and not excluded("eval/original/step0/metrics.json")


def test_excluded_json_keys_are_ignored_but_nothing_else(tree, tmp_path):
    a, b = _copy(tree, tmp_path / "a2"), _copy(tree, tmp_path / "b")
    for root, secs, host in [(a, 12.5, "n1"), (b, 99.0, "n2")]:
        doc = {"final_step": 40, "timing": {"seconds": secs, "hostname": host}, "runs": [{"elapsed": secs}]}
        (root / "train" / "original" / "summary.json").write_text(json.dumps(doc))
        lines = [{"step": 1, "timestamp": f"2026-01-0{int(secs) % 9 + 1}"}, {"step": 2}]
        (root / "train" / "original" / "metrics.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in lines)
        )
    assert compare_results(a, b) == []
    assert digest_tree(a)["train/original/summary.json"].compared == JSON_WITHOUT
    assert digest_tree(a)["report/headline.txt"].compared == "bytes"
    doc = json.loads((b / "train" / "original" / "summary.json").read_text())
    doc["final_step"] = 41  # a real field still counts
    (b / "train" / "original" / "summary.json").write_text(json.dumps(doc))
    assert [d.split("\t")[1] for d in compare_results(a, b)] == ["train/original/summary.json"]


def test_json_without_excluded_keys_is_compared_byte_for_byte(tree, tmp_path):
    """Reformatting a JSON file that holds no excluded key is a difference (same document)."""
    b = _copy(tree, tmp_path / "b")
    p = b / "train" / "original" / "summary.json"
    p.write_text(json.dumps(json.loads(p.read_text()), indent=1))
    assert [d.split("\t")[:2] for d in compare_results(tree, b)] == [
        ["differs", "train/original/summary.json"]
    ]


def test_bad_digest_file_is_one_line_error(tmp_path, tree):
    bad = tmp_path / "bad.tsv"
    bad.write_text("path\tbytes\n")
    with pytest.raises(ValueError, match="not a results digest"):
        compare_results(bad, tree)
    with pytest.raises(FileNotFoundError, match="neither a results folder nor a digest"):
        compare_results(tmp_path / "nope", tree)


def test_cli_digest_then_compare(tree, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "intervene.cli", *args], capture_output=True, text=True)

    r = cli("digest-results", str(tree))
    assert r.returncode == 0, r.stderr
    (tmp_path / "before.tsv").write_text(r.stdout)
    assert cli("compare-results", str(tmp_path / "before.tsv"), str(tree)).returncode == 0
    (tree / "report" / "headline.txt").write_text("rm_occ_200: -0.13\n")
    r = cli("compare-results", str(tmp_path / "before.tsv"), str(tree))
    assert r.returncode == 1
    assert r.stdout.startswith("differs\treport/headline.txt") and "1 files differ" in r.stderr
