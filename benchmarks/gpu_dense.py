"""Dense document encoding on one GPU (not part of ``make bench``).

Model: the BERT-base shape of DPR's context encoder (``DPRContextEncoder``, 12 layers, d 768,
vocabulary 30,522), random weights; a BERT uncased WordPiece tokenizer (files in TOKDIR). Documents:
synthetic word sequences of 40-700 words (about 370 tokens on average after truncation to 512, the
shape the paper measured). Baseline, measured in the same run: the paper's settings, fp32, batches of
64 documents in file order, each padded to its longest member. Ours: ``intervene.search.dense.encode``
(bf16, length-sorted batches under a token budget). Check: cosine similarity of the two embeddings.

    PYTHONPATH=src:. python3 benchmarks/gpu_dense.py TOKDIR
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main() -> None:
    import torch
    from transformers import AutoTokenizer, DPRConfig, DPRContextEncoder

    from intervene.search.dense import encode

    tok = AutoTokenizer.from_pretrained(sys.argv[1])
    words = [w for w in tok.get_vocab() if w.isalpha() and w.isascii() and len(w) > 2]
    rng = np.random.default_rng(0)
    n = 8192
    texts = [" ".join(rng.choice(words, size=int(rng.integers(40, 700)))) for _ in range(n)]
    torch.manual_seed(0)
    model = DPRContextEncoder(DPRConfig()).to("cuda").eval()
    lens = [min(len(x), 512) for x in tok(texts[:2000])["input_ids"]]
    sync = torch.cuda.synchronize

    def paper(sub):
        outs = []
        with torch.no_grad():
            for lo in range(0, len(sub), 64):
                b = tok(
                    sub[lo : lo + 64], padding=True, truncation=True, max_length=512, return_tensors="pt"
                ).to("cuda")
                outs.append(model(**b).pooler_output.float().cpu().numpy())
        return np.concatenate(outs)

    paper(texts[:128])
    sync()
    t = time.perf_counter()
    base = paper(texts[:1024])
    sync()
    base_dps = 1024 / (time.perf_counter() - t)
    print(
        "DENSE",
        json.dumps({"path": "paper (fp32, batch 64, file order)", "docs_per_s": round(base_dps, 1)}),
        flush=True,
    )

    model_bf16 = model.to(torch.bfloat16)
    t = time.perf_counter()
    tok(texts, truncation=True, max_length=512)
    print("DENSE", json.dumps({"tokenize_all_s": round(time.perf_counter() - t, 2), "docs": n}), flush=True)
    variants = [("eager", model_bf16, 524288)]
    # the package's compiled encoder (load_encoder(..., compile=True): torch.compile, dynamic shapes)
    compiled = torch.compile(model_bf16, dynamic=True)
    variants += [("compiled", compiled, bt) for bt in (131072, 262144, 262144, 524288)]
    for kind, m, bt in variants:
        for _ in range(2 if kind == "compiled" else 1):  # compile (and recompile once) outside the timing
            encode(tok, m, texts[:2048], pooling="pooler", device="cuda", batch_tokens=bt)
        sync()
        from torch._dynamo.utils import counters

        frames_before = sum(counters["frames"].values())
        t = time.perf_counter()
        ours = encode(tok, m, texts, pooling="pooler", device="cuda", batch_tokens=bt)
        sync()
        dps = n / (time.perf_counter() - t)
        a, b = ours[:1024], base
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        print(
            "DENSE",
            json.dumps(
                {
                    "path": f"ours ({kind}, bf16, length-sorted, {bt} tokens per batch)",
                    "docs_per_s": round(dps, 1),
                    "ratio": round(dps / base_dps, 1),
                    "min_cosine_vs_fp32": round(float(cos.min()), 5),
                    "mean_tokens": round(float(np.mean(lens)), 1),
                    "gpu": torch.cuda.get_device_name(),
                    "attention": model.config._attn_implementation,
                    "dynamo_frames_during_timing": sum(counters["frames"].values()) - frames_before,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
