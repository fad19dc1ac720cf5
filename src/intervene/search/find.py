"""All occurrences of many terms in many texts, in one pass.

``literal`` (default): terms are plain text; every occurrence of every term, overlapping and nested
ones included, found by one Aho-Corasick automaton (ahocorasick_rs, over UTF-8 bytes) run over the
texts joined by NUL bytes (no term may contain NUL, so no match can straddle two texts).

``wimbd``: what ``wimbd search -p TERM`` reports for each term on its own (allenai/wimbd
src/cmd/search.rs, Rust ``regex`` 1.10): the term is a regular expression, matched case-sensitively
with ``find_iter`` — non-overlapping, leftmost-first, left to right — on the decoded ``"text"``.
Terms without regex metacharacters are taken from the literal pass (greedy non-overlapping per term
and text = Rust's find_iter for a literal); the rest run through Python ``re``, whose semantics agree
with Rust's for the constructs such terms use (groups, ``.``, ``?``, ``+``, classes); look-around and
backreferences, which Rust rejects, are rejected here too.

Offsets are bytes of the UTF-8 text, end exclusive, as WIMBD reports them.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

REGEX_META = frozenset(".^$*+?{}[]\\|()")


def is_plain(term: str) -> bool:
    """A term whose regex matches exactly its own text (no metacharacter)."""
    return not (REGEX_META & set(term))


def check_terms(terms: Sequence[str]) -> None:
    for i, t in enumerate(terms):
        if not t:
            raise ValueError(f"term {i} is empty")
        if "\x00" in t:
            raise ValueError(f"term {i} ({t!r}) contains a NUL character")


def sort_occurrences(term, doc, start, end):
    order = np.lexsort((term, end, start, doc))
    return term[order], doc[order], start[order], end[order]


class PatternOwners:
    """Which term indices each distinct pattern stands for (several where the term list repeats a
    term), as arrays built once per search rather than per file."""

    def __init__(self, owners: list[list[int]]):
        self.sizes = np.array([len(o) for o in owners], dtype=np.int64)
        self.flat = np.array([i for o in owners for i in o], dtype=np.int64)
        self.offs = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.single = bool((self.sizes == 1).all())


def unique_patterns(terms: Sequence[str], encode) -> tuple[list[bytes], PatternOwners]:
    """The distinct encoded terms and, per pattern, the term indices it stands for."""
    uniq: dict[bytes, list[int]] = {}
    for i, t in enumerate(terms):
        uniq.setdefault(encode(t), []).append(i)
    return list(uniq), PatternOwners(list(uniq.values()))


def patterns_to_terms(pat, doc, start, end, owners: PatternOwners):
    """Hits of patterns (sorted by doc, start, end) as hits of terms, in the same order; a pattern
    listed under several term indices yields one hit per index, in term order."""
    if owners.single:
        # one term per pattern: two distinct patterns never share (start, end), so the order holds
        return owners.flat[pat].astype(np.int32), doc, start, end
    counts = owners.sizes[pat]
    rep = np.repeat(np.arange(pat.size), counts)
    within = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
    term = owners.flat[owners.offs[pat[rep]] + within]
    return term.astype(np.int32), doc[rep], start[rep], end[rep]


def automaton(patterns: list[bytes]):
    """One Aho-Corasick automaton over byte patterns (ahocorasick_rs; its contiguous NFA was the
    fastest of its implementations for overlapping search on a synthetic vocabulary: 0.21 s per
    100 MB vs 0.31 s for the DFA). It searches parsed texts (files not in the decoder's form, and
    the reference the tests and the bench check the escaped-bytes kernel against); the decoder's
    files go through :func:`intervene.search.escaped.scan_file`, ~3x faster on real terms."""
    import ahocorasick_rs

    return ahocorasick_rs.BytesAhoCorasick(
        patterns, implementation=ahocorasick_rs.Implementation.ContiguousNFA
    )


def _literal(texts: Sequence[str], terms: Sequence[str]):
    """Every occurrence (overlapping) of every term; arrays (term, doc, start, end)."""
    pats, owners = unique_patterns(terms, lambda t: t.encode("utf-8"))
    empty = np.zeros(0, dtype=np.int64)
    if not pats or not texts:
        return empty.astype(np.int32), empty, empty, empty
    # each text encoded on its own, then the bytes NUL-joined: joining the str first would widen the
    # whole buffer to the widest character of any text (measured: 0.18 s vs 0.12 s per 100 MB), and
    # the byte lengths give every text's start without scanning the buffer
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    buf = b"\x00".join(encoded)
    del encoded
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    hits = automaton(pats).find_matches_as_indexes(buf, overlapping=True)
    if not hits:
        return empty.astype(np.int32), empty, empty, empty
    h = np.array(hits, dtype=np.int64)
    # sort once on buffer offsets (a global start orders documents too): 3 keys instead of 4
    h = h[np.lexsort((h[:, 0], h[:, 2], h[:, 1]))]
    pat, s, e = h[:, 0], h[:, 1], h[:, 2]
    doc = np.searchsorted(starts, s, side="right") - 1
    return patterns_to_terms(pat, doc.astype(np.int64), s - starts[doc], e - starts[doc], owners)


def greedy_nonoverlapping(term, doc, start, end):
    """Per (term, doc), keep matches left to right that start at or after the last kept end:
    Rust's find_iter for a literal (leftmost; for one literal all matches have its length)."""
    order = np.lexsort((start, doc, term))
    t, d, s, e = term[order], doc[order], start[order], end[order]
    same = np.zeros(t.size, dtype=bool)
    same[1:] = (t[1:] == t[:-1]) & (d[1:] == d[:-1])
    clash = same.copy()
    clash[1:] &= s[1:] < e[:-1]
    keep = np.ones(t.size, dtype=bool)
    if clash.any():  # only self-overlapping terms ("aa" in "aaaa"): walk those groups
        grp_start = np.flatnonzero(~same)
        grp_of = np.cumsum(~same) - 1
        for g in np.unique(grp_of[clash]):
            lo = grp_start[g]
            hi = grp_start[g + 1] if g + 1 < grp_start.size else t.size
            last = -1
            for k in range(lo, hi):
                if s[k] >= last:
                    last = e[k]
                else:
                    keep[k] = False
    return sort_occurrences(t[keep], d[keep], s[keep], e[keep])


