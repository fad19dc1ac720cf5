"""``intervene inspect``: a step's instances and documents against what decode and doc info write
for that batch, side-car ids against the toy world's own document table, the inverse look-up against
the forward one, and the output formats."""

from __future__ import annotations

import gzip
import html
import json
from collections import defaultdict

import numpy as np
import pytest

from intervene.inspect_steps import (
    RunData,
    cached_sidecar,
    document_steps,
    inspect_steps,
    read_sidecar,
    render,
)
from intervene.olmo import DataError


@pytest.fixture(scope="module")
def run(small_world, small_data):
    return RunData(
        small_world / "train_config.yaml",
        small_data["order"],
        small_data["manifest"],
        tokenizer=small_world / "tokenizer",
    )


@pytest.fixture(scope="module")
def decoded_all(small_world, small_data, tmp_path_factory, run):
    from intervene.decode import decode_group

    out = tmp_path_factory.mktemp("inspect") / "all"
    decode_group(
        small_world / "train_config.yaml",
        small_data["order"],
        small_world / "tokenizer",
        out,
        range(run.num_batches),
        manifest=small_data["manifest"],
    )
    return out


@pytest.fixture(scope="module")
def forward(run):
    """Every step of the small world, whole texts."""
    return {s: run.inspect_step(s, preview_chars=None) for s in range(1, run.num_batches + 1)}


@pytest.fixture(scope="module")
def world_docs(small_world):
    """The toy world's own table: doc_id -> (file, start, end)."""
    lines = gzip.decompress((small_world / "documents.tsv.gz").read_bytes()).decode().splitlines()
    out = {}
    for ln in lines[1:]:
        f = ln.split("\t")
        out[f[0]] = (f"data/{f[1]}", int(f[2]), int(f[3]))
    return out


def test_a_step_is_what_decode_and_doc_info_write(small_world, run, decoded_all, forward):
    from intervene.doc_info import batch_doc_info
    from intervene.textio import read_jsonl_gz
    from intervene.tokenizer import load_tokenizer, split_eos_pattern

    tok = load_tokenizer(small_world / "tokenizer")
    pat = split_eos_pattern(tok)
    n_docs = n_split_adjacent = 0
    for step, recs in forward.items():
        b = step - 1
        batch = np.load(decoded_all / f"{b}.npy")
        assert [r["row"] for r in recs] == list(range(run.gbs))
        assert [r["instance"] for r in recs] == run.order[b * run.gbs : step * run.gbs].tolist()
        for r in recs:  # the file and offset hold the instance decode wrote for this row
            f = np.memmap(small_world / r["file"], dtype=np.uint32, mode="r")
            assert np.array_equal(f[r["offset"] : r["offset"] + run.L], batch[r["row"]])
        # documents: doc info's rows whose decoded line is not empty, in order, with that line's text
        rows = batch_doc_info(batch, b, pat, tok)
        lines = read_jsonl_gz(decoded_all / f"{b}.json.gz")
        assert len(rows) == len(lines)
        want = [
            (int(s), int(a), int(e) + 1, t) for (_, s, a, e), t in zip(rows, lines, strict=True) if t != ""
        ]
        got = [(r["row"], d["start"], d["end"], d["preview"]) for r in recs for d in r["documents"]]
        assert [w[:3] for w in want] == [g[:3] for g in got]
        for (s, a, e, line), (_, _, _, text) in zip(want, got, strict=True):
            assert not text.endswith("…")
            n_docs += 1
            if text != line:
                # an EOS string tokenized as text: its window's edge tokens may carry neighbouring
                # characters that decode's string split keeps in the line
                assert text in line
                eos_adjacent = (
                    batch[s, max(0, a - 1)] == pat.eos_id and batch[s, min(run.L - 1, e)] == pat.eos_id
                )
                assert not eos_adjacent
                n_split_adjacent += 1
    assert n_docs > 500
    assert n_split_adjacent < n_docs / 50


