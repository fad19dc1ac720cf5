"""Term search (literal and WIMBD modes), term/pair matrices, BM25 against references."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from intervene.search import bm25_scores, find_terms
from intervene.search.bm25 import top_k
from intervene.search.find import required_literals
from intervene.search.matrices import pair_doc_matrix, term_doc_matrix
from intervene.search.occurrences import import_wimbd, search_group, term_vocabulary, to_wimbd_json


def naive_literal(texts, terms):
    """Every occurrence by str.find at every position, in bytes."""
    rows = []
    for d, text in enumerate(texts):
        b = text.encode()
        for ti, t in enumerate(terms):
            tb = t.encode()
            i = b.find(tb)
            while i >= 0:
                rows.append((d, i, i + len(tb), ti))
                i = b.find(tb, i + 1)
    rows.sort()
    return rows


def as_rows(res):
    t, d, s, e = res
    return list(zip(d.tolist(), s.tolist(), e.tolist(), t.tolist(), strict=True))


ALPHA = "ab é\u00fc😀"


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=ALPHA, max_size=30), max_size=6),
    terms=st.lists(st.text(alphabet=ALPHA, min_size=1, max_size=4), min_size=1, max_size=6),
)
def test_literal_equals_naive(texts, terms):
    assert as_rows(find_terms(texts, terms)) == naive_literal(texts, terms)


def test_literal_overlapping_nested_and_bytes():
    texts = ["aaaa", "Café India Indiana", ""]
    terms = ["aa", "India", "Indiana", "é", "a"]
    rows = as_rows(find_terms(texts, terms))
    assert [r for r in rows if r[0] == 0 and r[3] == 0] == [(0, 0, 2, 0), (0, 1, 3, 0), (0, 2, 4, 0)]
    # "é" is 2 bytes: India starts at byte 6 (character 5); Indiana nests an India
    assert (1, 6, 11, 1) in rows and (1, 12, 17, 1) in rows and (1, 12, 19, 2) in rows
    assert (1, 3, 5, 3) in rows
    with pytest.raises(ValueError, match="term 1 is empty"):
        find_terms(["x"], ["a", ""])


def test_wimbd_mode_hand_derived():
    """Outputs derived by hand from WIMBD's semantics (Rust regex find_iter on the decoded text)."""
    texts = [
        "Eibenstock is located in Germany. Germany!",
        "nothing",
        "Café Germany",
        "aaaa",
        "BMW 3 Series E46 and BMW 3 Series (E46)",
        "Apple Inc! Apple Inc.",
        "costs $9.99",
    ]
    terms = ["Germany", "aa", "BMW 3 Series (E46)", "Apple Inc.", "$9.99", "germany"]
    rows = as_rows(find_terms(texts, terms, mode="wimbd"))
    assert [r for r in rows if r[3] == 0] == [
        (0, 25, 32, 0),
        (0, 34, 41, 0),
        (2, 6, 13, 0),
    ]  # WIMBD's example
    assert [r for r in rows if r[3] == 1] == [(3, 0, 2, 1), (3, 2, 4, 1)]  # non-overlapping: 2, not 3
    assert [r for r in rows if r[3] == 2] == [(4, 0, 16, 2)]  # the group matches "E46" without parentheses
    assert [r for r in rows if r[3] == 3] == [(5, 0, 10, 3), (5, 11, 21, 3)]  # "." matches "!"
    assert not [r for r in rows if r[3] in (4, 5)]  # "$9.99" never matches; case-sensitive
    # literal mode takes the same terms as text
    lit = as_rows(find_terms(texts, terms))
    assert (4, 21, 39, 2) in lit and (5, 11, 21, 3) in lit and (6, 6, 11, 4) in lit
    assert len([r for r in lit if r[3] == 1]) == 3


def _per_term_regex(texts: list[str], terms: list[str]) -> list[tuple[int, int, int, int]]:
    """The per-term scan the paper ran (one regex, find_iter per document, byte offsets), as sorted
    (doc, start, end, term) rows."""
    ref = []
    for d, text in enumerate(texts):
        for ti, t in enumerate(terms):
            for m in re.finditer(t, text):
                s, e = m.span()
                ref.append((d, len(text[:s].encode()), len(text[:e].encode()), ti))
    return sorted(ref)


