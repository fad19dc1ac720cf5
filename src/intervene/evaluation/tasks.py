"""Evaluation tasks as (context, choices, gold) instances, in OLMES's rc/cloze format.

- ParaRel (the paper's 12 relations) and the toy world share one schema (``datasets.load_from_disk``
  folders ``pararel_patterns_{rel}`` with split ``train``): prompt ``"Question: {query}\\nAnswer:"``,
  choices = the relation's candidate list, each scored as ``" {candidate}"``, gold =
  ``candidates.index(object.strip())``; no unconditioned prompt (catwalk's ParaRel task has none).
- SciQ ``sciq:rc::xlarge`` (OLMES ``SciQ._process_doc``): prompt ``"Question: {question}\\nAnswer:"``,
  choices ``[distractor1, distractor2, distractor3, correct_answer]``, gold 3; native_id = row index
  within its own split; splits test, validation, train pooled in that order (``split: all``); the
  unconditioned prompt is ``"Answer:"``.
- OpenBookQA ``openbookqa:rc::xlarge`` (config ``main``): prompt from ``question_stem``, choices
  ``choices.text``, gold ``"ABCD".index(answerKey.strip())``, native_id = ``id``; same pooling and
  unconditioned prompt.
- MMLU (``cais/mmlu``, one config per subject, split ``test``) as the paper scored it, its olmo_eval
  task ``mmlu_std_{subject}`` (olmo_eval/tasks/olmes_v0_1/mmlu_std.py: ``mmlu-rc-{subject}``,
  ``choice_labels=None``, 0-shot): the context is the subject line ``"The following are multiple
  choice questions (with answers) about {subject with spaces}."``, a blank line (lm-eval 0.3's
  ``fewshot_context``: description + ``"\n\n"``), then ``"Question: {question.strip()}\nAnswer:"``;
  no choices listed in the prompt; each choice scored as ``" {choice}"`` (lm-eval's
  ``MultipleChoiceTask.construct_requests``); gold ``answer``; no unconditioned prompt.

Sources are a local ``save_to_disk`` folder or a hub id (``datasets.load_dataset``; needs network).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# the paper's relation order (get_correctness_labels.py stacks relations in this order): one list
# for the package and the workflow
from intervene.layout import PARAREL_RELATIONS

#: The 57 MMLU subjects (configs of ``cais/mmlu``), alphabetical as the hub lists them.
MMLU_SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology "
    "college_chemistry college_computer_science college_mathematics college_medicine college_physics "
    "computer_security conceptual_physics econometrics electrical_engineering elementary_mathematics "
    "formal_logic global_facts high_school_biology high_school_chemistry high_school_computer_science "
    "high_school_european_history high_school_geography high_school_government_and_politics "
    "high_school_macroeconomics high_school_mathematics high_school_microeconomics high_school_physics "
    "high_school_psychology high_school_statistics high_school_us_history high_school_world_history "
    "human_aging human_sexuality international_law jurisprudence logical_fallacies machine_learning "
    "management marketing medical_genetics miscellaneous moral_disputes moral_scenarios nutrition "
    "philosophy prehistory professional_accounting professional_law professional_medicine "
    "professional_psychology public_relations security_studies sociology us_foreign_policy virology "
    "world_religions"
).split()

#: OLMES's pooled order for ``split: all`` (Task.get_eval_docs).
POOLED_SPLITS = ("test", "validation", "train")
UNCOND_CONTEXT = "Answer:"
HUB_IDS = {
    "sciq": ("allenai/sciq", None),
    "openbookqa": ("allenai/openbookqa", "main"),
    "mmlu": ("cais/mmlu", None),
}


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


def mmlu_prompt(subject: str, question: str) -> str:
    """The paper's 0-shot MMLU context (olmo_eval ``GeneralHendrycksTest``, rc variant)."""
    about = " ".join(subject.split("_"))
    head = f"The following are multiple choice questions (with answers) about {about}."
    return f"{head}\n\n{cloze_prompt(question.strip())}"


def _load(source: str | os.PathLike, config: str | None = None):
    """A DatasetDict from a ``save_to_disk`` folder, or from the hub id (with ``config``)."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(source)
    if p.exists():
        try:
            return datasets.load_from_disk(str(p))
        except FileNotFoundError as e:
            raise ValueError(f"{p}: not a datasets save_to_disk folder ({e})") from None
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)) or str(source).startswith("."):
        raise FileNotFoundError(f"{source}: dataset folder not found (and not a hub id owner/name)")
    return datasets.load_dataset(str(source), config)


def _splits(dd, source, wanted=POOLED_SPLITS):
    have = [s for s in wanted if s in dd]
    if not have:
        raise ValueError(f"{source}: none of the splits {list(wanted)} (has {list(dd)})")
    return [(s, dd[s]) for s in have]


def _need(row: dict, keys: tuple[str, ...], source, i: int) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise ValueError(f"{source}: row {i} lacks field(s) {missing}")


def pararel_split(data_root: str | os.PathLike, relation: str):
    """(folder, its ``train`` split) of one relation's ParaRel-schema dataset."""
    path = Path(data_root) / f"pararel_patterns_{relation}"
    if not path.exists():
        raise FileNotFoundError(f"{path}: ParaRel-schema dataset folder not found")
    dd = _load(path)
    if "train" not in dd:
        raise ValueError(f"{path}: no 'train' split (has {list(dd)})")
    return path, dd["train"]