def test_sidecar_ids_are_the_worlds_documents(run, forward, world_docs, small_world, small_data):
    """Each document's side-car id names the toy world's document holding its tokens; without the
    side-cars, the EOS scan finds the same spans."""
    bare = RunData(
        small_world / "train_config.yaml",
        small_data["order"],
        tokenizer=small_world / "tokenizer",
        sidecars=False,
    )
    n = 0
    for step, recs in forward.items():
        for r, r0 in zip(recs, bare.inspect_step(step, preview_chars=10), strict=True):
            assert len(r["documents"]) == len(r0["documents"])
            for d, d0 in zip(r["documents"], r0["documents"], strict=True):
                f, start, end = world_docs[d["id"]]
                assert (r["file"], d["doc_start"], d["doc_end"]) == (f, start, end)
                assert start <= r["offset"] + d["start"] < r["offset"] + d["end"] <= end
                assert (d0["doc_start"], d0["doc_end"]) == (start, end)
                assert d0["id"] == f"{f}@{start}" and d0["sidecar_row"] == -1
                n += 1
    assert n > 500


def test_where_a_document_appears_agrees_with_every_step(run, forward, world_docs):
    reads = defaultdict(set)  # id -> {(step, row)} from the forward look-up
    for step, recs in forward.items():
        for r in recs:
            for d in r["documents"]:
                reads[d["id"]].add((step, r["row"]))
    multi = [i for i, s in reads.items() if len({st for st, _ in s}) > 1 or len(s) > 1]
    assert multi  # documents read by several instances are among those checked
    never = [i for i in world_docs if i not in reads]
    assert never  # the spare instances' documents: read by no step
    ids = sorted(reads)[::5] + multi + never[:20]
    for i in ids:
        (doc,) = run.find_documents(i)
        hits = run.where(doc)
        assert {(h["step"], h["row"]) for h in hits} == reads.get(i, set()), i
        for h in hits:  # the reported tokens are the document's, in that instance
            assert h["instance"] == int(run.order[h["batch"] * run.gbs + h["row"]])
            assert 0 <= h["start"] < h["end"] <= run.L
        f, start, _ = world_docs[i]
        (by_at,) = run.find_documents(f"{f}@{start + doc['doc_tokens'] // 2}")
        assert by_at == doc


def test_document_steps_by_file_and_token_without_sidecars(small_world, small_data, world_docs, forward):
    reads = defaultdict(set)
    for step, recs in forward.items():
        for r in recs:
            for d in r["documents"]:
                reads[d["id"]].add(step)
    i = max(reads, key=lambda k: len(reads[k]))
    assert len(reads[i]) > 1
    f, start, end = world_docs[i]
    cfg, order = small_world / "train_config.yaml", small_data["order"]
    (d,) = document_steps(cfg, f"{f}@{end - 1}", order=order, sidecars=False)
    assert (d["id"], d["doc_start"], d["doc_end"], d["sidecar_row"]) == (f"{f}@{start}", start, end, -1)
    assert d["steps"] == sorted(reads[i])
    k = ["data/part-000.npy", "data/part-001.npy", "data/part-002.npy"].index(f)
    (by_index,) = document_steps(cfg, f"{k}@{start}", order=order)  # a file's index; the side-car's id
    assert by_index["id"] == i and by_index["reads"] == d["reads"]
    with pytest.raises(DataError, match="no such document id"):
        document_steps(cfg, "data/nope.npy@3", order=order)
    with pytest.raises(DataError, match="no such document id"):
        document_steps(cfg, "no-such-id", order=order)
    with pytest.raises(DataError, match="has a side-car"):
        document_steps(cfg, "17", order=order, sidecars=False)
    with pytest.raises(DataError, match="holds"):
        document_steps(cfg, f"{f}@{10**9}", order=order)


def test_the_order_can_be_built_instead_of_read(small_world, run):
    built = RunData(small_world / "train_config.yaml", tokenizer=small_world / "tokenizer")
    assert np.array_equal(np.asarray(built.order), np.asarray(run.order))
    assert built.inspect_step(4) == run.inspect_step(4)
    docs = [built.find_documents(str(i)) for i in (3, 150, 400)]
    for (d,) in docs:  # the in-memory order is scanned as the file is, and left as it was
        assert built.where(d) == run.where(d)
        assert built.where(d, chunk=7) == run.where(d, chunk=7)
    assert np.array_equal(np.asarray(built.order), np.asarray(run.order))


def test_previews_are_the_texts_first_characters(run, forward):
    short = run.inspect_step(7, preview_chars=12)
    for r, full in zip(short, forward[7], strict=True):
        for d, f in zip(r["documents"], full["documents"], strict=True):
            assert d["preview"] == f["preview"][:12]
            assert d["truncated"] == (len(f["preview"]) > 12)


