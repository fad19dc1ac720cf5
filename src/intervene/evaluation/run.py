"""Evaluate a checkpoint on ParaRel-schema tasks and write OLMES-format predictions and metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from intervene.atomic import atomic_path, write_text
from intervene.evaluation.metrics import rc_metrics
from intervene.evaluation.scoring import score_context
from intervene.evaluation.tasks import load_pararel

METRICS = ("acc_raw", "acc_per_token", "acc_per_char", "acc_per_byte")


def prediction_line(inst, scores, ctx_len: int) -> dict:
    num_chars = [max(len(c), 1) for c in inst.choices]
    num_bytes = [max(len(c.encode("utf-8")), 1) for c in inst.choices]
    m = rc_metrics(
        [s.sum_logits for s in scores], [s.num_tokens for s in scores], num_chars, num_bytes, inst.gold
    )
    outputs = []
    for s, nc, nb in zip(scores, num_chars, num_bytes, strict=True):
        outputs.append(
            {
                "sum_logits": s.sum_logits,
                "num_tokens": s.num_tokens,
                "num_tokens_all": ctx_len + s.num_tokens,
                "is_greedy": s.is_greedy,
                "logits_per_token": s.sum_logits / max(s.num_tokens, 1),
                "logits_per_char": s.sum_logits / nc,
                "bits_per_byte": -1.44269504089 * s.sum_logits / nb,
                "num_chars": nc,
            }
        )
    return {
        "doc_id": inst.doc_id,
        "native_id": inst.native_id,
        "metrics": m,
        "model_output": outputs,
        "label": inst.gold,
    }


def evaluate_pararel(
    model_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    relations: list[str],
    out_dir: str | os.PathLike,
    *,
    device: str = "cpu",
) -> dict:
    """Write ``task-{i:03d}-pararel_{rel}-predictions.jsonl`` per relation and ``metrics.json``."""
    import torch
    from transformers import Olmo2ForCausalLM

    from intervene.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)  # a clear error if the checkpoint has no tokenizer
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = Olmo2ForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()
    summary = {"model": str(model_dir), "tasks": {}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for ti, rel in enumerate(relations):
            insts = load_pararel(data_root, rel)
            cont_ids = {}
            lines, accs = [], {k: [] for k in METRICS}
            for inst in insts:
                ctx = tok(inst.context, add_special_tokens=False).input_ids
                conts = [
                    cont_ids.setdefault(c, tok(c, add_special_tokens=False).input_ids) for c in inst.choices
                ]
                scores = score_context(model, ctx, conts, device=device)
                line = prediction_line(inst, scores, len(ctx))
                lines.append(json.dumps(line))
                for k in METRICS:
                    accs[k].append(line["metrics"][k])
            (tmp / f"task-{ti:03d}-pararel_{rel}-predictions.jsonl").write_text("\n".join(lines) + "\n")
            summary["tasks"][rel] = {
                "num_instances": len(insts),
                **{k: float(np.mean(v)) for k, v in accs.items()},
            }
        all_acc = {
            k: float(np.mean([x for t in summary["tasks"].values() for x in [t[k]] * t["num_instances"]]))
            for k in METRICS
        }
        summary["all"] = all_acc
        (tmp / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_predictions(path: str | os.PathLike, metric: str) -> np.ndarray:
    """Per-instance values of ``metric`` from an OLMES predictions.jsonl (line order = doc order) or
    from the paper's olmo_eval file (one JSON object with ``instance_predictions``)."""
    p = Path(path)
    text = p.read_text()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and "instance_predictions" in obj:
            return np.array([ip["prediction"]["metrics"][metric] for ip in obj["instance_predictions"]])
    except json.JSONDecodeError:
        pass
    vals = []
    for ln, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                vals.append(json.loads(line)["metrics"][metric])
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(
                    f"{p}:{ln}: not an OLMES prediction line with metrics.{metric}: {e}"
                ) from None
    return np.array(vals)


def build_labels(
    eval_dirs: dict[int, str | os.PathLike], relations: list[str], metric: str, out: str | os.PathLike
) -> dict:
    """The paper's correctness-labels ``.npz``: ``steps``, ``dataset_labels`` (relation of each
    instance), ``labels`` (instances x checkpoints, 0/1) for ``metric``."""
    steps = sorted(eval_dirs)
    cols, names = [], None
    for s in steps:
        d = Path(eval_dirs[s])
        col, rel_of = [], []
        for ti, rel in enumerate(relations):
            v = read_predictions(d / f"task-{ti:03d}-pararel_{rel}-predictions.jsonl", metric)
            col.append(v)
            rel_of += [rel] * len(v)
        col = np.concatenate(col)
        if cols and len(col) != len(cols[0]):
            raise ValueError(f"{d}: {len(col)} instances, but step {steps[0]} has {len(cols[0])}")
        cols.append(col)
        names = rel_of
    labels = np.stack(cols, axis=1).astype(np.int8)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, steps=np.array(steps), dataset_labels=np.array(names), labels=labels)
    return {"steps": steps, "instances": int(labels.shape[0])}


def write_learned(
    labels_npz: str | os.PathLike, out_json: str | os.PathLike, out_npz: str | os.PathLike
) -> dict:
    from intervene.evaluation.metrics import learned_checkpoint

    z = np.load(labels_npz)
    steps, rels, labels = z["steps"], z["dataset_labels"], z["labels"]
    k = learned_checkpoint(labels)
    learned_step = np.where(k >= 0, steps[np.maximum(k, 0)], -1)
    hist = {int(s): int((learned_step == s).sum()) for s in steps}
    per_rel = {
        str(r): {int(s): int(((learned_step == s) & (rels == r)).sum()) for s in steps}
        for r in np.unique(rels)
    }
    acc = {int(s): float(labels[:, i].mean()) for i, s in enumerate(steps)}
    summary = {
        "steps": [int(s) for s in steps],
        "accuracy": acc,
        "learned_per_step": hist,
        "never_learned": int((k < 0).sum()),
        "per_relation": per_rel,
    }
    with atomic_path(out_npz) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, steps=steps, dataset_labels=rels, learned_index=k, learned_step=learned_step)
    write_text(out_json, json.dumps(summary, indent=2) + "\n")
    return summary
