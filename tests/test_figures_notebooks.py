"""The paper's notebook figures (intervene.notebook_figures): the plotted numbers on small synthetic
inputs against brute-force references written here, and the files written atomically and
byte-identically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from intervene import notebook_figures as nf
from intervene.cli import main
from intervene.evaluation.metrics import learned_checkpoint
from intervene.evaluation.run import predictions_file

RELS = ["p17", "p27"]


def _compress(row: np.ndarray) -> np.ndarray:
    """The notebooks' compress_binary_array: runs of equal labels collapsed to one."""
    return row if row.size == 0 else row[np.insert(np.diff(row) != 0, 0, True)]


def _learned_reference(labels: np.ndarray) -> np.ndarray:
    """The notebooks' definitively-learned index (cell 15), one instance at a time."""
    out = []
    for row in labels:
        c = _compress(row)
        ok = (len(c) == 2 and list(c) == [0, 1]) or (len(c) == 1 and list(c) == [1])
        out.append(int(np.flatnonzero(row == 1)[0]) if ok else -1)
    return np.array(out)


# -- accuracy grid -----------------------------------------------------------------------------


def test_panel_accuracy_is_each_datasets_mean_and_pools_mmlu_subjects():
    ds = np.array(["p17", "p17", "p27", "abstract_algebra", "anatomy", "anatomy"])
    labels = np.array([[0, 1, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 1], [1, 1, 1]])
    panels = nf.panel_of(ds, ["abstract_algebra", "anatomy"])
    assert panels.tolist() == ["p17", "p17", "p27", "mmlu", "mmlu", "mmlu"]
    names, acc = nf.panel_accuracy(labels, panels)
    assert names == ["p17", "p27", "mmlu"]
    for name, curve in zip(names, acc, strict=True):
        rows = [i for i in range(len(ds)) if panels[i] == name]
        assert curve.tolist() == pytest.approx(
            [sum(labels[i, s] for i in rows) / len(rows) for s in range(3)]
        )
    base = nf.panel_baselines(panels, ds, {"p17": 0.5, "abstract_algebra": 1.0, "anatomy": 0.25})
    assert base == {"p17": 0.5, "mmlu": pytest.approx((1.0 + 0.25 + 0.25) / 3)}  # p27: no baseline


def _labels_npz(tmp_path, labels, ds, steps):
    p = tmp_path / "labels.npz"
    np.savez(p, steps=np.array(steps), dataset_labels=np.array(ds), labels=np.array(labels, dtype=np.int8))
    return p


def test_accuracy_grid_file_is_atomic_and_byte_stable(tmp_path):
    ds = ["p17"] * 3 + ["p27"] * 2
    labels = [[0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 0]]
    lab = _labels_npz(tmp_path, labels, ds, [0, 40, 80])
    ev = tmp_path / "eval"
    ev.mkdir()
    golds = {"p17": [2, 2, 0], "p27": [1, 3]}
    for i, rel in enumerate(RELS):
        lines = [json.dumps({"doc_id": j, "label": g}) for j, g in enumerate(golds[rel])]
        (ev / predictions_file(i, f"pararel_{rel}")).write_text("\n".join(lines) + "\n")
    out1, out2 = tmp_path / "a" / "grid.png", tmp_path / "grid2.png"
    r = nf.plot_panel_grid(lab, ev, "pararel_p17,pararel_p27", out1)
    assert r["panels"] == RELS and r["accuracy"][0] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert r["baselines"] == {"p17": pytest.approx(2 / 3), "p27": pytest.approx(1 / 2)}
    assert main(["accuracy-grid", "--labels", str(lab), "--eval-dir", str(ev), "--tasks",
                 "pararel_p17,pararel_p27", "--out", str(out2)]) in (0, None)  # fmt: skip
    assert out1.read_bytes() == out2.read_bytes() and out1.read_bytes()[:4] == b"\x89PNG"
    assert b"Date" not in out1.read_bytes()
    assert sorted(p.name for p in out1.parent.iterdir()) == ["grid.png"]  # no temporary left


# -- learned histogram with co-occurrence ---------------------------------------------------------


def test_checkpoint_windows_follow_the_notebooks():
    assert nf.checkpoint_windows([500, 1000, 1500]) == [(0, 500), (500, 1000), (1000, 1500)]
    # the 7B notebook: 2150 inserted between 2000 and 3000
    assert nf.checkpoint_windows([1000, 2000, 2150, 3000])[2:] == [(2000, 2150), (2150, 3000)]
    with pytest.raises(ValueError, match="ascending"):
        nf.checkpoint_windows([0, 40, 40])


