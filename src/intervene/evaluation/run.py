"""Evaluate a checkpoint on rc/cloze tasks and write OLMES-format predictions and metrics; stack
correctness labels over checkpoints; find learned instances."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path, write_npz, write_text
from intervene.evaluation.metric_spec import METRICS, metric_for, parse_metric
from intervene.evaluation.metrics import rc_metrics
from intervene.evaluation.scoring import score_packed
from intervene.evaluation.tasks import (
    Instance,
    dataset_label,
    expand_tasks,
    load_task,
    task_source,
)
from intervene.inputs import load_labels, load_learned
from intervene.settings import EvalConfig

log = logging.getLogger(__name__)

MetricValue = str | Mapping | None  # eval.metric: one metric, task -> metric, or the paper's


def predictions_file(index: int, task: str) -> str:
    """OLMES's per-task file name (``task-{idx:03d}-{task_name}-predictions.jsonl``)."""
    return f"task-{index:03d}-{task}-predictions.jsonl"


#: OLMES's order of the per-instance metrics (MCAccuracy); the uncond pair is always written, null
#: where the task has no unconditioned prompt, as OLMES writes it.
METRIC_KEYS = (
    "predicted_index_raw",
    "predicted_index_per_token",
    "predicted_index_per_char",
    "predicted_index_per_byte",
    "predicted_index_uncond",
    "correct_choice",
    "acc_raw",
    "acc_per_token",
    "acc_per_char",
    "acc_per_byte",
    "acc_uncond",
    "no_answer",
    "sum_logits_corr",
    "logits_per_token_corr",
    "logits_per_char_corr",
    "bits_per_byte_corr",
)


def config_hash(config: dict) -> str:
    """OLMES's hash of a config (oe_eval/utils.py ``hash_dict``): the md5 of the JSON (sorted keys,
    default separators) of its entries that differ from the defaults; None-valued entries count as
    defaults and are left out. We hash our own task and model configs this way (see
    :func:`task_hash`, :func:`model_hash`), not OLMES's resolved configs, so the values differ from
    OLMES's own for the same task and model."""
    d = {k: v for k, v in config.items() if v is not None}
    return hashlib.md5(json.dumps(d, sort_keys=True).encode()).hexdigest()


def task_hash(task: str, source: str | None) -> str:
    """``task_hash`` of a predictions line: the task's name, data source and shots (0-shot)."""
    path = None if source is None else str(source)
    return config_hash({"task_name": task, "dataset_path": path, "num_shots": 0})


def model_hash(model: str | os.PathLike, revision: str | None) -> str:
    """``model_hash`` of a predictions line: the model (folder or hub id) and its revision, the
    entries OLMES hashes for ``--model M --revision R``."""
    return config_hash({"model": str(model), "revision": revision})


def prediction_line(
    inst: Instance, scores, ctx_len: int, uncond=None, hashes: dict[str, str] | None = None
) -> dict:
    """One OLMES predictions.jsonl line (keys and per-choice fields as OLMES writes them);
    ``hashes``: its ``task_hash`` and ``model_hash``."""
    num_chars = [max(len(c), 1) for c in inst.choices]
    num_bytes = [max(len(c.encode("utf-8")), 1) for c in inst.choices]
    m = rc_metrics(
        [s.sum_logits for s in scores],
        [s.num_tokens for s in scores],
        num_chars,
        num_bytes,
        inst.gold,
        None if uncond is None else [u.sum_logits for u in uncond],
    )
    m["no_answer"] = int(max(s.sum_logits for s in scores) == -999)
    m = {k: m.get(k) for k in METRIC_KEYS}
    outputs = []
    for j, (s, nc, nb) in enumerate(zip(scores, num_chars, num_bytes, strict=True)):
        o = {
            "sum_logits": s.sum_logits,
            "num_tokens": s.num_tokens,
            "num_tokens_all": ctx_len + s.num_tokens,
            "is_greedy": s.is_greedy,
        }
        if uncond is not None:
            o["sum_logits_uncond"] = uncond[j].sum_logits
        o.update(
            {
                "logits_per_token": s.sum_logits / max(s.num_tokens, 1),
                "logits_per_char": s.sum_logits / nc,
                "bits_per_byte": -1.44269504089 * s.sum_logits / nb,
                "num_chars": nc,
            }
        )
        outputs.append(o)
    return {
        "doc_id": inst.doc_id,
        "native_id": inst.native_id,
        "metrics": m,
        "model_output": outputs,
        "label": inst.gold,
        **(hashes or {"task_hash": None, "model_hash": None}),
    }


