"""The mapping script's options (create_doc_idx_mapping_from_scores.py): documents per instance
from the co-occurrence matrix, total matching with offset growth and its guard, the swap direction,
a source window before the target, and targets from an rm_coocc selection, on hand-computed
examples."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from intervene.cli import main
from intervene.config_check import ConfigError, check_config
from intervene.select.mapping import target_documents, top_docs
from intervene.select.stages import map_documents, target_instances

from .conftest import REPO

# target scores: 3 instances (labels rows 2, 3, 4) x the 6 documents of the target window
T = np.array(
    [
        [9, 8, 7, 6, 0, 0],
        [0, 9, 0, 0, 8, 7],
        [0, 0, 0, 0, 0, 9],
    ],
    dtype=float,
)


def paper_loop(scores, counts, total, shift, max_rounds=1000):
    """A transcription of the paper's loop (ties: lower column), for comparison."""
    scores = scores.toarray() if sp.issparse(scores) else scores
    offset = 0
    for _ in range(max_rounds):
        docs = set()
        for r, count in enumerate(counts):
            nz = [c for c in range(scores.shape[1]) if scores[r, c] != 0]
            nz.sort(key=lambda c: (-scores[r, c], c))
            docs |= set(nz[: min(len(nz), count + offset)])
        offset += shift
        if total is None or len(docs) >= total:
            return sorted(docs), offset - shift
    return None  # the paper would loop forever


def test_target_documents_by_hand():
    t = sp.csr_matrix(T)
    # per_inst 1: each row's best (row 1's 9 is document 1)
    assert target_documents(t, 1)[0].tolist() == [0, 1, 5]
    assert top_docs(t, 1).tolist() == [0, 1, 5]
    # co-occurrence counts 2, 3, 1: {0, 1} | {1, 4, 5} | {5}
    assert target_documents(t, np.array([2, 3, 1]))[0].tolist() == [0, 1, 4, 5]
    # matching a total of 5: offset 1 adds document 2 (row 0's third); a shift of 10 takes all
    docs, offset = target_documents(t, np.array([2, 3, 1]), 5, offset_shift=1)
    assert (docs.tolist(), offset) == ([0, 1, 2, 4, 5], 1)
    docs, offset = target_documents(t, np.array([2, 3, 1]), 5, offset_shift=10)
    assert (docs.tolist(), offset) == ([0, 1, 2, 3, 4, 5], 10)
    # reached at offset 0: no growth
    assert target_documents(t, 1, 3, offset_shift=1) == (pytest.approx(np.array([0, 1, 5])), 0)
    # the guard: 9 wanted, 6 scored: all of them, at the offset that first takes them all
    docs, offset = target_documents(t, 3, 9, offset_shift=1)
    assert (docs.tolist(), offset) == ([0, 1, 2, 3, 4, 5], 1)


@pytest.mark.parametrize("shift", [1, 3, 10])
def test_target_documents_equal_the_paper_loop(shift):
    rng = np.random.default_rng(shift)
    t = sp.random(8, 50, density=0.2, random_state=shift, format="csr")
    t.data = np.round(t.data * 4)  # ties
    counts = rng.integers(0, 4, 8)
    for total in (None, 5, 20, int((t.toarray() != 0).any(axis=0).sum())):
        docs, offset = target_documents(t, counts, total, offset_shift=shift)
        assert (docs.tolist(), offset) == paper_loop(t, counts, total, shift)


