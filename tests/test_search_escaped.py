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
    from intervene.search.escaped import literal_set, scan_file
    from intervene.search.find import unique_patterns

    pats, _ = unique_patterns(d_terms, escape_term)
    pat, line, s, e = scan_file(data, literal_set(pats), layout)
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


# --- the many-literal kernel (intervene._escapes.LiteralSet) ---------------------------------


def _ac_reference(pats: list[bytes], hay: bytes) -> list[tuple[int, int, int]]:
    import ahocorasick_rs

    hits = ahocorasick_rs.BytesAhoCorasick(pats).find_matches_as_indexes(hay, overlapping=True)
    return sorted((s, e, i) for i, s, e in hits)


def _found(lits, hay: bytes) -> list[tuple[int, int, int]]:
    pat, s, e = lits.find(hay)
    return list(zip(s.tolist(), e.tolist(), pat.tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(
    pats=st.lists(
        st.binary(min_size=1, max_size=10).filter(lambda b: b"\x00" not in b), min_size=1, max_size=25
    ),
    hay=st.binary(max_size=300),
    alphabet=st.sampled_from([b"ab", b"abc\\u0", bytes(range(1, 256))]),
)
def test_literal_set_equals_aho_corasick(pats, hay, alphabet):
    """Every overlapping match, ordered by start then end (the order the occurrences file needs
    without a sort); patterns and text over small alphabets so that matches are many."""
    from intervene.search.escaped import literal_set

    pats = list(dict.fromkeys(bytes(alphabet[b % len(alphabet)] for b in p) for p in pats))
    hay = bytes(alphabet[b % len(alphabet)] for b in hay)
    got = _found(literal_set(pats), hay)
    assert got == _ac_reference(pats, hay)
    assert got == sorted(got)


@pytest.mark.parametrize("seed", range(4))
def test_literal_set_across_blocks_and_tail(seed):
    """Texts longer than the kernel's filter block (16,384 positions), every length of tail."""
    import random

    from intervene.search.escaped import literal_set

    rng = random.Random(seed)
    pats = list({bytes(rng.choice(b"abcd") for _ in range(rng.randint(1, 9))) for _ in range(60)})
    lits = literal_set(pats)
    for n in [16383, 16384, 16385, 16388, 40000 + seed] + list(range(0, 12)):
        hay = bytes(rng.choice(b"abcd") for _ in range(n))
        got = _found(lits, hay)
        assert got == _ac_reference(pats, hay), n
    assert len(got) > 0


def test_literal_set_rejects_empty_and_nul_patterns():
    from intervene.search.escaped import literal_set

    for bad in ([b""], [b"a\x00b"]):
        with pytest.raises(ValueError, match="pattern 0"):
            literal_set(bad)


@settings(max_examples=120, deadline=None)
@given(
    docs=st.lists(st.text(alphabet=NASTY, max_size=30), min_size=1, max_size=5),
    terms=st.lists(st.text(alphabet=NASTY, min_size=1, max_size=3), min_size=1, max_size=6),
)
def test_kernel_mapping_equals_vectorised_locate(docs, terms):
    """scan_file's in-kernel offset mapping equals ahocorasick_rs's matches mapped by the
    vectorised :func:`locate` (matches cutting an escape dropped, offsets in UTF-8 text bytes)."""
    import ahocorasick_rs

    from intervene.search.escaped import literal_set, locate, scan_file
    from intervene.search.find import unique_patterns

    terms = [t for t in terms if "\x00" not in t]
    if not terms:
        return
    data = encode_lines(docs)
    layout = escape_layout(data)
    pats, _ = unique_patterns(terms, escape_term)
    pat, line, s, e = scan_file(data, literal_set(pats), layout)
    h = np.array(ahocorasick_rs.BytesAhoCorasick(pats).find_matches_as_indexes(data, overlapping=True))
    h = h.reshape(-1, 3)
    rline, rs, re_, ok = locate(layout, h[:, 1], h[:, 2])
    ref = sorted(zip(rline[ok].tolist(), rs[ok].tolist(), re_[ok].tolist(), h[ok, 0].tolist(), strict=True))
    got = list(zip(line.tolist(), s.tolist(), e.tolist(), pat.tolist(), strict=True))
    assert got == ref


# ParaRel-like terms: short ones that occur inside common words, several spellings with escapes
# (quotes, accents, an astral character), a repeated term and terms nested in others
SHORT_TERMS = [
    "Ba",
    "Ho",
    "ear",
    "red",
    "US",
    "BBC",
    "God",
    "iOS",
    "3M",
    "U2",
    ".af",
    "lead",
    "iron",
    "New York",
    "York",
    "New York City",
    "S\u00e3o Paulo",
    "C\u00f4te d'Ivoire",
    '"Weird Al"',
    "Ba",
    "Caf\u00e9",
    "\U0001f600",
    "Ho Chi Minh City",
    "Tab\tStop",
]
WORDS = (
    "the year How Bank Barack early heard red reduced reading hospital US USA BBC God iOS "
    "3M U2 lead leader iron environment New York City in the Ho Chi Minh".split()
)


@pytest.mark.parametrize("mode", ["literal", "wimbd"])
def test_group_search_with_short_terms_equals_parsed(tmp_path, mode):
    """search_group over decoded files of web-like text equals find_terms over the parsed texts,
    with short terms that match inside common words (thousands of matches, several files, texts
    longer than the kernel's filter block)."""
    import random

    rng = random.Random(7)
    extras = [
        "S\u00e3o Paulo",
        "C\u00f4te d'Ivoire",
        '"Weird Al" said',
        "Caf\u00e9",
        "\U0001f600",
        "\n",
        "Tab\tStop",
    ]
    batches = []
    for _ in range(3):
        docs = []
        for _ in range(rng.randint(2, 6)):
            words = [
                rng.choice(WORDS) if rng.random() < 0.9 else rng.choice(extras)
                for _ in range(rng.randint(1, 3000))
            ]
            docs.append(" ".join(words))
        batches.append(docs)
    batches.append([""])  # an empty document
    d = tmp_path / "001"
    _write(d, {b: encode_lines(docs) for b, docs in enumerate(batches)})
    occ = search_group(d, SHORT_TERMS, mode=mode)
    _same(occ, _parsed(d, SHORT_TERMS, mode))
    counts = np.bincount(occ["term"], minlength=len(SHORT_TERMS))
    assert occ["term"].size > 1000 and occ["n_docs"] == sum(map(len, batches))
    for t in ("Ba", "Ho", "ear", "red", "S\u00e3o Paulo", '"Weird Al"', "\U0001f600", "New York City"):
        assert counts[SHORT_TERMS.index(t)] > 0, t
    if mode == "literal":  # a repeated term is reported under each of its indices
        assert counts[0] == counts[SHORT_TERMS.index("Ba", 1)]


def test_a_lone_surrogate_term_does_not_match_half_a_pair():
    """A term holding a lone high surrogate escapes to the first half of a pair's escape: a match
    there ends inside the text's escape token and is dropped (as the vectorised locate does)."""
    from intervene.search.escaped import literal_set, scan_file

    data = encode_lines(["a\U0001f600b \ud83d"[:3]])
    pats = [escape_term("\ud83d"), escape_term("\U0001f600"), b"b"]
    pat, line, s, e = scan_file(data, literal_set(pats), escape_layout(data))
    assert list(zip(pat.tolist(), s.tolist(), e.tolist(), strict=True)) == [(1, 1, 5), (2, 5, 6)]
