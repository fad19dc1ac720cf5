"""Search in the escaped JSON bytes (search_group's fast path) equals the search of parsed texts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervene.search import find_terms
from intervene.search.escaped import escape_layout, escape_term
from intervene.search.occurrences import search_group
from intervene.textio import encode_lines, gzip_bytes

# characters whose json.dumps forms are short escapes, \u escapes (control, DEL, BMP, astral pairs)
# or raw, and letters that occur inside escapes ("n" in \n, "u00" in \u00e9, hex digits)
NASTY = 'an u0e\\"/\n\t\r\x00\x01\x7f\u00e9\u20ac\U0001f600{}:'


def _write(d, files: dict[int, bytes]):
    d.mkdir(parents=True, exist_ok=True)
    for b, data in files.items():
        (d / f"{b}.json.gz").write_bytes(gzip_bytes(data))


def _parsed(d, terms, mode):
    """The reference: every file parsed, the texts searched by find_terms."""
    from intervene.search.corpus import group_texts

    return find_terms(group_texts(d)[0], terms, mode)


def _same(occ, ref):
    for k, v in zip(("term", "doc", "start", "end"), ref, strict=True):
        assert occ[k].tolist() == v.tolist(), k


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(st.text(alphabet=NASTY, max_size=25), max_size=4), min_size=1, max_size=3),
    extra=st.lists(st.text(alphabet=NASTY, min_size=1, max_size=3), min_size=1, max_size=5),
    cuts=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 4)), max_size=4),
    mode=st.sampled_from(["literal", "wimbd"]),
)
def test_escaped_search_equals_parsed_search(tmp_path_factory, batches, extra, cuts, mode):
    texts = [t for b in batches for t in b]
    # terms: random strings plus pieces cut from the texts (so that most of them occur)
    terms = [t for t in extra if "\x00" not in t]
    for i, (at, n) in enumerate(cuts):
        if texts and texts[i % len(texts)][at : at + n].strip("\x00"):
            terms.append(texts[i % len(texts)][at : at + n].replace("\x00", "a"))
    if mode == "wimbd":  # regex metacharacters would send the term to the regex engine
        terms = [t for t in terms if not set(t) & set(".^$*+?{}[]\\|()")]
    if not terms:
        return
    d = tmp_path_factory.mktemp("g") / "001"
    _write(d, {b: encode_lines(docs) for b, docs in enumerate(batches)})
    for docs in batches:
        assert escape_layout(encode_lines(docs)) is not None, "the decoder's own form takes the fast path"
    _same(search_group(d, terms, mode=mode), _parsed(d, terms, mode))


def test_escape_term_is_json_dumps():
    assert escape_term('a"\\\n\u00e9\U0001f600\x7f') == b'a\\"\\\\\\n\\u00e9\\ud83d\\ude00\\u007f'


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"text": "caf\u00e9"}, ensure_ascii=False).encode(),  # raw non-ASCII
        b'{"text": "a\\/b"}',  # \/ is valid JSON, never written by json.dumps
        b'{"text": "\\u00E9"}',  # upper-case hex
        b'{"text": "\\u0041"}',  # printable ASCII as \u
        b'{"text": "\\u000a"}',  # a character with a short escape
        b'{"text":"abc"}',  # other separators
        b'{"text": "abc", "id": "x"}',  # another field
        b'{"id": "x", "text": "abc"}',
        b'{"text": "a\x7fb"}',  # raw DEL
    ],
)
def test_other_json_forms_take_the_parsed_path(tmp_path, line):
    data = b'{"text": "Caf\\u00e9 abc"}\n' + line + b"\n"
    assert escape_layout(data) is None
    d = tmp_path / "001"
    _write(d, {0: data, 1: encode_lines(["abc \u00e9 abc"])})
    terms = ["abc", "\u00e9", "b", "x"]
    occ = search_group(d, terms)
    _same(occ, _parsed(d, terms, "literal"))
    assert occ["n_docs"] == 3 and np.isin([0, 1], occ["term"]).all()


@pytest.mark.parametrize("line", [b'{"text": "\\ud83d x"}', b'{"text": "x \\ude00"}'])
def test_lone_surrogates_are_an_error_naming_the_file(tmp_path, line):
    data = b'{"text": "abc"}\n' + line + b"\n"
    assert escape_layout(data) is None
    _write(tmp_path / "001", {0: data})
    with pytest.raises(ValueError, match=r"0\.json\.gz:2: not a JSON line"):
        search_group(tmp_path / "001", ["abc"])


def test_escaped_offsets_by_hand():
    data = encode_lines(["x\n\u00e9y \U0001f600y", "ny"])
    layout = escape_layout(data)
    assert layout is not None and layout.n_lines == 2
    d_terms = ["y", "n", "\u00e9y", "\U0001f600"]
    import ahocorasick_rs

    from intervene.search.escaped import scan_file
    from intervene.search.find import unique_patterns

    pats, _ = unique_patterns(d_terms, escape_term)
    pat, line, s, e = scan_file(data, ahocorasick_rs.BytesAhoCorasick(pats), layout)
    got = sorted(zip(line.tolist(), s.tolist(), e.tolist(), pat.tolist(), strict=True))
    # text 0 in UTF-8: x \n é(2) y ' ' 😀(4) y -> bytes: x0 \n1 é2-3 y4 sp5 😀6-9 y10
    # "n" of the escape \n is no match; the "n" of text 1 is
    assert got == [(0, 2, 5, 2), (0, 4, 5, 0), (0, 6, 10, 3), (0, 10, 11, 0), (1, 0, 1, 1), (1, 1, 2, 0)]


def test_wimbd_regex_terms_in_a_group_equal_the_parsed_search(tmp_path):
    """Regex terms run over the texts parsed in the same pass as the plain terms' escaped search."""
    d = tmp_path / "001"
    _write(
        d,
        {0: encode_lines(["St. Louis, St Louis \u00e9", "aaaa"]), 1: encode_lines(["Stx Louis\nSt. Louis"])},
    )
    terms = ["St. Louis", "Louis", "a+", "aa", "(St|x) L"]
    occ = search_group(d, terms, mode="wimbd")
    _same(occ, _parsed(d, terms, "wimbd"))
    assert set(occ["term"].tolist()) == {0, 1, 2, 3, 4}
