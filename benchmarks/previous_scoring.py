"""``score_packed`` as it was before it scored each distinct position once: the output head and
logsumexp ran once per target token, so every choice's first token repeated the context end's row
(on the real ParaRel 2,134,693 head rows for 513,501 distinct positions).

Kept, unchanged, as the oracle of the current scorer (``tests/test_evaluation.py`` asserts equal
scores) and the baseline ``benchmarks/bench_eval.py`` times. One copy for both.
"""

from __future__ import annotations

import numpy as np
import torch

from intervene.evaluation.scoring import (
    ChoiceScore,
    _check_requests,
    _layout_row,
    _mask,
    _pack_rows,
    _segments,
)
from intervene.settings import EvalConfig


def _target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and whether target is the argmax, without materialising the log-softmax."""
    logits = logits.float()
    lse = logits.logsumexp(-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    greedy = logits.argmax(-1) == targets
    return picked - lse, greedy


@torch.no_grad()
def previous_score_packed(
    model,
    requests: list[tuple[list[int], list[list[int]]]],
    *,
    device: str = "cpu",
    row_tokens: int = EvalConfig.row_tokens,
    batch_tokens: int = EvalConfig.batch_tokens,
    head_chunk: int = 4096,
) -> list[list[ChoiceScore]]:
    """Scores of every choice of every request ``(context ids, [continuation ids, ...])``.

    ``row_tokens`` is the packed row length (longer requests are split, repeating the context),
    ``batch_tokens`` bounds rows x padded length per forward pass, ``head_chunk`` bounds the target
    positions whose vocabulary logits exist at once.
    """
    _check_requests(requests)
    body, head = model.get_decoder(), model.get_output_embeddings()
    dtype = next(model.parameters()).dtype
    sums = [np.zeros(len(c), dtype=np.float64) for _, c in requests]
    greedy = [np.ones(len(c), dtype=bool) for _, c in requests]
    rows = [_layout_row(r, requests) for r in _pack_rows(_segments(requests, row_tokens), row_tokens)]
    rows.sort(key=lambda r: -len(r[0]))  # similar lengths share a batch: less padding
    lo = 0
    while lo < len(rows):
        T = len(rows[lo][0])
        hi = lo + max(1, batch_tokens // T)
        batch = rows[lo:hi]
        lo = hi
        B = len(batch)
        ids = np.zeros((B, T), dtype=np.int64)
        pos = np.zeros((B, T), dtype=np.int64)
        seg = np.full((B, T), -1, dtype=np.int64)
        br = np.full((B, T), -1, dtype=np.int64)
        tb, tp, tt, treq, tch = [], [], [], [], []
        for b, (i_, p_, s_, r_, targets) in enumerate(batch):
            n = len(i_)
            ids[b, :n], pos[b, :n], seg[b, :n], br[b, :n] = i_, p_, s_, r_
            for src, tok, req, ch in targets:
                tb.append(b)
                tp.append(src)
                tt.append(tok)
                treq.append(req)
                tch.append(ch)
        t = torch.from_numpy
        seg_t, br_t = t(seg).to(device), t(br).to(device)
        hidden = body(
            input_ids=t(ids).to(device),
            position_ids=t(pos).to(device),
            attention_mask=_mask(seg_t, br_t, dtype),
            use_cache=False,
        ).last_hidden_state
        sel = hidden[t(np.array(tb)).to(device), t(np.array(tp)).to(device)]
        tgt = t(np.array(tt)).to(device)
        lps, gs = [], []
        for k in range(0, sel.shape[0], head_chunk):
            lp, g = _target_logprobs(head(sel[k : k + head_chunk]), tgt[k : k + head_chunk])
            lps.append(lp)
            gs.append(g)
        lp = torch.cat(lps).double().cpu().numpy()
        g = torch.cat(gs).cpu().numpy()
        for req, ch, v, gg in zip(treq, tch, lp, g, strict=True):
            sums[req][ch] += v
            greedy[req][ch] &= bool(gg)
    return [
        [ChoiceScore(float(s[j]), len(conts[j]), bool(gr[j])) for j in range(len(conts))]
        for (_, conts), s, gr in zip(requests, sums, greedy, strict=True)
    ]