def test_window_cooccurrence_counts_documents_per_window():
    rng = np.random.default_rng(0)
    steps = [0, 10, 20, 35]
    n_inst, n_docs = 7, 60
    dense = (rng.random((n_inst, n_docs)) < 0.2).astype(np.int64)
    doc_batch = np.sort(rng.integers(0, 40, n_docs))  # batches 35..39 are after the last checkpoint
    m = sp.csr_matrix(dense)
    m.data[0] = 0  # a stored zero is no co-occurrence
    counts = nf.window_cooccurrence(m, doc_batch, steps)
    dense = m.toarray()
    for i in range(n_inst):
        for k, (a, b) in enumerate([(0, 0), (0, 10), (10, 20), (20, 35)]):
            want = sum(1 for d in range(n_docs) if dense[i, d] != 0 and a <= doc_batch[d] < b)
            assert counts[i, k] == want
    cov = nf.windows_covered(steps, np.arange(10, 40))
    assert cov.tolist() == [True, False, True, True]  # [0, 0) is empty: covered


def test_learned_histogram_matches_the_notebooks_loop():
    rng = np.random.default_rng(1)
    labels = (rng.random((300, 6)) < 0.5).astype(np.int8)
    labels[:40] = np.sort(labels[:40], axis=1)  # plenty of step functions
    counts = rng.integers(0, 3, (300, 6)) * (rng.random((300, 6)) < 0.5)
    covered = np.array([True, True, True, True, False, True])
    li = learned_checkpoint(labels)
    assert li.tolist() == _learned_reference(labels).tolist()
    h = nf.learned_histogram(li, [0, 1, 2, 3, 4, 5], counts, covered)
    ref = _learned_reference(labels)
    for i in range(6):
        at = [j for j in range(300) if ref[j] == i]
        assert h.learned[i] == len(at)
        want = sum(1 for j in at if counts[j, i] > 0) if covered[i] else -1
        assert h.cooccurring[i] == want
    assert h.learned.sum() == (ref >= 0).sum()


def _group(tmp_path, name, batches, doc_batch_local, mats):
    """A decoded group folder (empty batch files named by number), its doc info and pair matrices."""
    gdir = tmp_path / "batches" / name
    gdir.mkdir(parents=True)
    for b in batches:
        (gdir / f"{b}.npy").write_bytes(b"")
    info = np.zeros((len(doc_batch_local), 4), dtype=np.int64)
    info[:, 0] = doc_batch_local
    (tmp_path / "doc_info").mkdir(exist_ok=True)
    np.save(tmp_path / "doc_info" / f"{name}.npy", info)
    pdir = tmp_path / "pair_doc" / name
    pdir.mkdir(parents=True)
    for rel, m in mats.items():
        sp.save_npz(pdir / f"{rel}.npz", sp.csr_matrix(m))
    return gdir, tmp_path / "doc_info" / f"{name}.npy", pdir


