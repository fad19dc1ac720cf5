"""Evaluation scoring on CPU: the packed scorer vs the paper's path (each (context, choice) pair its
own sequence, batches of 8) on the toy model's shape (random weights), ParaRel-like requests.
Same log-likelihoods (asserted to 1e-4 in fp32 on the instances both paths score). Also the previous
packed scorer (output head once per target token, ``benchmarks/previous_scoring.py``) in the same
run, its scores asserted equal to the current one's (1e-6)."""

from __future__ import annotations

import time

from benchmarks.common import SCALE, report
from benchmarks.eval_workload import max_abs_diff, pararel_like


def _toy_model():
    """The toy world's default model shape (WorldSpec.model, vocabulary 2048), random weights."""
    import torch
    from transformers import Olmo2ForCausalLM

    from intervene.train.model import olmo2_config
    from intervene.world.spec import WorldSpec

    spec = WorldSpec()
    m = {**spec.model, "vocab_size": spec.vocab_size, "max_sequence_length": 512}
    torch.manual_seed(0)
    return Olmo2ForCausalLM(olmo2_config({"model": m})).eval()


def run() -> str:
    import torch

    from benchmarks.previous_scoring import previous_score_packed
    from intervene.evaluation.scoring import score_packed, score_pairs

    torch.set_num_threads(2)
    model = _toy_model()
    n_slow, n_fast = 6, max(6, int(60 * SCALE))
    reqs = pararel_like(n_fast, 2048)
    score_pairs(model, reqs[2][0], reqs[2][1], batch_size=8)  # warm-up (25 choices)
    t = time.perf_counter()
    slow = [score_pairs(model, c, ch, batch_size=8) for c, ch in reqs[:n_slow]]
    base_s = (time.perf_counter() - t) / n_slow
    score_packed(model, reqs[:6])  # warm-up
    t = time.perf_counter()
    fast = score_packed(model, reqs)
    ours_s = (time.perf_counter() - t) / n_fast
    err = max_abs_diff(fast[:n_slow], slow)
    assert err < 1e-4, err
    t = time.perf_counter()
    prev = previous_score_packed(model, reqs)
    prev_s = (time.perf_counter() - t) / n_fast
    err_prev = max_abs_diff(fast, prev)
    assert err_prev < 1e-6, err_prev
    return report(
        "eval_score",
        "paper_pairs_batch8",
        base_s,
        ours_s,
        [
            ("instances/s paper path", f"{1 / base_s:.2f}"),
            ("instances/s packed", f"{1 / ours_s:.2f}"),
            ("instances/s previous packed (head per target)", f"{1 / prev_s:.2f}"),
            ("packed vs previous packed", f"{prev_s / ours_s:.2f}x"),
            ("max |diff| vs previous packed", f"{err_prev:.1e}"),
            ("max |diff| sum_logits (fp32)", f"{err:.2e}"),
            ("choices per instance", "109 / 380 / 25"),
        ],
    )
