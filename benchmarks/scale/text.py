"""English web-like documents with real word frequencies and the real ParaRel terms planted.

The model, and why (what the stages' cost depends on is how often terms match, how long documents
are, and what the text looks like as escaped JSON):

- Words are drawn independently from the ``wordfreq`` English frequency list (its top 50,000 words,
  with their real frequencies), so common words, and the short terms that match inside them
  ("Ba", "Ho", "red" ...), match as often as in English text.
- Sentences of geometric length (mean 17 words) start with a capital letter; commas, em dashes
  (an escaped ``\\u2014`` in the JSON), and paragraph breaks (escaped ``\\n``) appear at about web
  text's rates; in 40% of documents apostrophes are typographic (``\\u2019``).
- Single-word ParaRel terms that are names (a relation's object, or a word outside the 3,000 most
  frequent) keep their capitalisation wherever the word is drawn: "France", "English", "London"
  occur at their real frequencies. Common words that are also terms ("Many", "Hope") are capitalised
  only at sentence starts, as in English.
- Terms not in the word list (multi-word names, rare names) are drawn as one unit at ``wordfreq``'s
  estimate for the phrase divided by 10 per extra word (its estimate combines the words' rates and
  overstates names), capped at 2e-5 and floored at 1e-9 (about one occurrence per 10^9 words).
- Where a ParaRel subject is drawn, one time in ten it comes as a fact: one of its instances'
  templates filled with its object ("Eibenstock is located in Germany."), so subjects co-occur with
  their objects as in encyclopedic text.
- Document lengths are lognormal in tokens (median 600, sigma 1.2: mean ~1,200; about 1 in 2,000
  longer than 50,000 tokens), as web documents are (most short, a heavy tail of very long ones).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervene.evaluation.tasks import PARAREL_RELATIONS, pararel_split
from intervene.search.occurrences import read_term_list
from intervene.search.stages import term_file

SEPS = (" ", ", ", " \u2014 ", ". ", ".\n\n")  # sentence ends last (3, 4)
#: per word: P(comma), P(sentence end), P(paragraph end | sentence end), P(em dash)
P_COMMA, P_END, P_PARA, P_DASH = 0.05, 1 / 17, 0.2, 0.003
P_FACT = 0.1
TOKENS_PER_WORD = 1.3  # dolma2 on this text (measured: 1.25-1.35); sets the words drawn per document


class ParaRelError(FileNotFoundError):
    pass


@dataclass
class ParaRel:
    terms: list[str]  # the union of the 12 relations' term files
    objects: set[str]
    facts: dict[str, list[str]]  # subject -> its instances' filled templates
    fingerprint: str


def load_pararel(root: Path, relations=PARAREL_RELATIONS) -> ParaRel:
    """The real ParaRel data: ``root/search_terms`` (term files) and ``root/huggingface``."""
    root = Path(root)
    for sub in ("huggingface", "search_terms"):
        if not (root / sub).is_dir():
            raise ParaRelError(
                f"{root / sub}: not found (PARAREL must hold the paper's huggingface/ and search_terms/)"
            )
    h = hashlib.sha256()
    terms: set[str] = set()
    objects: set[str] = set()
    facts: dict[str, list[str]] = {}
    for rel in relations:
        path = term_file(root / "search_terms", rel)
        h.update(path.read_bytes())
        terms |= set(read_term_list(path))
        _, ds = pararel_split(root / "huggingface", rel)
        seen = set()
        for s, o, t in zip(ds["subject"], ds["object"], ds["template"], strict=True):
            s, o = s.strip(), o.strip()
            objects.add(o)
            if (s, o) in seen:  # one fact per pair (the dataset repeats it per template)
                continue
            seen.add((s, o))
            facts.setdefault(s, []).append(t.replace("[X]", s).replace("[Y]", o).replace(" .", "."))
        h.update(f"{rel}:{len(ds)}".encode())
    return ParaRel(sorted(terms), objects, facts, h.hexdigest()[:16])


@dataclass
class Vocabulary:
    pieces: np.ndarray  # object array: variant * n + entry -> the string written
    cdf: np.ndarray  # cumulative probabilities of the entries
    fact_of: dict[int, list[str]]  # entry -> facts of the subject it is
    n: int


def vocabulary(pararel: ParaRel, n_words: int = 50000) -> Vocabulary:
    import wordfreq

    freq = wordfreq.get_frequency_dict("en")
    words = sorted(freq, key=freq.get, reverse=True)[:n_words]
    rank = {w: i for i, w in enumerate(words)}
    # the pronoun is written capitalised ("I", "I'm"); wordfreq lowercases every word
    display = [w.capitalize() if w == "i" or w.startswith("i'") else w for w in words]
    rates = [freq[w] for w in words]
    extra: list[tuple[str, float]] = []
    for t in pararel.terms:
        low = t.lower()
        if " " not in t and low in rank:
            if t != low and (t in pararel.objects or rank[low] >= 3000):
                display[rank[low]] = t  # a name: written capitalised wherever drawn
            continue
        n = len(t.split())
        rate = wordfreq.word_frequency(t, "en") / 10 ** max(n - 1, 0)
        extra.append((t, min(max(rate, 1e-9), 2e-5)))
    display += [t for t, _ in extra]
    rates += [r for _, r in extra]
    p = np.asarray(rates, dtype=np.float64)
    cdf = np.cumsum(p / p.sum())
    cdf[-1] = 1.0
    capital = [d[:1].upper() + d[1:] for d in display]
    pieces = np.array([w + s for cap in (display, capital) for s in SEPS for w in cap], dtype=object)
    index = {d: i for i, d in enumerate(display)}
    fact_of = {index[s]: f for s, f in pararel.facts.items() if s in index}
    return Vocabulary(pieces, cdf, fact_of, len(display))


def document(rng: np.random.Generator, v: Vocabulary, n_words: int) -> str:
    """One document of ``n_words`` drawn words (see the module docstring)."""
    idx = np.searchsorted(v.cdf, rng.random(n_words), side="right")
    u = rng.random(n_words)
    sep = np.zeros(n_words, dtype=np.int64)
    sep[u < P_DASH] = 2
    sep[(u >= P_DASH) & (u < P_DASH + P_COMMA)] = 1
    end = u >= 1 - P_END
    sep[end] = np.where(rng.random(int(end.sum())) < P_PARA, 4, 3)
    sep[-1] = 3
    cap = np.zeros(n_words, dtype=np.int64)
    cap[0] = 1
    cap[1:] = sep[:-1] >= 3
    parts = v.pieces[(cap * len(SEPS) + sep) * v.n + idx].tolist()
    for i in np.flatnonzero(rng.random(n_words) < P_FACT):
        facts = v.fact_of.get(int(idx[i]))
        if facts:  # a fact sentence in place of the subject
            parts[i] = facts[int(rng.integers(len(facts)))] + (" " if sep[i] < 4 else "\n\n")
    text = "".join(parts).rstrip()
    return text.replace("'", "\u2019") if rng.random() < 0.4 else text


def doc_lengths(rng: np.random.Generator, n: int, median: float = 600, sigma: float = 1.2) -> np.ndarray:
    """Target document lengths in tokens (lognormal, at least 8, at most 256k)."""
    return np.clip(rng.lognormal(np.log(median), sigma, n), 8, 262144).astype(np.int64)
