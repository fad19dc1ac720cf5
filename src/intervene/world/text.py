"""Document text for the toy world: fact statements, single-entity mentions and filler.

Documents are short (a few sentences) so that a small model sees many of them per step, with a
tail of long filler documents that span several training sequences, a few non-ASCII sentences, and
rare documents that contain the literal end-of-text string (which the tokenizer splits into ordinary
tokens, as happened in OLMo 2's data).
"""

from __future__ import annotations

import numpy as np

from intervene.world.relations import Relation, fill, query_of

_DET = ("The", "A", "Every", "That", "One")
_ADJ = ("quiet", "old", "bright", "narrow", "busy", "small", "green", "cold", "famous", "empty")
_NOUN = ("market", "river", "teacher", "garden", "train", "winter", "library", "harbour", "road", "festival")
_VERB = ("opened", "closed", "changed", "grew", "moved", "waited", "started", "ended", "returned", "slowed")
_ADV = ("early", "again", "slowly", "at noon", "last year", "every day", "without notice", "in spring")
MULTILINGUAL = (
    "Über die alte Brücke gehen wir später.",
    "Le café était très animé ce matin.",
    "東京の朝はとても静かでした。",
    "Καλημέρα από την παλιά πόλη.",
    "Привет из городской библиотеки.",
    "La niña comió una piña en el jardín.",
    "We met at the café ☕ and talked until 🌙 rose.",
)
_SUBJECT_MENTIONS = (
    "Yesterday the newspaper wrote about [X].",
    "Many visitors asked about [X].",
    "[X] was mentioned twice in the report.",
    "Nobody expected to hear of [X] again.",
)
_OBJECT_MENTIONS = (
    "The weather report also covered [Y].",
    "Several letters were sent to [Y].",
    "[Y] appeared in the evening news.",
    "A documentary about [Y] was shown.",
)
EOS_SNIPPETS = (
    'The tokenizer printed "<|endoftext|>" where the story ended.',
    "Models mark the end of a text with <|endoftext|> and start over.",
)


def filler_sentence(rng: np.random.Generator, multilingual_p: float = 0.05) -> str:
    if rng.random() < multilingual_p:
        return MULTILINGUAL[rng.integers(len(MULTILINGUAL))]
    return (
        f"{_DET[rng.integers(len(_DET))]} {_ADJ[rng.integers(len(_ADJ))]} "
        f"{_NOUN[rng.integers(len(_NOUN))]} {_VERB[rng.integers(len(_VERB))]} "
        f"{_ADV[rng.integers(len(_ADV))]}."
    )


def _around(rng: np.random.Generator, core: str, max_filler: int) -> str:
    before = [filler_sentence(rng) for _ in range(int(rng.integers(0, max_filler + 1)))]
    after = [filler_sentence(rng) for _ in range(int(rng.integers(0, max_filler + 1)))]
    return " ".join([*before, core, *after])


def fact_document(
    rng: np.random.Generator, rel: Relation, subject: str, obj: str, max_filler: int = 2, qa_p: float = 0.0
) -> str:
    """A statement of the fact in one of the relation's paraphrases amid filler; with probability
    ``qa_p`` a question-answer page instead ("Question: <query>\nAnswer: <object>", the cloze
    format evaluations use, as QA pages in web text have it)."""
    if qa_p > 0 and rng.random() < qa_p:
        enders = [t for t in rel.templates if t.rstrip(" .").endswith("[Y]")]
        t = enders[rng.integers(len(enders))]
        return f"Question: {query_of(t, subject)}\nAnswer: {obj}"
    template = rel.templates[rng.integers(len(rel.templates))]
    return _around(rng, fill(template, subject, obj), max_filler)


def subject_document(rng: np.random.Generator, subject: str, max_filler: int = 2) -> str:
    t = _SUBJECT_MENTIONS[rng.integers(len(_SUBJECT_MENTIONS))]
    return _around(rng, t.replace("[X]", subject), max_filler)


def object_document(rng: np.random.Generator, obj: str, max_filler: int = 2) -> str:
    t = _OBJECT_MENTIONS[rng.integers(len(_OBJECT_MENTIONS))]
    return _around(rng, t.replace("[Y]", obj), max_filler)


def filler_document(rng: np.random.Generator, sentences: int) -> str:
    return " ".join(filler_sentence(rng) for _ in range(sentences))


def eos_document(rng: np.random.Generator) -> str:
    return _around(rng, EOS_SNIPPETS[rng.integers(len(EOS_SNIPPETS))], 2)