def test_formats_escape_and_are_deterministic(small_world, small_data, tmp_path):
    rec = [
        {
            "step": 1,
            "row": 0,
            "instance": 5,
            "file": "a\tb.npy",
            "offset": 0,
            "documents": [
                {"start": 0, "end": 3, "tokens": 3, "id": "<x&y>", "doc_start": 0, "doc_end": 4,
                 "preview": '<script>"&\n\tz\\', "truncated": True}
            ],
        }
    ]  # fmt: skip
    page = render(rec, "html", "t<1>")
    assert "<script>" not in page and "<x&y>" not in page and "t<1>" not in page
    assert html.escape('<script>"&\n\tz\\…') in page
    tsv = render(rec, "tsv").splitlines()
    assert len(tsv) == 2 and tsv[1].split("\t")[3] == "a\\tb.npy"
    assert tsv[1].split("\t")[-1] == '<script>"&\\n\\tz\\\\…'
    assert json.loads(render(rec, "jsonl")) == rec[0]
    kw = dict(order=small_data["order"], tokenizer=small_world / "tokenizer")
    cfg = small_world / "train_config.yaml"
    for fmt in ("jsonl", "tsv", "html"):
        a = inspect_steps(cfg, 2, 3, out=tmp_path / f"a.{fmt}", **kw)
        b = inspect_steps(cfg, 2, 3, out=tmp_path / f"b.{fmt}", **kw)
        assert (
            (tmp_path / f"a.{fmt}").read_bytes()
            == (tmp_path / f"b.{fmt}").read_bytes()
            == a.encode()
            == b.encode()
        )
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [2] * 8 + [3] * 8


def test_cli_equals_the_function_and_fails_in_one_line(small_world, small_data, tmp_path, capsys, caplog):
    from intervene.cli import main

    base = [
        "inspect",
        "--train-config",
        str(small_world / "train_config.yaml"),
        "--order",
        str(small_data["order"]),
    ]
    tok = ["--tokenizer", str(small_world / "tokenizer")]
    assert main([*base, *tok, "--step", "5", "--out", str(tmp_path / "s.html")]) == 0
    want = inspect_steps(small_world / "train_config.yaml", 5, order=small_data["order"], tokenizer=small_world / "tokenizer", fmt="html")  # fmt: skip
    assert (tmp_path / "s.html").read_text() == want
    capsys.readouterr()
    assert main(["inspect-document", *base[1:], "--document", "17"]) == 0
    (d,) = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert d["id"] == "17" and d["steps"]
    caplog.clear()
    assert main([*base, *tok, "--step", "999", "--out", str(tmp_path / "x.tsv")]) == 1
    err = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(err) == 1 and err[0] == "step 999 out of range: the data order holds steps 1..31"
    assert not (tmp_path / "x.tsv").exists()
    with pytest.raises(SystemExit) as e:
        main([*base, "--step", "5"])  # no tokenizer
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([*base, *tok, "--step", "5", "--to-step", "4"])
    assert e.value.code == 2


def test_sidecar_reading_and_its_cache(small_world, tmp_path):
    src = small_world / "data" / "part-001.csv.gz"
    sc = read_sidecar(src)
    cache = tmp_path / "cache"
    first, again = cached_sidecar(src, cache), cached_sidecar(src, cache)
    assert isinstance(again.starts, np.memmap)
    for x in (first, again):
        assert np.array_equal(x.starts, sc.starts) and np.array_equal(x.ends, sc.ends)
        assert x.ids.tolist() == sc.ids.tolist()
    # dolma's own side-cars have no header row
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(gzip.compress(b'0,5,doc-a,s3://x/a.json.gz,0\n5,9,"doc,b",s3://x/a.json.gz,1\n'))
    p = read_sidecar(plain)
    assert p.ids.tolist() == ["doc-a", "doc,b"] and p.rows_of(np.array([0, 4, 5, 8, 9])).tolist() == [
        0,
        0,
        1,
        1,
        -1,
    ]
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"0,5,a,s,0\n9,7,b,s,1\n"))
    with pytest.raises(DataError, match=r"bad\.csv\.gz: row 2"):
        read_sidecar(bad)
    unsorted = tmp_path / "unsorted.csv.gz"
    unsorted.write_bytes(gzip.compress(b"5,9,a,s,0\n0,5,b,s,1\n"))
    with pytest.raises(DataError, match="not in file order"):
        read_sidecar(unsorted)
