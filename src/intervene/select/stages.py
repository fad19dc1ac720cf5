"""Selection and mapping as functions of paths (what the CLI and the rules call)."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from intervene.atomic import write_npz, write_sparse
from intervene.inputs import load_npz
from intervene.layout import following_window, target_window
from intervene.search.occurrences import read_term_list
from intervene.search.stages import bm25_files, relation_pairs, term_file
from intervene.select.mapping import map_by_scores, target_documents
from intervene.select.strategies import add_coocc, rm_coocc, rm_occ, with_cooccurrence
from intervene.select.windows import Group, Window, by_group, read_groups, window, window_matrix
from intervene.settings import SelectConfig

STRATEGIES = ("rm_coocc", "rm_occ", "add_coocc")
log = logging.getLogger(__name__)


def _stack(matrix_dirs, relations, w: Window) -> sp.csr_matrix:
    return sp.vstack([window_matrix(matrix_dirs, r, w) for r in relations], format="csr")


def select_documents(
    settings: SelectConfig,
    *,
    learned_npz,
    pair_doc: list,
    term_doc: list,
    doc_info: list,
    group_dirs: list,
    terms_dir,
    pararel_root,
    relations: list[str],
    out,
) -> dict:
    """The paper's document-indices ``.npz`` for ``settings.strategy`` at ``settings.checkpoint``:
    ``orig_idxs``, ``orig_inst_idxs``, ``new_idxs``, ``new_inst_idxs``, ``extra_idxs`` (+
    ``relations``, ``relation_labels``, and the windows: ``orig_window``/``new_window`` = [first,
    last) batches and the groups their indices are rows of). ``pair_doc``, ``term_doc`` (read by
    rm_occ only): the groups' matrix folders; ``doc_info``, ``group_dirs``: their doc-info files and decoded folders
    (:func:`intervene.select.windows.read_groups`), every group of window(c) and the following
    window(s)."""
    strategy, n_drop, last_batch = settings.strategy, settings.n_drop, settings.last_batch
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    z = load_npz(learned_npz, {"dataset_labels": "str", "learned_step": "int", "steps": "int"})
    block = pararel_block(learned_npz, z["dataset_labels"], relations)
    offset = int(block[0]) if block.size else 0
    rel_labels = [str(x) for x in np.asarray(z["dataset_labels"]).astype(str)[block]]
    learned_step = z["learned_step"][block]
    c, K = int(settings.checkpoint), int(settings.interval)
    # the windows: given, or window(c) = [c - K, c) and the K (rm_occ: 2K, clipped) batches after
    start, end = settings.window or target_window(c, K)
    length = end - start
    extras = settings.extras_window
    # J (rm_coocc's kept-out, add_coocc's added instances) is learned at the next window's end
    nxt = tuple(extras) if extras else (end, end + length)
    # targets are instances learned at evaluated checkpoints: any other step selects nothing
    steps = set(z["steps"].tolist())
    for s, why in ((start, "the window's start"), (c, "the targets"), (nxt[1], "the next window's")):
        if s not in steps and (s != nxt[1] or strategy != "rm_occ"):
            raise ValueError(
                f"{learned_npz}: checkpoint {s} ({why}; checkpoint {c}, window [{start}, {end}),"
                f" next window [{nxt[0]}, {nxt[1]})) is not an evaluated step ({sorted(steps)})"
            )
    if extras:
        x_window = (int(extras[0]), int(extras[1]))
    else:  # rm_occ's two following windows, clipped to the decoded data
        x_window = following_window(strategy, end, length, None if last_batch is None else int(last_batch))
        if following_window("rm_occ", end, length, last_batch and int(last_batch))[1] < end + length:
            raise ValueError(
                f"window [{end}, {end + length}) after checkpoint {end} is beyond the decoded batches"
                f" (< {last_batch})"
            )
    groups = read_groups(doc_info, group_dirs)
    w_c = window(groups, start, end)
    w_n = window(groups, *nxt)
    pair_dirs = by_group(pair_doc)
    pair_c, pair_n = (_stack(pair_dirs, relations, w) for w in (w_c, w_n))
    i_c = with_cooccurrence(pair_c, np.flatnonzero(learned_step == c))
    j_n = with_cooccurrence(pair_n, np.flatnonzero(learned_step == nxt[1]))
    if strategy == "rm_coocc":
        r = rm_coocc(pair_c, pair_n, i_c, j_n)
    elif strategy == "add_coocc":
        r = add_coocc(pair_c, pair_n, j_n)
    else:
        if not term_doc:
            raise ValueError("rm_occ reads the groups' term_doc matrices: none given (--term-doc)")
        w_x = window(groups, *x_window)  # by default the two following windows (as decoded)
        term_dirs = by_group(term_doc)
        term_c, term_x = (_stack(term_dirs, relations, w) for w in (w_c, w_x))
        subj, obj = _term_rows(terms_dir, pararel_root, relations, i_c, rel_labels)
        r = rm_occ(term_c, term_x, subj, obj, i_c, n_drop)
        w_n = w_x
    write_npz(
        out,
        orig_idxs=w_c.rows[r["orig"]],
        orig_inst_idxs=r["orig_inst"].astype(np.int64) + offset,
        new_idxs=w_n.rows[r["new"]],
        new_inst_idxs=r["new_inst"].astype(np.int64) + offset,
        extra_idxs=w_n.rows[r["extra"]],
        relations=np.array(relations),
        relation_labels=np.array(rel_labels),
        orig_window=np.array((start, end)),
        new_window=np.array(x_window),
        orig_groups=np.array(w_c.groups),
        new_groups=np.array(w_n.groups),
        strategy=np.str_(strategy),
    )
    return {k: int(len(v)) for k, v in r.items()}


def pararel_block(path, dataset_labels, relations) -> np.ndarray:
    """The ParaRel rows of the labels (``dataset_labels`` of ``path``): the evaluation may hold other
    tasks too (SciQ, ...), but the relations' rows are one contiguous block in relation order, the
    rows of the stacked pair/term matrices; selections work on that block and report rows of the
    whole labels.npz."""
    all_labels = np.asarray(dataset_labels).astype(str)
    block = np.flatnonzero(np.isin(all_labels, list(relations)))
    order = list(dict.fromkeys(all_labels[block].tolist()))
    if order != list(relations) or (block.size and block[-1] - block[0] + 1 != block.size):
        raise ValueError(
            f"{path}: the relations' rows {order} are not one block in the configured order {list(relations)}"
        )
    return block


def target_instances(path, datasets: list[str] | None = None) -> np.ndarray:
    """A mapping's target instances (labels.npz rows, in the order its score matrices' rows follow):
    a learned-instances file's ``inst_idxs`` (``learned_step{c}.npz``; with ``datasets``, only those
    of these task families or dataset labels), or an rm_coocc selection's ``orig_inst_idxs`` (its
    ``doc_idxs.npz``: the instances whose documents it removes, as the paper's ParaRel BM25/DPR
    mappings took them from the doc-indices file)."""
    from intervene.evaluation.tasks import dataset_labels_of
    from intervene.inputs import check_rows

    z = load_npz(path, {}, {"orig_inst_idxs": "int", "strategy": "str"})
    if "strategy" in z:
        if str(z["strategy"]) != "rm_coocc":
            raise ValueError(
                f"{path}: a {z['strategy']} selection; mapping targets come from an rm_coocc one"
            )
        if datasets:
            raise ValueError(
                f"{path}: a selection's instances are all ParaRel; datasets applies to learned targets"
            )
        if "orig_inst_idxs" not in z:
            raise ValueError(f"{path}: an rm_coocc selection without orig_inst_idxs")
        return check_rows(path, "orig_inst_idxs", np.asarray(z["orig_inst_idxs"]), None)
    z = load_npz(path, {"inst_idxs": "int", "dataset_labels": "str"})
    if len(z["inst_idxs"]) != len(z["dataset_labels"]):
        raise ValueError(f"{path}: inst_idxs and dataset_labels differ in length")
    rows = check_rows(path, "inst_idxs", z["inst_idxs"], None)  # the upper bound: the readers'
    if datasets:
        rows = rows[np.isin(z["dataset_labels"].astype(str), dataset_labels_of(list(datasets)))]
    return rows


def cooccurrence_counts(
    learned_npz, instances: np.ndarray, relations: list[str], pair_doc: list, w: Window
) -> tuple[np.ndarray, int]:
    """Per target instance (labels.npz rows) the number of documents of window ``w`` where its
    (subject, object) pair co-occurs, and the number of window documents where any of them does
    (the paper's --coocc_matrix_fmt counts: ``coocc.sign().sum(axis=1)`` and the nonzero columns of
    ``coocc.sign().sum(axis=0)``, over the target window's documents)."""
    z = load_npz(learned_npz, {"dataset_labels": "str"})
    block = pararel_block(learned_npz, z["dataset_labels"], relations)
    offset = int(block[0]) if block.size else 0
    inside = (instances >= offset) & (instances < offset + block.size)
    if not inside.all():
        bad = int(instances[~inside][0])
        raise ValueError(
            f"{learned_npz}: target instance {bad} is no ParaRel instance ({', '.join(relations)}): it"
            " has no co-occurrence counts (doc_counts: per_inst, or datasets: the relations)"
        )
    coocc = _stack(by_group(pair_doc), relations, w)[instances - offset]
    coocc.eliminate_zeros()
    counts = np.diff(coocc.indptr).astype(np.int64)  # rows: one entry per co-occurring document
    return counts, int(np.unique(coocc.indices).size)


def stacked_term_pairs(terms_dir, pararel_root, relations) -> tuple[np.ndarray, list[int]]:
    """Per ParaRel instance (the relations' rows stacked in order, as in the labels) the rows of its
    subject and object in the stacked term matrices, and each relation's number of instances."""
    stacked, base = [], 0
    for rel in relations:
        terms = read_term_list(term_file(terms_dir, rel))
        stacked.append(relation_pairs(pararel_root, rel, terms) + base)
        base += len(terms)
    return np.concatenate(stacked), [len(p) for p in stacked]


def _term_rows(terms_dir, pararel_root, relations, insts, rel_labels):
    """Rows of the stacked term matrices holding each instance's subject and object; instances are
    the relations' rows stacked in order, as in the labels."""
    pairs, sizes = stacked_term_pairs(terms_dir, pararel_root, relations)
    order = np.repeat(np.array(relations), sizes)
    if len(order) != len(rel_labels) or (order != np.array(rel_labels)).any():
        raise ValueError(f"{pararel_root}: the relations' instances do not line up with the labels' rows")
    return pairs[insts, 0], pairs[insts, 1]


def map_documents(
    target_scores,
    source_scores,
    *,
    doc_info: list,
    group_dirs: list,
    target_window,
    source_window,
    per_inst,
    out,
    shuffle_candidates=False,
    swap_direction=False,
    seed=42,
    doc_counts="per_inst",
    match_total=False,
    offset_shift=10,
    instances=None,
    datasets=None,
    learned=None,
    pair_doc=(),
    relations=(),
) -> dict:
    """The paper's mapping ``.npz`` (``orig_idxs``, ``new_idxs``: rows of the windows' concatenated
    doc info) from (instances x window documents) score matrices of the target and source windows;
    ``doc_info``, ``group_dirs``: the doc-info files and decoded folders of both windows' groups.

    Documents per target instance (create_doc_idx_mapping_from_scores.py): ``per_inst`` each
    (``doc_counts: per_inst``; total ``per_inst`` x instances), or the number of target-window
    documents where its pair co-occurs (``cooccurrence``: ``instances``, the targets file the scores
    were computed for, with ``datasets`` as then; ``learned``: learned.npz, for the ParaRel rows;
    ``pair_doc``: the target window's groups' pair-doc folders; ``relations``; total: the documents
    where any co-occurs). ``match_total``: grow every count by ``offset_shift`` until the target
    documents reach the total (short of it when every scored document is taken: warned, and the
    counts are in the returned dict)."""
    groups = read_groups(doc_info, group_dirs)
    wt = window(groups, *target_window)
    ws = window(groups, *source_window)
    t, s = sp.load_npz(target_scores).tocsr(), sp.load_npz(source_scores).tocsr()
    for name, m, w in (("target", t, wt), ("source", s, ws)):
        if m.shape[1] != len(w.rows):
            raise ValueError(
                f"{name} scores have {m.shape[1]} documents, the window {w.first}-{w.last} has {len(w.rows)}"
            )
    if doc_counts == "per_inst":
        counts, total = np.full(t.shape[0], int(per_inst), dtype=np.int64), int(per_inst) * t.shape[0]
    elif doc_counts == "cooccurrence":
        if instances is None or learned is None or not pair_doc or not relations:
            raise ValueError(
                "doc_counts cooccurrence reads the targets file, learned.npz, pair_doc and relations"
            )
        rows = target_instances(instances, datasets)
        if len(rows) != t.shape[0]:
            raise ValueError(
                f"{instances}: {len(rows)} target instances, but the target scores have {t.shape[0]} rows"
            )
        counts, total = cooccurrence_counts(learned, rows, list(relations), pair_doc, wt)
    else:
        raise ValueError(f"doc_counts must be per_inst or cooccurrence, not {doc_counts!r}")
    targets, offset = target_documents(t, counts, total if match_total else None, offset_shift)
    if match_total and len(targets) < total:
        log.warning(
            "mapping: %d target documents, short of the total %d: every instance has taken all its"
            " scored documents (offset %d); the scores hold no more",
            len(targets),
            total,
            offset,
        )
    tgt, src = map_by_scores(
        t,
        s,
        wt.sizes,
        ws.sizes,
        per_inst=per_inst,
        shuffle_candidates=shuffle_candidates,
        seed=seed,
        targets=targets,
    )
    orig, new = wt.rows[tgt], ws.rows[src]
    w_orig, w_new = wt, ws
    if swap_direction:
        order = np.argsort(new, kind="stable")
        orig, new = new[order], orig[order]
        w_orig, w_new = ws, wt
    write_npz(
        out,
        orig_idxs=orig,
        new_idxs=new,
        swap_direction=np.bool_(swap_direction),
        orig_window=np.array([w_orig.first, w_orig.last]),
        new_window=np.array([w_new.first, w_new.last]),
        orig_groups=np.array(w_orig.groups),
        new_groups=np.array(w_new.groups),
    )
    return {"mapped": int(len(orig)), "total": int(total), "offset": int(offset)}


def bm25_window(
    group_dirs: list,
    doc_info: list,
    first: int,
    last: int,
    queries: list[str],
    out,
    *,
    method: str = "okapi",
    tokenizer: str = "bm25s_en",
    k: int | None = None,
) -> dict:
    """(queries x window documents) BM25 scores, the index built over the window's documents
    (as the paper's calc_bm25_scores.py indexes the chosen file range): only the window's batch
    files are read, streamed (``bm25_files``). ``group_dirs``, ``doc_info``: the decoded folders of
    the groups holding the window and their doc-info files, in order."""
    files, lines = window_files(read_groups(doc_info, group_dirs), first, last)
    return bm25_files(files, queries, out, k=k, method=method, tokenizer=tokenizer, lines=lines)


def window_files(groups: list[Group], first: int, last: int):
    """The decoded batch files of the window [first, last) in order, and each one's document count
    from the doc info: their documents are the window's (``window(...).rows``) in window order."""
    from intervene.search.corpus import batch_files

    w = window(groups, first, last)
    files, lines = [], []
    for g in (g for g in groups if g.name in w.groups):
        fs = batch_files(g.folder)
        info = np.load(g.doc_info)
        counts = np.bincount(info[:, 0], minlength=len(fs)) if len(info) else np.zeros(len(fs), int)
        if counts.size != len(fs):
            raise ValueError(
                f"{g.folder}: text lines and doc info rows disagree ({len(fs)} files vs {counts.size} batches)"
            )
        for f, c in zip(fs, counts.tolist(), strict=True):  # the file's name is its batch's number
            if first <= int(f.name.split(".")[0]) < last:
                files.append(f)
                lines.append(int(c))
    if sum(lines) != len(w.rows):
        folders = ", ".join(str(g.folder) for g in groups)
        raise ValueError(
            f"{folders}: the window [{first}, {last}) files hold {sum(lines)} documents, its doc info {len(w.rows)}"
        )
    return files, lines


def dense_window(
    doc_embeddings: list,
    group_dirs: list,
    doc_info: list,
    first: int,
    last: int,
    query_embeddings: np.ndarray,
    out,
    *,
    k: int,
    device: str = "cpu",
) -> dict:
    """(queries x window documents) top-``k`` dense scores (dot products, the paper's DPR
    retrieval), from the per-group document embeddings (rows = the groups' doc info) of the groups
    the window spans; the window's documents are taken out of them by row, never re-encoded, one
    group at a time (memory: a block of rows, never a group's embeddings). ``group_dirs``,
    ``doc_info``: the decoded folders of the window's groups and their doc-info files."""
    from intervene.search.dense import topk_similarity

    w = window(read_groups(doc_info, group_dirs), first, last)
    if len(doc_embeddings) != len(w.groups):
        raise ValueError(f"window {first}-{last} spans groups {w.groups}: give one embeddings file each")
    embs = [np.load(p, mmap_mode="r") for p in doc_embeddings]
    for p, e, n in zip(doc_embeddings, embs, w.group_sizes, strict=True):
        if len(e) != n:
            raise ValueError(f"{p}: {len(e)} document embeddings, but its group has {n} documents")
    bounds = np.cumsum([0, *w.group_sizes])

    def shards():  # a block of one group's window documents at a time, read from the memory map
        for e, lo, hi in zip(embs, bounds[:-1], bounds[1:], strict=True):
            rows = w.rows[(w.rows >= lo) & (w.rows < hi)] - lo
            for b in range(0, rows.size, 1 << 16):
                yield np.asarray(e[rows[b : b + (1 << 16)]])

    m = topk_similarity(query_embeddings, shards(), k, device=device)
    write_sparse(out, m)
    return {"queries": int(m.shape[0]), "docs": int(m.shape[1]), "nnz": int(m.nnz)}
