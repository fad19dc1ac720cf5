"""The evaluation report's figures: accuracy over checkpoints and the learned-checkpoint histogram.

PNG files carry no date (matplotlib's Software/Date metadata is dropped) so reruns are byte-stable.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path
from intervene.evaluation.run import predictions_file
from intervene.evaluation.tasks import dataset_label, expand_tasks

_PNG_META = {"Software": None}


def majority_baselines(eval_dir: str | os.PathLike, tasks: list[str]) -> dict[str, float]:
    """Per dataset label, the accuracy of always answering the most frequent gold index (the
    instances' ``label`` field of an OLMES predictions file)."""
    golds: dict[str, list[int]] = {}
    for ti, task in enumerate(expand_tasks(tasks)):
        p = Path(eval_dir) / predictions_file(ti, task)
        with open(p) as fh:
            golds.setdefault(dataset_label(task), []).extend(
                json.loads(ln)["label"] for ln in fh if ln.strip()
            )
    return {k: Counter(v).most_common(1)[0][1] / len(v) for k, v in golds.items() if v}


def _save(fig, out: str | os.PathLike) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=_PNG_META)


def plot_accuracy(labels_npz: str | os.PathLike, baselines: dict[str, float], out: str | os.PathLike) -> None:
    """Accuracy per dataset label (thin lines) and over all instances (thick) per checkpoint, with
    each dataset's majority baseline as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from intervene.inputs import load_labels

    z = load_labels(labels_npz)
    steps, rels, labels = z["steps"], z["dataset_labels"], z["labels"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, r in enumerate(np.unique(rels)):
        color = plt.get_cmap("tab20")(i % 20)  # 20 distinct colours: the 12 relations stay apart
        ax.plot(steps, labels[rels == r].mean(axis=0), color=color, lw=1, alpha=0.8, label=str(r))
        if str(r) in baselines:
            ax.axhline(baselines[str(r)], color=color, lw=0.8, ls="--", alpha=0.6)
    ax.plot(steps, labels.mean(axis=0), color="black", lw=2.5, label="all")
    overall = sum(baselines[str(r)] * (rels == r).sum() for r in np.unique(rels) if str(r) in baselines)
    ax.axhline(overall / len(rels), color="black", lw=1, ls="--", label="majority (all)")
    ax.set_xlabel("checkpoint (step)")
    used = sorted(set(z["metric"].tolist())) if "metric" in z else []
    ax.set_ylabel(f"accuracy ({', '.join(used)})" if used else "accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def plot_learned(learned_json: str | os.PathLike, out: str | os.PathLike) -> None:
    """Instances learned at each checkpoint (stacked by dataset label) and the never-learned count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = json.loads(Path(learned_json).read_text())
    steps = [int(x) for x in s["steps"]]
    x = np.arange(len(steps))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bottom = np.zeros(len(steps))
    for i, (r, per) in enumerate(sorted(s["per_relation"].items())):
        h = np.array([per.get(str(st), 0) for st in steps], dtype=float)
        ax.bar(x, h, bottom=bottom, color=plt.get_cmap("tab20")(i % 20), label=r)
        bottom += h
    ax.set_xticks(x, [str(st) for st in steps], rotation=45, fontsize=7)
    ax.set_xlabel("checkpoint at which the instance is learned")
    ax.set_ylabel("instances")
    ax.set_title(f"never learned: {s['never_learned']}", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
