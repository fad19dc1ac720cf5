"""The matching stages as functions of paths (what the CLI and the rules call)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from intervene.atomic import atomic_path, write_sparse, write_text
from intervene.evaluation.tasks import pararel_split
from intervene.layout import term_file
from intervene.search.bm25 import bm25_scores, bm25_stream, get_tokenizer, top_k
from intervene.search.corpus import batch_files, read_texts
from intervene.search.matrices import map_occurrences, pair_doc_matrix, relation_rows, term_counts
from intervene.search.occurrences import (
    read_term_list,
    search_group,
    term_vocabulary,
    to_wimbd_json,
    write_occurrences,
)


def write_term_vocab(terms_dir, relations: list[str], out) -> int:
    vocab, _ = term_vocabulary({r: term_file(terms_dir, r) for r in relations})
    write_text(out, "".join(t + "\n" for t in vocab))
    return len(vocab)


def run_search(group_dir, doc_info_path, terms_path, out, *, mode: str = "literal", wimbd_dir=None) -> dict:
    """Occurrences of every term in one batch group; optionally WIMBD's JSON per term as well."""
    terms = read_term_list(terms_path)
    doc_info = np.load(doc_info_path)
    occ = search_group(group_dir, terms, mode=mode, doc_info=doc_info)
    write_occurrences(out, occ)
    if wimbd_dir:
        with atomic_path(wimbd_dir, is_dir=True) as tmp:
            for i, t in enumerate(terms):
                (tmp / f"{i + 1}.json").write_text(
                    to_wimbd_json(t, i, occ, group_dir) + "\n", encoding="utf-8"
                )
    return {"terms": len(terms), "docs": int(occ["n_docs"]), "occurrences": int(occ["term"].size)}


def relation_pairs(pararel_root, rel: str, rel_terms: list[str]) -> np.ndarray:
    """Per instance of the relation, the rows of its stripped subject and object in ``rel_terms``
    (the relation's term-file lines)."""
    path, ds = pararel_split(pararel_root, rel)
    row = {t: i for i, t in enumerate(rel_terms)}
    pairs = []
    for i, (s, o) in enumerate(zip(ds["subject"], ds["object"], strict=True)):
        s, o = s.strip(), o.strip()
        if s not in row or o not in row:
            raise ValueError(f"{path}: row {i}: subject or object missing from the relation's term file")
        pairs.append((row[s], row[o]))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def write_matrices(
    occ_path, terms_path, terms_dir, relations, out_dir, *, kind: str, pararel_root=None
) -> dict:
    """``term_doc`` or ``pair_doc`` matrices (scipy ``save_npz``) of one group, one file per relation."""
    occ = map_occurrences(occ_path)  # mapped: pair_doc reads only the rows of terms it checks
    vocab = read_term_list(terms_path)
    pos = {t: i for i, t in enumerate(vocab)}
    counts = term_counts(occ, len(vocab))  # every term's counts at once; a relation takes its rows
    shapes = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for rel in relations:
            rel_list = read_term_list(term_file(terms_dir, rel))
            missing = [t for t in rel_list if t not in pos]
            if missing:
                raise ValueError(f"{terms_path}: lacks {len(missing)} term(s) of {rel}, e.g. {missing[0]!r}")
            rel_terms = np.array([pos[t] for t in rel_list], dtype=np.int64)
            td = relation_rows(counts, rel_terms)
            m = (
                td
                if kind == "term_doc"
                else pair_doc_matrix(occ, vocab, rel_terms, relation_pairs(pararel_root, rel, rel_list), td)
            )
            sp.save_npz(tmp / f"{rel}.npz", m)
            shapes[rel] = [int(x) for x in m.shape] + [int(m.nnz)]
    return shapes


def pararel_queries(pararel_root, relations: list[str], *, with_answer: bool = False) -> list[str]:
    """The paper's BM25 queries for ParaRel: the subject, or ``"{subject} {object}"``."""
    out = []
    for rel in relations:
        _, ds = pararel_split(pararel_root, rel)
        out += [f"{s} {o}" if with_answer else s for s, o in zip(ds["subject"], ds["object"], strict=True)]
    return out


