"""Dense retrieval scores: encode documents and instances, then stream similarity + top-k.

Encoders: DPR (``DPRContextEncoder`` for documents, ``DPRQuestionEncoder`` for instances, the pooler
output, as the paper's dpr_encode_*.py) or any transformers encoder with mean pooling over the
attention mask (e.g. a sentence-transformers MiniLM folder). Batches are built from texts sorted by
token length under a token budget (little padding; the tokenizer pads in Rust, no per-document
Python loop), bf16 on GPU, results returned in input order. Similarity is the dot product, computed
one document shard at a time with a running top-k per instance: memory O(instances x k), never the
dense instances x documents matrix.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp


def load_encoder(model: str | os.PathLike, kind: str, device: str = "cpu", compile: bool = False):
    """(tokenizer, model, pooling) for ``kind`` in {"dpr_ctx", "dpr_question", "mean"}.

    ``compile``: ``torch.compile`` with dynamic shapes (batches vary in rows and length; one graph,
    fused kernels). On an H100 it took BERT-base encoding from 8.9x to 11.5x the paper's settings
    (benchmarks/results/gpu_dense_h100.md); compiling costs about a minute, so it pays on large shards."""
    import torch
    from transformers import AutoModel, AutoTokenizer, DPRContextEncoder, DPRQuestionEncoder

    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    tok = AutoTokenizer.from_pretrained(str(model))
    if kind == "dpr_ctx":
        enc, pooling = DPRContextEncoder.from_pretrained(str(model), dtype=dtype), "pooler"
    elif kind == "dpr_question":
        enc, pooling = DPRQuestionEncoder.from_pretrained(str(model), dtype=dtype), "pooler"
    elif kind == "mean":
        enc, pooling = AutoModel.from_pretrained(str(model), dtype=dtype), "mean"
    else:
        raise ValueError(f"encoder kind must be dpr_ctx, dpr_question or mean, not {kind!r}")
    enc = enc.to(device).eval()
    if compile:
        enc = torch.compile(enc, dynamic=True)
    return tok, enc, pooling


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids and attention mask, filled by one vectorised scatter (no per-row loop)."""
    lens = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs))
    ids = np.full((len(seqs), int(lens.max())), pad_id, dtype=np.int64)
    mask = np.arange(ids.shape[1])[None, :] < lens[:, None]
    ids[mask] = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lens.sum()))
    return ids, mask.astype(np.int64)


