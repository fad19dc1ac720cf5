"""An intervention's effect: accuracy of the re-runs on the targeted instances and on all others,
intervention vs. control, per run and pooled, with paired bootstrap CIs and per-instance flips.

Inputs are the paper's multi-run labels (``run1..runN``, instances x checkpoints) of the
intervention's re-runs and of the control re-runs over the same window, unmodified.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from intervene.atomic import write_text
from intervene.effect.stats import bootstrap_means, percentile_ci
from intervene.inputs import check_rows, load_npz, load_run_labels
from intervene.settings import BootstrapConfig, EffectConfig

# Selections whose documents bring facts in (their targets should be learned *more*); see SPEC §5.
PROMOTING = ("add_coocc",)


#: What "targeted" means for each strategy (see intervene.select.strategies and
#: :func:`targeted_instances`); window(c) = batches [c - K, c), K the checkpoint
#: interval, c the intervention's checkpoint (the re-runs' final step).
TARGETED = {
    "rm_coocc": (
        "the instances learned at checkpoint c (wrong at every earlier checkpoint, right at c and every "
        "later one) whose subject and object co-occur in at least one document of window(c); every "
        "window(c) document in which any of them co-occurs is replaced (by documents of window(c + K) "
        "where neither they nor any instance learned at c + K co-occurs)."
    ),
    "rm_occ": (
        "the rm_coocc instances (learned at c, co-occurring in window(c)) less the `n_drop` whose subject "
        "or object occurs in the most window(c) documents; every window(c) document holding the subject "
        "or the object of any of them is replaced (by documents of the next two windows holding none)."
    ),
    "add_coocc": (
        "the instances learned one checkpoint later, at c + K, whose subject and object co-occur in "
        "window(c + K) = batches [c, c + K); the documents of window(c + K) in which they co-occur are "
        "added to window(c) (replacing documents where none of them co-occurs), so these instances "
        "should be learned earlier. At step c they are wrong in the original run, by definition."
    ),
    "bm25_mapping": (
        "all instances learned at checkpoint c (co-occurring or not; only the intervention's `datasets` "
        "when set); each one's `per_inst` best-scoring window(c) documents by BM25 against its query are "
        "replaced by window(c + K) documents of the same token count (else the next larger) with the "
        "lowest mean score for the instances that scored them (`swap_direction` exchanges the two "
        "windows' roles)."
    ),
    "dense_mapping": (
        "all instances learned at checkpoint c (only the intervention's `datasets` when set); each one's "
        "`per_inst` best-scoring window(c) documents by dense (DPR dot-product) score are replaced by "
        "window(c + K) documents of the same token count (else the next larger) with the lowest mean "
        "score for the instances that scored them (`swap_direction` exchanges the two windows' roles)."
    ),
}

#: Control run 1's accuracy on the targeted instances when it reproduces the original checkpoint c:
#: targets learned at c are right there, add_coocc's (learned at c + K) wrong.
CONTROL_AT_C = {"add_coocc": 0.0}


def run_matrix(labels_npz: str | os.PathLike, step: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(dataset labels, ``[runs, instances]`` 0/1 correctness at ``step`` (default: the last
    checkpoint), that step) from a multi-run labels ``.npz``."""
    z = load_run_labels(labels_npz)
    runs = sorted((k for k in z if re.fullmatch(r"run\d+", k)), key=lambda k: int(k[3:]))
    if not runs:
        raise ValueError(f"{labels_npz}: no run1..runN arrays (multi-run labels expected)")
    steps = [int(s) for s in z["steps"]]
    if step is None:
        col = len(steps) - 1
    elif step in steps:
        col = steps.index(step)
    else:
        raise ValueError(f"{labels_npz}: no checkpoint {step} (has {steps})")
    m = np.stack([np.asarray(z[k])[:, col] for k in runs]).astype(np.int8)
    return np.asarray(z["dataset_labels"]), m, steps[col]


