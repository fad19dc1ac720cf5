"""Streamed BM25 (two passes over the batch files, running top k) equals the in-memory scores to the
last bit, saved bytes included; its tokenizer equals bm25s.tokenize; the window variant reads only
the window's batch files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from intervene.search import bm25 as bm25_mod
from intervene.search import stages
from intervene.search.bm25 import METHODS, bm25_scores, bm25_stream, get_tokenizer, top_k
from intervene.search.corpus import group_texts
from intervene.search.stages import bm25_files, write_bm25
from intervene.select.stages import bm25_window
from intervene.select.windows import Window, read_groups, window
from intervene.textio import write_jsonl_gz


def _window_texts(batches_root, doc_info_dir, w: Window) -> list[str]:
    """The window's documents' texts in window order, from every document of its groups (the
    reference the streamed window stage must equal)."""
    texts: list[str] = []
    for name in w.groups:
        texts += group_texts(batches_root / name, np.load(doc_info_dir / f"{name}.npy"))[0]
    return [texts[i] for i in w.rows.tolist()]


# letters, digits of several kinds, underscores, marks, case changes that grow the text ("İ"), final
# sigma, stopwords, punctuation and spaces: where a tokenizer could differ from bm25s's
ALPHABET = list("abcAB xyz_09٣²ΣσςİéÉ\u0301\u200d'’-.,\n\t") + ["the ", " and ", " of ", "ab", "Σα"]


PIECES = st.one_of(st.sampled_from(ALPHABET), st.characters(codec="utf-8"))
TEXT = st.lists(PIECES, max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT, max_size=6), st.integers(0, 6))
def test_tokenizer_equals_bm25s(texts, cut):
    import bm25s

    want = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False) if texts else []
    assert get_tokenizer("bm25s_en")(texts) == want
    # per chunk = whole corpus (bm25s's strings do not depend on the other documents)
    parts = [texts[:cut], texts[cut:]]
    got = [
        d
        for p in parts
        if p
        for d in bm25s.tokenize(p, stopwords="en", return_ids=False, show_progress=False)
    ]
    assert got == want
    assert get_tokenizer("whitespace")(texts) == [t.split() for t in texts]


def _corpus(seed: int, n_docs: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(120)] + ["the", "of", "Paris", "BMW", "ok"]
    p = 1 / np.arange(1, len(words) + 1) ** 1.1
    p /= p.sum()
    docs = [" ".join(rng.choice(words, size=int(rng.integers(0, 40)), p=p)) for _ in range(n_docs)]
    docs[3] = "Paris BMW ok w3 w40 w1 the"
    for i in range(0, n_docs, 7):  # exact copies: equal scores, ties broken by the lower index
        docs[i] = docs[3]
    return docs


QUERIES = [
    "w0",  # in most documents: negative okapi idf, floored by the mean over the whole vocabulary
    "w1 w2 w1",  # a repeated token
    "w5 unseen",
    "unseen",
    "",
    "the of",  # stopwords only (bm25s_en)
    "Paris BMW",
    "w3",
    "w40 w41 w42 w43 w44 w45",
    "ok w0 w7",
]


def _write_group(tmp_path, docs: list[str], per_file: list[int], first_batch: int = 0):
    tmp_path.mkdir(parents=True, exist_ok=True)
    files, lo = [], 0
    for i, n in enumerate(per_file):
        f = tmp_path / f"{first_batch + i}.json.gz"
        write_jsonl_gz(f, docs[lo : lo + n])
        files.append(f)
        lo += n
    assert lo == len(docs)
    return files


@pytest.fixture
def small_pieces(monkeypatch):
    """Several chunks per file, several query slices per chunk, several row blocks and merges."""
    monkeypatch.setattr(stages, "CHUNK_CHARS", 400)
    monkeypatch.setattr(bm25_mod, "SLICE_ENTRIES", 20)
    monkeypatch.setattr(bm25_mod, "MERGE_ENTRIES", 6)


@pytest.mark.parametrize("tokenizer", ["bm25s_en", "whitespace"])
def test_stream_equals_in_memory(tmp_path, small_pieces, tokenizer):
    docs = _corpus(0, 130)
    files = _write_group(tmp_path / "001", docs, [40, 0, 33, 57])  # an empty file too
    for method in METHODS:
        for k in (None, 0, 1, 2, 5, 1000):
            ref, ours = tmp_path / "ref.npz", tmp_path / "ours.npz"
            a = write_bm25(docs, QUERIES, ref, k=k, method=method, tokenizer=tokenizer)
            b = bm25_files(files, QUERIES, ours, k=k, method=method, tokenizer=tokenizer)
            assert a == b
            assert ref.read_bytes() == ours.read_bytes(), (method, k)
            want = bm25_scores(
                get_tokenizer(tokenizer)(docs), get_tokenizer(tokenizer)(QUERIES), method=method
            )
            got = sp.load_npz(ours)
            want = top_k(want, k) if k else want
            assert (got != want).nnz == 0 and got.nnz == want.nnz
    # ties are exercised: the best score of "Paris BMW" is shared by more documents than k
    s = bm25_scores(get_tokenizer(tokenizer)(docs), get_tokenizer(tokenizer)(["Paris BMW"])).toarray()[0]
    assert (s == s.max()).sum() > 5


def test_stream_directly_with_chunks_and_slices():
    """``bm25_stream`` over arbitrary chunks (one token list per document) equals the product."""
    rng = np.random.default_rng(3)
    corpus = [
        list(rng.choice([f"t{i}" for i in range(30)], size=int(rng.integers(0, 12)))) for _ in range(90)
    ]
    queries = [
        list(rng.choice([f"t{i}" for i in range(35)], size=int(rng.integers(0, 4)))) for _ in range(25)
    ]
    cuts = [0, 1, 1, 17, 50, 90]

    for budget in (1, 7, 10**9):
        for k in (None, 3):
            chunks = (corpus[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True))
            got = bm25_stream(chunks, queries, k=k, budget=budget)
            want = bm25_scores(corpus, queries)
            want = top_k(want, k) if k else want
            assert (got != want).nnz == 0 and np.array_equal(got.indptr, want.indptr)
            assert np.array_equal(got.indices, want.indices) and np.array_equal(got.data, want.data)


def test_stream_refuses_negative_k_and_empty_corpus(tmp_path):
    files = _write_group(tmp_path / "001", ["a b", "c"], [2])
    with pytest.raises(ValueError, match="--k"):
        bm25_files(files, ["a"], tmp_path / "o.npz", k=-1, method="okapi", tokenizer="whitespace")
    with pytest.raises(ValueError, match="--k"):
        write_bm25(["a"], ["a"], tmp_path / "o.npz", k=-1, method="okapi", tokenizer="whitespace")
    empty = _write_group(tmp_path / "002", [], [0])
    with pytest.raises(ValueError, match="at least one document"):
        bm25_files(empty, ["a"], tmp_path / "o.npz", k=3, method="okapi", tokenizer="whitespace")
    assert not (tmp_path / "o.npz").exists()


def test_stream_no_queries(tmp_path):
    docs = _corpus(1, 20)
    files = _write_group(tmp_path / "001", docs, [20])
    for k in (None, 4):
        write_bm25(docs, [], tmp_path / "ref.npz", k=k, method="okapi", tokenizer="bm25s_en")
        bm25_files(files, [], tmp_path / "ours.npz", k=k, method="okapi", tokenizer="bm25s_en")
        assert (tmp_path / "ref.npz").read_bytes() == (tmp_path / "ours.npz").read_bytes()


def _doc_info(per_file: list[int]) -> np.ndarray:
    rows = [(b, 0, 10 * j, 10 * j + 9) for b, n in enumerate(per_file) for j in range(n)]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def test_window_reads_only_its_batches(tmp_path, small_pieces):
    """Batches of 3 per group (named by number); window [2, 5) = the last batch of group 001 and the
    first two of 002: the scores equal today's (every document of the groups read, the window's
    rows taken), and a batch file outside the window is never read."""
    docs = _corpus(2, 120)
    per = {"001": [15, 25, 20], "002": [22, 18, 20]}
    roots = tmp_path / "batches", tmp_path / "doc_info"
    roots[1].mkdir()
    lo = 0
    for g, (name, counts) in enumerate(per.items()):
        n = sum(counts)
        _write_group(roots[0] / name, docs[lo : lo + n], counts, first_batch=3 * g)
        np.save(roots[1] / f"{name}.npy", _doc_info(counts))
        lo += n
    dirs, infos = [roots[0] / n for n in per], [roots[1] / f"{n}.npy" for n in per]
    w = window(read_groups(infos, dirs), 2, 5)
    wdocs = _window_texts(roots[0], roots[1], w)
    assert wdocs == docs[40:100]
    for k in (None, 3):
        ref = tmp_path / f"ref{k}.npz"
        write_bm25(wdocs, QUERIES, ref, k=k, method="okapi", tokenizer="bm25s_en")
        out = tmp_path / f"ours{k}.npz"
        (roots[0] / "001" / "0.json.gz").write_bytes(b"not gzip")  # outside the window
        (roots[0] / "002" / "5.json.gz").write_bytes(b"not gzip")
        r = bm25_window(dirs, infos, 2, 5, QUERIES, out, k=k)
        assert r["docs"] == len(w.rows) == 60
        assert ref.read_bytes() == out.read_bytes()
        _write_group(roots[0] / "001", docs[:15], [15])
        _write_group(roots[0] / "002", docs[100:], [20], first_batch=5)
    # a window file whose lines disagree with the doc info is an error naming the file
    _write_group(roots[0] / "002", docs[60:70], [10], first_batch=3)
    with pytest.raises(ValueError, match="3.json.gz"):
        bm25_window(dirs, infos, 2, 5, QUERIES, tmp_path / "x.npz", k=3)


def test_stream_runs_are_byte_identical(tmp_path, small_pieces):
    docs = _corpus(4, 80)
    files = _write_group(tmp_path / "001", docs, [30, 50])
    outs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for o in outs:
        bm25_files(files, QUERIES, o, k=4, method="lucene", tokenizer="bm25s_en")
    assert outs[0].read_bytes() == outs[1].read_bytes()