def _char_to_byte(text: str, offs: list[int]) -> list[int]:
    if text.isascii():
        return offs
    return [len(text[:o].encode("utf-8")) for o in offs]


# characters that end a literal run in :func:`required_literal`; a pattern holding any of the
# quantifier / alternation / class characters gets no literal (they make parts optional)
_OPTIONAL_META = frozenset("*+?{}[]|")


def required_literals(pattern: str) -> list[str]:
    """Runs of plain characters that every match of ``pattern`` contains (each of them), or ``[]``
    when that cannot be told by this conservative reading: only patterns whose metacharacters are
    ``.``, ``^``, ``$``, groups ``( )`` (not ``(?``, whose flags may change matching) and escaped
    punctuation qualify; each of those ends a run, so every run is a mandatory substring of every
    match. The real ParaRel terms with metacharacters are all of this kind ("St. Louis",
    "Mount Rose (Nevada)"). Hand-written because the standard parser (``re._parser``) is private."""
    if _OPTIONAL_META & set(pattern) or "(?" in pattern:
        return []
    runs, cur, i = [], [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not nxt or nxt.isalnum() or nxt.isspace():  # \d, \b, \n ... : a class or anchor
                runs.append("".join(cur))
                cur = []
            else:
                cur.append(nxt)  # escaped punctuation stands for itself
            i += 2
            continue
        if c in ".^$()":
            runs.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    runs.append("".join(cur))
    return sorted({r for r in runs if r})


def _candidates(texts: Sequence[str], patterns: Sequence[str]) -> list[np.ndarray | None]:
    """Per regex pattern, the texts that hold every one of its required literals (one
    Aho-Corasick pass for all patterns), or ``None`` (every text) when it has none: a text without
    one of them cannot match, so the regex runs only on the others (WIMBD mode over real ParaRel
    terms was ~3 MB/s of text with a full regex scan per term)."""
    # runs shorter than 3 characters ("S", "p", "A" of "S.p.A.") are in most texts: they would
    # cost more hits than they save regex scans, so they are not used
    runs = [[r for r in required_literals(p) if len(r) >= 3] for p in patterns]
    out: list[np.ndarray | None] = [None] * len(patterns)
    lits = sorted({r for rs in runs for r in rs})
    if not lits:
        return out
    li, doc, _, _ = _literal(texts, lits)
    order = np.lexsort((doc, li))
    li, doc = li[order], doc[order]
    bounds = np.searchsorted(li, np.arange(len(lits) + 1))
    at = {lit: k for k, lit in enumerate(lits)}
    for i, rs in enumerate(runs):
        if rs:
            docs = [np.unique(doc[bounds[at[r]] : bounds[at[r] + 1]]) for r in rs]
            out[i] = functools.reduce(np.intersect1d, docs)
    return out


def _regex(texts: Sequence[str], ti: int, pattern: str, only: np.ndarray | None = None):
    """WIMBD's matches of one regex term: non-overlapping find_iter per text, byte offsets;
    with ``only``, the texts outside it are known not to match and are skipped."""
    if re.search(r"\(\?[=!<]|\\[1-9]", pattern):
        raise ValueError(f"term {ti} ({pattern!r}): look-around/backreferences are not Rust regex syntax")
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"term {ti} ({pattern!r}): not a valid regex: {e}") from None
    anchored = bool(re.search(r"(?<!\\)[\^$]|\\[AZzbB]", pattern)) or rx.match("") is not None
    per_doc: dict[int, list[tuple[int, int]]] = {}
    redo: set[int] = set()
    if only is not None:  # few candidate texts: each on its own (the exact per-text semantics)
        redo = set(only.tolist())
    elif anchored:  # anchors and empty matches depend on where a text ends: one text at a time
        redo = set(range(len(texts)))
    else:  # one scan over the texts joined by newlines (which `.` does not cross); fix-ups below
        joined = "\n".join(texts)
        starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]]).tolist()
        for m in rx.finditer(joined):
            s, e = m.span()
            d = bisect_right(starts, s) - 1
            if e > starts[d] + len(texts[d]):  # crossed into the next text: redo the texts it touched
                redo.update(range(d, bisect_right(starts, max(e - 1, s))))
            else:
                per_doc.setdefault(d, []).append((s - starts[d], e - starts[d]))
    for d in redo:
        per_doc.pop(d, None)
        spans = [m.span() for m in rx.finditer(texts[d])]
        if spans:
            per_doc[d] = spans
    rows = []
    for d, spans in per_doc.items():
        b = _char_to_byte(texts[d], [x for sp in spans for x in sp])
        rows += [(ti, d, b[2 * k], b[2 * k + 1]) for k in range(len(spans))]
    return rows