def targeted_instances(path: str | os.PathLike) -> np.ndarray:
    """The instances an intervention targets: from a selection's document-indices ``.npz`` (removals:
    ``orig_inst_idxs``; add_coocc: ``new_inst_idxs``) or a learned-instances file (``inst_idxs``,
    the targets of a score mapping)."""
    z = load_npz(
        path, {}, {"strategy": "str", "new_inst_idxs": "int", "orig_inst_idxs": "int", "inst_idxs": "int"}
    )
    if "strategy" in z:
        key = "new_inst_idxs" if str(z["strategy"]) in PROMOTING else "orig_inst_idxs"
    elif "inst_idxs" in z:
        key = "inst_idxs"
    else:
        raise ValueError(
            f"{path}: neither a selection (doc_idxs.npz) nor a learned-instances file (inst_idxs)"
        )
    if key not in z:
        raise ValueError(f"{path}: a {z['strategy']} selection without {key}")
    return np.unique(check_rows(path, key, np.asarray(z[key]).ravel(), None))


def _group(
    inter: np.ndarray, ctrl: np.ndarray, n_boot: int, seed: int, level: float
) -> tuple[dict, np.ndarray]:
    """Accuracy of one instance group, intervention vs. control: per run, pooled (the per-instance
    mean over runs), and their difference; returns the summary and the difference's bootstrap."""
    pi, pc = inter.mean(axis=0), ctrl.mean(axis=0)
    rows = np.vstack([pi, pc, inter, ctrl]).astype(np.float64)
    boots = bootstrap_means(rows, n_boot=n_boot, seed=seed)
    diff = boots[:, 0] - boots[:, 1]
    n = inter.shape[1]

    def side(pooled: np.ndarray, col: int, runs: np.ndarray, first: int) -> dict:
        return {
            "accuracy": float(pooled.mean()) if n else float("nan"),
            "ci": percentile_ci(boots[:, col], level),
            "per_run": [
                {
                    "accuracy": float(r.mean()) if n else float("nan"),
                    "ci": percentile_ci(boots[:, first + i], level),
                }
                for i, r in enumerate(runs)
            ],
        }

    out = {
        "n": int(n),
        "intervention": side(pi, 0, inter, 2),
        "control": side(pc, 1, ctrl, 2 + len(inter)),
        "difference": {
            "value": float(pi.mean() - pc.mean()) if n else float("nan"),
            "ci": percentile_ci(diff, level),
        },
    }
    return out, diff


def compute_effect(
    intervention: np.ndarray,
    control: np.ndarray,
    targets: np.ndarray,
    dataset_labels: np.ndarray | None = None,
    *,
    bootstrap: BootstrapConfig | None = None,
) -> dict:
    """The effect of an intervention from ``[runs, instances]`` 0/1 matrices of its re-runs and of the
    control re-runs (same instances; run counts may differ).

    Per group (targeted, others): accuracy per run and pooled with percentile bootstrap CIs, and the
    pooled difference intervention - control (paired: both sides resampled with the same instances);
    the difference in differences (targeted - others; independent groups); per-instance flips (majority
    of runs correct in the control but not under the intervention = lost, and the reverse = gained).
    """
    inter, ctrl = np.asarray(intervention), np.asarray(control)
    if inter.ndim != 2 or ctrl.ndim != 2 or inter.shape[1] != ctrl.shape[1]:
        raise ValueError(
            f"intervention {inter.shape} and control {ctrl.shape} must be [runs, same instances]"
        )
    n = inter.shape[1]
    targets = np.unique(np.asarray(targets, dtype=np.int64))
    if len(targets) and (targets.min() < 0 or targets.max() >= n):
        raise ValueError(f"target instance indices must lie in [0, {n})")
    is_t = np.zeros(n, dtype=bool)
    is_t[targets] = True
    b = bootstrap or BootstrapConfig()  # experiment.bootstrap's defaults
    n_boot, seed, level = b.samples, b.seed, b.level
    t, d_t = _group(inter[:, is_t], ctrl[:, is_t], n_boot, seed, level)
    o, d_o = _group(inter[:, ~is_t], ctrl[:, ~is_t], n_boot, seed + 1, level)
    maj_i = inter.mean(axis=0) > 0.5
    maj_c = ctrl.mean(axis=0) > 0.5
    lost, gained = maj_c & ~maj_i, ~maj_c & maj_i

    def flips(mask: np.ndarray) -> dict:
        return {"lost": int((lost & mask).sum()), "gained": int((gained & mask).sum())}

    labels = dataset_labels if dataset_labels is not None else np.full(n, "")
    return {
        "runs": {"intervention": int(inter.shape[0]), "control": int(ctrl.shape[0])},
        "bootstrap": {"samples": int(n_boot), "seed": int(seed), "level": float(level), "unit": "instance"},
        "targeted": t,
        "others": o,
        "difference_in_differences": {
            "value": t["difference"]["value"] - o["difference"]["value"],
            "ci": percentile_ci(d_t - d_o, level),
        },
        "flips": {"targeted": flips(is_t), "others": flips(~is_t)},
        "targeted_instances": [
            {
                "instance": int(i),
                "dataset": str(labels[i]),
                "intervention_runs_correct": int(inter[:, i].sum()),
                "control_runs_correct": int(ctrl[:, i].sum()),
            }
            for i in targets
        ],
    }