def load_model(model: str | os.PathLike, *, device: str = "cpu", revision: str | None = None):
    """The tokenizer and the causal LM (bf16 on GPU, fp32 on CPU) of a local folder or hub id."""
    import torch
    from transformers import AutoModelForCausalLM

    from intervene.tokenizer import load_tokenizer

    tok = load_tokenizer(model, revision=revision)  # a clear error if there is no tokenizer
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    lm = AutoModelForCausalLM.from_pretrained(str(model), revision=revision, dtype=dtype)
    return tok, lm.to(device).eval()


def score_instances(
    tok,
    model,
    insts: list[Instance],
    *,
    device: str = "cpu",
    hashes: dict[str, str] | None = None,
    **packing,
) -> list[dict]:
    """Prediction lines of ``insts``: context and continuation tokenized separately (no BOS), all
    requests (and the unconditioned ones, context ``"Answer:"``) scored in packed batches."""
    cache: dict[str, list[int]] = {}

    def enc(text: str) -> list[int]:
        if text not in cache:
            cache[text] = tok(text, add_special_tokens=False).input_ids
        return cache[text]

    reqs = [(enc(i.context), [enc(c) for c in i.choices]) for i in insts]
    has_uncond = [i.uncond_context is not None for i in insts]
    reqs += [(enc(i.uncond_context), [enc(c) for c in i.choices]) for i in insts if i.uncond_context]
    scores = score_packed(model, reqs, device=device, **packing)
    uncond = iter(scores[len(insts) :])
    return [
        prediction_line(inst, s, len(reqs[k][0]), next(uncond) if has_uncond[k] else None, hashes)
        for k, (inst, s) in enumerate(zip(insts, scores[: len(insts)], strict=True))
    ]


