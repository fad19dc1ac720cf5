"""Which correctness metric labels each task: ``eval.metric`` as one metric for every task, a
mapping task (or task family) -> metric, or nothing (the paper's metric per task).

Kept free of heavy imports: the settings check and the CLI read it before any model is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from intervene.evaluation.tasks import MMLU_SUBJECTS

#: OLMES/catwalk per-instance metrics a label can be read from.
METRICS = ("acc_raw", "acc_per_token", "acc_per_char", "acc_per_byte", "acc_uncond")

#: The metric the paper labelled each task family with (rahuln/pretrain-intervention):
#: - pararel: ``scripts/get_correctness_labels.py`` (``--metric`` default ``acc_raw``; the ParaRel
#:   labels file ``labels_olmo2_1b_retr_step_500_to_10000_pararel_12rel.npz`` carries no metric
#:   suffix, i.e. the default) and ``notebooks/create-doc-idxs-olmo-2-1b-pararel-12rel.ipynb``,
#:   whose per-relation accuracy grid is labelled ``acc_raw``;
#: - mmlu, sciq, openbookqa: ``notebooks/create-doc-idxs-olmo-2-{1b,7b}-mcqa.ipynb``, the dict
#:   ``metrics = {"mmlu": "acc_per_char", "openbookqa": "acc_uncond", "sciq": "acc_per_char"}`` that
#:   names the labels files (``..._0shot_cf_char.npz``, ``..._0shot_cf_uncond.npz``) — OLMES's primary
#:   metrics of ``sciq:rc::xlarge`` and ``openbookqa:rc::xlarge``, and olmo_eval's ``mmlu_std_*``.
PAPER_METRICS = {
    "pararel": "acc_raw",
    "mmlu": "acc_per_char",
    "sciq": "acc_per_char",
    "openbookqa": "acc_uncond",
}
ALL = "*"  # the key of a single metric given for every task

MetricSpec = dict[str, str]


def _valid_key(key: str) -> bool:
    if key in PAPER_METRICS:
        return True
    if re.fullmatch(r"pararel_p[0-9]+", key):
        return True
    return key.startswith("mmlu_") and key[len("mmlu_") :] in MMLU_SUBJECTS


def parse_metric(value: str | Mapping | None, where: str = "eval.metric") -> MetricSpec:
    """A normalised spec: ``{}`` (the paper's per task), ``{"*": m}`` (one metric for every task),
    and/or ``{task or family: metric}``. ``value`` is a metric (``acc_raw``), a comma-separated
    ``key=metric`` list (``sciq=acc_raw,pararel=acc_per_token``; a bare metric in it applies to
    every other task), or a mapping. An unknown metric or key is a one-line ``ValueError`` naming it."""
    if value is None or value == "" or value == {}:
        return {}
    items: list[tuple[str, object]]
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            k, sep, v = part.partition("=")
            items.append((k.strip(), v.strip()) if sep else (ALL, k))
    else:
        raise ValueError(f"{where}: {value!r} is neither a metric nor a mapping task -> metric")
    spec: MetricSpec = {}
    for k, v in items:
        if k != ALL and not _valid_key(k):
            raise ValueError(
                f"{where}.{k}: unknown task key (pararel, sciq, openbookqa, mmlu, pararel_<rel>, mmlu_<subject>)"
            )
        name = where if k == ALL else f"{where}.{k}"
        if v not in METRICS:
            raise ValueError(f"{name}: {v!r} is not one of {list(METRICS)}")
        if k in spec:
            raise ValueError(f"{name}: given twice")
        spec[k] = str(v)
    return spec


def family(task: str) -> str:
    """``pararel_p17`` -> ``pararel``, ``mmlu_anatomy`` -> ``mmlu``, others as given."""
    for f in ("pararel", "mmlu"):
        if task.startswith(f + "_"):
            return f
    return task


def metric_for(task: str, spec: MetricSpec) -> str:
    """The metric labelling ``task``: its own key, else its family's, else the one given for every
    task, else the paper's for its family."""
    for key in (task, family(task), ALL):
        if key in spec:
            return spec[key]
    try:
        return PAPER_METRICS[family(task)]
    except KeyError:
        raise ValueError(f"task {task!r}: no metric configured and no paper default") from None


def metric_cli_value(value: str | Mapping | None) -> str:
    """``eval.metric`` as the ``--metric`` flag's value (empty: the paper's per task)."""
    spec = parse_metric(value)
    return ",".join(m if k == ALL else f"{k}={m}" for k, m in spec.items())
