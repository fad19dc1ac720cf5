"""A synthetic decoded group for the search benchmarks: JSON-lines ``.json.gz`` files in the paper's
format (``json.dumps`` with ASCII escapes), words from a Zipf vocabulary with capitalised
multi-word terms (1 in 10 with a non-ASCII letter) planted in the documents, and the escapes web
text brings: a line break about every 60 words, a typographic apostrophe, dash or quote about
every 50 (each a 6-byte ``\\uXXXX`` in the file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from intervene.textio import gzip_bytes

PUNCT = ["\u2019s", "\u2014", "\u201cso\u201d", "\u2026"]


def _words(rng, n, lo=3, hi=9, alphabet="abcdefghijklmnopqrstuvwxyz"):
    letters = np.array(list(alphabet))
    return ["".join(rng.choice(letters, size=int(rng.integers(lo, hi)))) for _ in range(n)]


def make_corpus(out: Path, *, mb: float, n_terms: int, seed: int = 0) -> tuple[list[str], int]:
    """Write ``{b}.json.gz`` files under ``out`` with about ``mb`` MB of text; return the terms and
    the text bytes written."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_words(rng, 20000))
    p = 1 / np.arange(1, vocab.size + 1)
    p /= p.sum()
    terms = []
    for i in range(n_terms):
        k = int(rng.integers(1, 4))
        ws = [w.capitalize() for w in _words(rng, k, 4, 10)]
        if i % 10 == 0:
            ws[0] = ws[0][:-1] + "é"
        terms.append(" ".join(ws))
    terms = sorted(set(terms))
    out.mkdir(parents=True, exist_ok=True)
    total, b = 0, 0
    target = int(mb * 1e6)
    while total < target:
        lines = []
        for _ in range(400):
            words = list(vocab[rng.choice(vocab.size, size=int(rng.integers(20, 500)), p=p)])
            for _ in range(int(rng.poisson(2))):
                words.insert(int(rng.integers(0, len(words) + 1)), terms[int(rng.integers(len(terms)))])
            for _ in range(int(rng.poisson(len(words) / 60))):
                words.insert(int(rng.integers(0, len(words) + 1)), "\n")
            for _ in range(int(rng.poisson(len(words) / 50))):
                words.insert(int(rng.integers(0, len(words) + 1)), PUNCT[int(rng.integers(len(PUNCT)))])
            text = " ".join(words)
            total += len(text.encode("utf-8"))
            lines.append(json.dumps({"text": text}))
        (out / f"{b}.json.gz").write_bytes(gzip_bytes(("\n".join(lines) + "\n").encode()))
        b += 1
    return terms, total
