"""Doc info: our Cython kernel vs the paper's per-sequence Python + ctypes convolution.

Workload: a batch group of OLMo-shaped batches (512 x 4096 uint32 tokens) with documents of
geometric length (mean ~600 tokens, as in web text), an occasional EOS at a sequence start or end,
and a few split EOS strings, so every path of both implementations runs.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import SCALE, bench_world, best_of, report


def make_group(tok, pat, n_batches: int, S: int = 512, L: int = 4096, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # ordinary word tokens; the split-EOS core tokens are left out (in real text the core, dolma2's
    # "endo" "ft" "ext", is rare) and inserted as whole split EOS strings below
    vocab = np.array(
        [i for t, i in tok.get_vocab().items() if t.isalpha() and i not in pat.core], dtype=np.uint32
    )
    be = tok.backend_tokenizer
    be.encode_special_tokens = True
    split = np.array(be.encode(tok.eos_token, add_special_tokens=False).ids, dtype=np.uint32)
    be.encode_special_tokens = False
    out = []
    for _ in range(n_batches):
        b = vocab[rng.integers(len(vocab), size=(S, L))]
        flat = b.reshape(-1)
        pos = np.cumsum(rng.geometric(1 / 600, size=S * L // 300))
        pos = pos[pos < flat.size]
        flat[pos] = pat.eos_id
        for p in rng.integers(0, flat.size - 64, size=3):
            flat[p : p + split.size] = split
        out.append(b)
    return out


def run() -> str:
    from benchmarks.paper_doc_info import paper_doc_info
    from intervene.doc_info import batch_doc_info
    from intervene.tokenizer import load_tokenizer, split_eos_pattern

    tok = load_tokenizer(bench_world() / "tokenizer")
    pat = split_eos_pattern(tok)
    n_batches = max(1, int(4 * SCALE))
    group = make_group(tok, pat, n_batches)
    n_tokens = sum(b.size for b in group)

    def ours():
        return np.concatenate([batch_doc_info(b, i, pat, tok) for i, b in enumerate(group)])

    paper_doc_info(group[:1], tok, pat.core, pat.before, pat.after)  # compile the C helper first
    ours_s, rows = best_of(ours, 5)
    base_s, base_rows = best_of(lambda: paper_doc_info(group, tok, pat.core, pat.before, pat.after), 3)
    assert rows.tolist() == base_rows.tolist(), "doc info differs from the paper's algorithm"
    gbps = n_tokens * 4 / ours_s / 1e9
    # roofline: the time to read every token once (numpy's vectorised max over the same group)
    read_s, _ = best_of(lambda: [b.max() for b in group], 5)
    return report(
        "doc_info",
        "paper_python_ctypes_convolution",
        base_s,
        ours_s,
        [
            ("batches x sequences x tokens", f"{n_batches} x 512 x 4096 ({n_tokens / 1e6:.0f}M tokens)"),
            ("rows (identical to the paper's)", f"{len(rows)}"),
            ("paper's algorithm", f"{base_s:.3f} s ({n_tokens * 4 / base_s / 1e9:.3f} GB/s)"),
            ("ours (Cython scan + row builder)", f"{ours_s:.4f} s ({gbps:.2f} GB/s of uint32 tokens)"),
            (
                "memory floor: numpy max over the group",
                f"{read_s:.4f} s ({n_tokens * 4 / read_s / 1e9:.2f} GB/s)",
            ),
        ],
    )


if __name__ == "__main__":
    run()