def tokenize(texts: list[str], tokenizer: str) -> list[list[str]]:
    """``bm25s_en`` (the paper's: bm25s.tokenize, lower-cased words of 2+ characters, English
    stopwords removed; the same tokens, tested) or ``whitespace``."""
    return get_tokenizer(tokenizer)(texts)


#: characters of text tokenized at a time (a chunk's tokens are ~100 MB of Python strings)
CHUNK_CHARS = 1 << 21


def _chunks(texts: list[str], max_chars: int) -> Iterator[list[str]]:
    lo, size = 0, 0
    for i, t in enumerate(texts):
        size += len(t)
        if size >= max_chars:
            yield texts[lo : i + 1]
            lo, size = i + 1, 0
    if lo < len(texts) or not texts:
        yield texts[lo:]


def bm25_files(
    files: list[Path],
    queries: list[str],
    out,
    *,
    k: int | None,
    method: str,
    tokenizer: str,
    lines: list[int] | None = None,
) -> dict:
    """(queries x documents of the decoded batch ``files``, in order) BM25 scores, top ``k`` per
    query kept (all when ``k`` is 0 or None), saved with ``scipy.sparse.save_npz``. The files are
    read once, one at a time (``bm25_stream``; its spill file lies next to ``out``): memory does not
    grow with their number beyond the vocabulary and the output. ``lines``: each file's expected
    document count (doc info)."""
    if k is not None and k < 0:
        raise ValueError(f"--k must be >= 0 (0 or none keeps every score), not {k}")
    tok = get_tokenizer(tokenizer)

    def chunks() -> Iterator[list[list[str]]]:
        for i, f in enumerate(files):
            texts = read_texts(f)
            if lines is not None and len(texts) != lines[i]:
                raise ValueError(
                    f"{f}: {len(texts)} documents, but the doc info has {lines[i]} for its batch"
                )
            for part in _chunks(texts, CHUNK_CHARS):
                yield tok.raw(part)

    Path(out).parent.mkdir(parents=True, exist_ok=True)  # holds the pass's (unnamed) spill file
    s = bm25_stream(
        chunks(), tok(queries), k=k, stopwords=tok.stopwords, method=method, tmp_dir=Path(out).parent
    )
    write_sparse(out, s)
    return {"queries": len(queries), "docs": int(s.shape[1]), "nnz": int(s.nnz)}


def run_bm25(
    group_dirs,
    queries: list[str],
    out,
    *,
    k: int | None = None,
    method: str = "okapi",
    tokenizer: str = "bm25s_en",
) -> dict:
    """(queries x documents of the groups, in order) BM25 scores, top ``k`` per query kept, saved
    with ``scipy.sparse.save_npz`` like the paper's calc_bm25_scores.py."""
    files = [f for g in group_dirs for f in batch_files(g)]
    return bm25_files(files, queries, out, k=k, method=method, tokenizer=tokenizer)


def write_bm25(
    docs: list[str], queries: list[str], out, *, k: int | None, method: str, tokenizer: str
) -> dict:
    """Tokenize, score (the index built over ``docs``), keep the top ``k`` per query, save: in
    memory (the reference the streamed ``bm25_files`` equals)."""
    if k is not None and k < 0:
        raise ValueError(f"--k must be >= 0 (0 or none keeps every score), not {k}")
    s = bm25_scores(tokenize(docs, tokenizer), tokenize(queries, tokenizer), method=method)
    if k:
        s = top_k(s, k)
    write_sparse(out, s)
    return {"queries": len(queries), "docs": len(docs), "nnz": int(s.nnz)}


