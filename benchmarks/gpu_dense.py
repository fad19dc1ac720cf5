"""Dense document encoding on one GPU (not part of ``make bench``).

Model: the BERT-base shape of DPR's context encoder (``DPRContextEncoder``, 12 layers, d 768,
vocabulary 30,522), random weights. Tokenizer: a BERT uncased WordPiece tokenizer from
``--tokenizer DIR``, or, without it, one built here with BERT's layout and size (special tokens,
single characters and their ``##`` pieces, then pseudo-words up to 30,522 entries): the same
normaliser, pre-tokeniser and WordPiece model, so the same work per word; the device has no hub.
Documents: synthetic word sequences of 40-700 vocabulary words (about 345 tokens on average after
truncation to 512, the shape the paper measured). Baseline, measured in the same run: the paper's
settings, fp32, batches of 64 documents in file order, each padded to its longest member. Ours:
``intervene.search.dense.encode`` (bf16, length-sorted batches under a token budget), eager or
compiled as ``load_encoder(..., compile=True)``. Check: cosine similarity of the two embeddings.

    PYTHONPATH=src:. python3 benchmarks/gpu_dense.py [--tokenizer DIR] [--docs 8192]
        [--variants eager:262144,compiled:131072,compiled:262144] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import string
import tempfile
import time
from pathlib import Path

import numpy as np

BERT_VOCAB_SIZE = 30522  # bert-base-uncased's vocab.txt


def synthetic_bert_tokenizer(out_dir: Path, seed: int = 0):
    """A BERT uncased WordPiece tokenizer of BERT's size over pseudo-words (no download needed).

    Layout as bert-base-uncased's vocab.txt: [PAD], 99 [unused], [UNK] [CLS] [SEP] [MASK], single
    characters, their ``##`` continuations, then words (here random lowercase words of 3-12 letters)."""
    from transformers import BertTokenizerFast

    rng = np.random.default_rng(seed)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    seen = set(vocab)
    letters = np.array(list(string.ascii_lowercase))
    while len(vocab) < BERT_VOCAB_SIZE:
        w = "".join(rng.choice(letters, size=int(rng.integers(3, 13))))
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)  # transformers 5
    if len(tok.get_vocab()) != BERT_VOCAB_SIZE:
        raise SystemExit(f"synthetic tokenizer: {len(tok.get_vocab())} entries, not {BERT_VOCAB_SIZE}")
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", help="BERT uncased tokenizer folder (default: built here)")
    ap.add_argument("--docs", type=int, default=8192, help="documents encoded by ours")
    ap.add_argument("--baseline-docs", type=int, default=1024, help="documents of the paper's path")
    ap.add_argument(
        "--variants",
        default="eager:524288,compiled:131072,compiled:262144,compiled:262144,compiled:524288",
        help="kind:batch_tokens,... with kind eager|compiled",
    )
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, DPRConfig, DPRContextEncoder

    from intervene.search.dense import encode

    if args.tokenizer:
        tok, tok_name = AutoTokenizer.from_pretrained(args.tokenizer), "given"
    else:
        tmp = tempfile.mkdtemp(prefix="bert_tok_")
        tok, tok_name = synthetic_bert_tokenizer(Path(tmp)), "synthetic BERT WordPiece, 30522"
    words = [w for w in tok.get_vocab() if w.isalpha() and w.isascii() and len(w) > 2]
    if len(words) < 1000:
        raise SystemExit(f"tokenizer {args.tokenizer or tok_name}: only {len(words)} whole words")
    rng = np.random.default_rng(0)
    n, nb, dev = args.docs, min(args.baseline_docs, args.docs), args.device
    texts = [" ".join(rng.choice(words, size=int(rng.integers(40, 700)))) for _ in range(n)]
    torch.manual_seed(0)
    model = DPRContextEncoder(DPRConfig()).to(dev).eval()
    lens = [min(len(x), 512) for x in tok(texts[:2000])["input_ids"]]
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    gpu = torch.cuda.get_device_name() if dev.startswith("cuda") else dev

    def paper(sub):
        outs = []
        with torch.no_grad():
            for lo in range(0, len(sub), 64):
                b = tok(
                    sub[lo : lo + 64], padding=True, truncation=True, max_length=512, return_tensors="pt"
                ).to(dev)
                outs.append(model(**b).pooler_output.float().cpu().numpy())
        return np.concatenate(outs)

    paper(texts[: min(128, nb)])
    sync()
    t = time.perf_counter()
    base = paper(texts[:nb])
    sync()
    base_dps = nb / (time.perf_counter() - t)
    info = {"gpu": gpu, "torch": torch.__version__, "tokenizer": tok_name, "docs": n}
    info["mean_tokens"] = round(float(np.mean(lens)), 1)
    print("DENSE", json.dumps(info), flush=True)
    print(
        "DENSE",
        json.dumps(
            {"path": f"paper (fp32, batch 64, file order), {nb} docs", "docs_per_s": round(base_dps, 1)}
        ),
        flush=True,
    )

    dtype_name = "bf16" if dev.startswith("cuda") else "fp32"
    model_bf16 = model.to(torch.bfloat16 if dev.startswith("cuda") else torch.float32)
    t = time.perf_counter()
    tok(texts, truncation=True, max_length=512)
    print("DENSE", json.dumps({"tokenize_all_s": round(time.perf_counter() - t, 2), "docs": n}), flush=True)
    compiled = None
    for spec in args.variants.split(","):
        kind, bt = spec.split(":")[0], int(spec.split(":")[1])
        if kind not in ("eager", "compiled"):
            raise SystemExit(f"--variants: kind must be eager or compiled, not {kind!r}")
        if kind == "compiled" and compiled is None:
            # the package's compiled encoder (load_encoder(..., compile=True): dynamic shapes)
            compiled = torch.compile(model_bf16, dynamic=True)
        m = compiled if kind == "compiled" else model_bf16
        for _ in range(2 if kind == "compiled" else 1):  # compile (and recompile once) outside the timing
            encode(tok, m, texts[: min(2048, n)], pooling="pooler", device=dev, batch_tokens=bt)
        sync()
        from torch._dynamo.utils import counters

        frames_before = sum(counters["frames"].values())
        t = time.perf_counter()
        ours = encode(tok, m, texts, pooling="pooler", device=dev, batch_tokens=bt)
        sync()
        dps = n / (time.perf_counter() - t)
        a, b = ours[:nb], base
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        row = {
            "path": f"ours ({kind}, {dtype_name}, length-sorted, {bt} tokens per batch)",
            "docs_per_s": round(dps, 1),
            "ratio": round(dps / base_dps, 2),
            "min_cosine_vs_fp32": round(float(cos.min()), 5),
            "attention": model.config._attn_implementation,
            "dynamo_frames_during_timing": sum(counters["frames"].values()) - frames_before,
        }
        print("DENSE", json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
