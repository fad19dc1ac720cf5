"""ParaRel-like scoring requests for the evaluation benchmarks (CPU and GPU).

Three "relations" with the candidate-list sizes the issue measured (109, 380 and 25 choices; every
instance of a relation shares its list, as in ParaRel), candidates of 1-4 tokens, contexts of 8-14
tokens ("Question: <query>\\nAnswer:"). Instances cycle through the relations.
"""

from __future__ import annotations

import numpy as np

LIST_SIZES = (109, 380, 25)


def pararel_like(n_instances: int, vocab: int, seed: int = 0) -> list[tuple[list[int], list[list[int]]]]:
    rng = np.random.default_rng(seed)
    lists = []
    for size in LIST_SIZES:
        lens = rng.choice([1, 2, 3, 4], size=size, p=[0.4, 0.35, 0.15, 0.1])
        lists.append([rng.integers(2, vocab, size=k).tolist() for k in lens])
    reqs = []
    for i in range(n_instances):
        ctx = rng.integers(2, vocab, size=int(rng.integers(8, 15))).tolist()
        reqs.append((ctx, lists[i % len(LIST_SIZES)]))
    return reqs


def max_abs_diff(fast, slow) -> float:
    return max(
        abs(a.sum_logits - b.sum_logits)
        for f, s in zip(fast, slow, strict=True)
        for a, b in zip(f, s, strict=True)
    )


def argmax_agreement(fast, slow) -> float:
    """Fraction of instances whose raw-sum argmax agrees (the bf16 check: ranking, not digits)."""
    agree = [
        int(np.argmax([a.sum_logits for a in f]) == np.argmax([b.sum_logits for b in s]))
        for f, s in zip(fast, slow, strict=True)
    ]
    return float(np.mean(agree))
