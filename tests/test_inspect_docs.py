"""intervene top-docs: per instance its top-scoring window documents, with their text and location."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from intervene.cli import main
from intervene.inspect_docs import instance_info, ranked, read_top_docs, top_docs, write_top_docs
from intervene.manifest import write_manifest
from intervene.textio import write_jsonl_gz

PER_GROUP = 4
#: documents per batch 0..7 (groups 001: batches 0-3, 002: batches 4-7)
DOCS_PER_BATCH = [2, 3, 1, 2, 3, 2, 1, 2]


@pytest.fixture
def groups(tmp_path):
    """Two decoded groups with doc info; returns (folders, doc-info files, every document's facts in
    batch order: (group, group row, batch, seq, start, end, text))."""
    folders, infos, facts = [], [], []
    for g in range(2):
        name = f"{g + 1:03d}"
        d = tmp_path / "batches" / name
        d.mkdir(parents=True)
        rows = []
        for local in range(PER_GROUP):
            b = g * PER_GROUP + local
            texts = [f"doc of batch {b} number {i} ünï" for i in range(DOCS_PER_BATCH[b])]
            write_jsonl_gz(d / f"{b}.json.gz", texts)
            for i, t in enumerate(texts):
                seq, start = 10 * b + i, 3 * i + 1
                facts.append((name, len(rows), b, seq, start, start + 2 + i, t))
                rows.append((local, seq, start, start + 2 + i))
        write_manifest(d)
        info = tmp_path / "doc_info" / f"{name}.npy"
        info.parent.mkdir(exist_ok=True)
        np.save(info, np.array(rows, dtype=np.int64))
        folders.append(d)
        infos.append(info)
    return folders, infos, facts


def _window(facts, first, last):
    """Window columns -> (concatenated doc-info row, facts), computed from the fixture's layout."""
    groups = sorted({f[0] for f in facts if first <= f[2] < last})
    base = {g: sum(1 for f in facts if f[0] < g) for g in groups}
    base = {g: base[g] - base[groups[0]] for g in groups}
    return [(base[f[0]] + f[1], f) for f in facts if first <= f[2] < last]


def test_ranked_orders_by_score_then_lower_column_and_drops_zeros_and_low_scores():
    m = sp.csr_matrix(
        np.array([[0.0, 2.0, 5.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0], [3.0, -1.0, 0.5, 0, 3.0]])
    )
    assert ranked(m, 3) == [[(2, 5.0), (1, 2.0), (3, 2.0)], [], [(0, 3.0), (4, 3.0), (2, 0.5)]]
    assert ranked(m, 10, min_score=1.0) == [[(2, 5.0), (1, 2.0), (3, 2.0)], [], [(0, 3.0), (4, 3.0)]]
    assert ranked(m, 1) == [[(2, 5.0)], [], [(0, 3.0)]]


def test_top_docs_texts_and_locations_across_two_groups(groups, tmp_path):
    folders, infos, facts = groups
    first, last = 2, 6  # batches 2, 3 (group 001) and 4, 5 (group 002)
    cols = _window(facts, first, last)
    n = len(cols)
    dense = np.zeros((3, n))
    dense[0, [n - 1, 0, 4]] = [7.0, 7.0, 9.0]  # a tie between the last and the first column
    dense[1, 2] = 0.25
    m = sp.csr_matrix(dense)
    insts = [{"instance": i, "question": f"q{i}", "answer": f"a{i}"} for i in (5, 9, 11)]
    recs = list(top_docs(m, group_dirs=folders, doc_info=infos, first=first, last=last, instances=insts, k=2))
    assert [r["instance"] for r in recs] == [5, 9, 11]
    assert [d["doc"] for d in recs[0]["docs"]] == [4, 0]  # 9 first; of the tied 7s the lower column
    assert [d["rank"] for d in recs[0]["docs"]] == [1, 2]
    assert recs[2]["docs"] == []
    for i, rec in enumerate(recs):
        for d in rec["docs"]:
            row, (group, group_row, b, seq, start, end, text) = cols[d["doc"]]
            assert (d["row"], d["group"], d["group_row"], d["batch"]) == (row, group, group_row, b)
            assert (d["seq"], d["start"], d["end"], d["text"]) == (seq, start, end, text)
            assert d["score"] == dense[i, d["doc"]]
    assert recs[0]["docs"][0]["group"] == "002" and recs[0]["docs"][1]["group"] == "001"


def test_top_docs_refuses_a_matrix_of_another_window_or_instance_count(groups):
    folders, infos, facts = groups
    n = len(_window(facts, 2, 6))
    insts = [{"instance": 0, "question": "q", "answer": "a"}]
    with pytest.raises(ValueError, match=r"documents, the window \[2, 6\) has"):
        list(
            top_docs(
                sp.csr_matrix((1, n + 1)),
                group_dirs=folders,
                doc_info=infos,
                first=2,
                last=6,
                instances=insts,
            )
        )
    with pytest.raises(ValueError, match="2 rows, but 1 instances"):
        list(
            top_docs(
                sp.csr_matrix((2, n)), group_dirs=folders, doc_info=infos, first=2, last=6, instances=insts
            )
        )


