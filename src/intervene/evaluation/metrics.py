"""Per-instance OLMES metrics and the learned-checkpoint rule.

Facts from allenai/olmes ``MCAccuracy`` (see the design notes): per choice ``num_chars`` and
``num_bytes`` are clamped to at least 1 and include the continuation's leading space; ``acc_raw``
ranks ``sum_logits``, ``acc_per_token`` ``sum_logits / num_tokens``, ``acc_per_char``
``sum_logits / num_chars``, ``acc_per_byte`` the lowest bits per byte ``-log2(e) * sum_logits /
num_bytes``, ``acc_uncond`` ``sum_logits - sum_logits_uncond``; ties go to the first choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOG_2_OF_E = 1.44269504089  # OLMES's constant


def _first_argmax(values: Sequence[float]) -> int:
    vals = list(values)
    return vals.index(max(vals))


def rc_metrics(
    sum_logits: Sequence[float],
    num_tokens: Sequence[int],
    num_chars: Sequence[int],
    num_bytes: Sequence[int],
    gold: int,
    sum_logits_uncond: Sequence[float] | None = None,
) -> dict:
    """OLMES's per-instance metrics from per-choice scores (choices in order)."""
    n = len(sum_logits)
    if not n or not (len(num_tokens) == len(num_chars) == len(num_bytes) == n):
        raise ValueError("every per-choice list must have one entry per choice (and there must be a choice)")
    if not 0 <= gold < n:
        raise ValueError(f"gold index {gold} out of range for {n} choices")
    sl = [float(x) for x in sum_logits]
    per_token = [s / max(int(t), 1) for s, t in zip(sl, num_tokens, strict=True)]
    per_char = [s / max(int(c), 1) for s, c in zip(sl, num_chars, strict=True)]
    bpb = [-LOG_2_OF_E * s / max(int(b), 1) for s, b in zip(sl, num_bytes, strict=True)]
    out = {
        "predicted_index_raw": _first_argmax(sl),
        "predicted_index_per_token": _first_argmax(per_token),
        "predicted_index_per_char": _first_argmax(per_char),
        "predicted_index_per_byte": _first_argmax([-x for x in bpb]),
    }
    if sum_logits_uncond is not None:
        if len(sum_logits_uncond) != n:
            raise ValueError("sum_logits_uncond must have one entry per choice")
        out["predicted_index_uncond"] = _first_argmax(
            [s - float(u) for s, u in zip(sl, sum_logits_uncond, strict=True)]
        )
    out["correct_choice"] = int(gold)
    for key in ("raw", "per_token", "per_char", "per_byte") + (
        ("uncond",) if sum_logits_uncond is not None else ()
    ):
        out[f"acc_{key}"] = int(out[f"predicted_index_{key}"] == gold)
    out["sum_logits_corr"] = sl[gold]
    out["logits_per_token_corr"] = per_token[gold]
    out["logits_per_char_corr"] = per_char[gold]
    out["bits_per_byte_corr"] = bpb[gold]
    return out


def learned_checkpoint(labels) -> np.ndarray:
    """Per instance (row of a 0/1 instances x checkpoints matrix) the index of the checkpoint at which
    it is learned: incorrect at every earlier checkpoint, correct at it and every later one; correct
    from the first checkpoint on counts as learned at 0. ``-1`` if never (or if it is forgotten)."""
    m = np.asarray(labels)
    if m.ndim != 2:
        raise ValueError(f"labels must be an instances x checkpoints matrix, got shape {m.shape}")
    if m.size and not np.isin(m, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    m = m.astype(bool)
    n, c = m.shape
    if c == 0:
        return np.full(n, -1, dtype=np.int64)
    # correct from k on: the suffix of trues; k = first index of that suffix
    suffix_true = np.logical_and.accumulate(m[:, ::-1], axis=1)[:, ::-1]
    k = np.where(suffix_true.any(axis=1), c - suffix_true.sum(axis=1), -1)
    # and incorrect at every checkpoint before k
    ok = np.array([k_ >= 0 and not m[i, :k_].any() for i, k_ in enumerate(k.tolist())], dtype=bool)
    return np.where(ok, k, -1).astype(np.int64)