_AUDIT_KEYS = (
    "window",
    "pairs",
    "unpaired_originals",
    "replaced",
    "tokens_in",
    "tokens_out",
    "truncated",
    "skipped",
)


def audit_summary(audit_json: str | os.PathLike) -> dict:
    """The swap audit's totals and its decoded check (per-batch detail stays in the audit file)."""
    a = json.loads(open(audit_json).read())
    out = {k: a[k] for k in _AUDIT_KEYS if k in a}
    check = a.get("decoded_check") or {}
    out["decoded_check"] = {
        "removed_absent": check.get("removed_absent"),
        "inserted_present": check.get("inserted_present"),
        "problems": len(check.get("problems", [])),
    }
    return out


def expected_direction(strategy: str, swap_direction: bool = False) -> str:
    """``decrease`` for removals (and score mappings that suppress), ``increase`` for additions."""
    return "increase" if strategy in PROMOTING or swap_direction else "decrease"


def write_effect(
    settings: EffectConfig,
    intervention_labels: str | os.PathLike,
    control_labels: str | os.PathLike,
    targets: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    audit: str | os.PathLike | None = None,
    replay: str | os.PathLike | None = None,
) -> dict:
    """Compute an intervention's effect from its files and write ``effect.json``;
    ``settings.datasets`` keeps only targets of those dataset labels (a mapping aimed at one task,
    e.g. SciQ)."""
    rels_i, inter, step = run_matrix(intervention_labels)
    rels_c, ctrl, step_c = run_matrix(control_labels)
    if step != step_c or inter.shape[1] != ctrl.shape[1] or (rels_i != rels_c).any():
        raise ValueError(
            f"{intervention_labels} (step {step}, {inter.shape[1]} instances) and {control_labels} "
            f"(step {step_c}, {ctrl.shape[1]} instances) do not describe the same evaluation"
        )
    tgt = targeted_instances(targets)
    if settings.datasets:
        tgt = tgt[np.isin(rels_i[tgt].astype(str), list(settings.datasets))]
    eff = compute_effect(inter, ctrl, tgt, rels_i, bootstrap=settings.bootstrap)
    result = {
        "name": settings.name,
        "strategy": settings.strategy,
        "expected": expected_direction(settings.strategy, settings.swap_direction),
        "step": step,
        "targeted_definition": TARGETED.get(settings.strategy, "the instances named by the targets file"),
        **eff,
        "swap": audit_summary(audit) if audit else None,
        "replay_fidelity": json.loads(open(replay).read()) if replay else None,
    }
    write_text(out_json, json.dumps(result, indent=2) + "\n")
    return result
