"""ParaRel from its source: the 12 relation datasets and their search-term files.

The paper (``scripts/split_pararel_dataset.py`` in rahuln/pretrain-intervention) loads the hub
dataset ``coastalcph/pararel_patterns`` (one ``train`` split; columns ``relation`` "P17.jsonl",
``query``, ``subject``, ``object``, ``template``, ``template_index``, ``candidates``), keeps per
relation the rows whose ``template`` is the one its relation-to-template file names
(``data/pararel_patterns_templates.json``), numbers them with an ``id`` column (0, 1, ... in hub
order) and saves each as a ``save_to_disk`` folder ``pararel_patterns_{rel}`` (``rel`` = the
relation without ``.jsonl``, lower case). Its data folder's datasets also carry a ``question``
column (one question per relation with the subject filled in) that the hub dataset lacks; we add it
the same way from :data:`QUESTIONS`, unless the source already has one.

The term files ``pararel_patterns_{rel}_train.txt`` are, per relation, the sorted (code point order)
set of the stripped subjects and objects, one per line, each line ending in ``\\n``: that is what
the paper's files hold, checked line for line against its 12 files derived from its own datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from intervene.atomic import atomic_path, write_text
from intervene.layout import PARAREL_RELATIONS, term_file

#: The paper's relation-to-template file (``data/pararel_patterns_templates.json``), its 12 entries.
TEMPLATES: dict[str, str] = {
    "P17.jsonl": "[X] is located in [Y] .",
    "P27.jsonl": "[X] is a citizen of [Y].",
    "P36.jsonl": "The capital city of [X] is [Y].",
    "P127.jsonl": "[X] is owned by [Y] .",
    "P131.jsonl": "[X] can be found in [Y] .",
    "P138.jsonl": "[X] is named after [Y].",
    "P176.jsonl": "[X] is a product of [Y].",
    "P178.jsonl": "[X] is a product of [Y]",
    "P276.jsonl": "[X] is located in [Y] .",
    "P495.jsonl": "[X] was created in [Y].",
    "P1376.jsonl": "[X] is the capital city of [Y].",
    "P1412.jsonl": "[X] communicated in [Y] .",
}

#: The ``question`` column of the paper's ``data/pararel`` datasets: one form per relation, ``[X]``
#: = the subject as written (read from those datasets; every row of a relation has this form).
QUESTIONS: dict[str, str] = {
    "p17": "Where is [X] located?",
    "p27": "Which country is [X] a citizen of?",
    "p36": "What is the capital city of [X]?",
    "p127": "What is [X] owned by?",
    "p131": "Where can [X] be found?",
    "p138": "What is [X] named after?",
    "p176": "What is [X] a product of?",
    "p178": "Which company is [X] a product of?",
    "p276": "Where is [X] located?",
    "p495": "Where was [X] created?",
    "p1376": "Which state, province, or country is [X] the capital city of?",
    "p1412": "What language did [X] communicate in?",
}

#: Columns the split and the term files need from the hub dataset.
HUB_COLUMNS = ("relation", "query", "subject", "object", "template", "candidates")


def relation_id(relation: str) -> str:
    """``P17.jsonl`` -> ``p17`` (the paper's folder naming)."""
    return relation.replace(".jsonl", "").lower()


def read_mapping(path: str | os.PathLike, what: str) -> dict[str, str]:
    """A JSON object of strings (relation-to-template or relation-to-question file)."""
    try:
        m = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON {what} file ({e})") from None
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise ValueError(f"{path}: a {what} file is a JSON object of strings")
    return m


def _mapping(m, default: Mapping[str, str], what: str) -> dict[str, str]:
    if m is None:
        return dict(default)
    if isinstance(m, Mapping):
        return dict(m)
    return read_mapping(m, what)


def load_hub_train(source: str | os.PathLike):
    """The hub dataset's ``train`` split as a :class:`datasets.Dataset`, from a hub id or a local
    copy: a ``save_to_disk`` folder, a parquet or JSON-lines file, or a folder of parquet files (a
    download of the hub repository: ``data/train-*.parquet``)."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(source)
    if p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "state.json").exists()):
        d = datasets.load_from_disk(str(p))
    elif p.is_file() and p.suffix == ".parquet":
        d = datasets.Dataset.from_parquet(str(p))
    elif p.is_file() and p.suffix in (".jsonl", ".json"):
        d = datasets.Dataset.from_json(str(p))
    elif p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet") if "train" in f.name or f.parent.name == "train")
        if not files:
            raise ValueError(f"{p}: no save_to_disk dataset and no train parquet files in it")
        d = datasets.Dataset.from_parquet(files)
    elif p.exists():
        raise ValueError(f"{p}: not a dataset (save_to_disk folder, .parquet, .jsonl)")
    elif re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", str(source)):
        d = datasets.load_dataset(str(source), split="train")
    else:
        raise FileNotFoundError(f"{source}: not found (and not a hub id owner/name)")
    if isinstance(d, datasets.DatasetDict):
        if "train" not in d:
            raise ValueError(f"{source}: no 'train' split (has {list(d)})")
        d = d["train"]
    missing = [c for c in HUB_COLUMNS if c not in d.column_names]
    if missing:
        raise ValueError(f"{source}: lacks column(s) {missing} of coastalcph/pararel_patterns")
    return d


def search_terms(subjects, objects) -> list[str]:
    """A relation's term-file lines: the sorted set of its stripped subjects and objects."""
    terms = sorted({t.strip() for t in subjects} | {t.strip() for t in objects})
    for t in terms:
        if not t or "\n" in t or "\r" in t:
            raise ValueError(f"term {t!r} is empty or spans lines (a term file has one per line)")
    return terms


def split_relation(table, relation: str, template: str, question: str | None):
    """The rows of one relation and template (an Arrow table), numbered by ``id``, with
    ``question`` filled from ``question`` where the source has no such column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pc.and_(pc.equal(table["relation"], relation), pc.equal(table["template"], template))
    sub = table.filter(mask)
    if "id" in sub.column_names:
        sub = sub.drop_columns(["id"])
    sub = sub.append_column("id", pa.array(np.arange(sub.num_rows, dtype=np.int64)))
    if "question" not in sub.column_names and question is not None:
        if "[X]" not in question:
            raise ValueError(f"question form {question!r} of {relation} has no [X]")
        q = [question.replace("[X]", s) for s in sub["subject"].to_pylist()]
        sub = sub.append_column("question", pa.array(q, type=pa.string()))
    return sub


def _fingerprint(table) -> str:
    """A content hash as the saved dataset's fingerprint, so that two builds write the same bytes
    (datasets otherwise hashes the in-memory objects, which need not be stable)."""
    h = hashlib.sha256()
    for batch in table.to_batches():
        for col in batch.columns:
            for buf in col.buffers():
                if buf is not None:
                    h.update(buf)
    h.update(str(table.schema).encode())
    return h.hexdigest()[:16]


def build_pararel(
    source: str | os.PathLike,
    data_dir: str | os.PathLike,
    terms_dir: str | os.PathLike,
    *,
    templates: Mapping[str, str] | str | os.PathLike | None = None,
    questions: Mapping[str, str] | str | os.PathLike | None = None,
    relations: tuple[str, ...] | list[str] = PARAREL_RELATIONS,
) -> dict:
    """Write ``data_dir/pararel_patterns_{rel}`` (``save_to_disk``, split ``train``) and
    ``terms_dir/pararel_patterns_{rel}_train.txt`` for each relation, from the hub dataset
    ``source``; return per relation its row and term counts. An empty relation is an error.
    ``templates`` / ``questions``: a mapping or a JSON file (default :data:`TEMPLATES`,
    :data:`QUESTIONS`)."""
    import datasets

    templates = _mapping(templates, TEMPLATES, "relation-to-template")
    questions = _mapping(questions, QUESTIONS, "relation-to-question")
    by_rel = {relation_id(k): (k, v) for k, v in templates.items()}
    missing = [r for r in relations if r not in by_rel]
    if missing:
        raise ValueError(f"relation-to-template mapping lacks {missing}")
    table = load_hub_train(source).with_format("arrow")[:]  # indices of a filtered copy applied
    summary: dict[str, dict] = {}
    for rel in relations:
        name, template = by_rel[rel]
        sub = split_relation(table, name, template, questions.get(rel))
        if sub.num_rows == 0:
            raise ValueError(f"{source}: no rows of relation {name!r} with template {template!r}")
        ds = datasets.Dataset(sub, fingerprint=_fingerprint(sub))
        out = Path(data_dir) / f"pararel_patterns_{rel}"
        with atomic_path(out, is_dir=True) as tmp:
            datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp))
        terms = search_terms(sub["subject"].to_pylist(), sub["object"].to_pylist())
        write_text(term_file(terms_dir, rel), "".join(t + "\n" for t in terms))
        summary[rel] = {"rows": sub.num_rows, "terms": len(terms)}
    return summary
