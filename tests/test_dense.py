"""Dense encoding (length-sorted padded batches = one text at a time) and streamed top-k."""

from __future__ import annotations

import numpy as np
import pytest

from intervene.search.dense import encode, load_encoder, topk_similarity

from .conftest import save_tiny_encoders


@pytest.fixture(scope="module")
def encoders(small_world, tmp_path_factory):
    """A tiny random DPR context encoder and a tiny BERT (mean pooling), with the toy tokenizer."""
    from transformers import BertConfig, BertModel, DPRConfig, DPRContextEncoder

    d = tmp_path_factory.mktemp("enc")
    save_tiny_encoders(
        small_world / "tokenizer", d, {"dpr": (DPRContextEncoder, DPRConfig), "bert": (BertModel, BertConfig)}
    )
    return d


@pytest.mark.parametrize("kind,folder", [("dpr_ctx", "dpr"), ("mean", "bert")])
def test_batched_encoding_equals_one_at_a_time(encoders, kind, folder):
    tok, model, pooling = load_encoder(encoders / folder, kind)
    texts = ["Eibenstock is located in Germany.", "x", "Café " * 30, "", "a b c d e f g", "Ulm"]
    batched = encode(tok, model, texts, pooling=pooling, batch_tokens=64, chunk=4)
    single = np.concatenate([encode(tok, model, [t], pooling=pooling) for t in texts])
    assert batched.shape == (len(texts), 32)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_streamed_topk_equals_dense_reference():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((7, 8)).astype(np.float32)
    docs = rng.standard_normal((53, 8)).astype(np.float32)
    docs[10] = docs[3]  # a tie: the lower document index is kept first
    shards = [docs[:20], docs[20:21], docs[21:]]
    for k in (1, 5, 60):
        m = topk_similarity(q, iter(shards), k).toarray()
        full = q @ docs.T
        for i in range(len(q)):
            order = np.lexsort((np.arange(len(docs)), -full[i]))[: min(k, len(docs))]
            want = np.zeros(len(docs))
            want[order] = full[i, order]
            np.testing.assert_allclose(m[i], want, rtol=1e-5, atol=1e-6)


def test_streamed_topk_in_small_blocks_equals_one_block():
    """Blocks of a few documents (and shards cut across blocks) give the same top k as one block."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((5, 4)).astype(np.float32)
    docs = rng.standard_normal((41, 4)).astype(np.float32)
    docs[30] = docs[2]  # ties across blocks keep the lower index
    one = topk_similarity(q, iter([docs]), 6)
    for block_scores in (5, 15, 35):  # 1, 3 and 7 documents per block
        small = topk_similarity(q, iter([docs[:17], docs[17:]]), 6, block_scores=block_scores)
        # same documents; scores equal up to float32 rounding (the GEMM's blocking follows its shape)
        assert np.array_equal(small.indptr, one.indptr) and np.array_equal(small.indices, one.indices)
        np.testing.assert_allclose(small.data, one.data, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="k >= 1"):
        topk_similarity(q, iter([docs]), 0)


def test_encode_from_a_generator_into_a_memory_map(encoders, tmp_path):
    """A stream of texts into a preallocated on-disk array equals encoding the list in memory."""
    from intervene.search.stages import run_encode

    tok, model, pooling = load_encoder(encoders / "bert", "mean")
    texts = [f"document {i} " + "word " * (i % 7) for i in range(23)]
    want = encode(tok, model, texts, pooling=pooling, chunk=4)
    out = tmp_path / "emb.npy"
    r = run_encode(encoders / "bert", "mean", (t for t in texts), out, n=len(texts))
    assert r == {"texts": 23, "dim": 32}
    np.testing.assert_allclose(np.load(out), want, atol=1e-5)
    with pytest.raises(ValueError, match="22 rows"):
        run_encode(encoders / "bert", "mean", iter(texts), tmp_path / "bad.npy", n=22)
    assert not (tmp_path / "bad.npy").exists() and not list(tmp_path.glob(".bad*"))
