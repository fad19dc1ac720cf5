"""Per instance its top-scoring documents, as readable JSON lines (the paper's
scripts/get_top_scoring_docs_per_inst.py, over this pipeline's window score matrices).

Input: an (instances x window documents) score matrix, as ``bm25-window`` and ``dense-window``
write it (``scipy.sparse.save_npz``; columns = the window's documents in window order, rows = the
target instances of a ``learned_step{N}.npz``, or every instance of the tasks). Each instance's
documents are its stored nonzero scores, highest first, ties broken by the lower window column (=
the lower doc-info row); ``k`` of them, leaving out scores ``<= min_score`` as the paper's
``--min_score`` did. The paper ranked the dense row, so an instance with fewer than ``k`` scored
documents also got arbitrary zero-score ones; a score matrix here stores only scored documents, so
those are never listed.

A document's text is its line of the decoded batch file (``{b}.json.gz``): the decode stage's text
of the batch tokens with the run's tokenizer, the same text the scorers read (the paper read the
same decoded files). Each document carries where it sits: its window column, its row of the
window's concatenated doc info (the mapping's ``orig_idxs`` convention), its group, row in the
group, global batch, sequence and token span.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from intervene.atomic import atomic_path


def ranked(scores: sp.csr_matrix, k: int, min_score: float | None = None) -> list[list[tuple[int, float]]]:
    """Per row its top ``k`` (column, score) of the stored nonzero scores, highest first, ties: the
    lower column; scores ``<= min_score`` left out (they rank last, so this equals the paper's
    skipping them among its top ``k``)."""
    m = scores.tocsr()
    out = []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        c, v = m.indices[lo:hi].astype(np.int64), m.data[lo:hi].astype(np.float64)
        keep = v != 0
        if min_score is not None:
            keep &= v > min_score
        c, v = c[keep], v[keep]
        order = np.lexsort((c, -v))[:k]
        out.append([(int(c[i]), float(v[i])) for i in order])
    return out


def instance_info(tasks: list[str], sources: dict[str, str], rows=None) -> list[dict]:
    """Per evaluation instance ``rows`` (rows of labels.npz; default all): its task, dataset label,
    question and gold answer, as the paper's export shows them (ParaRel: the dataset's ``question``
    column and the object; MCQA: the question and the gold choice's text)."""
    from intervene.evaluation.tasks import dataset_label, expand_tasks, load_task, pararel_split

    names = expand_tasks(tasks)
    loaded = {t: load_task(t, sources) for t in names}
    starts = np.cumsum([0] + [len(loaded[t]) for t in names])
    want = np.arange(starts[-1]) if rows is None else np.asarray(rows, dtype=np.int64)
    if want.size and (want.min() < 0 or want.max() >= starts[-1]):
        raise ValueError(f"instance rows must lie in [0, {starts[-1]}) for tasks {tasks}")
    questions: dict[str, list[str]] = {}
    out = []
    for row in want.tolist():
        t = int(np.searchsorted(starts, row, side="right") - 1)
        task, inst = names[t], loaded[names[t]][row - starts[t]]
        if task not in questions:
            questions[task] = [_question(i.context) for i in loaded[task]]
            if task.startswith("pararel_"):
                _, ds = pararel_split(sources["pararel"], task[len("pararel_") :])
                if "question" in ds.column_names:
                    questions[task] = [str(q) for q in ds["question"]]
        out.append(
            {
                "instance": int(row),
                "task": task,
                "dataset": dataset_label(task),
                "question": questions[task][row - starts[t]],
                "answer": inst.choices[inst.gold].strip(),
            }
        )
    return out


def _question(context: str) -> str:
    """The question of a cloze context (``...Question: Q\\nAnswer:``; MMLU's subject line dropped)."""
    return context.rsplit("Question: ", 1)[-1].removesuffix("\nAnswer:").strip()


def window_docs(group_dirs: list, doc_info: list, first: int, last: int):
    """(the window, its groups, its batch files, each file's first window column)."""
    from intervene.select.stages import window_files
    from intervene.select.windows import read_groups, window

    groups = read_groups(doc_info, group_dirs)
    w = window(groups, first, last)
    files, lines = window_files(groups, first, last)
    return w, [g for g in groups if g.name in w.groups], files, np.cumsum([0, *lines])


