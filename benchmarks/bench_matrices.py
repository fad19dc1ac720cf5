"""Term and pair matrices at real scale: the real ParaRel terms and instances, occurrences at the
rates realistic text gives them, the previous construction as the baseline in the same run.

Occurrences: realistic English text (``benchmarks/text_corpus.py``: real word frequencies, the
ParaRel terms planted; ~113k occurrences per 17 MB of text, dominated by short terms inside common
words: "ear", "red", "Ho", "Ba") is searched once (literal mode, every overlapping match) as a pool
of about one 7B-shape batch (17 MB of text); groups of 3 to 100 batches are drawn from the pool's
documents with replacement, each document with all its real occurrences (positions, nestings,
repeated mentions). Per size: term_doc and pair_doc for every relation, as the stage computes them
(pair_doc given the term counts), ours and, at the smaller sizes, the previous construction
(``benchmarks/previous_matrices.py``: one Python loop per candidate (instance, document) with four
``searchsorted`` over the whole term column and a LIL assignment each), matrices asserted
identical. The stage itself (``intervene term-doc`` / ``pair-doc`` on an occurrences file) runs at
the largest size in a child process: CPU time and peak RSS from the kernel (``wait4``). Printed: time
per million occurrences and the projection to one group of 1000 batches (1B and 7B shapes).

Also kept: the comparison with the paper's construction from per-term WIMBD JSON files
(``benchmarks/paper_matrices.py``) on a synthetic corpus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SCALE, best_of, report
from benchmarks.previous_matrices import previous_pair_doc, previous_term_doc

BATCH_TEXT_BYTES = 17e6  # one 7B-shape batch: 1024 x 4096 tokens of decoded text (17 GB per 1000)
SIZES = (1, 3, 10, 30, 100)  # batches per group (x BENCH_SCALE)
BASELINE_SIZES = (1, 3)  # where the previous construction also runs (it grows as batches^2.3)


def run() -> str:
    lines = [_versus_paper()]
    from benchmarks.text_corpus import pararel_dir, skip_message

    root = pararel_dir()
    if root is None or not (root / "huggingface").is_dir():
        print(f"  real-terms matrices {skip_message()} (and its huggingface/ instances)")
        return "\n".join(lines)
    lines += _real_terms(root)
    return "\n".join(lines)


# --- real terms at scale -----------------------------------------------------------------------


def _pool(root: Path, vocab: list[str]):
    """Occurrences of every term in about one batch of realistic text, and the documents' sizes."""
    from benchmarks.text_corpus import realistic_texts
    from intervene.search.find import find_terms

    texts = realistic_texts(int(BATCH_TEXT_BYTES * SCALE), seed=0, pararel_dir=root)
    occ = find_terms(texts, vocab)
    return occ, np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)


def _group(pool, doc_bytes: np.ndarray, batches: float, rng) -> tuple[dict, int]:
    """Documents drawn from the pool until ``batches`` batches of text, each with its occurrences;
    sorted by document then start, as the search writes them."""
    t, d, s, e = pool
    first = np.searchsorted(d, np.arange(doc_bytes.size + 1))
    n_docs = int(round(batches * BATCH_TEXT_BYTES / doc_bytes.mean()))
    pick = rng.integers(0, doc_bytes.size, size=n_docs)
    c = np.diff(first)[pick]
    idx = np.repeat(first[pick] - (np.cumsum(c) - c), c) + np.arange(int(c.sum()))
    occ = {
        "term": t[idx].astype(np.int32),
        "doc": np.repeat(np.arange(n_docs, dtype=np.int64), c),
        "start": s[idx],
        "end": e[idx],
        "n_docs": np.int64(n_docs),
        "mode": np.str_("literal"),
    }
    return occ, int(doc_bytes[pick].sum())


# Runs the stage from a small process: a child forked from this (large) benchmark process would
# report the benchmark's own peak as its ru_maxrss (Linux keeps it across exec). Polls the child's
# anonymous and file-backed resident memory every 20 ms; prints exit code, CPU s, peak RSS (kB) and
# the sampled peaks (kB) as JSON.
_MEASURE = """
import json, os, sys, time
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
peak = {"RssAnon": 0, "RssFile": 0}
while True:
    done, status, ru = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        for line in open(f"/proc/{pid}/status"):
            key, _, val = line.partition(":")
            if key in peak:
                peak[key] = max(peak[key], int(val.split()[0]))
    except OSError:
        pass
    time.sleep(0.02)
code = os.waitstatus_to_exitcode(status)
print(json.dumps([code, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, peak["RssAnon"], peak["RssFile"]]))
"""