def encode(
    tok,
    model,
    texts: Iterable[str],
    *,
    pooling: str,
    device: str = "cpu",
    max_length: int = 512,
    batch_tokens: int = 131072,
    max_batch: int = 2048,
    chunk: int = 1024,
    workers: int = 2,
    out: np.ndarray | None = None,
    flush_chunks: int = 64,
) -> np.ndarray:
    """float32 [n, dim] embeddings, in the order of ``texts``.

    ``texts`` may be any iterable (e.g. a generator reading a group file by file): only
    ``workers + 1`` chunks of texts are held at a time. ``out``: a preallocated [n, dim] array to fill
    (e.g. a ``np.lib.format.open_memmap`` on disk, so a group of millions of documents never sits in
    memory); without it ``texts`` must have a length. Texts go in chunks of ``chunk``: ``workers``
    threads tokenize the next chunks (the Rust tokenizer releases the GIL) while the device encodes
    this one; within a chunk, texts are sorted by length and cut into batches of at most
    ``batch_tokens`` padded tokens. Embeddings stay on the device and are copied out every
    ``flush_chunks`` chunks (few synchronisations, device memory bounded)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    if out is None:
        if not isinstance(texts, Sequence):
            raise TypeError("encode: give `out` when `texts` is not a sequence")
        out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    it = iter(texts)
    chunks = iter(lambda: list(itertools.islice(it, chunk)), [])  # lists of texts until exhausted

    def tokenize(batch: list[str]):
        return tok(batch, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]

    def flush(done: list) -> None:
        for idx, emb in done:
            if idx.size and int(idx.max()) >= len(out):
                raise ValueError(f"encode: more texts than the {len(out)} rows of the output")
            out[idx] = emb.cpu().numpy()
        done.clear()

    done: list = []  # (rows, embeddings on the device)
    n = 0
    with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
        ahead = [pool.submit(tokenize, c) for c in itertools.islice(chunks, workers)]
        k = 0
        while ahead:
            enc = ahead.pop(0).result()
            nxt = next(chunks, None)
            if nxt is not None:
                ahead.append(pool.submit(tokenize, nxt))
            base, n = n, n + len(enc)
            lengths = np.fromiter((len(x) for x in enc), dtype=np.int64, count=len(enc))
            # a text with no token (empty, under a tokenizer without [CLS]/[SEP]) keeps a zero vector
            order = np.array(
                [i for i in np.argsort(-lengths, kind="stable") if lengths[i] > 0], dtype=np.int64
            )
            lo = 0
            while lo < len(order):
                L = int(lengths[order[lo]])
                m = max(1, min(max_batch, batch_tokens // max(L, 1)))
                idx = order[lo : lo + m]
                lo += m
                ids, mask = _pad([enc[i] for i in idx], pad_id)
                ids_t = torch.from_numpy(ids).to(device, non_blocking=True)
                mask_t = torch.from_numpy(mask).to(device, non_blocking=True)
                res = model(input_ids=ids_t, attention_mask=mask_t)
                if pooling == "pooler":
                    emb = res.pooler_output
                else:
                    h = res.last_hidden_state
                    msk = mask_t.unsqueeze(-1).to(h.dtype)
                    emb = (h * msk).sum(1) / msk.sum(1).clamp(min=1)
                done.append((idx + base, emb.float()))
            k += 1
            if k % flush_chunks == 0:
                flush(done)
        flush(done)
    if n != len(out):
        raise ValueError(f"encode: {n} texts for an output of {len(out)} rows")
    return out


def _blocks(doc_shards: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """The shards' documents in order, cut into blocks of at most ``rows`` (a memory-mapped shard
    is read one block at a time)."""
    for shard in doc_shards:
        for lo in range(0, len(shard), rows):
            yield np.ascontiguousarray(shard[lo : lo + rows], dtype=np.float32)


def topk_similarity(
    queries: np.ndarray,
    doc_shards: Iterable[np.ndarray],
    k: int,
    *,
    device: str = "cpu",
    block_scores: int = 1 << 26,
) -> sp.csr_matrix:
    """(queries x all documents) sparse matrix holding each query's ``k`` highest dot products.

    ``doc_shards`` yields [n_i, dim] arrays (documents in order; memory maps are fine). Documents are
    scored in blocks of at most ``block_scores / n_queries`` rows, so memory is O(queries x (k +
    block)) whatever the shards' sizes, never the dense queries x documents matrix. Ties keep the
    lower document index."""
    import torch

    if k < 1:
        raise ValueError(f"top-k needs k >= 1, not {k}")
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
    rows = max(1, block_scores // max(1, q.shape[0]))
    best_v = torch.full((q.shape[0], 0), -torch.inf, device=device)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=device)
    offset = 0
    for block in _blocks(doc_shards, rows):
        d = torch.from_numpy(block).to(device)
        s = q @ d.T
        idx = torch.arange(offset, offset + d.shape[0], device=device).expand(q.shape[0], -1)
        # candidates = the running top k (lower indices) then this block: already in index order
        v = torch.cat([best_v, s], 1)
        i = torch.cat([best_i, idx], 1)
        kk = min(k, v.shape[1])
        # stable top-k on (-score, index): equal scores keep the lower document index
        top = torch.argsort(-v, dim=1, stable=True)[:, :kk]
        top = torch.sort(top, dim=1).values  # keep the kept candidates in index order
        best_v, best_i = v.gather(1, top), i.gather(1, top)
        offset += d.shape[0]
    rows_idx = np.repeat(np.arange(q.shape[0]), best_i.shape[1])
    m = sp.csr_matrix(
        (best_v.cpu().numpy().ravel().astype(np.float64), (rows_idx, best_i.cpu().numpy().ravel())),
        shape=(q.shape[0], offset),
    )
    m.sort_indices()
    return m
