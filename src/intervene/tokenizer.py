"""Loading a tokenizer and deriving what the data stages need from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class TokenizerError(ValueError):
    pass


def load_tokenizer(name_or_dir: str | os.PathLike):
    """A transformers fast tokenizer from a local directory (or a hub id where the hub is reachable)."""
    from transformers import AutoTokenizer

    p = Path(name_or_dir)
    looks_local = p.exists() or str(name_or_dir).startswith((".", "/")) or os.sep in str(name_or_dir).rstrip("/")[:1]
    if not p.exists() and (looks_local or str(name_or_dir).count("/") != 1):
        raise TokenizerError(f"{name_or_dir}: tokenizer directory not found")
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_dir))
    except Exception as e:  # transformers raises OSError/ValueError/... depending on what is missing
        raise TokenizerError(f"{name_or_dir}: cannot load tokenizer: {e}") from None
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(f"{name_or_dir}: a fast (tokenizers-backed) tokenizer is required")
    if tok.eos_token is None:
        raise TokenizerError(f"{name_or_dir}: tokenizer has no EOS token")
    return tok


@dataclass(frozen=True)
class SplitEos:
    """How the EOS string looks when it was tokenized as ordinary text.

    ``core`` are the token ids that appear whatever surrounds the string (for dolma2: "endo" "ft"
    "ext" = 8862, 728, 428); ``before``/``after`` the number of tokens of the string on either side of
    the core (2 and 2 for dolma2: "<" "|" and "|" ">", which may merge with neighbouring text).
    """

    eos_id: int
    eos_text: str
    core: tuple[int, ...]
    before: int
    after: int


def _encode_plain(backend, s: str) -> list[int]:
    old = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        return backend.encode(s, add_special_tokens=False).ids
    finally:
        backend.encode_special_tokens = old


def split_eos_pattern(tok) -> SplitEos:
    """Derive the split-EOS token pattern from the tokenizer instead of hard-coding dolma2's ids.

    Encode the EOS string as plain text in several contexts; the core is the longest run of ids of
    the bare encoding that occurs in every context's encoding.
    """
    backend = tok.backend_tokenizer
    eos_text = tok.eos_token
    bare = _encode_plain(backend, eos_text)
    contexts = ["a", " ", "\n", ".", "x<", "1"]
    encs = [_encode_plain(backend, p + eos_text + q) for p in contexts for q in ["", *contexts]]

    def occurs(sub: list[int], seq: list[int]) -> bool:
        n = len(sub)
        return any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))

    for n in range(len(bare), 0, -1):
        for i in range(len(bare) - n + 1):
            sub = bare[i : i + n]
            if all(occurs(sub, e) for e in encs):
                return SplitEos(tok.eos_token_id, eos_text, tuple(sub), i, len(bare) - i - n)
    # no stable token: fall back to the bare encoding itself
    return SplitEos(tok.eos_token_id, eos_text, tuple(bare), 0, 0)