def _world(tmp_path):
    """Group 001: batches 0-3; documents 0-5 in batches 0-1, 6-13 in batches 2-3, all of 5 tokens;
    relations p17 (2 instances) and p27 (1) after two SciQ rows in the labels."""
    batches = tmp_path / "batches" / "001"
    batches.mkdir(parents=True)
    for b in range(4):
        (batches / f"{b}.npy").touch()
    info = np.array([[b, 0, 0, 4] for b in (0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)], dtype=np.int64)
    (tmp_path / "doc_info").mkdir()
    np.save(tmp_path / "doc_info" / "001.npy", info)
    labels = np.array(["sciq", "sciq", "p17", "p17", "p27"])
    np.savez(tmp_path / "learned.npz", dataset_labels=labels, learned_step=np.zeros(5, int), steps=[0])
    pair = tmp_path / "pair_doc" / "001"
    pair.mkdir(parents=True)
    p17 = np.zeros((2, 14))
    p17[0, [0, 1, 7]] = 1  # instance 2: documents 0, 1 (and 7, in the source window: not counted)
    p17[1, [1, 2, 3]] = [2, 1, 1]  # instance 3: 1, 2, 3
    p27 = np.zeros((1, 14))
    p27[0, 5] = 3  # instance 4: 5
    sp.save_npz(pair / "p17.npz", sp.csr_matrix(p17))
    sp.save_npz(pair / "p27.npz", sp.csr_matrix(p27))
    sp.save_npz(tmp_path / "t.npz", sp.csr_matrix(T))
    sp.save_npz(tmp_path / "s.npz", sp.csr_matrix((3, 8)))
    np.savez(tmp_path / "learned_step2.npz", inst_idxs=[2, 3, 4], dataset_labels=labels[2:])
    np.savez(
        tmp_path / "doc_idxs.npz",
        strategy=np.str_("rm_coocc"),
        orig_inst_idxs=[2, 3, 4],
        orig_idxs=[0],
        new_idxs=[],
        new_inst_idxs=[],
        extra_idxs=[],
    )
    return {
        "doc_info": [tmp_path / "doc_info" / "001.npy"],
        "group_dirs": [batches],
        "learned": tmp_path / "learned.npz",
        "pair_doc": [pair],
        "relations": ["p17", "p27"],
    }


def _map(tmp_path, w, out="m.npz", target=(0, 2), source=(2, 4), scores=("t", "s"), **kw):
    r = map_documents(
        tmp_path / f"{scores[0]}.npz",
        tmp_path / f"{scores[1]}.npz",
        doc_info=w["doc_info"],
        group_dirs=w["group_dirs"],
        target_window=target,
        source_window=source,
        per_inst=kw.pop("per_inst", 1),
        out=tmp_path / out,
        **kw,
    )
    z = np.load(tmp_path / out)
    return r, dict(zip(z["orig_idxs"].tolist(), z["new_idxs"].tolist(), strict=True)), z


def test_counts_from_cooccurrence_and_total_matching(tmp_path, caplog):
    w = _world(tmp_path)
    co = dict(instances=tmp_path / "learned_step2.npz", learned=w["learned"], pair_doc=w["pair_doc"])
    co["relations"] = w["relations"]
    # default: 1 per instance -> documents 0, 1, 5; all sources score 0: the first unused source
    # (12 .. 13 rows: 6..13) goes to the target scored by most instances first (1 and 5: two each)
    r, m, _ = _map(tmp_path, w)
    assert m == {1: 6, 5: 7, 0: 8} and r == {"mapped": 3, "total": 3, "offset": 0}
    # co-occurrence counts 2, 3, 1 (instance 2's document 7 is outside the target window)
    r, m, _ = _map(tmp_path, w, doc_counts="cooccurrence", **co)
    assert sorted(m) == [0, 1, 4, 5] and r["total"] == 5 and r["offset"] == 0
    # matching the total 5 (documents 0, 1, 2, 3, 5 co-occur): offset 1 adds document 2
    r, m, _ = _map(tmp_path, w, doc_counts="cooccurrence", match_total=True, offset_shift=1, **co)
    assert m == {1: 6, 5: 7, 0: 8, 2: 9, 4: 10} and r["offset"] == 1
    r, m, _ = _map(tmp_path, w, doc_counts="cooccurrence", match_total=True, **co)
    assert sorted(m) == [0, 1, 2, 3, 4, 5] and r["offset"] == 10
    # the guard: per_inst 3 x 3 instances = 9, but only 6 documents are scored
    with caplog.at_level(logging.WARNING):
        r, m, _ = _map(tmp_path, w, per_inst=3, match_total=True)
    assert len(m) == 6 and r["total"] == 9
    assert "6 target documents, short of the total 9" in caplog.text
    # the counts' instances must be the scores' rows, and ParaRel ones
    np.savez(tmp_path / "two.npz", inst_idxs=[2, 3], dataset_labels=["p17", "p17"])
    with pytest.raises(ValueError, match="2 target instances, but the target scores have 3 rows"):
        _map(tmp_path, w, doc_counts="cooccurrence", **{**co, "instances": tmp_path / "two.npz"})
    np.savez(tmp_path / "mcqa.npz", inst_idxs=[0, 3, 4], dataset_labels=["sciq", "p17", "p27"])
    with pytest.raises(ValueError, match="target instance 0 is no ParaRel instance"):
        _map(tmp_path, w, doc_counts="cooccurrence", **{**co, "instances": tmp_path / "mcqa.npz"})