def load_pararel(data_root: str | os.PathLike, relation: str) -> list[Instance]:
    path, ds = pararel_split(data_root, relation)
    out = []
    for i, row in enumerate(ds):
        _need(row, ("query", "object", "candidates"), path, i)
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


def load_sciq(source: str | os.PathLike) -> list[Instance]:
    out: list[Instance] = []
    for _, ds in _splits(_load(source, HUB_IDS["sciq"][1]), source):
        for i, row in enumerate(ds):
            _need(row, ("question", "distractor1", "distractor2", "distractor3", "correct_answer"), source, i)
            choices = [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]]
            out.append(
                Instance(
                    len(out),
                    i,
                    cloze_prompt(row["question"]),
                    [" " + c for c in choices],
                    3,
                    UNCOND_CONTEXT,
                )
            )
    return out


def load_openbookqa(source: str | os.PathLike) -> list[Instance]:
    out: list[Instance] = []
    for _, ds in _splits(_load(source, HUB_IDS["openbookqa"][1]), source):
        for i, row in enumerate(ds):
            _need(row, ("id", "question_stem", "choices", "answerKey"), source, i)
            key = row["answerKey"].strip()
            if len(key) != 1 or key not in "ABCD":
                raise ValueError(f"{source}: row {i}: answerKey {key!r} is not one of A-D")
            out.append(
                Instance(
                    len(out),
                    row["id"],
                    cloze_prompt(row["question_stem"]),
                    [" " + c for c in row["choices"]["text"]],
                    "ABCD".index(key),
                    UNCOND_CONTEXT,
                )
            )
    return out


def load_mmlu(source: str | os.PathLike, subject: str) -> list[Instance]:
    """One subject's test split: ``source/{subject}`` locally, or config ``subject`` of the hub id."""
    local = Path(source) / subject
    dd = _load(local) if local.exists() else _load(source, subject)
    out: list[Instance] = []
    for _, ds in _splits(dd, local, ("test",)):
        for i, row in enumerate(ds):
            _need(row, ("question", "choices", "answer"), local, i)
            choices = list(row["choices"])
            if not 0 <= int(row["answer"]) < len(choices):
                raise ValueError(f"{local}: row {i}: answer {row['answer']} out of range")
            out.append(
                Instance(
                    len(out),
                    i,
                    mmlu_prompt(subject, row["question"]),
                    [" " + c for c in choices],
                    int(row["answer"]),
                )
            )
    return out


def expand_tasks(names: list[str]) -> list[str]:
    """Task names as files name them: ``pararel`` -> the 12 ``pararel_{rel}``, ``mmlu`` -> the 57
    ``mmlu_{subject}``; others as given (``pararel_p17``, ``sciq``, ``openbookqa``, ``mmlu_anatomy``)."""
    out = []
    for n in names:
        if n == "pararel":
            out += [f"pararel_{r}" for r in PARAREL_RELATIONS]
        elif n == "mmlu":
            out += [f"mmlu_{s}" for s in MMLU_SUBJECTS]
        else:
            out.append(n)
    return out


def dataset_labels_of(names: list[str]) -> list[str]:
    """Dataset labels named by task families or tasks: ``mmlu`` -> its 57 subjects, ``pararel`` ->
    the 12 relations, ``pararel_p17`` -> ``p17``, ``sciq`` -> ``sciq``."""
    return [dataset_label(t) for t in expand_tasks(names)]


def dataset_label(task: str) -> str:
    """The ``dataset_labels`` entry of a task's instances: the relation, the subject, or the task."""
    for prefix in ("pararel_", "mmlu_"):
        if task.startswith(prefix):
            return task[len(prefix) :]
    return task


def task_source(task: str, sources: dict[str, str]) -> str:
    """The folder or hub id a task is read from: its family's entry of ``sources``, else the
    family's hub id; an error naming the task when there is neither."""
    kind = next((f for f in ("pararel", "mmlu") if task.startswith(f + "_")), task)
    if sources.get(kind):
        return sources[kind]
    if kind in HUB_IDS:
        return HUB_IDS[kind][0]
    raise ValueError(f"task {task}: no data source configured for {kind!r}")


def load_task(task: str, sources: dict[str, str]) -> list[Instance]:
    """Instances of one task; ``sources`` maps ``pararel``/``sciq``/``openbookqa``/``mmlu`` to a
    local folder or hub id."""

    def src(kind: str) -> str:
        return task_source(task, sources)

    if task.startswith("pararel_"):
        return load_pararel(src("pararel"), task[len("pararel_") :])
    if task == "sciq":
        return load_sciq(src("sciq"))
    if task == "openbookqa":
        return load_openbookqa(src("openbookqa"))
    if task.startswith("mmlu_"):
        subject = task[len("mmlu_") :]
        if subject not in MMLU_SUBJECTS:
            raise ValueError(f"task {task}: unknown MMLU subject {subject!r}")
        return load_mmlu(src("mmlu"), subject)
    raise ValueError(f"unknown task {task!r} (pararel_<rel>, sciq, openbookqa, mmlu_<subject>)")
