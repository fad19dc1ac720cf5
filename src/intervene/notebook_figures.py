"""The paper's notebook figures (rahuln/pretrain-intervention, notebooks/create-doc-idxs-*.ipynb):

- the per-dataset accuracy-over-checkpoints grid (1B/7B ParaRel notebooks, cell 7: one panel per
  relation, the labels' mean per checkpoint, the majority baseline dashed);
- the learned-checkpoint histogram with the learned instances that co-occur in the window before
  their checkpoint overlaid (ParaRel notebooks, cells 15 and 17 of the 1B one, 15 and 19 of the 7B);
- per intervention, the documents each target instance has among those the intervention removes
  (rm_coocc, rm_occ) or adds (add_coocc): the notebooks print only the totals (cells 19-23 of the
  1B notebook); here per instance, as a figure and a TSV.

Each figure has a data function (arrays in, the plotted arrays out; unit-tested) and a plot
function (paths in, a PNG out, written atomically, without a date: reruns are byte-identical).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from intervene.atomic import atomic_path, write_text
from intervene.inputs import InputError, check_rows, load_labels, load_learned, load_npz

_PNG_META = {"Software": None}  # matplotlib writes its version here; a date never


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _names(x: Sequence[str] | str) -> list[str]:
    """A list of names, given as one comma-separated string (as the CLI takes them) or a list."""
    return [t for t in x.split(",") if t] if isinstance(x, str) else [str(t) for t in x]


def _save(fig, out: str | os.PathLike) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=_PNG_META)


# -- 1. accuracy over checkpoints, one panel per dataset -------------------------------------------


def panel_of(dataset_labels: Sequence[str], mmlu_subjects: Sequence[str] = ()) -> np.ndarray:
    """Per instance the panel it is drawn in: its dataset label, MMLU's subjects pooled as ``mmlu``
    (the MCQA notebooks plot MMLU as one dataset)."""
    subjects = set(mmlu_subjects)
    return np.array(["mmlu" if str(d) in subjects else str(d) for d in dataset_labels])


def panel_accuracy(labels: np.ndarray, panels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The panels in first-appearance order (the labels' dataset order) and each one's accuracy per
    checkpoint: the mean of its instances' 0/1 labels (the notebooks' ``np.mean(labels[idxs], 0)``)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) != len(panels):
        raise ValueError(f"labels of shape {labels.shape} for {len(panels)} instances")
    names = list(dict.fromkeys(panels.tolist()))
    acc = np.array([labels[panels == n].mean(axis=0) for n in names]).reshape(len(names), labels.shape[1])
    return names, acc


def panel_baselines(panels: np.ndarray, dataset_labels: np.ndarray, baselines: dict[str, float]) -> dict:
    """Each panel's majority baseline: its datasets' baselines weighted by their instances (a pooled
    panel, MMLU, gets the accuracy of answering each subject's most frequent gold index)."""
    out = {}
    for name in dict.fromkeys(panels.tolist()):
        ds = dataset_labels[panels == name]
        if all(str(d) in baselines for d in np.unique(ds)):
            out[name] = float(sum(baselines[str(d)] for d in ds) / len(ds))
    return out


def plot_panel_grid(
    labels_npz: str | os.PathLike,
    eval_dir: str | os.PathLike,
    tasks: Sequence[str],
    out: str | os.PathLike,
    *,
    ncols: int = 4,
) -> dict:
    """Accuracy of the original run's checkpoints per dataset (ParaRel: per relation), a grid of
    panels sharing both axes, each with its majority baseline dashed (ParaRel notebooks, cell 7).
    Returns the plotted curves."""
    from intervene.evaluation.plots import majority_baselines
    from intervene.evaluation.tasks import dataset_label, expand_tasks

    tasks = _names(tasks)
    z = load_labels(labels_npz)
    steps, ds, labels = z["steps"], np.asarray(z["dataset_labels"]).astype(str), z["labels"]
    subjects = [dataset_label(t) for t in expand_tasks(tasks) if t.startswith("mmlu_")]
    panels = panel_of(ds, subjects)
    names, acc = panel_accuracy(labels, panels)
    base = panel_baselines(panels, ds, majority_baselines(eval_dir, tasks))
    metric = np.asarray(z["metric"]).astype(str) if "metric" in z else None
    plt = _pyplot()
    nrows = max(1, -(-len(names) // ncols))
    cols = min(ncols, max(len(names), 1))
    fig, axes = plt.subplots(
        nrows, cols, sharex=True, sharey=True, figsize=(2.45 * cols, 0.6 + 1.5 * nrows), squeeze=False
    )
    for i, name in enumerate(names):
        ax = axes[i // cols, i % cols]
        ax.plot(steps, acc[i], color="tab:blue", label="accuracy")
        if name in base:
            ax.axhline(base[name], ls="--", color="red", lw=1, label="majority baseline")
        ax.grid(linestyle="dotted")
        title = name
        if metric is not None:
            used = sorted(set(metric[panels == name].tolist()))
            title = f"{name} ({', '.join(used)})"
        ax.set_title(title, fontsize=8)
    for j in range(len(names), nrows * cols):
        axes[j // cols, j % cols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("checkpoint (step)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    handles, texts = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower center", ncol=2, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, out)
    plt.close(fig)
    return {"steps": steps.tolist(), "panels": names, "accuracy": acc.tolist(), "baselines": base}


# -- 2. learned-checkpoint histogram with the co-occurring instances overlaid ---------------------


def checkpoint_windows(steps: Sequence[int]) -> list[tuple[int, int]]:
    """Per checkpoint the batches trained since the previous one, [previous step, step); the first
    checkpoint's is [0, step) (the 1B notebook's first window is batches [0, 500) for step 500, and
    the 7B notebook's 2150 and 3000 windows are [2000, 2150) and [2150, 3000))."""
    s = [int(x) for x in steps]
    if any(b <= a for a, b in zip(s, s[1:], strict=False)) or (s and s[0] < 0):
        raise ValueError(f"checkpoint steps {s} are not ascending and non-negative")
    return [((s[i - 1] if i else 0), s[i]) for i in range(len(s))]


def windows_covered(steps: Sequence[int], have_batches: np.ndarray) -> np.ndarray:
    """Per checkpoint whether every batch of its window is in ``have_batches`` (the batches the
    matrices cover): the notebooks plot co-occurrence only for the windows they searched."""
    have = set(np.asarray(have_batches, dtype=np.int64).tolist())
    return np.array([all(b in have for b in range(a, e)) for a, e in checkpoint_windows(steps)], dtype=bool)


def window_cooccurrence(pair: sp.spmatrix, doc_batch: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """Per instance (row of ``pair``, instances x documents) and checkpoint, the number of documents
    of the checkpoint's window (:func:`checkpoint_windows`) where its pair co-occurs (the notebooks'
    ``coocc_counts``: column sums of the 0/1 pair matrix per window). ``doc_batch``: each document's (column's) global batch number."""
    windows = checkpoint_windows(steps)
    m = sp.coo_matrix(pair)
    if len(doc_batch) != m.shape[1]:
        raise ValueError(f"{len(doc_batch)} document batch numbers for {m.shape[1]} matrix columns")
    nz = m.data != 0
    rows, batch = m.row[nz], np.asarray(doc_batch, dtype=np.int64)[m.col[nz]]
    starts = np.array([a for a, _ in windows], dtype=np.int64)
    ends = np.array([b for _, b in windows], dtype=np.int64)
    # window of each nonzero: the checkpoint whose [start, end) holds its batch (windows tile [0, last))
    k = np.searchsorted(ends, batch, side="right")
    inside = k < len(windows)
    inside[inside] &= batch[inside] >= starts[k[inside]]
    counts = np.zeros((m.shape[0], len(windows)), dtype=np.int64)
    np.add.at(counts, (rows[inside], k[inside]), 1)
    return counts


@dataclass
class LearnedHistogram:
    steps: np.ndarray  # checkpoint steps (bars)
    learned: np.ndarray  # instances learned at each checkpoint
    cooccurring: np.ndarray  # of those, the ones with a nonzero co-occurrence in its window; -1: no matrices
    covered: np.ndarray  # whether the checkpoint's window is covered by the matrices


def learned_histogram(
    learned_index: np.ndarray, steps: Sequence[int], counts: np.ndarray, covered: np.ndarray
) -> LearnedHistogram:
    """The notebooks' ``binned_learned_ckpts`` (``np.bincount`` of the learned checkpoint index over
    the instances ever learned) and ``learned_nonzero_counts`` (of the instances learned at
    checkpoint i, those with ``coocc_counts[inst, i] > 0``), the latter -1 where window i is not
    covered. ``learned_index``: per instance, -1 for never learned (intervene.evaluation.learned_checkpoint)."""
    li = np.asarray(learned_index, dtype=np.int64)
    n = len(steps)
    if counts.shape != (len(li), n) or len(covered) != n:
        raise ValueError(
            f"co-occurrence counts of shape {counts.shape} for {len(li)} instances x {n} checkpoints"
        )
    if (li >= n).any() or (li < -1).any():
        raise ValueError(f"learned checkpoint indices outside [-1, {n})")
    ever = li >= 0
    learned = np.bincount(li[ever], minlength=n)
    hit = ever & (counts[np.arange(len(li)), np.where(ever, li, 0)] > 0)
    cooc = np.bincount(li[hit], minlength=n)
    cooc = np.where(covered, cooc, -1)
    return LearnedHistogram(np.asarray(steps, dtype=np.int64), learned, cooc, np.asarray(covered, dtype=bool))


def pararel_block(dataset_labels: np.ndarray, relations: Sequence[str], path) -> np.ndarray:
    """Rows of the relations' instances: one contiguous block in ``relations`` order (as the
    selections read them), else an error naming ``path``."""
    ds = np.asarray(dataset_labels).astype(str)
    block = np.flatnonzero(np.isin(ds, list(relations)))
    order = list(dict.fromkeys(ds[block].tolist()))
    if not block.size or order != list(relations) or block[-1] - block[0] + 1 != block.size:
        raise InputError(
            f"{path}: the relations' rows {order} are not one block in the order {list(relations)}"
        )
    return block


def _stacked_group(matrix_dir: Path, relations: Sequence[str], sizes: dict[str, int]) -> sp.csr_matrix:
    """A group's matrices of ``relations`` stacked (rows: instances or terms in relation order)."""
    mats = []
    for rel in relations:
        p = matrix_dir / f"{rel}.npz"
        if not p.exists():
            raise FileNotFoundError(f"{p}: matrix not found")
        m = sp.load_npz(p).tocsr()
        if rel in sizes and m.shape[0] != sizes[rel]:
            raise InputError(f"{p}: {m.shape[0]} rows, but the labels hold {sizes[rel]} instances of {rel}")
        mats.append(m)
    return sp.vstack(mats, format="csr")


def learned_cooccurrence(
    learned_npz: str | os.PathLike,
    pair_doc: Sequence,
    doc_info: Sequence,
    group_dirs: Sequence,
    relations: Sequence[str],
) -> LearnedHistogram:
    """The histogram data of the ParaRel instances of ``learned_npz`` over the decoded groups given
    (``pair_doc``: their pair-matrix folders; ``doc_info``/``group_dirs``: their doc info and
    decoded folders, as :func:`intervene.select.windows.read_groups` pairs them)."""
    from intervene.select.windows import by_group, read_groups

    z = load_learned(learned_npz)
    steps = z["steps"]
    block = pararel_block(z["dataset_labels"], relations, learned_npz)
    ds = np.asarray(z["dataset_labels"]).astype(str)[block]
    sizes = {r: int((ds == r).sum()) for r in relations}
    # learned_step -> checkpoint index (-1: never)
    pos = {int(s): i for i, s in enumerate(steps.tolist())}
    ls = z["learned_step"][block]
    bad = sorted({int(s) for s in ls.tolist() if s >= 0 and int(s) not in pos})
    if bad:
        raise InputError(
            f"{learned_npz}: learned_step holds {bad[:3]}, not checkpoint steps {steps.tolist()}"
        )
    li = np.array([pos.get(int(s), -1) if s >= 0 else -1 for s in ls.tolist()], dtype=np.int64)
    groups = read_groups(doc_info, group_dirs)
    dirs = by_group(pair_doc)
    counts = np.zeros((len(block), len(steps)), dtype=np.int64)
    have = []
    for g in groups:
        if g.name not in dirs:
            raise FileNotFoundError(
                f"no pair-matrix folder of group {g.name} among {sorted(map(str, dirs.values()))}"
            )
        info = np.load(g.doc_info)
        pair = _stacked_group(dirs[g.name], relations, sizes)
        if pair.shape[1] != len(info):
            raise InputError(
                f"{dirs[g.name]}: {pair.shape[1]} columns, but {g.doc_info} has {len(info)} documents"
            )
        counts += window_cooccurrence(pair, g.batches[info[:, 0].astype(np.int64)], steps)
        have.append(g.batches)
    have_all = np.concatenate(have) if have else np.zeros(0, np.int64)
    return learned_histogram(li, steps, counts, windows_covered(steps, have_all))


def plot_learned_cooccurrence(h: LearnedHistogram, out: str | os.PathLike, *, title: str = "") -> None:
    """Instances learned at each checkpoint (incorrect before, correct from it on), with the ones
    that co-occur in the window before it overlaid (ParaRel notebooks, cells 17 / 19); a window the
    matrices do not cover is marked n/a."""
    plt = _pyplot()
    x = np.arange(len(h.steps))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(x) + 2), 4.2))
    bars = ax.bar(x, h.learned, color="tab:blue", label="# learned at this checkpoint")
    ax.bar_label(bars, fontsize=7)
    shown = np.where(h.covered, h.cooccurring, 0)
    ax.bar(x, shown, color="tab:orange", label="# learned w/ non-zero co-occ. count in the window before")
    for i in np.flatnonzero(~h.covered):
        ax.text(x[i], 0, "n/a", ha="center", va="bottom", fontsize=6, color="tab:orange")
    ax.grid(linestyle="dotted")
    ax.set_xticks(x, [str(int(s)) for s in h.steps], rotation=45, fontsize=7)
    ax.set_xlim(-1, len(x))
    ax.set_xlabel("checkpoint where the instance is learned (always incorrect before, always correct after)")
    ax.set_ylabel("number of instances")
    ax.set_title(title or f"{int(h.learned.sum())} learned instances", fontsize=9)
    ax.set_ylim(0, max(int(h.learned.max(initial=0)), 1) * 1.3)  # headroom for the legend
    ax.legend(loc="upper left", frameon=False, fontsize=7)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def write_learned_cooccurrence(
    learned_npz, pair_doc: Sequence, doc_info: Sequence, group_dirs: Sequence, relations: Sequence[str], out
) -> dict:
    """:func:`learned_cooccurrence` drawn into ``out``; returns the plotted numbers."""
    relations = _names(relations)
    h = learned_cooccurrence(learned_npz, pair_doc, doc_info, group_dirs, relations)
    title = f"ParaRel, {len(relations)} relations: {int(h.learned.sum())} learned instances\n{', '.join(relations)}"
    plot_learned_cooccurrence(h, out, title=title)
    return {"steps": h.steps.tolist(), "learned": h.learned.tolist(), "cooccurring": h.cooccurring.tolist()}


# -- 3. documents removed / added per target instance -----------------------------------------------


def docs_per_instance(match: sp.spmatrix, docs: np.ndarray) -> np.ndarray:
    """Per row of ``match`` (a target instance x window documents 0/count matrix) the number of
    ``docs`` (columns) where it is nonzero."""
    m = sp.csr_matrix(match)[:, np.asarray(docs, dtype=np.int64)]
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.int64)


@dataclass
class DocsPerInstance:
    strategy: str
    side: str  # "removed" or "added"
    instances: np.ndarray  # rows of the labels
    dataset_labels: np.ndarray
    documents: np.ndarray  # per instance
    total: int  # distinct documents removed / added (an instance's documents may overlap another's)


def intervention_docs(
    doc_idxs_npz,
    learned_npz,
    matrices: Sequence,
    relations: Sequence[str],
    *,
    audit=None,
    terms_dir=None,
    pararel_root=None,
) -> DocsPerInstance:
    """Per target instance of a selection (``doc_idxs.npz``), its documents among those removed
    (rm_coocc: the pair co-occurs; rm_occ: its subject or object occurs) or added (add_coocc: the
    pair co-occurs). ``matrices``: the group folders of the pair matrices (term matrices for
    rm_occ), at least the side's groups; ``audit``: the swap's audit.json, to count only the
    documents the swap replaced (or inserted)."""
    import json

    z = load_npz(
        doc_idxs_npz,
        {"orig_idxs": "int", "orig_inst_idxs": "int", "new_idxs": "int", "new_inst_idxs": "int",
         "orig_groups": "str", "new_groups": "str", "strategy": "str"},
    )  # fmt: skip
    strategy = str(z["strategy"])
    if strategy not in ("rm_coocc", "rm_occ", "add_coocc"):
        raise InputError(
            f"{doc_idxs_npz}: strategy {strategy!r} is not a selection (rm_coocc, rm_occ, add_coocc)"
        )
    add = strategy == "add_coocc"
    key = "new" if add else "orig"
    docs = check_rows(doc_idxs_npz, f"{key}_idxs", z[f"{key}_idxs"].astype(np.int64), None)
    insts = z[f"{key}_inst_idxs"].astype(np.int64)
    groups = [str(g) for g in z[f"{key}_groups"].tolist()]
    if audit is not None:
        pairs = np.array(json.loads(Path(audit).read_text())["pairs_orig_new_rows"], dtype=np.int64).reshape(
            -1, 2
        )
        docs = np.intersect1d(docs, pairs[:, 1 if add else 0])
    lz = load_learned(learned_npz)
    block = pararel_block(lz["dataset_labels"], relations, learned_npz)
    ds_all = np.asarray(lz["dataset_labels"]).astype(str)
    check_rows(doc_idxs_npz, f"{key}_inst_idxs", insts - block[0], len(block), "the relations' instances")
    ds = ds_all[block]
    sizes = {r: int((ds == r).sum()) for r in relations}
    from intervene.select.windows import by_group

    dirs = by_group(matrices)
    missing = [g for g in groups if g not in dirs]
    if missing:
        raise FileNotFoundError(
            f"no matrix folder of group(s) {missing} among {sorted(map(str, dirs.values()))}"
        )
    if strategy == "rm_occ":
        m = sp.hstack([_stacked_group(dirs[g], relations, {}) for g in groups], format="csr")
        subj, obj = _term_rows(terms_dir, pararel_root, relations, ds)
        rows = insts - block[0]
        match = m[subj[rows]] + m[obj[rows]]
    else:
        m = sp.hstack([_stacked_group(dirs[g], relations, sizes) for g in groups], format="csr")
        match = m[insts - block[0]]
    if len(docs) and docs.max() >= match.shape[1]:
        raise InputError(
            f"{doc_idxs_npz}: {key}_idxs row {int(docs.max())} beyond the {match.shape[1]} documents of groups {groups}"
        )
    counts = docs_per_instance(match, docs)
    return DocsPerInstance(
        strategy, "added" if add else "removed", insts, ds_all[insts], counts, int(len(docs))
    )


def _term_rows(terms_dir, pararel_root, relations: Sequence[str], ds: np.ndarray):
    """Per ParaRel instance the rows of its subject and object in the stacked term matrices."""
    from intervene.select.stages import stacked_term_pairs

    if terms_dir is None or pararel_root is None:
        raise ValueError("rm_occ counts occurrences: the term files' folder and the ParaRel data are needed")
    pairs, _ = stacked_term_pairs(terms_dir, pararel_root, relations)
    if len(pairs) != len(ds):
        raise InputError(f"{pararel_root}: {len(pairs)} instances of {list(relations)}, the labels {len(ds)}")
    return pairs[:, 0], pairs[:, 1]


def plot_docs_per_instance(d: DocsPerInstance, out: str | os.PathLike, *, name: str = "") -> None:
    """One bar per target instance, most documents first, coloured by dataset."""
    plt = _pyplot()
    order = np.lexsort((d.instances, -d.documents))  # most documents first; ties: the labels' order
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(dict.fromkeys(d.dataset_labels[order].tolist()))
    cmap = plt.get_cmap("tab20")
    x = np.arange(len(order))
    for i, n in enumerate(names):
        sel = d.dataset_labels[order] == n
        ax.bar(x[sel], d.documents[order][sel], width=0.9, color=cmap(i % 20), label=n)
    what = "co-occurring" if d.strategy != "rm_occ" else "subject or object occurring"
    ax.set_xlabel(f"target instance (n={len(order)}), most documents first")
    ax.set_ylabel(f"documents {d.side} ({what})")
    mean = float(d.documents.mean()) if len(order) else 0.0
    ax.set_title(
        f"{name or d.strategy}: {d.total} distinct documents {d.side}, {mean:.1f} per instance on average",
        fontsize=9,
    )
    ax.set_xlim(-1, max(len(order), 1))
    ax.grid(axis="y", linestyle="dotted")
    if names:
        ax.legend(fontsize=6, ncol=2, frameon=False, loc="upper right")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def write_docs_per_instance(
    doc_idxs,
    learned,
    matrices: Sequence,
    relations: Sequence[str],
    out,
    out_tsv,
    *,
    audit=None,
    terms_dir=None,
    pararel_root=None,
    name: str | None = None,
) -> dict:
    """:func:`intervention_docs` drawn into ``out`` and tabulated into ``out_tsv`` (instance row of
    the labels, dataset, documents)."""
    relations = _names(relations)
    d = intervention_docs(
        doc_idxs, learned, matrices, relations, audit=audit, terms_dir=terms_dir, pararel_root=pararel_root
    )
    plot_docs_per_instance(d, out, name=name or "")
    lines = [f"instance\tdataset\tdocuments_{d.side}"]
    lines += [
        f"{i}\t{s}\t{c}"
        for i, s, c in zip(d.instances.tolist(), d.dataset_labels.tolist(), d.documents.tolist(), strict=True)
    ]
    write_text(out_tsv, "\n".join(lines) + "\n")
    return {"strategy": d.strategy, "instances": len(d.instances), "documents": d.total, "side": d.side}
