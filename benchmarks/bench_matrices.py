"""Term and pair matrices: ours from the occurrences file vs the paper's dict-and-loop construction
from per-term WIMBD JSON files (benchmarks/paper_matrices.py). Identical matrices (asserted)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SCALE, best_of, report
from benchmarks.search_corpus import make_corpus


def run() -> str:
    from benchmarks.paper_matrices import paper_pair_doc, paper_term_doc
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
