"""Loading a tokenizer and deriving what the data stages need from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class TokenizerError(ValueError):
    pass


def load_tokenizer(name_or_dir: str | os.PathLike, revision: str | None = None):
    """A transformers fast tokenizer from a local folder, or a hub id (``org/name``) where the hub
    is reachable. Errors name the folder and what is wrong."""
    from transformers import AutoTokenizer

    name = str(name_or_dir)
    is_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if not Path(name).exists() and not is_hub_id:
        raise TokenizerError(f"{name}: tokenizer folder not found")
    try:
        tok = AutoTokenizer.from_pretrained(name, revision=revision)
    except Exception as e:  # transformers raises OSError/ValueError/... depending on what is missing
        raise TokenizerError(f"{name}: cannot load tokenizer: {e}") from None
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(f"{name}: a fast (tokenizers-backed) tokenizer is required")
    if tok.eos_token is None:
        raise TokenizerError(f"{name}: tokenizer has no EOS token")
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


def _encode_plain(backend, s: str):
    old = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        return backend.encode(s, add_special_tokens=False)
    finally:
        backend.encode_special_tokens = old


def split_eos_pattern(tok) -> SplitEos:
    """Derive the split-EOS token pattern from the tokenizer instead of hard-coding dolma2's ids.

    Encode the EOS string as plain text. Its delimiters ("<|", "|>") are what merges with
    neighbouring text, so the core is the run of tokens inside the string's alphanumeric interior
    ("endoftext"), kept only where it occurs unchanged whatever surrounds the string (checked over
    a set of contexts); the window is the whole bare encoding around it. For dolma2 this gives the
    paper's 3-token core 8862, 728, 428 with 2 tokens either side.
    """
    backend = tok.backend_tokenizer
    eos_text = tok.eos_token
    enc = _encode_plain(backend, eos_text)
    bare, offsets = list(enc.ids), list(enc.offsets)
    contexts = ["a", " ", "\n", ".", "x<", "1", '"', "'", "(", ")", ",", "<", ">", "|", "`", "\\"]
    encs = [list(_encode_plain(backend, p + eos_text + q).ids) for p in contexts for q in ["", *contexts]]

    def stable(sub: list[int]) -> bool:
        n = len(sub)
        return all(any(e[i : i + n] == sub for i in range(len(e) - n + 1)) for e in encs)

    alnum = [i for i, c in enumerate(eos_text) if c.isalnum()]
    inner = [j for j, (a, b) in enumerate(offsets) if alnum and a >= alnum[0] and b <= alnum[-1] + 1]
    lo, hi = (inner[0], inner[-1] + 1) if inner else (0, len(bare))
    for n in range(hi - lo, 0, -1):
        for i in range(lo, hi - n + 1):
            if stable(bare[i : i + n]):
                return SplitEos(tok.eos_token_id, eos_text, tuple(bare[i : i + n]), i, len(bare) - i - n)
    return SplitEos(tok.eos_token_id, eos_text, tuple(bare), 0, 0)


def decode_batch(tok, rows: list[list[int]]) -> list[str]:
    """``tok.batch_decode(rows, skip_special_tokens=False)``, through the Rust decoder directly.

    transformers' wrapper costs about 4x the decoding itself (measured in benchmarks/). Where the
    tokenizer asks for transformers' space clean-up (whose rules differ between transformers
    versions) we defer to ``batch_decode`` itself, so the text is always what it returns.
    """
    if getattr(tok, "clean_up_tokenization_spaces", False):
        return tok.batch_decode(rows, skip_special_tokens=False)
    return tok.backend_tokenizer.decode_batch(rows, skip_special_tokens=False)
