"""The 12 ParaRel relations of the paper, as templates for the toy world.

The relation ids and each relation's evaluation template follow the real ParaRel data (the paper's
``data/pararel/pararel_patterns_templates.json``: e.g. p27 "[X] is a citizen of [Y]."), and the
datasets' ``template_index`` column holds the real data's value (p27 1, p36 1, p131 2, p176 6, p178
6, p1376 3, p1412 1, others 0; not the ``template{k}`` folder numbers of the paper's result folders).
The other paraphrases are the world's own, used by documents. Every evaluation template ends with
``[Y]`` so that the query is the template cut before the object, as in ParaRel.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Relation:
    rid: str  # "p17"
    subject_kind: str
    object_kind: str
    templates: tuple[str, ...]  # "[X] ... [Y]" paraphrases, used by documents
    template_index: int  # position in ``templates`` of the one ParaRel evaluates
    question: str  # ParaRel's "question" column, "[X]" filled in
    data_template_index: int = 0  # the real datasets' ``template_index`` column

    @property
    def eval_template(self) -> str:
        return self.templates[self.template_index]

    @property
    def pararel_name(self) -> str:
        return f"P{self.rid[1:]}.jsonl"


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "p17",
        "town",
        "country",
        ("[X] is located in [Y] .", "[X] is a town in [Y].", "The town of [X] is part of [Y]."),
        0,
        "Where is [X] located?",
    ),
    Relation(
        "p27",
        "person",
        "country",
        ("[X] is a citizen of [Y].", "[X] holds the citizenship of [Y].", "[X] is a national of [Y]."),
        0,
        "Which country is [X] a citizen of?",
        1,
    ),
    Relation(
        "p36",
        "province",
        "city",
        ("The capital city of [X] is [Y].", "The capital of [X] is [Y].", "[Y] is the capital of [X]."),
        0,
        "What is the capital of [X]?",
        1,
    ),
    Relation(
        "p127",
        "brand",
        "company",
        ("[X] is owned by [Y] .", "[Y] owns [X].", "[X] belongs to [Y]."),
        0,
        "Who owns [X]?",
    ),
    Relation(
        "p131",
        "village",
        "province",
        ("[X] can be found in [Y] .", "[X] is a village in [Y].", "[X] lies within [Y]."),
        0,
        "Where can [X] be found?",
        2,
    ),
    Relation(
        "p138",
        "landmark",
        "person",
        ("[Y] gave its name to [X].", "[X] is named after [Y].", "[X] was named in honour of [Y]."),
        1,
        "Who is [X] named after?",
    ),
    Relation(
        "p176",
        "machine",
        "company",
        ("[X] is a product of [Y].", "[X] is manufactured by [Y].", "[Y] builds the [X]."),
        0,
        "Who manufactures [X]?",
        6,
    ),
    Relation(
        "p178",
        "software",
        "company",
        ("[X] is a product of [Y]", "[X] is developed by [Y].", "[Y] develops [X]."),
        0,
        "Who develops [X]?",
        6,
    ),
    Relation(
        "p276",
        "monument",
        "city",
        ("[Y] is home to [X].", "[X] is located in [Y] .", "[X] stands in [Y]."),
        1,
        "Where is [X]?",
    ),
    Relation(
        "p495",
        "song",
        "country",
        ("[X] originates from [Y].", "[X] comes from [Y].", "[X] was created in [Y]."),
        2,
        "Which country was [X] created in?",
    ),
    Relation(
        "p1376",
        "city",
        "province",
        ("[X] is the capital city of [Y].", "[X] is the capital of [Y].", "[Y] is governed from [X]."),
        0,
        "What is [X] the capital of?",
        3,
    ),
    Relation(
        "p1412",
        "person",
        "language",
        ("[X] communicated in [Y] .", "[X] speaks [Y].", "[X] wrote in [Y]."),
        0,
        "Which language does [X] speak?",
        1,
    ),
)

#: The paper's relations in its order: equal to :data:`intervene.layout.PARAREL_RELATIONS` (tested).
RELATION_IDS: tuple[str, ...] = tuple(r.rid for r in RELATIONS)
BY_ID = {r.rid: r for r in RELATIONS}


def fill(template: str, subject: str, obj: str) -> str:
    return template.replace("[X]", subject).replace("[Y]", obj)


def query_of(template: str, subject: str) -> str:
    """ParaRel's query: the template with the subject filled in, cut before ``[Y]``."""
    head, sep, tail = template.partition("[Y]")
    if not sep:
        raise ValueError(f"template {template!r} has no [Y]")
    return head.replace("[X]", subject).rstrip()
