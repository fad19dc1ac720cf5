"""The paper's matrix construction, re-implemented for the benchmark (not shipped as a mode).

Faithful to rahuln/pretrain-intervention scripts/build_term_doc_matrix.py and
build_term_pair_doc_matrix.py: one WIMBD JSON file per term (``{i+1}.json``) read with json.load;
document ids ``"{file}-{line_num}"`` mapped through a dict to columns; the term matrix from
(row, col, count) lists; the pair matrix by nested loops over the two terms' occurrences per file,
line and submatch, with the containment test.
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy.sparse import coo_matrix


def _doc_index(file_lengths, offset):
    ids = [f"{i + offset}-{n + 1}" for i, k in enumerate(file_lengths) for n in range(k)]
    key = lambda d: (int(d.split("-")[0]), int(d.split("-")[1]))  # noqa: E731
    return {d: i for i, d in enumerate(sorted(ids, key=key))}


def paper_term_doc(json_dir, n_terms, file_lengths, offset):
    doc_id_to_index = _doc_index(file_lengths, offset)
    row, col, data = [], [], []
    for r in range(n_terms):
        with open(os.path.join(json_dir, f"{r + 1}.json")) as fh:
            matches = json.load(fh)
        for key, value in matches["matches"].items():
            file_id = os.path.basename(key).replace(".json.gz", "")
            for entry in value:
                row.append(r)
                col.append(doc_id_to_index[f"{file_id}-{entry['line_num']}"])
                data.append(len(entry["submatches"]))
    return coo_matrix((data, (row, col)), shape=(n_terms, len(doc_id_to_index))).tocsr()


def _contains(a, b):
    return (a[0] >= b[0] and a[1] <= b[1]) or (b[0] >= a[0] and b[1] <= a[1])


def _pair_docs(t1, t2, doc_id_to_index):
    idxs = set()
    for path, occ1 in t1.items():
        file_num = int(os.path.basename(path).replace(".json.gz", ""))
        if path not in t2:
            continue
        for o1 in occ1:
            doc_id = f"{file_num}-{o1['line_num']}"
            if doc_id_to_index[doc_id] in idxs:
                continue
            for o2 in t2[path]:
                if o1["line_num"] == o2["line_num"]:
                    for m1 in o1["submatches"]:
                        for m2 in o2["submatches"]:
                            if not _contains(
                                (m1["start_col"], m1["end_col"]), (m2["start_col"], m2["end_col"])
                            ):
                                idxs.add(doc_id_to_index[doc_id])
    return sorted(idxs)


def paper_pair_doc(json_dir, n_terms, pairs, file_lengths, offset):
    dicts = {}
    for r in range(n_terms):
        with open(os.path.join(json_dir, f"{r + 1}.json")) as fh:
            dicts[r] = json.load(fh)["matches"]
    doc_id_to_index = _doc_index(file_lengths, offset)
    data, row, col = [], [], []
    for i, (a, b) in enumerate(pairs):
        idxs = _pair_docs(dicts[int(a)], dicts[int(b)], doc_id_to_index)
        data += [1] * len(idxs)
        row += [i] * len(idxs)
        col += idxs
    return coo_matrix((data, (row, col)), shape=(len(pairs), len(doc_id_to_index))).tocsr()


def file_lengths_of(first_row: np.ndarray) -> list[int]:
    return np.diff(first_row).tolist()
