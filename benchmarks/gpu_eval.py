"""Evaluation speed on one GPU for the OLMo 2 1B shape (random weights; not part of ``make bench``).

Baseline (the paper's path, measured in the same run on the same model): every (context, choice)
request its own sequence, batches of 8, full log-softmax (``score_pairs``). Ours: ``score_packed``
(choices branching off one context copy under a 4-D mask, many instances per row, the output head
once per distinct target position) at a few packing sizes, and the previous packed scorer (head once
per target token, ``benchmarks/previous_scoring.py``) at the same sizes. All in bf16. Checks: fp32
(TF32 off) log-likelihoods of the paths agree; bf16 argmax agreement.

    PYTHONPATH=src:. python3 benchmarks/gpu_eval.py [--sizes 2048:16384,2048:65536]
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.eval_workload import argmax_agreement, max_abs_diff, pararel_like
from benchmarks.gpu_train import SHAPE_1B, build_1b
from benchmarks.previous_scoring import previous_score_packed


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2048:16384,2048:65536,4096:65536,8192:131072")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two packed scorers this often")
    a = ap.parse_args()
    sizes = [tuple(int(x) for x in v.split(":")) for v in a.sizes.split(",")]

    from intervene.evaluation.scoring import score_packed, score_pairs

    torch.manual_seed(0)
    model = build_1b().to(torch.bfloat16).eval()
    reqs = pararel_like(1200, SHAPE_1B["vocab_size"])
    sync = torch.cuda.synchronize

    # the paper's path: 6 instances (2 per candidate list)
    [score_pairs(model, c, ch, device="cuda") for c, ch in reqs[:3]]  # warm-up
    sync()
    t = time.perf_counter()
    slow = [score_pairs(model, c, ch, device="cuda", batch_size=8) for c, ch in reqs[:6]]
    sync()
    base = 6 / (time.perf_counter() - t)
    rows = [{"path": "paper (pairs, batch 8)", "instances_per_s": round(base, 2), "ratio": 1.0}]
    print("EVAL", json.dumps(rows[-1]), flush=True)

    for (row_tokens, batch_tokens), (label, scorer) in (
        (size, path)
        for size in sizes
        for _ in range(a.repeat)
        for path in (("packed", score_packed), ("previous packed", previous_score_packed))
    ):
        scorer(model, reqs[:60], device="cuda", row_tokens=row_tokens, batch_tokens=batch_tokens)
        sync()
        t = time.perf_counter()
        fast = scorer(model, reqs, device="cuda", row_tokens=row_tokens, batch_tokens=batch_tokens)
        sync()
        ips = len(reqs) / (time.perf_counter() - t)
        rows.append(
            {
                "path": f"{label} rows {row_tokens}, {batch_tokens} tokens/batch",
                "instances_per_s": round(ips, 1),
                "ratio": round(ips / base, 1),
                "bf16_argmax_agreement_vs_paper": argmax_agreement(fast[:6], slow),
                "bf16_max_abs_diff_vs_paper": round(max_abs_diff(fast[:6], slow), 4),
                "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            }
        )
        if label == "packed":
            current = fast
        else:  # same model, same packing: the head per position vs per target token
            rows[-1]["bf16_max_abs_diff_vs_packed"] = max_abs_diff(current, fast)
        print("EVAL", json.dumps(rows[-1]), flush=True)

    # exactness in fp32 (TF32 off): the two paths agree to rounding
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = model.float()
    few = reqs[:3]
    f32_fast = score_packed(model, few, device="cuda")
    f32_slow = [score_pairs(model, c, ch, device="cuda") for c, ch in few]
    f32_prev = previous_score_packed(model, few, device="cuda")
    rows.append(
        {
            "fp32_max_abs_diff": max_abs_diff(f32_fast, f32_slow),
            "fp32_max_abs_diff_vs_previous_packed": max_abs_diff(f32_fast, f32_prev),
            "gpu": torch.cuda.get_device_name(),
        }
    )
    print("EVAL", json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