def test_learned_cooccurrence_from_files(tmp_path):
    # 3 p17 + 2 p27 instances (after 2 sciq rows); checkpoints 0, 4, 8, 12; groups of 4 batches
    steps = [0, 4, 8, 12]
    ds = ["sciq", "sciq", "p17", "p17", "p17", "p27", "p27"]
    learned_step = [-1, 4, 4, 8, 4, 8, 12]
    np.savez(tmp_path / "learned.npz", steps=np.array(steps), dataset_labels=np.array(ds),
             learned_step=np.array(learned_step), learned_index=np.array([-1, 1, 1, 2, 1, 2, 3]))  # fmt: skip
    # group 001: batches 0-3 (window of checkpoint 4); group 002: batches 4-7 (checkpoint 8)
    g1 = _group(tmp_path, "001", range(0, 4), [0, 1, 3], {
        "p17": [[1, 0, 0], [0, 0, 0], [0, 0, 1]], "p27": [[0, 0, 0], [0, 0, 0]]})  # fmt: skip
    g2 = _group(tmp_path, "002", range(4, 8), [0, 2], {
        "p17": [[0, 0], [1, 0], [0, 0]], "p27": [[0, 0], [0, 0]]})  # fmt: skip
    h = nf.learned_cooccurrence(
        tmp_path / "learned.npz", [g1[2], g2[2]], [g1[1], g2[1]], [g1[0], g2[0]], RELS
    )
    assert h.learned.tolist() == [0, 2, 2, 1]  # ParaRel rows only: p17 at 4, 8, 4; p27 at 8, 12
    # learned at 4: p17 rows 0 (docs in batch 0) and 2 (batch 3) co-occur; at 8: p17 row 1 (batch 6)
    # does, p27 row 0 does not; checkpoint 12's window [8, 12) is not decoded: -1
    assert h.cooccurring.tolist() == [0, 2, 1, -1]
    out1, out2 = tmp_path / "h1.png", tmp_path / "h2.png"
    args = ["--learned", str(tmp_path / "learned.npz"), "--pair-doc", str(g1[2]), str(g2[2]),
            "--group-dirs", str(g1[0]), str(g2[0]), "--doc-info", str(g1[1]), str(g2[1]),
            "--relations", "p17,p27"]  # fmt: skip
    nf.write_learned_cooccurrence(tmp_path / "learned.npz", [g1[2], g2[2]], [g1[1], g2[1]],
                                  [g1[0], g2[0]], RELS, out1)  # fmt: skip
    assert main(["learned-cooccurrence", *args, "--out", str(out2)]) in (0, None)
    assert out1.read_bytes() == out2.read_bytes()
    # a matrix of another run (wrong row count) is an error naming the file, and writes nothing
    sp.save_npz(g2[2] / "p27.npz", sp.csr_matrix(np.zeros((3, 2))))
    out3 = tmp_path / "h3.png"
    with pytest.raises(ValueError, match="p27.npz: 3 rows"):
        nf.write_learned_cooccurrence(tmp_path / "learned.npz", [g1[2], g2[2]], [g1[1], g2[1]],
                                      [g1[0], g2[0]], RELS, out3)  # fmt: skip
    assert not out3.exists()


# -- documents per instance -------------------------------------------------------------------------


def test_docs_per_instance_counts_nonzero_selected_columns():
    rng = np.random.default_rng(2)
    m = sp.csr_matrix((rng.random((5, 30)) < 0.3) * rng.integers(1, 4, (5, 30)))
    docs = np.array([1, 4, 5, 9, 20, 29])
    got = nf.docs_per_instance(m, docs)
    dense = m.toarray()
    assert got.tolist() == [sum(1 for d in docs if dense[i, d] != 0) for i in range(5)]


def _selection(tmp_path, strategy, **arrays):
    base = {
        "orig_idxs": np.zeros(0, np.int64), "orig_inst_idxs": np.zeros(0, np.int64),
        "new_idxs": np.zeros(0, np.int64), "new_inst_idxs": np.zeros(0, np.int64),
        "extra_idxs": np.zeros(0, np.int64), "orig_groups": np.array(["001"]),
        "new_groups": np.array(["002"]), "strategy": np.str_(strategy),
    }  # fmt: skip
    base.update(arrays)
    p = tmp_path / f"{strategy}.npz"
    np.savez(p, **base)
    return p


