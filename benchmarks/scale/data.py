"""OLMo-shaped training data: raw uint32 token memmaps (no header, documents each followed by EOS)
and an OLMo 2-like train config, cached by their parameters.

Generation is fast because text is tokenized once: a pool of documents (``text.document``) is
tokenized with the real dolma2 tokenizer and cached; the token files are then filled with documents
sampled from the pool, each followed by EOS, as OLMo's preprocessing lays them out (a document may
span instances and files' trailing tokens are ignored, design notes §2).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.scale.text import TOKENS_PER_WORD, ParaRel, doc_lengths, document, vocabulary
from benchmarks.scale.tokenizer import EOS, PAD, VOCAB
from intervene.atomic import atomic_path, write_text

#: tokens per token file at most (OLMo 2's files hold ~0.1-4 GB; two files at least, so the data
#: order interleaves files)
FILE_TOKENS = 1 << 26


def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def token_pool(cache: Path, tokenizer_dir: Path, pararel: ParaRel, *, docs: int, seed: int) -> Path:
    """``cache/pool-<key>.npz``: ``tokens`` (uint32, the documents concatenated, no EOS) and
    ``offsets`` (int64, ``docs + 1``), built once per parameters."""
    tok_file = Path(tokenizer_dir) / "tokenizer.json"
    key = _key(
        docs=docs,
        seed=seed,
        pararel=pararel.fingerprint,
        tokenizer=hashlib.sha256(tok_file.read_bytes()).hexdigest(),
        model=2,
    )
    out = cache / f"pool-{key}.npz"
    if out.exists():
        return out
    from tokenizers import Tokenizer

    t0 = time.perf_counter()
    tok = Tokenizer.from_file(str(tok_file))
    rng = np.random.default_rng(seed)
    vocab = vocabulary(pararel)
    lengths = doc_lengths(rng, docs)
    chunks, counts = [], []
    for lo in range(0, docs, 512):
        texts = [document(rng, vocab, max(1, int(n / TOKENS_PER_WORD))) for n in lengths[lo : lo + 512]]
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            chunks.append(np.asarray(enc.ids, dtype=np.uint32))
            counts.append(len(enc.ids))
    tokens = np.concatenate(chunks)
    if (tokens == EOS).any():
        raise RuntimeError("generated text tokenized to an EOS token")
    offsets = np.zeros(docs + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, tokens=tokens, offsets=offsets)
    print(
        f"  token pool: {docs} documents, {tokens.size / 1e6:.1f}M tokens (median {int(np.median(counts))}, "
        f"max {max(counts)}) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return out


def _fill(path: Path, n_tokens: int, tokens: np.ndarray, offsets: np.ndarray, rng) -> None:
    """A raw uint32 token file of ``n_tokens`` tokens: pool documents, each followed by EOS."""
    with atomic_path(path) as tmp:
        mm = np.memmap(tmp, dtype=np.uint32, mode="w+", shape=(n_tokens,))
        pos, n_docs = 0, offsets.size - 1
        while pos < n_tokens:
            for d in rng.integers(n_docs, size=4096):
                a, b = offsets[d], offsets[d + 1]
                take = min(b - a, n_tokens - pos)
                mm[pos : pos + take] = tokens[a : a + take]
                pos += take
                if pos < n_tokens:
                    mm[pos] = EOS
                    pos += 1
                if pos >= n_tokens:
                    break
        mm.flush()
        del mm


def olmo_data(
    cache: Path, pool: Path, *, batches: int, gbs: int, seq_len: int, seed: int = 0
) -> tuple[Path, int]:
    """A folder with token files holding exactly ``batches * gbs`` instances of ``seq_len`` tokens
    (plus a few trailing tokens per file, as real files have) and ``train_config.yaml``; returns the
    config's path and the token files' bytes."""
    key = _key(pool=pool.name, batches=batches, gbs=gbs, seq_len=seq_len, seed=seed, file_tokens=FILE_TOKENS)
    out = cache / f"data-{gbs}x{seq_len}-{batches}-{key}"
    cfg = out / "train_config.yaml"
    if cfg.exists():
        return cfg, sum(f.stat().st_size for f in out.glob("*.npy"))
    t0 = time.perf_counter()
    z = np.load(pool)
    tokens, offsets = z["tokens"], z["offsets"]
    instances = batches * gbs
    n_files = max(2, -(-instances * seq_len // FILE_TOKENS))
    per = np.full(n_files, instances // n_files)
    per[: instances % n_files] += 1
    rng = np.random.default_rng([seed, batches, gbs, seq_len])
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for k, n_inst in enumerate(per):
        name = f"part-{k:05d}.npy"  # OLMo's names; raw memmaps despite the suffix
        _fill(out / name, int(n_inst) * seq_len + int(rng.integers(1, seq_len)), tokens, offsets, rng)
        names.append(name)
    config = {
        "run_name": f"scale-bench-{gbs}x{seq_len}",
        "seed": 6198,
        "global_train_batch_size": gbs,
        "model": {
            "max_sequence_length": seq_len,
            "vocab_size": VOCAB,
            "embedding_size": 100352,
            "eos_token_id": EOS,
            "pad_token_id": PAD,
        },
        "tokenizer": {"identifier": "tokenizers/allenai_dolma2.json"},
        "data": {"memmap_dtype": "uint32", "drop_last": True, "paths": names},
    }
    write_text(cfg, yaml.safe_dump(config, sort_keys=False))
    size = sum(os.path.getsize(out / n) for n in names)
    print(
        f"  data: {instances} instances in {n_files} files, {size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s"
    )
    return cfg, size