def instance_queries(pararel_root, relations: list[str], query: str) -> list[str]:
    """Per ParaRel instance (relations in order): ``subject``, ``subject_object`` or the
    dataset's ``question`` column."""
    if query in ("subject", "subject_object"):
        return pararel_queries(pararel_root, relations, with_answer=query == "subject_object")
    out = []
    for rel in relations:
        path, ds = pararel_split(pararel_root, rel)
        if query not in ds.column_names:
            raise ValueError(f"{path}: no {query!r} column for the queries")
        out += list(ds[query])
    return out


MCQA_QUERIES = ("question", "question_answer")


def mcqa_query(inst, query: str) -> str:
    """The paper's MCQA retrieval query of an evaluation instance: its question, or the question and
    its gold answer (calc_bm25_scores.py's --add_answer)."""
    q = inst.context.removeprefix("Question: ").removesuffix("\nAnswer:")
    if query == "question":
        return q
    if query == "question_answer":
        return f"{q} {inst.choices[inst.gold].strip()}"
    raise ValueError(f"an MCQA query is one of {MCQA_QUERIES}, not {query!r}")


def task_queries(tasks: list[str], sources: dict[str, str], query: str, rows=None) -> list[str]:
    """Retrieval queries of the evaluation instances ``rows`` (rows of labels.npz: the expanded
    tasks' instances in order; default all). ParaRel instances take ``subject``, ``subject_object`` or
    ``question``; SciQ, OpenBookQA and MMLU instances ``question`` or ``question_answer``. Every
    task is read for its instance count (which rows are its); queries are built only for the tasks
    holding requested rows."""
    from intervene.evaluation.tasks import expand_tasks, load_task

    names = expand_tasks(tasks)
    instances = {t: load_task(t, sources) for t in names}  # counts give each task's rows
    starts = np.cumsum([0] + [len(instances[t]) for t in names])
    want = np.arange(starts[-1]) if rows is None else np.asarray(rows, dtype=np.int64)
    if want.size and (want.min() < 0 or want.max() >= starts[-1]):
        raise ValueError(f"instance rows must lie in [0, {starts[-1]}) for tasks {tasks}")
    which = np.searchsorted(starts, want, side="right") - 1
    cache: dict[int, list[str]] = {}
    out = []
    for row, k in zip(want.tolist(), which.tolist(), strict=True):
        if k not in cache:
            task = names[k]
            if task.startswith("pararel_"):
                cache[k] = instance_queries(sources["pararel"], [task[len("pararel_") :]], query)
            else:
                cache[k] = [mcqa_query(i, query) for i in instances[task]]
        out.append(cache[k][row - starts[k]])
    return out


def run_encode(
    model,
    kind: str,
    texts: Iterable[str],
    out,
    *,
    n: int | None = None,
    device: str = "cpu",
    batch_tokens: int = 65536,
    compile: bool = False,
) -> dict:
    """Embeddings of ``texts`` as a ``.npy`` [n, dim] float32, written straight into a memory map of
    the (temporary) output, so a group of millions of documents is never held in memory; ``n`` = the
    number of texts (default ``len(texts)``)."""
    from intervene.search.dense import encode, load_encoder

    n = len(texts) if n is None else n
    tok, enc, pooling = load_encoder(model, kind, device, compile=compile)
    dim = int(getattr(enc, "_orig_mod", enc).config.hidden_size)
    with atomic_path(out) as tmp:
        emb = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        encode(tok, enc, texts, pooling=pooling, device=device, batch_tokens=batch_tokens, out=emb)
        emb.flush()
        del emb
    return {"texts": n, "dim": dim if n else 0}


def run_similarity(query_emb, doc_embs: list, out, *, k: int, device: str = "cpu") -> dict:
    """Top-k dot-product scores per instance over the documents of ``doc_embs`` (in order), saved
    as a sparse matrix (the paper's sparsified top-k output)."""
    from intervene.search.dense import topk_similarity

    q = np.load(query_emb)
    m = topk_similarity(q, (np.load(p, mmap_mode="r") for p in doc_embs), k, device=device)
    write_sparse(out, m)
    return {"queries": int(m.shape[0]), "docs": int(m.shape[1]), "nnz": int(m.nnz)}
