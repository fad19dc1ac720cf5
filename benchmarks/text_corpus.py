"""Realistic web-like English text with the real ParaRel terms in it, for the benchmarks.

Why not random words: the cost of the term search is driven by how often its terms occur, and the
real ParaRel terms include short ones ("Ba", "Ho", "ear", "red", "iron") that occur inside common
words ("Back", "How", "year", "required", "environment"). Only text with real word frequencies,
sentence capitals and proper nouns gives a realistic count of matches per MB.

The text: words drawn from ``wordfreq``'s English frequency list (top 50,000, their real
frequencies; numbers with random digits for wordfreq's zeros); sentences of ~20 words with a
capital first word, commas, question marks, line breaks and paragraph breaks; a proper-noun
spelling for wordfreq words whose capitalised form is a ParaRel term, but for a listed few mostly
written in lower case ("france" -> "France", "many" stays); 2 % of other words capitalised (names,
titles); ParaRel subjects and objects planted as 1 word in 100, drawn by how many
ParaRel instances name them (so "Japan" and "English" come up far more often than a rare subject);
and the escapes web text brings into the decoded JSON: straight and typographic quotes,
typographic apostrophes and dashes, tabs, URLs, and wordfreq's own emoji and accented words.
Documents are lognormal in length (median ~450 words), as web pages are.

API (also used by the scale benchmark):

- :func:`pararel_dir`: the ParaRel folder (``INTERVENE_PARAREL``, default ``resources/pararel``)
  or ``None`` where it is absent: a folder with ``search_terms/pararel_patterns_{rel}_train.txt``
  and, optionally, ``huggingface/pararel_patterns_{rel}`` (instances, for the planting weights).
- :func:`pararel_terms`: the term vocabulary and the per-relation term files.
- :func:`realistic_texts`: documents holding about ``n_bytes`` bytes of UTF-8 text.
- :func:`write_decoded_group`: the documents as a decoded batch group (``{b}.json.gz``), written
  as the decode stage writes them.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import numpy as np

PARAREL_ENV = "INTERVENE_PARAREL"
TOP_WORDS = 50_000
PLANT_RATE = 0.01  # ParaRel terms per word
CAPITAL_RATE = 0.02  # other words written with a capital (names, titles, headings)
# wordfreq words whose capitalised form is a ParaRel term but which are mostly written in lower case
# (all others, "france", "london", "microsoft", take their ParaRel spelling)
LOWER = frozenset(
    "many lot hope nice march center reading central access pain sun centre mobile square stone "
    "variety bay vice moon liberal split orange republic motion independence turkey circle castle "
    "bath mini flower enterprise liberty upcoming fleet candy globe oral lion burns naval unity lakes "
    "pearl tours arrow eagle derby pulse queens salmon triumph dodge buffalo gap eve inn ho ba".split()
)


def pararel_dir() -> Path | None:
    """The ParaRel folder, or ``None`` where it is absent (benchmarks then say they skip)."""
    p = Path(os.environ.get(PARAREL_ENV, "resources/pararel"))
    return p if (p / "search_terms").is_dir() else None


def skip_message() -> str:
    return (
        f"skipped: no ParaRel folder (set {PARAREL_ENV} to a folder with search_terms/"
        "pararel_patterns_{rel}_train.txt; default resources/pararel)"
    )


def pararel_terms(root: str | os.PathLike) -> tuple[list[str], dict[str, Path]]:
    """The sorted union of every relation's terms, and the term file of each relation."""
    from intervene.search.occurrences import term_vocabulary

    files = {
        m.group(1): f
        for f in sorted(Path(root, "search_terms").glob("pararel_patterns_*_train.txt"))
        if (m := re.fullmatch(r"pararel_patterns_(.+)_train\.txt", f.name))
    }
    if not files:
        raise FileNotFoundError(f"{root}/search_terms: no pararel_patterns_*_train.txt")
    vocab, _ = term_vocabulary(files)
    return vocab, files


@cache
def _plant_table(root: str) -> tuple[np.ndarray, np.ndarray]:
    """Terms to plant and their probabilities: 1 + the number of ParaRel instances naming each
    (subject or object); uniform where the instance datasets are absent."""
    vocab, files = pararel_terms(root)
    weight = dict.fromkeys(vocab, 1.0)
    hf = Path(root, "huggingface")
    if hf.is_dir():
        from intervene.evaluation.tasks import pararel_split

        for rel in files:
            if not (hf / f"pararel_patterns_{rel}").is_dir():
                continue
            _, ds = pararel_split(hf, rel)
            for s, o in set(zip(ds["subject"], ds["object"], strict=True)):
                for t in (s.strip(), o.strip()):
                    if t in weight:
                        weight[t] += 1.0
    terms = np.array(list(weight), dtype=object)
    p = np.array(list(weight.values()))
    return terms, p / p.sum()