@settings(max_examples=80, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="abé.()", max_size=25), max_size=5),
    terms=st.lists(st.text(alphabet="abé.()?", min_size=1, max_size=4), min_size=1, max_size=5),
)
def test_wimbd_mode_equals_per_term_regex(texts, terms):
    """Against the per-term scan the paper ran (one regex, find_iter per document, byte offsets)."""
    valid = []
    for t in terms:
        try:
            re.compile(t)
            valid.append(t)
        except re.error:
            pass
    if not valid:
        return
    assert as_rows(find_terms(texts, valid, mode="wimbd")) == _per_term_regex(texts, valid)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="ab.()\\$^ \n", max_size=30), max_size=6),
    terms=st.lists(st.text(alphabet="ab.()\\$^ ", min_size=1, max_size=6), min_size=1, max_size=5),
)
@example(  # runs of >= 3 characters around a dot, escapes, an anchor, a group and a \\b
    texts=["abb a", "b(ab)a", "ab.$", "abba", "aab ba"],
    terms=["abb.a", "b\\(ab\\)a", "ab\\.$", "(abb)a", "aab\\b ba"],
)
def test_wimbd_literal_prefilter_keeps_every_match(texts, terms):
    """The required-literal prefilter (escapes, anchors, groups) drops no match of the plain scan."""
    valid = []
    for t in terms:
        try:
            re.compile(t)
        except (re.error, ValueError):
            continue
        if not re.search(r"\(\?[=!<]|\\[1-9]", t):
            valid.append(t)
    if not valid:
        return
    assert as_rows(find_terms(texts, valid, mode="wimbd")) == _per_term_regex(texts, valid)


def test_required_literals():
    assert required_literals("St. Louis") == [" Louis", "St"]
    assert required_literals("Mount Rose (Nevada)") == ["Mount Rose ", "Nevada"]
    assert required_literals("U\\.S\\. Route 1") == ["U.S. Route 1"]  # escaped dots are text
    assert required_literals("a\\db") == ["a", "b"]  # \d is a class: it ends a run
    assert required_literals("x$") == ["x"]
    for optional in ("colou?r", "a|b", "[ab]c", "ab*", "(?i)abc", "a{2}", "()", "."):
        assert required_literals(optional) == [], optional


def _write_group(d, docs_per_batch):
    d.mkdir(parents=True, exist_ok=True)
    for b, docs in docs_per_batch.items():
        with gzip.open(d / f"{b}.json.gz", "wt") as fh:
            for t in docs:
                fh.write(json.dumps({"text": t}) + "\n")


def test_group_search_wimbd_json_roundtrip(tmp_path):
    g = tmp_path / "001"
    _write_group(
        g, {10: ["Eibenstock is located in Germany. Germany!", "nothing"], 11: ["Café Germany", "x"]}
    )
    doc_info = np.array([[0, 0, 0, 5], [0, 1, 0, 2], [1, 0, 0, 3], [1, 0, 5, 6]])
    terms = ["Germany", "Café"]
    occ = search_group(g, terms, mode="wimbd", doc_info=doc_info)
    line = to_wimbd_json("Germany", 0, occ, g, file_key=lambda f: f"/data/001/{f.name}")
    assert line == (
        '{"count":3,"matches":{"/data/001/10.json.gz":[{"line_num":1,"submatches":[{"end_col":32,"start_col":25},'
        '{"end_col":41,"start_col":34}],"text":"Eibenstock is located in Germany. Germany!"}],'
        '"/data/001/11.json.gz":[{"line_num":1,"submatches":[{"end_col":13,"start_col":6}],"text":"Café Germany"}]},'
        '"pattern":"Germany"}'
    )
    (tmp_path / "germany.json").write_text(line + "\n")
    back = import_wimbd([tmp_path / "germany.json"], terms, g, doc_info)
    m = occ["term"] == 0
    for k in ("doc", "start", "end"):
        assert back[k].tolist() == occ[k][m].tolist()
    bad = doc_info[:3]
    with pytest.raises(ValueError, match="disagree"):
        search_group(g, terms, doc_info=bad)


