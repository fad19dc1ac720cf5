"""BM25 on the real ParaRel queries over realistic text, against the previous implementation and
rank_bm25, all measured in the same run.

Workload: the subjects of the ParaRel instances (``INTERVENE_PARAREL``, default
``resources/pararel``, its ``huggingface/pararel_patterns_{rel}`` datasets; the bench says it skips
without them) as queries, top ``k`` = 100 per query, over realistic English text
(:mod:`benchmarks.text_corpus`: wordfreq word frequencies, ParaRel subjects and objects planted)
written as the decode stage writes a batch group.

Lines:

- ``bm25_stage``: the stage (``intervene.search.stages.bm25_files``: the files streamed once, one
  chunk in memory, the query tokens' counts spilled, a running top k) vs the previous stage (every
  text of the group in memory, ``bm25s.tokenize``, ``bm25_scores``, ``top_k``), CPU seconds of one
  core, each in a fresh process, at 1, 2 and 4 files of 16 MB (one 7B batch each): peak RSS of
  both at every size, and what the work added to the RSS after the imports and the queries (the
  previous one grows with the text, ours with the vocabulary and the output only). Outputs asserted
  byte-identical.
- ``bm25_tokenize``: our tokenizer vs ``bm25s.tokenize(stopwords="en")`` on the same texts; tokens
  asserted equal.
- ``bm25`` / ``bm25_end_to_end``: rank_bm25 ``BM25Okapi`` (``get_scores`` per query; index +
  scores) vs ``bm25_scores``'s weights + one sparse product, on a slice of the queries; scores
  asserted equal to 1e-6 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SCALE, best_of, report

K = 100
FILE_BYTES = 16e6  # text per batch file: one 7B batch (1024 x 4096 tokens)


def _queries(root: Path) -> list[str]:
    from intervene.search.stages import pararel_queries

    hf = root / "huggingface"
    rels = sorted(p.name.removeprefix("pararel_patterns_") for p in hf.glob("pararel_patterns_*"))
    return pararel_queries(hf, rels)


def _cpu() -> float:
    return time.process_time()


def _child(mode: str, group: str, out: str, root: str) -> None:
    """One measurement in this fresh process: CPU seconds and peak RSS (ru_maxrss) as JSON."""
    import resource

    from intervene.search.corpus import batch_files

    queries = _queries(Path(root))
    before = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    t = _cpu()
    if mode == "stream":
        from intervene.search.stages import bm25_files

        bm25_files(batch_files(group), queries, out, k=K, method="okapi", tokenizer="bm25s_en")
    else:  # the previous stage: run_bm25 -> write_bm25 as they were
        import bm25s

        from intervene.atomic import write_sparse
        from intervene.search.bm25 import bm25_scores, top_k
        from intervene.search.corpus import group_texts

        docs = group_texts(group)[0]

        def tok(x):
            return bm25s.tokenize(x, stopwords="en", return_ids=False, show_progress=False)

        write_sparse(out, top_k(bm25_scores(tok(docs), tok(queries)), K))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"cpu_s": _cpu() - t, "rss_gb": rss / 1e9, "work_gb": (rss - before) / 1e9}))


def _measure(mode: str, group: Path, out: Path, root: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_bm25", "--child", mode, str(group), str(out), str(root)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _stage_lines(root: Path, work: Path) -> str:
    from benchmarks.text_corpus import realistic_texts, write_decoded_group

    file_bytes = FILE_BYTES * SCALE
    texts = realistic_texts(int(4 * file_bytes), seed=0, pararel_dir=root)
    files, _ = write_decoded_group(work / "all", texts, file_bytes)
    table, last = [], None
    for n in (1, 2, 4):
        group = work / f"g{n}"
        group.mkdir()
        for f in files[:n]:
            (group / f.name).symlink_to(f)
        size = sum(len(t.encode("utf-8")) for f in files[:n] for t in _texts(f))
        base = _measure("previous", group, work / f"prev{n}.npz", root)
        ours = _measure("stream", group, work / f"ours{n}.npz", root)
        if (work / f"prev{n}.npz").read_bytes() != (work / f"ours{n}.npz").read_bytes():
            raise AssertionError(f"streamed BM25 differs from the previous stage on {n} file(s)")
        table.append(
            (
                f"{n} file(s), {size / 1e6:.0f} MB: CPU s / peak RSS (+ work)",
                f"previous {base['cpu_s']:.1f} s / {base['rss_gb']:.2f} GB (+{base['work_gb']:.2f}), "
                f"streamed {ours['cpu_s']:.1f} s / {ours['rss_gb']:.2f} GB (+{ours['work_gb']:.2f})",
            )
        )
        last = base, ours, size
    base, ours, size = last
    table.append(("streamed, per MB of text", f"{ours['cpu_s'] / (size / 1e6) * 1e3:.0f} ms"))
    return report("bm25_stage", "previous_in_memory_stage", base["cpu_s"], ours["cpu_s"], table)


def _texts(f: Path) -> list[str]:
    from intervene.search.corpus import read_texts

    return read_texts(f)


def _tokenize_line(texts: list[str]) -> str:
    import bm25s

    from intervene.search.bm25 import get_tokenizer

    tok = get_tokenizer("bm25s_en")
    base_s, want = best_of(
        lambda: bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False), 2
    )
    ours_s, got = best_of(lambda: tok(texts), 2)
    if got != want:
        raise AssertionError("tokens differ from bm25s.tokenize")
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    return report(
        "bm25_tokenize",
        "bm25s_tokenize",
        base_s,
        ours_s,
        [("text", f"{mb:.1f} MB, {sum(map(len, got))} tokens")],
    )


def _rank_bm25_lines(texts: list[str], queries: list[str]) -> list[str]:
    from rank_bm25 import BM25Okapi

    from intervene.search.bm25 import bm25_weights, get_tokenizer, term_matrix

    tok = get_tokenizer("bm25s_en")
    corpus, qs = tok(texts), tok(queries[: int(500 * SCALE) or 1])
    t = time.perf_counter()
    ref = BM25Okapi(corpus)
    base_index = time.perf_counter() - t
    t = time.perf_counter()
    dense = np.array([ref.get_scores(q) for q in qs])
    base_score = time.perf_counter() - t
    index_s, (tf, vocab) = best_of(lambda: term_matrix(corpus), 2)

    def score():
        q, _ = term_matrix(qs, vocab, grow=False)
        return (q @ bm25_weights(tf).T).tocsr()

    score_s, s = best_of(score, 3)
    np.testing.assert_allclose(s.toarray(), dense, rtol=1e-6, atol=1e-12)
    size = f"{len(qs)} ParaRel subjects x {len(corpus)} documents, {sum(map(len, corpus))} tokens"
    return [
        report(
            "bm25_end_to_end",
            "rank_bm25_BM25Okapi",
            base_index + base_score,
            index_s + score_s,
            [("index: rank_bm25 / ours", f"{base_index:.2f} s / {index_s:.2f} s")],
        ),
        report("bm25", "rank_bm25_get_scores", base_score, score_s, [("queries x documents", size)]),
    ]


def run() -> list[str]:
    from benchmarks.text_corpus import pararel_dir, skip_message

    root = pararel_dir()
    if root is None or not (root / "huggingface").is_dir():
        print(f"  {skip_message()} (and its huggingface/ instance datasets)")
        return []
    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="intervene-bench-bm25-") as tmp:
        work = Path(tmp)
        lines = [_stage_lines(root, work)]
        texts = _texts(work / "all" / "0.json.gz")[: int(2000 * SCALE) or 1]
        lines.append(_tokenize_line(texts))
        lines += _rank_bm25_lines(texts[: len(texts) // 2], _queries(root))
    return lines


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(*sys.argv[2:6])
    else:
        os.environ.setdefault("BENCH_SCALE", "1")
        run()
