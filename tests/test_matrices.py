"""Term / pair matrices: the vectorised construction equals the previous per-pair construction
(kept here as the reference) on random occurrences, through memory-mapped files and in chunks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.previous_matrices import previous_pair_doc, previous_term_doc
from intervene.atomic import write_npz
from intervene.search import matrices
from intervene.search.find import find_terms
from intervene.search.matrices import (
    map_occurrences,
    pair_doc_matrix,
    relation_rows,
    term_counts,
    term_doc_matrix,
)
from intervene.search.occurrences import load_occurrences


def _npz_bytes(m: sp.csr_matrix) -> bytes:
    buf = io.BytesIO()
    sp.save_npz(buf, m)
    return buf.getvalue()


def assert_identical(ours: sp.csr_matrix, ref: sp.csr_matrix) -> None:
    """Same values, shape, dtypes and stored arrays: the saved files are byte-identical."""
    assert type(ours) is type(ref)
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype
    assert ours.indices.dtype == ref.indices.dtype and ours.indptr.dtype == ref.indptr.dtype
    assert (ours.toarray() == ref.toarray()).all()
    assert np.array_equal(ours.indptr, ref.indptr) and np.array_equal(ours.indices, ref.indices)
    assert np.array_equal(ours.data, ref.data)
    assert _npz_bytes(ours) == _npz_bytes(ref)


@st.composite
def worlds(draw):
    """A vocabulary (plain and regex terms over a tiny alphabet, so terms contain one another), a
    relation's rows (repeats allowed), instances, and occurrences with nested, equal, overlapping,
    empty and a few malformed spans, in any order, terms past the vocabulary included."""
    vocab = draw(
        st.lists(st.text(alphabet="ab.", min_size=1, max_size=3), min_size=1, max_size=6, unique=True)
    )
    vocab.sort()
    rel = draw(st.lists(st.integers(0, len(vocab) - 1), min_size=0, max_size=6))
    n_pairs = draw(st.integers(0, 8)) if rel else 0
    pairs = [(draw(st.integers(0, len(rel) - 1)), draw(st.integers(0, len(rel) - 1))) for _ in range(n_pairs)]
    n_docs = draw(st.integers(0, 5))
    occ_rows = []
    if n_docs:
        spans = st.tuples(
            st.integers(0, len(vocab) + 1), st.integers(0, n_docs - 1), st.integers(0, 8), st.integers(-3, 4)
        )
        occ_rows = draw(st.lists(spans, max_size=40))
    t = np.array([r[0] for r in occ_rows], dtype=np.int32)
    d, s = (np.array([r[k] for r in occ_rows], dtype=np.int64) for k in (1, 2))
    e = s + np.array([r[3] for r in occ_rows], dtype=np.int64)
    occ = {"term": t, "doc": d, "start": s, "end": e, "n_docs": np.int64(n_docs), "mode": np.str_("literal")}
    # term counts that need not agree with the occurrences (a row present without spans, ...)
    counts = draw(st.lists(st.integers(-1, 2), min_size=len(rel) * n_docs, max_size=len(rel) * n_docs))
    other = sp.csr_matrix(np.array(counts, dtype=np.int64).reshape(len(rel), n_docs))
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return occ, vocab, np.array(rel, dtype=np.int64), pairs, other


@settings(max_examples=400, deadline=None)
@given(worlds(), st.sampled_from([2, 3, 7, 1 << 24]), st.sampled_from([1, 2, 5, 1 << 26]))
def test_matrices_equal_previous_construction(world, chunk, sort_block):
    occ, vocab, rel, pairs, other_counts = world
    old = matrices.CHUNK, matrices.BLOCK, matrices.SORT_BLOCK
    # small chunks and blocks run every chunked loop over several blocks
    matrices.CHUNK, matrices.BLOCK, matrices.SORT_BLOCK = chunk, chunk, sort_block
    try:
        td = term_doc_matrix(occ, rel)
        td_group = relation_rows(term_counts(occ, len(vocab)), rel)
        pd = pair_doc_matrix(occ, vocab, rel, pairs)
        pd_given = pair_doc_matrix(occ, vocab, rel, pairs, td)
        pd_other = pair_doc_matrix(occ, vocab, rel, pairs, other_counts)
    finally:
        matrices.CHUNK, matrices.BLOCK, matrices.SORT_BLOCK = old
    ref_td = previous_term_doc(occ, rel)
    assert_identical(td, ref_td)
    assert_identical(td_group, ref_td)
    ref_pd = previous_pair_doc(occ, vocab, rel, pairs)
    assert_identical(pd, ref_pd)
    assert_identical(pd_given, ref_pd)
    assert_identical(pd_other, previous_pair_doc(occ, vocab, rel, pairs, other_counts))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="ab ", min_size=0, max_size=30), min_size=1, max_size=8),
    st.sampled_from(["literal", "wimbd"]),
)
def test_matrices_equal_previous_on_searched_occurrences(texts, mode):
    """Real search output (overlapping literal matches, WIMBD's non-overlapping and regex ones)."""
    vocab = sorted({"a", "ab", "aba", "b a", "a.", "(ab)+", "b"})
    occ = dict(zip(("term", "doc", "start", "end"), find_terms(texts, vocab, mode), strict=True))
    occ["n_docs"] = np.int64(len(texts))
    rel = np.arange(len(vocab), dtype=np.int64)
    pairs = np.array([(i, j) for i in range(len(vocab)) for j in range(len(vocab))], dtype=np.int64)
    assert_identical(term_doc_matrix(occ, rel), previous_term_doc(occ, rel))
    assert_identical(pair_doc_matrix(occ, vocab, rel, pairs), previous_pair_doc(occ, vocab, rel, pairs))


def test_containment_decides_only_where_needed():
    """India ⊂ Indiana: nested matches alone do not co-occur; a separate India match does."""
    vocab = ["India", "Indiana", "Paris"]
    texts = ["Indiana", "Indiana and India", "Paris, Indiana", "India"]
    occ = dict(zip(("term", "doc", "start", "end"), find_terms(texts, vocab), strict=True))
    occ["n_docs"] = np.int64(len(texts))
    rel = np.array([0, 1, 2])
    pd = pair_doc_matrix(occ, vocab, rel, np.array([[0, 1], [2, 1], [0, 0]]))
    assert pd.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    td = term_doc_matrix(occ, rel)
    assert td.toarray().tolist() == [[1, 2, 1, 1], [1, 1, 1, 0], [0, 0, 1, 0]]


def test_map_occurrences_maps_the_columns(tmp_path):
    rng = np.random.default_rng(0)
    occ = {
        "term": rng.integers(0, 50, 1000).astype(np.int32),
        "doc": np.sort(rng.integers(0, 200, 1000)),
        "start": rng.integers(0, 10**6, 1000),
        "n_docs": np.int64(200),
        "mode": np.str_("literal"),
    }
    occ["end"] = occ["start"] + rng.integers(1, 20, 1000)
    write_npz(tmp_path / "o.npz", **occ)
    mapped = map_occurrences(tmp_path / "o.npz")
    loaded = load_occurrences(tmp_path / "o.npz")
    assert set(mapped) == set(loaded)
    for k in ("term", "doc", "start", "end"):
        assert isinstance(mapped[k], np.memmap)
        assert mapped[k].dtype == loaded[k].dtype and np.array_equal(mapped[k], loaded[k])
    assert int(mapped["n_docs"]) == 200 and str(mapped["mode"]) == "literal"
    rel = np.arange(0, 50, 3)
    assert_identical(term_doc_matrix(mapped, rel), previous_term_doc(loaded, rel))
    # a compressed archive is read instead of mapped
    np.savez_compressed(tmp_path / "c.npz", **occ)
    comp = map_occurrences(tmp_path / "c.npz")
    assert not isinstance(comp["doc"], np.memmap) and np.array_equal(comp["doc"], occ["doc"])


def test_map_occurrences_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        map_occurrences(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an .npz"):
        map_occurrences(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="needs"):
        map_occurrences(tmp_path / "other.npz")


def test_bad_occurrences_are_errors():
    occ = {
        "term": np.array([0, 1], dtype=np.int32),
        "doc": np.array([0, 3]),
        "start": np.array([0, 0]),
        "end": np.array([1, 1]),
        "n_docs": np.int64(3),
    }
    with pytest.raises(ValueError, match="document 3 outside the group's 3 documents"):
        term_doc_matrix(occ, np.array([0, 1]))
    occ["doc"] = np.array([0, 1])
    occ["term"] = np.array([0, -1], dtype=np.int32)
    with pytest.raises(ValueError, match="negative term index"):
        term_doc_matrix(occ, np.array([0, 1]))
    occ["term"] = np.array([0, 1], dtype=np.int32)
    with pytest.raises(ValueError, match="outside the relation's 2 terms"):
        pair_doc_matrix(occ, ["a", "b"], np.array([0, 1]), np.array([[0, 2]]))


def test_malformed_spans_compared_like_the_reference():
    """A span with start > end can 'nest' without overlapping: such groups compare every pair."""
    for subject_span, object_span in (((6, 3), (4, 5)), ((4, 5), (6, 3))):
        occ = {
            "term": np.array([0, 1], dtype=np.int32),
            "doc": np.array([0, 0]),
            "start": np.array([subject_span[0], object_span[0]]),
            "end": np.array([subject_span[1], object_span[1]]),
            "n_docs": np.int64(1),
        }
        vocab, rel, pairs = ["a", "ab"], np.array([0, 1]), np.array([[0, 1]])
        ref = previous_pair_doc(occ, vocab, rel, pairs)
        assert ref.nnz == 0
        assert_identical(pair_doc_matrix(occ, vocab, rel, pairs), ref)


def test_stage_files_equal_previous_construction(tmp_path):
    """``write_matrices`` (mapped occurrences, every term counted once) writes, per relation, the
    bytes the previous construction's matrices save to."""
    import datasets

    from intervene.atomic import write_text
    from intervene.search.occurrences import term_vocabulary, write_occurrences
    from intervene.search.stages import write_matrices

    rng = np.random.default_rng(3)
    words = ["India", "Indiana", "Paris", "Ulm", "Ulmen", "a(b)?c", "Luxembourg", "the", "of"]
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 15))) for _ in range(80)]
    rel_lists = {"p1": ["India", "Indiana", "Luxembourg", "Paris"], "p2": ["Ulm", "Ulmen", "a(b)?c"]}
    inst = {
        "p1": [("India", "Indiana"), ("Luxembourg", "Luxembourg"), ("Paris", "India")],
        "p2": [("Ulmen", "Ulm"), ("a(b)?c", "Ulm")],
    }
    (tmp_path / "terms").mkdir()
    files = {}
    for r, ts in rel_lists.items():
        files[r] = tmp_path / "terms" / f"pararel_patterns_{r}_train.txt"
        write_text(files[r], "".join(t + "\n" for t in ts))
        rows = [{"subject": f" {s}", "object": o} for s, o in inst[r]]
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(
            str(tmp_path / "hf" / f"pararel_patterns_{r}")
        )
    vocab, rel = term_vocabulary(files)
    write_text(tmp_path / "vocab.txt", "".join(t + "\n" for t in vocab))
    nnz = {"term_doc": 0, "pair_doc": 0}
    for mode in ("literal", "wimbd"):
        occ = dict(zip(("term", "doc", "start", "end"), find_terms(texts, vocab, mode), strict=True))
        occ |= {"n_docs": np.int64(len(texts)), "mode": np.str_(mode)}
        write_occurrences(tmp_path / f"{mode}.npz", occ)
        for kind in ("term_doc", "pair_doc"):
            out = tmp_path / mode / kind
            shapes = write_matrices(
                tmp_path / f"{mode}.npz",
                tmp_path / "vocab.txt",
                tmp_path / "terms",
                ["p1", "p2"],
                out,
                kind=kind,
                pararel_root=tmp_path / "hf",
            )
            for r in ("p1", "p2"):
                ref = previous_term_doc(occ, rel[r])
                if kind == "pair_doc":
                    pairs = np.array([(rel_lists[r].index(s), rel_lists[r].index(o)) for s, o in inst[r]])
                    ref = previous_pair_doc(occ, vocab, rel[r], pairs)
                assert (out / f"{r}.npz").read_bytes() == _npz_bytes(ref)
                assert shapes[r] == [*ref.shape, ref.nnz]
                nnz[kind] += ref.nnz
    assert nnz["term_doc"] > nnz["pair_doc"] > 0  # matrices with content, pairs dropped by containment
