"""Term search over a batch group, the occurrences file, and WIMBD's JSON (export and import).

The occurrences file (``.npz``) is columnar: ``term`` (index into the term vocabulary), ``doc``
(row of the group's doc info), ``start``/``end`` (byte offsets into the document's UTF-8 text, end
exclusive), sorted by doc then start; plus ``n_docs`` and ``mode``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from intervene.atomic import write_npz
from intervene.search.corpus import batch_files, check_line_counts, group_texts, parse_texts, read_decoded
from intervene.search.escaped import escape_layout, escape_term, literal_set, scan_file
from intervene.search.find import (
    check_terms,
    find_terms,
    greedy_nonoverlapping,
    is_plain,
    patterns_to_terms,
    sort_occurrences,
    unique_patterns,
)


def read_term_list(path: str | os.PathLike) -> list[str]:
    """One term per line (the paper's term files: ``sorted(set(subjects) | set(objects))``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: term file not found")
    terms = [line.rstrip("\n") for line in p.read_text(encoding="utf-8").splitlines()]
    if any(not t for t in terms):
        raise ValueError(f"{p}: empty line (an empty term would match everywhere)")
    return terms


def term_vocabulary(term_files: dict[str, str | os.PathLike]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The sorted union of all relations' terms, and per relation the vocabulary index of each of
    its term-file lines (so a relation's rows never depend on another relation's terms)."""
    lists = {rel: read_term_list(p) for rel, p in term_files.items()}
    vocab = sorted({t for ts in lists.values() for t in ts})
    pos = {t: i for i, t in enumerate(vocab)}
    return vocab, {rel: np.array([pos[t] for t in ts], dtype=np.int64) for rel, ts in lists.items()}


def search_group(group_dir, terms: list[str], *, mode: str = "literal", doc_info=None) -> dict:
    """The occurrences of ``terms`` in a batch group: :func:`find_terms` over the group's texts.

    Plain terms are searched file by file in the escaped JSON bytes (:mod:`escaped`); a file not in
    the decoder's exact form is parsed and searched as texts instead, and ``wimbd`` regex terms
    always run over the parsed texts. The result is the same either way (tested).
    """
    if mode not in ("literal", "wimbd"):
        raise ValueError(f"mode must be 'literal' or 'wimbd', not {mode!r}")
    check_terms(terms)
    files = batch_files(group_dir)
    plain = np.array([i for i, t in enumerate(terms) if mode == "literal" or is_plain(t)], dtype=np.int64)
    regex = [i for i, x in enumerate(terms) if mode == "wimbd" and not is_plain(x)]
    # regex terms need the parsed texts: parsed in the same pass, each file read once, and
    # searched file by file (a group's texts at once would be its whole 8-17 GB of text)
    regex_terms = [terms[i] for i in regex]
    parts, first, regex_parts = _literal_in_files(files, [terms[i] for i in plain], regex_terms=regex_terms)
    t, d, s, e = _concat_columns(parts)
    if plain.size != len(terms):  # wimbd mode with regex terms: literal index -> term index
        t = plain[t].astype(np.int32)
    first_row = np.array(first, dtype=np.int64)
    if doc_info is not None:
        check_line_counts(group_dir, files, first_row, doc_info)
    if mode == "wimbd":
        t, d, s, e = greedy_nonoverlapping(t, d, s, e)
        if regex:
            rt, rd, rs, re_ = _concat_columns(regex_parts)
            t = np.concatenate([t, np.array(regex, dtype=np.int32)[rt]])
            d, s, e = np.concatenate([d, rd]), np.concatenate([s, rs]), np.concatenate([e, re_])
            t, d, s, e = sort_occurrences(t, d, s, e)
    n_docs = np.int64(first_row[-1])
    return {"term": t, "doc": d, "start": s, "end": e, "n_docs": n_docs, "mode": np.str_(mode)}


def _concat_columns(parts: list) -> list[np.ndarray]:
    """The per-file ``(term, doc, start, end)`` arrays joined column by column, each file's array
    released as soon as it is copied: the peak is the output plus one column of the parts, not
    twice the output (``np.concatenate`` over all parts)."""
    cols = [[p[k] for p in parts] for k in range(4)]
    parts.clear()
    out = []
    for arrs in cols:
        dst = np.empty(sum(a.size for a in arrs), dtype=arrs[0].dtype)
        pos = 0
        for j, a in enumerate(arrs):
            dst[pos : pos + a.size] = a
            pos += a.size
            arrs[j] = None
        out.append(dst)
    return out


def _literal_in_files(files: list[Path], terms: list[str], *, regex_terms: list[str] | None = None):
    """Per file, the literal occurrences ``(term, doc, start, end)`` (doc = row in the group);
    each file's first row plus the total; and per file the WIMBD matches of ``regex_terms``
    (term = index into them) over its parsed texts (an empty list without them)."""
    pats, owners = unique_patterns(terms, escape_term)
    lits = literal_set(pats) if pats else None
    parts, first, row = [], [], 0
    regex_parts: list = []
    keep_texts = bool(regex_terms)
    empty = np.zeros(0, dtype=np.int64)
    for f in files:
        data = read_decoded(f)
        # the kernel checks the bytes in its own pass; without patterns escape_layout does
        layout = escape_layout(data, check_bytes=lits is None)
        hits = None
        if layout is not None and lits is not None:
            hits = scan_file(data, lits, layout)  # None: a byte outside json.dumps's form
            if hits is None:
                layout = None
        if layout is None or keep_texts:
            texts = parse_texts(data, f)
        if keep_texts:
            rt, rd, rs, re_ = (
                find_terms(texts, regex_terms, "wimbd")
                if texts
                else (empty.astype(np.int32), empty, empty, empty)
            )
            regex_parts.append((rt, rd + row, rs, re_))
        if layout is None:  # not the decoder's exact form: search the parsed texts
            t, d, s, e = find_terms(texts, terms) if texts else (empty, empty, empty, empty)
            n = len(texts)
        else:
            n = layout.n_lines
            t, d, s, e = empty.astype(np.int32), empty, empty, empty
            if hits is not None:
                t, d, s, e = patterns_to_terms(*hits, owners)
        if row:
            d += row  # in place: the arrays are this file's own
        parts.append((t, d, s, e))
        first.append(row)
        row += n
    parts.append((empty.astype(np.int32), empty, empty, empty))
    regex_parts.append((empty.astype(np.int32), empty, empty, empty))
    return parts, first + [row], regex_parts


def write_occurrences(out: str | os.PathLike, occ: dict) -> None:
    write_npz(out, **occ)


def load_occurrences(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: occurrences file not found")
    z = np.load(p)
    need = {"term", "doc", "start", "end", "n_docs"}
    if not need <= set(z.files):
        raise ValueError(f"{p}: not an occurrences file (needs {sorted(need)}, has {z.files})")
    return {k: z[k] for k in z.files}


def to_wimbd_json(pattern: str, term_idx: int, occ: dict, group_dir, file_key=str) -> str:
    """WIMBD's ``--with-locations --json`` line for one term over the group's batch files:
    compact, keys sorted (serde_json without preserve_order), 1-based line numbers, byte offsets."""
    texts, files, first = group_texts(group_dir)
    m = occ["term"] == term_idx
    docs, starts, ends = occ["doc"][m], occ["start"][m], occ["end"][m]
    matches: dict[str, list] = {}
    for d in np.unique(docs):
        f = int(np.searchsorted(first, d, side="right") - 1)
        sel = docs == d
        entry = {
            "line_num": int(d - first[f] + 1),
            "submatches": [
                {"end_col": int(b), "start_col": int(a)} for a, b in zip(starts[sel], ends[sel], strict=True)
            ],
            "text": texts[d],
        }
        matches.setdefault(file_key(files[f]), []).append(entry)
    obj = {"count": int(m.sum()), "matches": dict(sorted(matches.items())), "pattern": pattern}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def import_wimbd(json_files: list[str | os.PathLike], terms: list[str], group_dir, doc_info=None) -> dict:
    """Occurrences from real ``wimbd search --with-locations --json`` outputs (any number of
    pattern lines per file). A pattern not in ``terms`` is an error; a term with no file simply has
    no occurrences (its rows stay in place)."""
    _, files, first = group_texts(group_dir, doc_info)
    by_name = {f.name: i for i, f in enumerate(files)}
    index = {t: i for i, t in enumerate(terms)}
    cols = defaultdict(list)
    for jf in json_files:
        for ln, line in enumerate(Path(jf).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                pattern = obj["pattern"]
                matches = obj.get("matches")
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{jf}:{ln}: not a wimbd --json line ({e})") from None
            if matches is None:
                raise ValueError(f"{jf}:{ln}: no locations (run wimbd with --with-locations)")
            if pattern not in index:
                raise ValueError(f"{jf}:{ln}: pattern {pattern!r} is not in the term list")
            for key, entries in matches.items():
                name = os.path.basename(key)
                if name not in by_name:
                    raise ValueError(f"{jf}:{ln}: file {key} is not a batch of {group_dir}")
                f = by_name[name]
                for e in entries:
                    d = first[f] + int(e["line_num"]) - 1
                    if not first[f] <= d < first[f + 1]:
                        raise ValueError(f"{jf}:{ln}: line {e['line_num']} beyond {name}'s documents")
                    for sm in e["submatches"]:
                        cols["term"].append(index[pattern])
                        cols["doc"].append(d)
                        cols["start"].append(int(sm["start_col"]))
                        cols["end"].append(int(sm["end_col"]))
    t = np.array(cols["term"], dtype=np.int32)
    d, s, e = (np.array(cols[k], dtype=np.int64) for k in ("doc", "start", "end"))
    o = np.lexsort((t, e, s, d))
    return {
        "term": t[o],
        "doc": d[o],
        "start": s[o],
        "end": e[o],
        "n_docs": np.int64(first[-1]),
        "mode": np.str_("wimbd"),
    }