def test_intervention_docs_removed_and_added_with_the_swap_audit(tmp_path):
    ds = ["sciq", "p17", "p17", "p17", "p27", "p27"]  # ParaRel block starts at row 1
    np.savez(tmp_path / "learned.npz", steps=np.array([0, 4]), dataset_labels=np.array(ds),
             learned_step=np.zeros(6, np.int64))  # fmt: skip
    mats = tmp_path / "pair_doc"
    # group 001: 6 documents; group 002: 4
    p17_1 = np.array([[1, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]])
    p27_1 = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]])
    p17_2, p27_2 = np.zeros((3, 4)), np.array([[1, 1, 0, 1], [0, 0, 1, 0]])
    for g, (a, b) in {"001": (p17_1, p27_1), "002": (p17_2, p27_2)}.items():
        (mats / g).mkdir(parents=True)
        sp.save_npz(mats / g / "p17.npz", sp.csr_matrix(a))
        sp.save_npz(mats / g / "p27.npz", sp.csr_matrix(b))
    dirs = [mats / "001", mats / "002"]
    rm = _selection(tmp_path, "rm_coocc", orig_idxs=np.array([0, 1, 2, 3, 4]),
                    orig_inst_idxs=np.array([1, 3, 4]))  # fmt: skip
    d = nf.intervention_docs(rm, tmp_path / "learned.npz", dirs, RELS)
    assert (d.side, d.total) == ("removed", 5)
    assert d.instances.tolist() == [1, 3, 4] and d.dataset_labels.tolist() == ["p17", "p17", "p27"]
    assert d.documents.tolist() == [3, 2, 2]  # rows p17/0: docs 0,1,4; p17/2: 1,2; p27/0: 3,4
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"pairs_orig_new_rows": [[0, 7], [4, 8], [2, 9]]}))
    d = nf.intervention_docs(rm, tmp_path / "learned.npz", dirs, RELS, audit=audit)
    assert d.total == 3 and d.documents.tolist() == [2, 1, 1]  # only docs 0, 2, 4 were replaced
    add = _selection(tmp_path, "add_coocc", new_idxs=np.array([0, 2, 3]), new_inst_idxs=np.array([4, 5]))
    d = nf.intervention_docs(add, tmp_path / "learned.npz", dirs, RELS)
    assert (d.side, d.documents.tolist()) == ("added", [2, 1])  # group 002: p27/0 docs 0,3; p27/1 doc 2
    audit.write_text(json.dumps({"pairs_orig_new_rows": [[5, 0], [1, 3]]}))  # inserted: new rows 0, 3
    d = nf.intervention_docs(add, tmp_path / "learned.npz", dirs, RELS, audit=audit)
    assert (d.total, d.documents.tolist()) == (2, [2, 0])
    out1, out2, t1, t2 = (tmp_path / n for n in ("d1.png", "d2.png", "d1.tsv", "d2.tsv"))
    nf.write_docs_per_instance(add, tmp_path / "learned.npz", dirs, RELS, out1, t1, name="add")
    args = ["docs-per-instance", "--doc-idxs", str(add), "--learned", str(tmp_path / "learned.npz"),
            "--matrices", *map(str, dirs), "--relations", "p17,p27", "--name", "add",
            "--out", str(out2), "--out-tsv", str(t2)]  # fmt: skip
    assert main(args) in (0, None)
    assert out1.read_bytes() == out2.read_bytes()
    assert t1.read_text() == t2.read_text() == "instance\tdataset\tdocuments_added\n4\tp27\t2\n5\tp27\t1\n"
    # an instance row outside the relations' block, and a document beyond the groups: one-line errors
    bad = _selection(tmp_path, "rm_coocc", orig_idxs=np.array([0]), orig_inst_idxs=np.array([0]))
    with pytest.raises(ValueError, match="orig_inst_idxs"):
        nf.intervention_docs(bad, tmp_path / "learned.npz", dirs, RELS)
    bad = _selection(tmp_path, "rm_coocc", orig_idxs=np.array([6]), orig_inst_idxs=np.array([1]))
    with pytest.raises(ValueError, match="row 6 beyond the 6 documents"):
        nf.intervention_docs(bad, tmp_path / "learned.npz", dirs, RELS)


def test_figure_targets_follow_the_config():
    from intervene import figures_workflow as figw

    config = {
        "train": {"save_interval": 40, "original": True, "released": None},
        "decode": {"batches_per_group": 100, "first_batch": 0, "last_batch": 400},
        "eval": {"tasks": ["pararel_p17"], "target_steps": [200]},
        "match": {"bm25": {"groups": []}, "dense": {"ctx_model": None}},
        "interventions": {
            "r": {"strategy": "rm_occ", "checkpoint": 200},
            "a": {"strategy": "add_coocc", "checkpoint": 200},
            "m": {"strategy": "bm25_mapping", "checkpoint": 200},
        },
    }
    given = frozenset({"eval", "match", "interventions"})
    assert figw.targets(config, given) == [
        "results/eval/original/accuracy_grid.png",
        "results/eval/original/learned_cooccurrence.png",
        "results/report/r/docs_per_instance.png",
        "results/report/a/docs_per_instance.png",
    ]
    assert figw.targets(config, frozenset({"eval"})) == ["results/eval/original/accuracy_grid.png"]
    assert (figw.matrix_kind(config, "r"), figw.matrix_kind(config, "a")) == ("term_doc", "pair_doc")
    # window(200) = [160, 200) in group 002; add_coocc's added documents come from [200, 240): 003
    assert (figw.docs_groups(config, "r"), figw.docs_groups(config, "a")) == (["002"], ["003"])
