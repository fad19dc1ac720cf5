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
from collections.abc import Sequence

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
    texts: Sequence[str],
    *,
    pooling: str,
    device: str = "cpu",
    max_length: int = 512,
    batch_tokens: int = 131072,
    max_batch: int = 2048,
    chunk: int = 1024,
    workers: int = 2,
) -> np.ndarray:
    """float32 [len(texts), dim] embeddings, in the order of ``texts``.

    Texts go in chunks of ``chunk``: ``workers`` threads tokenize the next chunks (the Rust
    tokenizer releases the GIL) while the device encodes this one; within a chunk, texts are sorted by length
    and cut into batches of at most ``batch_tokens`` padded tokens."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
    starts = list(range(0, len(texts), chunk))

    def tokenize(lo: int):
        return tok(
            list(texts[lo : lo + chunk]), add_special_tokens=True, truncation=True, max_length=max_length
        )["input_ids"]

    done: list = []  # (rows, embeddings on the device): one transfer at the end, no per-batch sync
    with ThreadPoolExecutor(max_workers=workers) as pool, torch.inference_mode():
        ahead = [pool.submit(tokenize, lo) for lo in starts[:workers]]
        for k, base in enumerate(starts):
            enc = ahead.pop(0).result()
            if k + workers < len(starts):
                ahead.append(pool.submit(tokenize, starts[k + workers]))
            lengths = np.fromiter((len(x) for x in enc), dtype=np.int64, count=len(enc))
            # a text with no token (empty, under a tokenizer without [CLS]/[SEP]) keeps a zero vector
            order = np.array(
                [i for i in np.argsort(-lengths, kind="stable") if lengths[i] > 0], dtype=np.int64
            )
            lo = 0
            while lo < len(order):
                L = int(lengths[order[lo]])
                n = max(1, min(max_batch, batch_tokens // max(L, 1)))
                idx = order[lo : lo + n]
                lo += n
                ids, mask = _pad([enc[i] for i in idx], pad_id)
                ids_t = torch.from_numpy(ids).to(device, non_blocking=True)
                mask_t = torch.from_numpy(mask).to(device, non_blocking=True)
                res = model(input_ids=ids_t, attention_mask=mask_t)
                if pooling == "pooler":
                    emb = res.pooler_output
                else:
                    h = res.last_hidden_state
                    m = mask_t.unsqueeze(-1).to(h.dtype)
                    emb = (h * m).sum(1) / m.sum(1).clamp(min=1)
                done.append((idx + base, emb.float()))
        for idx, emb in done:
            out[idx] = emb.cpu().numpy()
    return out


def topk_similarity(queries: np.ndarray, doc_shards, k: int, *, device: str = "cpu") -> sp.csr_matrix:
    """(queries x all documents) sparse matrix holding each query's ``k`` highest dot products.

    ``doc_shards`` yields [n_i, dim] arrays (documents in order); only one shard's scores exist at a
    time. Ties keep the lower document index."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
    best_v = torch.full((q.shape[0], 0), -torch.inf, device=device)
    best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=device)
    offset = 0
    for shard in doc_shards:
        d = torch.from_numpy(np.ascontiguousarray(shard, dtype=np.float32)).to(device)
        s = q @ d.T
        idx = torch.arange(offset, offset + d.shape[0], device=device).expand(q.shape[0], -1)
        v = torch.cat([best_v, s], 1)
        i = torch.cat([best_i, idx], 1)
        kk = min(k, v.shape[1])
        # stable top-k: sort by (-score, index) so equal scores keep the lower document index
        order = torch.argsort(i, dim=1, stable=True)
        v, i = v.gather(1, order), i.gather(1, order)
        top = torch.argsort(-v, dim=1, stable=True)[:, :kk]
        best_v, best_i = v.gather(1, top), i.gather(1, top)
        offset += d.shape[0]
    rows = np.repeat(np.arange(q.shape[0]), best_i.shape[1])
    m = sp.csr_matrix(
        (best_v.cpu().numpy().ravel().astype(np.float64), (rows, best_i.cpu().numpy().ravel())),
        shape=(q.shape[0], offset),
    )
    m.sort_indices()
    return m