def evaluate(
    model: str | os.PathLike,
    tasks: list[str],
    sources: dict[str, str],
    out_dir: str | os.PathLike,
    *,
    device: str = "cpu",
    revision: str | None = None,
    row_tokens: int = EvalConfig.row_tokens,
    batch_tokens: int = EvalConfig.batch_tokens,
) -> dict:
    """Write ``task-{i:03d}-{task}-predictions.jsonl`` and ``-metrics.json`` per task and a
    ``metrics.json`` summary into ``out_dir`` (atomically: the folder appears when complete)."""
    tok, lm = load_model(model, device=device, revision=revision)
    names = expand_tasks(tasks)
    summary = {"model": str(model), "revision": revision, "tasks": {}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for ti, task in enumerate(names):
            t0 = time.perf_counter()
            insts = load_task(task, sources)
            hashes = {
                "task_hash": task_hash(task, task_source(task, sources)),
                "model_hash": model_hash(model, revision),
            }
            lines = score_instances(
                tok,
                lm,
                insts,
                device=device,
                hashes=hashes,
                row_tokens=row_tokens,
                batch_tokens=batch_tokens,
            )
            (tmp / predictions_file(ti, task)).write_text("".join(json.dumps(x) + "\n" for x in lines))
            keys = [k for k in METRICS if lines and lines[0]["metrics"].get(k) is not None]
            metrics = {k: float(np.mean([x["metrics"][k] for x in lines])) for k in keys}
            entry = {
                "task_name": task,
                "num_instances": len(insts),
                "metrics": metrics,
            }  # no processing_time (OLMES has one): outputs stay byte-identical across reruns
            log.info("%s: %d instances in %.2f s", task, len(insts), time.perf_counter() - t0)
            (tmp / f"task-{ti:03d}-{task}-metrics.json").write_text(json.dumps(entry, indent=2) + "\n")
            summary["tasks"][task] = {"num_instances": len(insts), **metrics}
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_predictions(path: str | os.PathLike, metric: str) -> np.ndarray:
    """Per-instance values of ``metric`` from an OLMES predictions.jsonl (line order = doc order) or
    from the paper's olmo_eval file (one JSON object with ``instance_predictions``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: predictions file not found")
    text = p.read_text()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and "instance_predictions" in obj:
            try:
                return np.array([ip["prediction"]["metrics"][metric] for ip in obj["instance_predictions"]])
            except KeyError as e:
                raise ValueError(f"{p}: olmo_eval predictions without metrics.{metric}: {e}") from None
    except json.JSONDecodeError:
        pass
    vals = []
    for ln, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                vals.append(json.loads(line)["metrics"][metric])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{p}:{ln}: not an OLMES prediction line with metrics.{metric}: {e}"
                ) from None
            if vals[-1] is None:
                raise ValueError(
                    f"{p}:{ln}: metrics.{metric} is null (the task has no unconditioned prompt); "
                    "choose another eval.metric for this task"
                )
    return np.array(vals)


def _label_matrix(
    eval_dirs: dict[int, str | os.PathLike],
    names: list[str],
    metric: MetricValue,
    *,
    like: list[str] | None = None,
) -> tuple[list[int], list[str], np.ndarray]:
    """(steps, dataset label per instance, instances x steps 0/1) from per-checkpoint eval folders,
    each task's column read under its metric (:func:`metric_for`); every checkpoint (and ``like``,
    another run's labels) must have the same instances per task."""
    spec = parse_metric(metric)
    steps = sorted(eval_dirs)
    if not steps:
        raise ValueError("no evaluation folders given")
    cols, labels_of = [], like
    for s in steps:
        d = Path(eval_dirs[s])
        col, rel_of = [], []
        for ti, task in enumerate(names):
            v = read_predictions(d / predictions_file(ti, task), metric_for(task, spec))
            if labels_of is not None and len(v) != sum(1 for x in labels_of if x == dataset_label(task)):
                raise ValueError(
                    f"{d / predictions_file(ti, task)}: {len(v)} instances, but another checkpoint "
                    "or run has a different count for this task"
                )
            col.append(v)
            rel_of += [dataset_label(task)] * len(v)
        cols.append(np.concatenate(col))
        labels_of = rel_of
    return steps, labels_of, np.stack(cols, axis=1).astype(np.int8)


def metrics_used(tasks: list[str], metric: MetricValue) -> dict[str, str]:
    """Per expanded task the metric its labels are read under (for logs and summaries)."""
    spec = parse_metric(metric)
    return {t: metric_for(t, spec) for t in expand_tasks(tasks)}


def build_labels(
    eval_dirs: dict[int, str | os.PathLike],
    tasks: list[str],
    metric: MetricValue,
    out: str | os.PathLike,
) -> dict:
    """The paper's correctness-labels ``.npz``: ``steps``, ``dataset_labels`` (relation, subject or
    task of each instance), ``labels`` (instances x checkpoints, 0/1), each task under its metric
    (``metric``: one for all, a mapping task -> metric, or None: the paper's per task)."""
    steps, labels_of, labels = _label_matrix(eval_dirs, expand_tasks(tasks), metric)
    write_npz(
        out,
        steps=np.array(steps),
        dataset_labels=np.array(labels_of),
        labels=labels,
        metric=_metric_column(tasks, metric, labels_of),
    )
    used = sorted(set(metrics_used(tasks, metric).values()))
    return {"steps": steps, "instances": int(labels.shape[0]), "metrics": used}


def _metric_column(tasks: list[str], metric: MetricValue, labels_of: list[str]) -> np.ndarray:
    """Per instance the metric its labels were read under (``metric`` in labels.npz: an extra key
    beside the paper's, so the plots and summaries can say which accuracy they show)."""
    by_label = {dataset_label(t): m for t, m in metrics_used(tasks, metric).items()}
    return np.array([by_label[x] for x in labels_of], dtype=str)


def build_run_labels(
    runs: list[dict[int, str | os.PathLike]],
    tasks: list[str],
    metric: MetricValue,
    out: str | os.PathLike,
) -> dict:
    """Labels of repeated runs (e.g. control re-runs): ``steps``, ``dataset_labels`` and
    ``run1..runN`` (instances x checkpoints each), the paper's multi-run layout. All runs must have
    the same checkpoints and instances."""
    if not runs:
        raise ValueError("no runs given")
    names = expand_tasks(tasks)
    arrays, steps0, labels_of = {}, None, None
    for r, dirs in enumerate(runs, start=1):
        steps, labels_of, m = _label_matrix(dirs, names, metric, like=labels_of)
        if steps0 is not None and steps != steps0:
            raise ValueError(f"run {r}: checkpoints {steps} differ from run 1's {steps0}")
        steps0 = steps
        arrays[f"run{r}"] = m
    write_npz(
        out,
        steps=np.array(steps0),
        dataset_labels=np.array(labels_of),
        metric=_metric_column(tasks, metric, labels_of),
        **arrays,
    )
    return {"steps": steps0, "runs": len(runs), "instances": len(labels_of)}


def write_learned(
    labels_npz: str | os.PathLike, out_json: str | os.PathLike, out_npz: str | os.PathLike
) -> dict:
    from intervene.evaluation.metrics import learned_checkpoint

    z = load_labels(labels_npz)
    steps, rels, labels = z["steps"], z["dataset_labels"], z["labels"]
    k = learned_checkpoint(labels)
    learned_step = np.where(k >= 0, steps[np.maximum(k, 0)], -1)
    hist = {int(s): int((learned_step == s).sum()) for s in steps}
    per_rel = {
        str(r): {int(s): int(((learned_step == s) & (rels == r)).sum()) for s in steps}
        for r in np.unique(rels)
    }
    acc = {int(s): float(labels[:, i].mean()) for i, s in enumerate(steps)}
    acc_rel = {
        str(r): {int(s): float(labels[rels == r, i].mean()) for i, s in enumerate(steps)}
        for r in np.unique(rels)
    }
    summary = {
        "steps": [int(s) for s in steps],
        "accuracy": acc,
        "accuracy_per_dataset": acc_rel,
        "learned_per_step": hist,
        "never_learned": int((k < 0).sum()),
        "per_relation": per_rel,
    }
    if "metric" in z:  # which accuracy each dataset label's columns hold
        if z["metric"].shape != rels.shape:
            raise ValueError(f"{labels_npz}: metric has shape {z['metric'].shape}, not {rels.shape}")
        summary["metric_per_dataset"] = {str(r): str(m) for r, m in zip(rels, z["metric"], strict=True)}
    write_npz(out_npz, steps=steps, dataset_labels=rels, learned_index=k, learned_step=learned_step)
    write_text(out_json, json.dumps(summary, indent=2) + "\n")
    return summary


def write_learned_indices(learned_npz: str | os.PathLike, step: int, out_npz: str | os.PathLike) -> dict:
    """The target-item file for one checkpoint: the instances learned at ``step``. ``inst_idxs`` are
    rows of the labels matrix, ``local_idxs`` the index within the instance's own dataset label
    (its relation's or task's doc_id), ``dataset_labels`` that label."""
    z = load_learned(learned_npz)
    steps, rels, learned_step = z["steps"], z["dataset_labels"], z["learned_step"]
    if int(step) not in set(int(s) for s in steps):
        raise ValueError(f"{learned_npz}: step {step} is not an evaluated checkpoint ({steps.tolist()})")
    local = np.zeros(len(rels), dtype=np.int64)
    for r in np.unique(rels):
        m = rels == r
        local[m] = np.arange(int(m.sum()))
    idx = np.flatnonzero(learned_step == int(step))
    write_npz(out_npz, inst_idxs=idx, local_idxs=local[idx], dataset_labels=rels[idx], step=np.int64(step))
    return {"step": int(step), "instances": int(idx.size)}