def test_swap_direction_and_source_window_previous(tmp_path):
    w = _world(tmp_path)
    _, m, _ = _map(tmp_path, w)
    _, swapped, z = _map(tmp_path, w, out="sw.npz", swap_direction=True)
    # orig/new exchanged, windows too (rows by orig ascending; the paper's file lists the same
    # pairs by new ascending)
    assert z["orig_idxs"].tolist() == [6, 7, 8] and z["new_idxs"].tolist() == [1, 5, 0]
    assert swapped == {v: k for k, v in m.items()}
    assert z["orig_window"].tolist() == [2, 4] and z["new_window"].tolist() == [0, 2]
    # the source window before the target: target [2, 4) (8 documents), source [0, 2)
    sp.save_npz(tmp_path / "t2.npz", sp.csr_matrix(np.hstack([np.zeros((3, 2)), T])))
    sp.save_npz(tmp_path / "s2.npz", sp.csr_matrix((3, 6)))
    _, m2, z2 = _map(tmp_path, w, out="prev.npz", target=(2, 4), source=(0, 2), scores=("t2", "s2"))
    assert m2 == {9: 0, 13: 1, 8: 2} and z2["new_window"].tolist() == [0, 2]


def test_source_window_previous_in_the_layout_and_config_check():
    from intervene import layout
    from intervene.config_check import STRATEGY_OPTIONS
    from intervene.settings import InterventionConfig

    v = {"strategy": "bm25_mapping", "checkpoint": 200, "source_window": "previous"}
    cfg = {"interventions": {"m": v}, "train": {"save_interval": 40}, "decode": {"last_batch": 400}}
    assert layout.mapping_window(cfg, "m", "source") == (120, 160)
    assert layout.mapping_window(
        {**cfg, "interventions": {"m": {**v, "source_window": "next"}}}, "m", "source"
    ) == (
        200,
        240,
    )
    assert {"source_window", "target_selection", "doc_counts"} <= STRATEGY_OPTIONS["bm25_mapping"]
    assert "source_window" not in STRATEGY_OPTIONS["rm_coocc"]
    r = InterventionConfig.from_mapping(v, "interventions.m").resolved()
    assert r.source_window == "previous" and r.target_selection is None
    ms = InterventionConfig.from_mapping({**v, "match_total": True}, "interventions.m").map_settings
    assert ms.rule_dict() == {
        "per_inst": 10,
        "seed": 42,
        "shuffle_candidates": False,
        "swap_direction": False,
        "match_total": True,
    }
    assert "doc_counts" not in InterventionConfig.from_mapping(v, "x").map_settings.rule_dict()


def test_targets_from_an_rm_coocc_selection(tmp_path):
    w = _world(tmp_path)
    assert target_instances(tmp_path / "doc_idxs.npz").tolist() == [2, 3, 4]
    assert target_instances(tmp_path / "learned_step2.npz", ["p27"]).tolist() == [4]
    co = dict(learned=w["learned"], pair_doc=w["pair_doc"], relations=w["relations"])
    _, a, _ = _map(
        tmp_path, w, out="a.npz", doc_counts="cooccurrence", instances=tmp_path / "doc_idxs.npz", **co
    )
    _, b, _ = _map(
        tmp_path, w, out="b.npz", doc_counts="cooccurrence", instances=tmp_path / "learned_step2.npz", **co
    )
    assert a == b and sorted(a) == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="datasets applies to learned targets"):
        target_instances(tmp_path / "doc_idxs.npz", ["p17"])
    np.savez(tmp_path / "add.npz", strategy=np.str_("add_coocc"), orig_inst_idxs=[], new_inst_idxs=[2])
    with pytest.raises(ValueError, match="a add_coocc selection; mapping targets come from an rm_coocc one"):
        target_instances(tmp_path / "add.npz")