def test_export_is_deterministic_readable_jsonl(groups, tmp_path):
    folders, infos, facts = groups
    n = len(_window(facts, 0, 3))
    rng = np.random.default_rng(0)
    m = sp.random(4, n, density=0.5, random_state=rng, format="csr")
    insts = [{"instance": i, "question": "Wo? ä", "answer": "Öithland"} for i in range(4)]
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        write_top_docs(
            tmp_path / name,
            top_docs(m, group_dirs=folders[:1], doc_info=infos[:1], first=0, last=3, instances=insts, k=3),
        )
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert "Öithland".encode() in outs[0]  # UTF-8, not \\u escapes
    recs = read_top_docs(tmp_path / "a.jsonl")
    assert len(recs) == 4 and all(len(r["docs"]) <= 3 for r in recs)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_read_top_docs_names_a_bad_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"instance": 1, "question": "q", "answer": "a", "docs": []}\n{"instance": 2}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2: not a top-docs record"):
        read_top_docs(p)


def test_instance_info_and_cli_on_the_small_world(small_world, groups, tmp_path):
    import datasets

    ds = datasets.load_from_disk(str(small_world / "eval" / "pararel_patterns_p27"))["train"]
    n17 = len(datasets.load_from_disk(str(small_world / "eval" / "pararel_patterns_p17"))["train"])
    info = instance_info(["pararel_p17", "pararel_p27"], {"pararel": str(small_world / "eval")}, [n17 + 1, 0])
    assert info[0]["question"] == ds[1]["question"] and info[0]["answer"] == ds[1]["object"].strip()
    assert (info[0]["instance"], info[0]["dataset"], info[1]["task"]) == (n17 + 1, "p27", "pararel_p17")

    folders, infos, facts = groups
    n = len(_window(facts, 4, 8))
    m = sp.csr_matrix(np.arange(n17 * n, dtype=float).reshape(n17, n) % 5)
    sp.save_npz(tmp_path / "scores.npz", m)
    out = tmp_path / "top.jsonl"
    argv = ["top-docs", "--scores", str(tmp_path / "scores.npz"), "--group-dirs", str(folders[1])]
    argv += ["--doc-info", str(infos[1]), "--first", "4", "--last", "8", "--tasks", "pararel_p17"]
    argv += ["--pararel", str(small_world / "eval"), "--k", "2", "--min-score", "3", "--out", str(out)]
    assert main(argv) == 0
    recs = read_top_docs(out)
    assert [r["instance"] for r in recs] == list(range(n17))
    for r, row in zip(recs, m.toarray(), strict=True):
        want = [c for c in np.lexsort((np.arange(n), -row)) if row[c] > 3][:2]
        assert [d["doc"] for d in r["docs"]] == want
    assert json.loads(out.read_text().splitlines()[0])["docs"][0]["group"] == "002"


def test_workflow_args_of_the_inspect_rules():
    import shlex

    from intervene import inspect_workflow as iw

    config = {
        "train": {"save_interval": 40},
        "decode": {"batches_per_group": 100, "first_batch": 0, "last_batch": 400},
        "eval": {"tasks": ["sciq"], "sources": {"sciq": "data/sci q"}},
        "interventions": {
            "m": {"strategy": "bm25_mapping", "checkpoint": 200, "datasets": ["sciq"]},
            "r": {"strategy": "rm_coocc", "checkpoint": 200},
        },
    }
    assert iw.targets(config) == [] and not iw.relevance_enabled(config)
    config["inspect"] = {"top_docs": {"sides": ["target", "source"], "k": 3}}
    assert iw.targets(config) == [
        "results/inspect/m/top_docs_target.jsonl",
        "results/inspect/m/top_docs_source.jsonl",
    ]
    config["inspect"]["relevance"] = {"enabled": True, "model": "x"}
    assert iw.targets(config)[2:] == [
        "results/inspect/m/relevance_target.json",
        "results/inspect/m/relevance_source.json",
    ]
    assert shlex.split(iw.instance_args(config, "m")) == [
        "--tasks", "sciq", "--sciq", "data/sci q", "--instances",
        "results/eval/original/learned_step200.npz", "--datasets", "sciq",
    ]  # fmt: skip
    assert json.loads(shlex.split(iw.settings_word(config, "top_docs"))[0]) == {
        "k": 3,
        "min_score": None,
        "sides": ["target", "source"],
    }
    rel = json.loads(shlex.split(iw.settings_word(config, "relevance"))[0])
    assert rel["model"] == "x" and rel["api_key_env"] == "OPENAI_API_KEY"
    assert (iw.window(config, "m", "target"), iw.window(config, "m", "source")) == ("160 200", "200 240")
    assert iw.side_files(config, "b/{group}", "m", "source") == ["b/003"]