@cache
def _english(root: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """wordfreq's top English words: (plain form, capitalised form, probability, has apostrophe)."""
    try:
        import wordfreq
    except ImportError:
        raise SystemExit("the realistic text needs wordfreq: pip install -e '.[bench]'") from None
    freq = wordfreq.get_frequency_dict("en")
    top = sorted(freq.items(), key=lambda kv: -kv[1])[:TOP_WORDS]
    rng = np.random.default_rng(12345)
    single = set()
    if root is not None:
        single = {t for t in pararel_terms(root)[0] if " " not in t and t[:1].isupper()}
    words, p = [], []
    for w, f in top:
        if "0" in w and any(c.isdigit() for c in w):  # wordfreq writes every digit as 0
            for _ in range(4):
                words.append(re.sub("0", lambda _: str(rng.integers(10)), w))
                p.append(f / 4)
            continue
        if w == "i" or w.startswith("i'"):
            w = "I" + w[1:]
        elif w not in LOWER and w.capitalize() in single:
            w = w.capitalize()
        words.append(w)
        p.append(f)
    plain = np.array(words, dtype=object)
    cap = np.array([w[:1].upper() + w[1:] for w in words], dtype=object)
    prob = np.array(p)
    return plain, cap, prob / prob.sum(), np.array(["'" in w for w in words])


# separators after a word: (text, weight); sentence ends are chosen separately
_MID = [
    (" ", 0.86),
    (", ", 0.08),
    (" \u2014 ", 0.01),
    (" - ", 0.01),
    ("; ", 0.005),
    (": ", 0.01),
    ("\t", 0.005),
]
_END = [(". ", 0.6), (".\n", 0.15), (".\n\n", 0.1), ("? ", 0.06), ("! ", 0.04), ("\n", 0.05)]


def _choose(rng, table, n):
    seps = np.array([s for s, _ in table], dtype=object)
    w = np.array([x for _, x in table])
    return seps[rng.choice(len(table), size=n, p=w / w.sum())]


def _chunk(rng, n_words: int, english, plant) -> list[str]:
    plain, cap, prob, apos = english
    ids = rng.choice(plain.size, size=n_words, p=prob)
    sep = _choose(rng, _MID, n_words)
    ends = np.cumsum(3 + rng.gamma(3.0, 5.5, size=n_words // 3 + 2).astype(np.int64))
    ends = ends[ends < n_words]
    sep[ends] = _choose(rng, _END, ends.size)
    start = np.zeros(n_words, dtype=bool)
    start[0] = True
    start[ends[ends + 1 < n_words] + 1] = True
    tok = np.where(start | (rng.random(n_words) < CAPITAL_RATE), cap[ids], plain[ids])
    typo = apos[ids] & (rng.random(n_words) < 0.3)  # a typographic apostrophe (\u2019)
    tok[typo] = [w.replace("'", "\u2019") for w in tok[typo]]
    if plant is not None:
        at = np.flatnonzero(rng.random(n_words) < PLANT_RATE)
        tok[at] = plant[0][rng.choice(plant[0].size, size=at.size, p=plant[1])]
    q = np.flatnonzero(rng.random(n_words) < 0.004)  # a quoted phrase of 1-6 words
    q_end = np.minimum(q + rng.integers(0, 6, size=q.size), n_words - 1)
    curly = rng.random(q.size) < 0.3
    tok[q] = np.where(curly, "\u201c", '"') + tok[q].astype(str)
    tok[q_end] = tok[q_end].astype(str) + np.where(curly, "\u201d", '"')
    u = np.flatnonzero(rng.random(n_words) < 0.002)
    tok[u] = [f"https://www.{a}.com/{b}" for a, b in zip(plain[ids[u]], plain[ids[u - 1]], strict=True)]
    doc_len = np.maximum(rng.lognormal(np.log(450), 1.0, size=n_words // 100 + 2).astype(np.int64), 5)
    bounds = np.cumsum(doc_len)
    bounds = np.concatenate([[0], bounds[bounds < n_words], [n_words]])
    out = np.empty(2 * n_words, dtype=object)
    out[0::2] = tok
    out[1::2] = sep
    flat = out.tolist()
    return [
        "".join(flat[2 * a : 2 * b - 1]) + ("." if sep[b - 1].startswith(".") else "")
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        if b > a
    ]


def realistic_texts(n_bytes: int, seed: int = 0, pararel_dir: str | os.PathLike | None = None) -> list[str]:
    """Documents with about ``n_bytes`` bytes of UTF-8 text in all (at least ``n_bytes``; the
    last document is whole). ``pararel_dir``: plant its terms (``None``: English words only).
    Deterministic for a seed and the installed wordfreq version."""
    root = None if pararel_dir is None else str(pararel_dir)
    english = _english(root)
    plant = None if root is None else _plant_table(root)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    total = 0
    while total < n_bytes:
        # ~6 bytes per word: ask for what is left, in chunks that keep the temporaries small
        n_words = int(min(max((n_bytes - total) / 6, 10_000), 2_000_000))
        for t in _chunk(rng, n_words, english, plant):
            texts.append(t)
            total += len(t.encode("utf-8"))
            if total >= n_bytes:
                break
    return texts


def write_decoded_group(
    out_dir: str | os.PathLike, texts: list[str], file_bytes: float = 16e6
) -> tuple[list[Path], int]:
    """The documents as ``{b}.json.gz`` files of about ``file_bytes`` of text each, written as the
    decode stage writes them (:func:`intervene.textio.write_jsonl_gz`, then ``manifest.tsv``);
    the files and the text bytes. ~16 MB of text is one OLMo 7B batch (1024 x 4096 tokens)."""
    from intervene.manifest import write_manifest
    from intervene.textio import write_jsonl_gz

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, batch, size, total = [], [], 0, 0
    for i, t in enumerate(texts):
        batch.append(t)
        n = len(t.encode("utf-8"))
        size += n
        total += n
        if size >= file_bytes or i == len(texts) - 1:
            f = out / f"{len(files)}.json.gz"
            write_jsonl_gz(f, batch)
            files.append(f)
            batch, size = [], 0
    write_manifest(out)
    return files, total