def test_cli_equals_function(tmp_path):
    w = _world(tmp_path)
    co = dict(learned=w["learned"], pair_doc=w["pair_doc"], relations=w["relations"])
    _map(
        tmp_path,
        w,
        out="f.npz",
        doc_counts="cooccurrence",
        match_total=True,
        offset_shift=1,
        swap_direction=True,
        instances=tmp_path / "doc_idxs.npz",
        **co,
    )
    argv = [
        "map-docs",
        "--target-scores",
        str(tmp_path / "t.npz"),
        "--source-scores",
        str(tmp_path / "s.npz"),
    ]
    argv += ["--group-dirs", str(w["group_dirs"][0]), "--doc-info", str(w["doc_info"][0])]
    argv += ["--target-window", "0", "2", "--source-window", "2", "4", "--out", str(tmp_path / "c.npz")]
    argv += [
        "--settings",
        '{"per_inst": 1, "doc_counts": "cooccurrence", "match_total": true, "offset_shift": 1}',
    ]
    argv += [
        "--swap-direction",
        "--instances",
        str(tmp_path / "doc_idxs.npz"),
        "--learned",
        str(w["learned"]),
    ]
    argv += ["--pair-doc", str(w["pair_doc"][0]), "--relations", "p17,p27"]
    assert main(argv) == 0
    assert (tmp_path / "f.npz").read_bytes() == (tmp_path / "c.npz").read_bytes()
    # cooccurrence without its inputs: one line, exit 2
    with pytest.raises(SystemExit) as e:
        main(argv[: argv.index("--instances")])
    assert e.value.code == 2


TOY = REPO / "config" / "config.yaml"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"target_selection": "nope"}, r"bm25_200\.target_selection: 'nope' is not an rm_coocc intervention"),
        ({"target_selection": "add_coocc_200"}, r"target_selection: 'add_coocc_200' is not an rm_coocc"),
        (
            {"target_selection": "rm_coocc_200", "datasets": ["pararel"]},
            r"bm25_200\.datasets: its targets are rm_coocc_200's ParaRel instances",
        ),
        ({"source_window": "before"}, r"source_window"),
        ({"doc_counts": "pairs"}, r"doc_counts"),
        ({"offset_shift": 0}, r"offset_shift"),
    ],
)
def test_config_check_refuses_bad_options(extra, message):
    cfg = yaml.safe_load(TOY.read_text())
    cfg["interventions"]["bm25_200"].update(extra)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg, schema=REPO / "workflow" / "schemas" / "config.schema.yaml", root=REPO)


def test_config_check_accepts_the_options():
    cfg = yaml.safe_load(TOY.read_text())
    cfg["interventions"]["bm25_200"].update(
        target_selection="rm_coocc_200",
        doc_counts="cooccurrence",
        match_total=True,
        offset_shift=5,
        source_window="previous",
    )
    check_config(cfg, schema=REPO / "workflow" / "schemas" / "config.schema.yaml", root=REPO)


def test_dry_run_mapping_targets_an_rm_coocc_selection(tmp_path):
    """The window scorers and map-docs read the selection's doc_idxs.npz, so the select job of that
    intervention runs first; cooccurrence adds the target window's pair matrices and learned.npz."""
    from .test_workflow import snakemake

    cfg = yaml.safe_load(TOY.read_text())
    cfg["interventions"]["bm25_200"].update(
        target_selection="rm_coocc_200", doc_counts="cooccurrence", match_total=True, source_window="previous"
    )
    target = "results/interventions/bm25_200/mapping.npz"
    r = snakemake(tmp_path, "-n", "-p", "--forceall", target, cfg=cfg)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    sel = "results/interventions/rm_coocc_200/doc_idxs.npz"
    assert f"output: {sel}" in out  # rule select of rm_coocc_200 is in the DAG
    shell = [line.split("intervene ", 1)[-1] for line in out.splitlines() if "intervene " in line]
    scorers = [line for line in shell if line.startswith("bm25-window")]
    assert len(scorers) == 2 and all(f"--instances {sel} " in line for line in scorers)
    assert any("--first 120 --last 160" in line for line in scorers)  # the previous window
    (mapping,) = [line for line in shell if line.startswith("map-docs")]
    assert "--source-window 120 160" in mapping and '"match_total": true' in mapping
    assert f"--instances {sel}" in mapping and "--pair-doc results/search/pair_doc/002 " in mapping
    assert "--learned results/eval/original/learned.npz" in mapping