def _doc_records(w, groups, files, starts, columns: set[int]) -> dict[int, dict]:
    """Location and text of the window columns ``columns``, reading only the files that hold them."""
    from intervene.search.corpus import read_texts

    group_start = np.cumsum([0, *w.group_sizes])
    infos: dict[int, np.ndarray] = {}
    by_file: dict[int, list[int]] = {}
    for c in sorted(columns):
        by_file.setdefault(int(np.searchsorted(starts, c, side="right") - 1), []).append(c)
    out = {}
    for f, cols in by_file.items():
        texts = read_texts(files[f])
        if len(texts) != starts[f + 1] - starts[f]:
            raise ValueError(f"{files[f]}: {len(texts)} documents, its doc info {starts[f + 1] - starts[f]}")
        for c in cols:
            row = int(w.rows[c])
            g = int(np.searchsorted(group_start, row, side="right") - 1)
            if g not in infos:
                infos[g] = np.load(groups[g].doc_info).astype(np.int64)
            b, s, start, end = (int(x) for x in infos[g][row - group_start[g]])
            out[c] = {
                "doc": c,
                "row": row,
                "group": w.groups[g],
                "group_row": int(row - group_start[g]),
                "batch": int(groups[g].batches[b]),
                "seq": s,
                "start": start,
                "end": end,
                "text": texts[c - starts[f]],
            }
    return out


def top_docs(
    scores,
    *,
    group_dirs: list,
    doc_info: list,
    first: int,
    last: int,
    instances: list[dict],
    k: int = 10,
    min_score: float | None = None,
) -> Iterator[dict]:
    """Per instance (a row of ``scores``, described by ``instances[i]``) its record with ``docs``:
    rank, score, location and text of its top ``k`` documents."""
    m = sp.load_npz(scores).tocsr() if isinstance(scores, (str, os.PathLike)) else sp.csr_matrix(scores)
    w, groups, files, starts = window_docs(group_dirs, doc_info, first, last)
    if m.shape[0] != len(instances):
        raise ValueError(f"{scores}: {m.shape[0]} rows, but {len(instances)} instances are given")
    if m.shape[1] != len(w.rows):
        raise ValueError(f"{scores}: {m.shape[1]} documents, the window [{first}, {last}) has {len(w.rows)}")
    top = ranked(m, k, min_score)
    docs = _doc_records(w, groups, files, starts, {c for r in top for c, _ in r})
    for inst, r in zip(instances, top, strict=True):
        yield {
            **inst,
            "docs": [{"rank": i + 1, "score": v, **docs[c]} for i, (c, v) in enumerate(r)],
        }


def write_top_docs(out, records: Iterator[dict]) -> dict:
    """The records as JSON lines (UTF-8, keys in a fixed order), written atomically."""
    n_inst = n_docs = 0
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n_inst += 1
            n_docs += len(rec["docs"])
    return {"instances": n_inst, "documents": n_docs}


def export_top_docs(
    scores,
    out,
    *,
    group_dirs: list,
    doc_info: list,
    first: int,
    last: int,
    tasks: list[str],
    sources: dict[str, str],
    rows=None,
    k: int = 10,
    min_score: float | None = None,
) -> dict:
    """``intervene top-docs``: the JSONL export of a window score matrix whose rows are the
    evaluation instances ``rows`` of ``tasks`` (default: all of them)."""
    instances = instance_info(tasks, sources, rows)
    return write_top_docs(
        out,
        top_docs(
            scores,
            group_dirs=group_dirs,
            doc_info=doc_info,
            first=first,
            last=last,
            instances=instances,
            k=k,
            min_score=min_score,
        ),
    )


def read_top_docs(path) -> list[dict]:
    """The records of a ``top-docs`` file; a bad line is an error naming the file and line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, start=1):
            try:
                rec = json.loads(line)
                missing = [x for x in ("instance", "question", "answer", "docs") if x not in rec]
                missing += [x for d in rec.get("docs", []) for x in ("rank", "row", "text") if x not in d]
                if missing:
                    raise KeyError(missing[0])
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}:{ln}: not a top-docs record ({e!r})") from None
            out.append(rec)
    return out