def _stage(kind: str, occ_path: Path, terms: Path, root: Path, rels: list[str], out: Path) -> dict:
    """One stage run as the pipeline runs it (the ``intervene`` CLI in a child process): its CPU
    seconds and peak RSS in GB from the kernel's accounting (``wait4``), and the sampled peaks of
    its anonymous and file-backed resident memory (mapped occurrence pages count in the RSS, but
    the kernel can drop them; anonymous memory it cannot)."""
    exe = Path(sys.executable).with_name("intervene")
    cmd = [str(exe), kind.replace("_", "-"), "--occurrences", str(occ_path), "--terms", str(terms)]
    cmd += ["--terms-dir", str(root / "search_terms"), "--relations", ",".join(rels), "--out-dir", str(out)]
    if kind == "pair_doc":
        cmd += ["--pararel", str(root / "huggingface")]
    p = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True)
    code, cpu, rss, anon, file = json.loads(p.stdout.strip().splitlines()[-1])
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr[-2000:]}")
    return {"cpu_s": cpu, "rss_gb": rss / 2**20, "anon_gb": anon / 2**20, "file_gb": file / 2**20}


def _real_terms(root: Path) -> list[str]:
    from benchmarks.text_corpus import pararel_terms
    from intervene.atomic import write_text
    from intervene.search.matrices import pair_doc_matrix, relation_rows, term_counts
    from intervene.search.occurrences import term_vocabulary, write_occurrences
    from intervene.search.stages import relation_pairs

    vocab, files = pararel_terms(root)
    rels = sorted(files)
    _, rel_terms = term_vocabulary(files)
    lists = {r: [vocab[i] for i in rel_terms[r]] for r in rels}
    pairs = {r: relation_pairs(root / "huggingface", r, lists[r]) for r in rels}
    t0 = time.perf_counter()
    pool, doc_bytes = _pool(root, vocab)
    print(
        f"  pool: {doc_bytes.size} documents, {doc_bytes.sum() / 1e6:.0f} MB of realistic text, "
        f"{pool[0].size} occurrences of {len(vocab)} terms ({time.perf_counter() - t0:.0f} s to make)"
    )
    print(f"  {len(rels)} relations, {sum(len(p) for p in pairs.values())} instances")

    def term_doc(occ):  # as the stage: every term counted once, each relation takes its rows
        counts = term_counts(occ, len(vocab))
        return {r: relation_rows(counts, rel_terms[r]) for r in rels}

    def previous_term_docs(occ):
        return {r: previous_term_doc(occ, rel_terms[r]) for r in rels}

    def pair_doc(occ, td, fn=pair_doc_matrix):
        return {r: fn(occ, vocab, rel_terms[r], pairs[r], td[r]) for r in rels}

    rng = np.random.default_rng(0)
    rows, last = [], None
    for batches in (b * SCALE for b in SIZES):
        occ, n_bytes = _group(pool, doc_bytes, batches, rng)
        n_occ = occ["term"].size
        repeat = 3 if batches <= 10 * SCALE else 1
        td_s, td = best_of(lambda occ=occ: term_doc(occ), repeat)
        pd_s, pd = best_of(lambda occ=occ, td=td: pair_doc(occ, td), repeat)
        old_td_s = old_pd_s = float("nan")
        if batches in [b * SCALE for b in BASELINE_SIZES]:
            t = time.perf_counter()
            old_td = previous_term_docs(occ)
            old_td_s = time.perf_counter() - t
            t = time.perf_counter()
            old_pd = pair_doc(occ, old_td, previous_pair_doc)
            old_pd_s = time.perf_counter() - t
            for r in rels:
                for a, b in ((td[r], old_td[r]), (pd[r], old_pd[r])):
                    assert a.shape == b.shape and a.dtype == b.dtype and a.indices.dtype == b.indices.dtype
                    assert (a != b).nnz == 0 and np.array_equal(a.indptr, b.indptr)
        nnz = sum(m.nnz for m in pd.values())
        rows.append((batches, n_bytes, n_occ, int(occ["n_docs"]), nnz, td_s, pd_s, old_td_s, old_pd_s))
        print(
            f"  {batches:>6g} batches: {n_bytes / 1e6:7.0f} MB, {n_occ:>10} occurrences, {int(occ['n_docs']):>8} docs, "
            f"{nnz:>8} co-occurrences | term_doc {td_s:7.3f} s (previous {old_td_s:7.2f}) "
            f"| pair_doc {pd_s:7.3f} s (previous {old_pd_s:7.2f})",
            flush=True,
        )
        last = occ
    b = np.array([r[0] for r in rows])
    per_m = [(r[5] + r[6]) / r[2] * 1e6 for r in rows]
    print(f"  ours, term_doc + pair_doc: {', '.join(f'{x:.3f}' for x in per_m)} s per million occurrences")
    # linear fit of ours; the previous construction's growth exponent between its two sizes
    slope, icpt = np.polyfit(b, [r[5] + r[6] for r in rows], 1)
    proj_7b = (icpt + slope * 1000) / 3600
    old = [r for r in rows if not np.isnan(r[8])]
    if len(old) >= 2:
        k = np.log(old[-1][8] / old[-2][8]) / np.log(old[-1][0] / old[-2][0])
        old_proj = old[-1][8] * (1000 / old[-1][0]) ** k / 3600
        print(f"  previous pair_doc grows as batches^{k:.2f}: {old_proj:,.0f} core-h per 1000 batches (7B)")
    occ_per_group = rows[-1][2] / rows[-1][0] * 1000
    print(
        f"  projection, one group of 1000 batches: ~{occ_per_group:.2g} occurrences (7B shape), "
        f"term_doc + pair_doc {proj_7b:.3f} core-h (7B), {proj_7b / 2:.3f} (1B: half the text)"
    )

    # the stages end to end on a file at the largest size
    tmp = Path(tempfile.mkdtemp(prefix="bench-matrices-real-"))
    occ_path, terms = tmp / "occ.npz", tmp / "terms.txt"
    write_occurrences(occ_path, last)
    write_text(terms, "".join(t + "\n" for t in vocab))
    occ_gb = sum(v.nbytes for v in last.values()) / 2**30
    del last
    for kind in ("term_doc", "pair_doc"):
        r = _stage(kind, occ_path, terms, root, rels, tmp / kind)
        print(
            f"  stage {kind} at {b[-1]:g} batches (occurrences {occ_gb:.2f} GB): {r['cpu_s']:.1f} CPU s, "
            f"peak RSS {r['rss_gb']:.2f} GB (sampled peaks: anonymous {r['anon_gb']:.2f} GB, "
            f"file-backed {r['file_gb']:.2f} GB); {r['cpu_s'] / b[-1] * 1000 / 3600:.2f} core-h per "
            "1000 batches if linear"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    at = [r for r in rows if not np.isnan(r[8])][-1]
    size = [("batches (x 17 MB of text)", f"{at[0]:g}: {at[2]} occurrences, {at[3]} documents")]
    return [
        report("term_doc_real_terms", "previous_per_relation_coo", at[7], at[5], size),
        report("pair_doc_real_terms", "previous_per_pair_loop", at[8], at[6], size),
    ]


# --- versus the paper's construction from WIMBD JSON files -------------------------------------


def _versus_paper() -> str:
    from benchmarks.paper_matrices import paper_pair_doc, paper_term_doc
    from benchmarks.search_corpus import make_corpus
    from intervene.search.corpus import group_texts
    from intervene.search.matrices import pair_doc_matrix, term_doc_matrix
    from intervene.search.occurrences import search_group, to_wimbd_json

    root = Path(tempfile.mkdtemp(prefix="bench-matrices-"))
    g = root / "001"
    terms, _ = make_corpus(g, mb=20 * SCALE, n_terms=600, seed=1)
    occ = search_group(g, terms, mode="wimbd")
    _, files, first = group_texts(g)
    js = root / "json"
    js.mkdir()
    for i, t in enumerate(terms):
        (js / f"{i + 1}.json").write_text(to_wimbd_json(t, i, occ, g))
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(terms), size=(1000, 2))
    offset = int(files[0].name.split(".")[0])
    lengths = np.diff(first).tolist()
    rel = np.arange(len(terms))

    t = time.perf_counter()
    p_td = paper_term_doc(js, len(terms), lengths, offset)
    p_pd = paper_pair_doc(js, len(terms), pairs, lengths, offset)
    base_s = time.perf_counter() - t

    def ours():
        td = term_doc_matrix(occ, rel)
        return td, pair_doc_matrix(occ, terms, rel, pairs, td)

    ours_s, (td, pd) = best_of(ours, 3)
    assert (td != p_td).nnz == 0 and (pd != p_pd).nnz == 0
    return report(
        "matrices",
        "paper_json_dict_loops",
        base_s,
        ours_s,
        [
            ("terms x documents", f"{len(terms)} x {int(occ['n_docs'])}, {td.nnz} nonzeros"),
            ("instances (pairs)", f"{len(pairs)}, {pd.nnz} co-occurrences"),
        ],
    )
