"""Evaluation tasks as (context, choices, gold) instances.

ParaRel (the paper's 12 relations) and the toy world share one schema (``datasets.load_from_disk``
folders ``pararel_patterns_{rel}`` with split ``train``): prompt ``"Question: {query}\\nAnswer:"``,
choices = the relation's candidate list, each scored as ``" {candidate}"``, gold =
``candidates.index(object.strip())``; no unconditioned prompt (catwalk's ParaRel task has none).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The paper's relation order (get_correctness_labels.py stacks relations in this order).
PARAREL_RELATIONS = (
    "p17",
    "p27",
    "p36",
    "p127",
    "p131",
    "p138",
    "p176",
    "p178",
    "p276",
    "p495",
    "p1376",
    "p1412",
)


@dataclass
class Instance:
    doc_id: int
    native_id: int | str
    context: str
    choices: list[str]  # continuations as scored, leading space included
    gold: int
    uncond_context: str | None = None


def cloze_prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def load_pararel(data_root: str | os.PathLike, relation: str) -> list[Instance]:
    import datasets

    datasets.disable_progress_bars()
    path = Path(data_root) / f"pararel_patterns_{relation}"
    if not path.exists():
        raise FileNotFoundError(f"{path}: ParaRel-schema dataset folder not found")
    ds = datasets.load_from_disk(str(path))["train"]
    out = []
    for i, row in enumerate(ds):
        cands = list(row["candidates"])
        obj = row["object"].strip()
        if obj not in cands:
            raise ValueError(f"{path}: row {i}: object {obj!r} is not among the candidates")
        out.append(
            Instance(
                i, row.get("id", i), cloze_prompt(row["query"]), [" " + c for c in cands], cands.index(obj)
            )
        )
    return out