def find_terms(texts: Sequence[str], terms: Sequence[str], mode: str = "literal"):
    """Occurrences of ``terms`` in ``texts``: ``(term_idx, doc_idx, start, end)`` arrays, byte
    offsets into each text's UTF-8 encoding, end exclusive, sorted by document, then start (then
    end, then term)."""
    if mode not in ("literal", "wimbd"):
        raise ValueError(f"mode must be 'literal' or 'wimbd', not {mode!r}")
    check_terms(terms)
    if mode == "literal":
        return _literal(texts, terms)
    plain = [i for i, t in enumerate(terms) if is_plain(t)]
    lit = _literal(texts, [terms[i] for i in plain])
    t, d, s, e = greedy_nonoverlapping(np.array(plain, dtype=np.int32)[lit[0]], lit[1], lit[2], lit[3])
    rows = []
    regex = [i for i, term in enumerate(terms) if not is_plain(term)]
    if regex:
        for i, only in zip(regex, _candidates(texts, [terms[i] for i in regex]), strict=True):
            rows += _regex(texts, i, terms[i], only)
    if rows:
        r = np.array(rows, dtype=np.int64)
        t = np.concatenate([t, r[:, 0].astype(np.int32)])
        d, s, e = np.concatenate([d, r[:, 1]]), np.concatenate([s, r[:, 2]]), np.concatenate([e, r[:, 3]])
    return sort_occurrences(t, d, s, e)
