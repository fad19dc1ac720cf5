"""Decode: our path vs the paper's ``decode_batches.py`` path, on the same batches of a toy world.

Paper's path, re-implemented: one ``np.memmap`` opened per instance (OLMo's ``MemMapDataset``
``__getitem__``), a ``torch`` tensor per instance turned into a list, transformers' ``batch_decode``,
text written uncompressed, then the ``gzip`` command (level 6). Ours: one vectorised gather per
file, the Rust decoder's ``decode_batch`` without transformers' wrapper, ISA-L gzip in memory. Both
produce the same documents (asserted); the table splits the time.
"""

from __future__ import annotations

import bisect
import gzip
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SCALE, bench_world, report


def _paper_read(paths, counts, L, indices):
    import torch

    starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    rows = []
    for idx in indices.tolist():
        k = bisect.bisect_right(starts, idx) - 1
        j = idx - starts[k]
        mm = np.memmap(paths[k], dtype=np.uint32, mode="r", offset=j * L * 4, shape=(L,))
        rows.append(torch.tensor(mm.astype(np.int64)).tolist())
    return rows


def run() -> str:
    from intervene.data_order import build_data_order
    from intervene.decode import split_documents
    from intervene.olmo import InstanceReader, load_train_config
    from intervene.textio import encode_lines, gzip_bytes
    from intervene.tokenizer import decode_batch, load_tokenizer

    w = bench_world()
    cfg = load_train_config(w / "train_config.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="bench-decode-"))
    order = build_data_order(w / "train_config.yaml", tmp / "gi.npy", tmp / "files.tsv")
    paths = [str(w / p) for p in cfg.paths]
    reader = InstanceReader(paths, cfg.dtype, cfg.seq_len)
    tok = load_tokenizer(w / "tokenizer")
    G, L = cfg.global_batch_size, cfg.seq_len
    n_batches = max(2, int(60 * SCALE))
    batches = [np.asarray(order[b * G : (b + 1) * G]) for b in range(n_batches)]
    n_tokens = n_batches * G * L

    t = {"read": 0.0, "decode": 0.0, "write": 0.0}
    t0 = time.perf_counter()
    for b, idx in enumerate(batches):
        a = time.perf_counter()
        rows = _paper_read(paths, reader.counts, L, idx)
        c = time.perf_counter()
        docs = split_documents(tok.batch_decode(rows, skip_special_tokens=False), tok.eos_token)
        d = time.perf_counter()
        f = tmp / f"paper_{b}.json"
        f.write_bytes(encode_lines(docs))
        subprocess.run(["gzip", "-f", str(f)], check=True)
        e = time.perf_counter()
        t["read"] += c - a
        t["decode"] += d - c
        t["write"] += e - d
    base_s = time.perf_counter() - t0

    u = {"read": 0.0, "decode": 0.0, "write": 0.0}
    t0 = time.perf_counter()
    for b, idx in enumerate(batches):
        a = time.perf_counter()
        tokens = reader.read(idx)
        c = time.perf_counter()
        docs = split_documents(decode_batch(tok, tokens.tolist()), tok.eos_token)
        d = time.perf_counter()
        (tmp / f"ours_{b}.json.gz").write_bytes(gzip_bytes(encode_lines(docs)))
        e = time.perf_counter()
        u["read"] += c - a
        u["decode"] += d - c
        u["write"] += e - d
    ours_s = time.perf_counter() - t0

    for b in range(n_batches):  # same documents either way
        assert gzip.decompress((tmp / f"paper_{b}.json.gz").read_bytes()) == gzip.decompress(
            (tmp / f"ours_{b}.json.gz").read_bytes()
        )
    sizes = sum(os.path.getsize(tmp / f"ours_{b}.json.gz") for b in range(n_batches))
    psizes = sum(os.path.getsize(tmp / f"paper_{b}.json.gz") for b in range(n_batches))
    return report(
        "decode",
        "paper_per_instance_memmap_gzip_cli",
        base_s,
        ours_s,
        [
            ("batches x sequences x tokens", f"{n_batches} x {G} x {L} ({n_tokens / 1e6:.1f}M tokens)"),
            ("paper read / decode / write s", f"{t['read']:.3f} / {t['decode']:.3f} / {t['write']:.3f}"),
            ("ours  read / decode / write s", f"{u['read']:.3f} / {u['decode']:.3f} / {u['write']:.3f}"),
            ("ours tokens/s", f"{n_tokens / ours_s / 1e6:.2f}M"),
            ("gzip bytes paper (-6) / ours (isal 3)", f"{psizes} / {sizes}"),
        ],
    )


if __name__ == "__main__":
    run()