def reference_matrices(occ, vocab, rel_terms, pairs):
    """The paper's dict-and-loop construction (on our occurrence arrays)."""
    n_docs = int(occ["n_docs"])
    td = np.zeros((len(rel_terms), n_docs), dtype=np.int64)
    row = {int(v): r for r, v in enumerate(rel_terms)}
    spans = {}
    for t, d, s, e in zip(occ["term"], occ["doc"], occ["start"], occ["end"], strict=True):
        if int(t) in row:
            td[row[int(t)], d] += 1
            spans.setdefault((row[int(t)], int(d)), []).append((int(s), int(e)))
    pd = np.zeros((len(pairs), n_docs), dtype=np.int64)
    for i, (a, b) in enumerate(pairs):
        for d in range(n_docs):
            for s1 in spans.get((a, d), []):
                for s2 in spans.get((b, d), []):
                    contains = (s1[0] >= s2[0] and s1[1] <= s2[1]) or (s2[0] >= s1[0] and s2[1] <= s1[1])
                    if not contains:
                        pd[i, d] = 1
    return td, pd


@pytest.mark.parametrize("mode", ["literal", "wimbd"])
def test_matrices_equal_reference(tmp_path, mode):
    rng = np.random.default_rng(1)
    words = ["India", "Indiana", "Paris", "Luxembourg", "Apple Inc.", "Ulm", "Café", "Ulmen"]
    texts = [" ".join(rng.choice(words + ["the", "of"], size=rng.integers(0, 12))) for _ in range(60)]
    files = {"p1": tmp_path / "p1.txt", "p2": tmp_path / "p2.txt"}
    files["p1"].write_text("India\nIndiana\nLuxembourg\nParis\nMissing Term\n")
    files["p2"].write_text("Apple Inc.\nUlm\nUlmen\nCafé\n")
    vocab, rel = term_vocabulary(files)
    t, d, s, e = find_terms(texts, vocab, mode)
    occ = {"term": t, "doc": d, "start": s, "end": e, "n_docs": np.int64(len(texts))}
    for r, pairs in (
        ("p1", np.array([[0, 1], [1, 0], [2, 2], [3, 0], [4, 3]])),
        ("p2", np.array([[1, 2], [0, 3]])),
    ):
        td = term_doc_matrix(occ, rel[r])
        pd = pair_doc_matrix(occ, vocab, rel[r], pairs)
        ref_td, ref_pd = reference_matrices(occ, vocab, rel[r], pairs)
        assert (td.toarray() == ref_td).all() and (pd.toarray() == ref_pd).all()
        assert td.shape == (len(rel[r]), len(texts))
    assert term_doc_matrix(occ, rel["p1"])[4].nnz == 0  # the missing term keeps its row


def test_bm25_equals_rank_bm25_and_bm25s():
    import bm25s
    from rank_bm25 import BM25Okapi

    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    p = 1 / np.arange(1, 301) ** 1.1
    p /= p.sum()
    corpus = [list(rng.choice(vocab, size=rng.integers(0, 60), p=p)) for _ in range(400)]
    queries = [list(rng.choice(vocab + ["unseen"], size=rng.integers(1, 8))) for _ in range(40)]
    ref = np.array([BM25Okapi(corpus).get_scores(q) for q in queries])
    ours = bm25_scores(corpus, queries).toarray()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-12)
    bm = BM25Okapi(corpus)
    assert bm.idf["w0"] == pytest.approx(0.25 * bm.average_idf)  # the negative-idf floor is exercised
    common = [["w0"], ["w0", "w1", "w0"]]
    np.testing.assert_allclose(
        bm25_scores(corpus, common).toarray(), [BM25Okapi(corpus).get_scores(q) for q in common], rtol=1e-6
    )
    nonempty = [c for c in corpus if c]
    for method in ("lucene", "robertson", "atire"):
        r = bm25s.BM25(method=method)
        r.index(nonempty, show_progress=False)
        want = np.array([r.get_scores(q) for q in queries])
        np.testing.assert_allclose(
            bm25_scores(nonempty, queries, method=method).toarray(), want, rtol=1e-5, atol=1e-6
        )
    k = top_k(bm25_scores(corpus, queries), 5)
    dense = bm25_scores(corpus, queries).toarray()
    for i in range(len(queries)):
        row = k[i].toarray().ravel()
        assert (row > 0).sum() <= 5
        top = np.sort(dense[i][dense[i] != 0])[::-1][:5]
        assert np.allclose(np.sort(row[row != 0])[::-1], top)
