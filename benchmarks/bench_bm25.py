"""BM25: ours (one sparse product) vs rank_bm25 ``BM25Okapi`` on the same tokens; scores asserted
equal to 1e-6 relative. Two ratios: end to end from token lists (both build their index: a Python
pass over every token, ~100 ns each, for both), and scoring alone (rank_bm25's get_scores per query
vs our weights + one product, given the index), which is what grows with queries x documents."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import SCALE, best_of, report


def run() -> str:
    from rank_bm25 import BM25Okapi

    from intervene.search.bm25 import bm25_weights, term_matrix

    # 60k short documents (the SPEC's measurement used 200k; rank_bm25's time grows linearly with them)
    rng = np.random.default_rng(2)
    words = np.array([f"w{i}" for i in range(50000)])
    p = 1 / np.arange(1, words.size + 1)
    p /= p.sum()
    n_docs = int(60000 * SCALE)
    lens = rng.integers(10, 120, size=n_docs)
    flat = words[rng.choice(words.size, size=int(lens.sum()), p=p)].tolist()
    cuts = np.concatenate([[0], np.cumsum(lens)]).tolist()
    corpus = [flat[cuts[i] : cuts[i + 1]] for i in range(n_docs)]
    queries = [words[rng.integers(50, 20000, size=int(rng.integers(1, 4)))].tolist() for _ in range(1000)]

    t = time.perf_counter()
    ref = BM25Okapi(corpus)
    base_index = time.perf_counter() - t
    t = time.perf_counter()
    dense = np.array([ref.get_scores(q) for q in queries])
    base_score = time.perf_counter() - t

    index_s, (tf, vocab) = best_of(lambda: term_matrix(corpus), 2)

    def score():
        q, _ = term_matrix(queries, vocab, grow=False)
        return (q @ bm25_weights(tf).T).tocsr()

    score_s, s = best_of(score, 3)
    np.testing.assert_allclose(s.toarray(), dense, rtol=1e-6, atol=1e-12)
    report(
        "bm25_end_to_end",
        "rank_bm25_BM25Okapi",
        base_index + base_score,
        index_s + score_s,
        [("index: rank_bm25 / ours", f"{base_index:.2f} s / {index_s:.2f} s")],
    )
    return report(
        "bm25",
        "rank_bm25_get_scores",
        base_score,
        score_s,
        [("queries x documents", f"{len(queries)} x {len(corpus)}, {sum(map(len, corpus))} tokens")],
    )
