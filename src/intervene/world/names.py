"""Fictional names for the toy world's entities, from seeded syllable chains.

About one name in eight carries a non-ASCII letter so that byte offsets, the byte-level tokenizer
and the decoders meet multi-byte UTF-8 on every run.
"""

from __future__ import annotations

import numpy as np

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "st", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "nd", "rk")
_ACCENTED = ("å", "ø", "é", "ü", "ñ", "ö", "ç", "ł")

#: Suffixes that make names of one kind look alike (and give the search realistic shared substrings).
KIND_SUFFIX = {
    "country": ("ia", "land", "stan", "ora"),
    "city": ("burg", "ton", "polis", "grad", ""),
    "province": (" Province", " Region", "shire", ""),
    "town": ("by", "dorf", "ville", "", "stad"),
    "village": ("wick", "ham", "", "thorpe"),
    "person": ("",),
    "company": (" Corp", " Industries", " Labs", " Group", " Works"),
    "brand": ("", "ex", "ico"),
    "landmark": (" Bridge", " Tower", " Gate", " Hall"),
    "machine": (" 300", " X", " Mk II", " Turbo", " 9"),
    "software": ("OS", "DB", " Studio", "Script", " Suite"),
    "monument": (" Monument", " Obelisk", " Arch", " Statue"),
    "song": ("", " Song", " Ballad", " Waltz"),
    "language": ("ish", "ese", "ic", "an"),
}


def _word(rng: np.random.Generator, syllables: int, accent: bool) -> str:
    parts = []
    for _ in range(syllables):
        parts.append(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))])
    parts.append(_CODAS[rng.integers(len(_CODAS))])
    w = "".join(parts)
    if accent:
        i = int(rng.integers(len(w)))
        w = w[:i] + _ACCENTED[rng.integers(len(_ACCENTED))] + w[i + 1 :]
    return w.capitalize()


def make_names(rng: np.random.Generator, kind: str, n: int, taken: set[str]) -> list[str]:
    """``n`` new distinct names of ``kind`` not in ``taken`` (which is updated)."""
    out: list[str] = []
    suffixes = KIND_SUFFIX[kind]
    while len(out) < n:
        accent = rng.random() < 0.125
        if kind == "person":
            name = (
                f"{_word(rng, int(rng.integers(1, 3)), accent)} {_word(rng, int(rng.integers(2, 4)), False)}"
            )
        else:
            name = _word(rng, int(rng.integers(1, 4)), accent) + suffixes[rng.integers(len(suffixes))]
        if name in taken or len(name) < 3:
            continue
        taken.add(name)
        out.append(name)
    return out
