"""Log-likelihoods of continuations, many instances per forward pass.

The paper's path (``score_pairs``) runs every (context, choice) pair as its own sequence: ParaRel's
up-to-403 choices per context recompute the context hundreds of times. ``score_packed`` lays each
instance out once as ``context + every choice but its last token`` and lets a 4-D attention mask
route the tokens: a choice token sees the context and the earlier tokens of its own choice only,
with the position ids a separate sequence would have. Several instances share a row (block
diagonal), rows of similar length share a batch, and the output head runs once at each distinct
position that predicts a continuation token (log p = logit - logsumexp; no full log-softmax over the
sequence; the choices' first tokens share the context end's row).
Under causal attention this is the same computation as the separate sequences, which the tests check
to 1e-5 in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from intervene.settings import EvalConfig


@dataclass
class ChoiceScore:
    sum_logits: float
    num_tokens: int
    is_greedy: bool


def _check_requests(requests) -> None:
    for i, (ctx, conts) in enumerate(requests):
        if not ctx:
            raise ValueError(f"request {i}: empty context")
        if not conts or any(len(c) == 0 for c in conts):
            raise ValueError(f"request {i}: no choices, or an empty continuation")


def _position_logprobs(
    head, hidden: torch.Tensor, inv: torch.Tensor, targets: torch.Tensor, bounds: list[int], chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and whether target is the argmax, for targets sorted by the distinct position
    ``inv`` they are predicted at (rows of ``hidden``); targets ``bounds[i]:bounds[i + 1]`` belong to
    the i-th ``chunk`` of positions (computed on the host: no device sync between the body and the
    head). The head, logsumexp and argmax run once per position; no log-softmax is materialised.
    Why: every choice's first token is predicted at the same context-end position, so a head row per
    target did the vocabulary projection 4.2x over on the real ParaRel (2,134,693 targets, 513,501
    positions)."""
    lps, gs = [], []
    for i, k in enumerate(range(0, hidden.shape[0], chunk)):
        lo, hi = bounds[i], bounds[i + 1]
        logits = head(hidden[k : k + chunk]).float()
        rows, tgt = inv[lo:hi] - k, targets[lo:hi]
        lps.append(logits[rows, tgt] - logits.logsumexp(-1)[rows])
        gs.append(logits.argmax(-1)[rows] == tgt)
    return torch.cat(lps), torch.cat(gs)


@dataclass
class _Segment:
    """One context and a run of its choices, laid out contiguously in a row."""

    req: int
    choices: list[int]
    length: int


def _segments(requests, row_tokens: int) -> list[_Segment]:
    """Split each request into segments that fit ``row_tokens`` (the context repeats per segment)."""
    segs = []
    for r, (ctx, conts) in enumerate(requests):
        cur, size = [], len(ctx)
        for j, c in enumerate(conts):
            extra = len(c) - 1
            if cur and size + extra > row_tokens:
                segs.append(_Segment(r, cur, size))
                cur, size = [], len(ctx)
            cur.append(j)
            size += extra
        segs.append(_Segment(r, cur, size))
    return segs


def _pack_rows(segs: list[_Segment], row_tokens: int) -> list[list[_Segment]]:
    """First-fit decreasing bin packing of segments into rows (deterministic: stable sort)."""
    order = sorted(range(len(segs)), key=lambda i: -segs[i].length)
    rows: list[list[_Segment]] = []
    free: list[int] = []
    for i in order:
        s = segs[i]
        for k, f in enumerate(free):
            if s.length <= f:
                rows[k].append(s)
                free[k] -= s.length
                break
        else:
            rows.append([s])
            free.append(max(row_tokens, s.length) - s.length)
    return rows


def _layout_row(row: list[_Segment], requests):
    """Token ids, position ids, segment ids, branch ids (-1 = context) and the targets of one row:
    (source position, target token, request, choice)."""
    ids, pos, seg, br, targets = [], [], [], [], []
    for si, s in enumerate(row):
        ctx, conts = requests[s.req]
        base = len(ids)
        ids += ctx
        pos += range(len(ctx))
        seg += [si] * len(ctx)
        br += [-1] * len(ctx)
        last_ctx = base + len(ctx) - 1
        for j in s.choices:
            c = conts[j]
            start = len(ids)
            ids += c[:-1]
            pos += range(len(ctx), len(ctx) + len(c) - 1)
            seg += [si] * (len(c) - 1)
            br += [j] * (len(c) - 1)
            for t, tok in enumerate(c):
                targets.append((last_ctx if t == 0 else start + t - 1, tok, s.req, j))
    return ids, pos, seg, br, targets


def _mask(seg: torch.Tensor, br: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive [B, 1, T, T] mask: same segment, key in the context or in the query's own branch,
    key not after the query. Padding (segment -1) only sees padding, so no row is empty."""
    T = seg.shape[1]
    idx = torch.arange(T, device=seg.device)
    allowed = (
        (seg[:, :, None] == seg[:, None, :])
        & ((br[:, None, :] == -1) | (br[:, None, :] == br[:, :, None]))
        & (idx[None, None, :] <= idx[None, :, None])
    )
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seg.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


@torch.no_grad()
def score_packed(
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
    ``batch_tokens`` bounds rows x padded length per forward pass, ``head_chunk`` bounds the
    distinct positions whose vocabulary logits exist at once.
    """
    _check_requests(requests)
    body, head = model.get_decoder(), model.get_output_embeddings()
    dtype = next(model.parameters()).dtype
    first = np.cumsum([0] + [len(c) for _, c in requests])  # flat index of each request's choice 0
    sums = np.zeros(first[-1], dtype=np.float64)
    greedy = np.ones(first[-1], dtype=bool)
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
        tgts = []  # (flat source position b * T + p, target token, flat choice index)
        for b, (i_, p_, s_, r_, targets) in enumerate(batch):
            n = len(i_)
            ids[b, :n], pos[b, :n], seg[b, :n], br[b, :n] = i_, p_, s_, r_
            a = np.asarray(targets, dtype=np.int64).reshape(-1, 4)
            tgts.append(np.stack([b * T + a[:, 0], a[:, 1], first[a[:, 2]] + a[:, 3]], 1))
        tgts = np.concatenate(tgts)
        # each distinct source position once, targets sorted by it (stable: ties keep their order)
        uniq, inv = np.unique(tgts[:, 0], return_inverse=True)
        order = np.argsort(inv, kind="stable")
        t = torch.from_numpy
        seg_t, br_t = t(seg).to(device), t(br).to(device)
        hidden = body(
            input_ids=t(ids).to(device),
            position_ids=t(pos).to(device),
            attention_mask=_mask(seg_t, br_t, dtype),
            use_cache=False,
        ).last_hidden_state
        sel = hidden.reshape(B * T, -1)[t(uniq).to(device)]
        inv_s = inv[order]
        bounds = np.searchsorted(inv_s, np.arange(0, len(uniq) + head_chunk, head_chunk)).tolist()
        lp_s, g_s = _position_logprobs(
            head, sel, t(inv_s).to(device), t(tgts[order, 1]).to(device), bounds, head_chunk
        )
        lp = np.empty(len(tgts), dtype=np.float64)
        g = np.empty(len(tgts), dtype=bool)
        lp[order] = lp_s.double().cpu().numpy()
        g[order] = g_s.cpu().numpy()
        # in target order, as a loop over the targets would add them (same float64 sums)
        np.add.at(sums, tgts[:, 2], lp)
        np.logical_and.at(greedy, tgts[:, 2], g)
    return [
        [
            ChoiceScore(float(sums[first[r] + j]), len(conts[j]), bool(greedy[first[r] + j]))
            for j in range(len(conts))
        ]
        for r, (_, conts) in enumerate(requests)
    ]


@torch.no_grad()
def score_pairs(
    model, ctx_ids: list[int], conts: list[list[int]], *, device: str = "cpu", batch_size: int = 8
) -> list[ChoiceScore]:
    """The paper's path: every (context, continuation) its own sequence, batches of ``batch_size``
    (right-padded), full log-softmax. The reference the packed path must equal."""
    _check_requests([(ctx_ids, conts)])
    scores: list[ChoiceScore] = []
    for lo in range(0, len(conts), batch_size):
        group = conts[lo : lo + batch_size]
        seqs = [ctx_ids + c for c in group]
        T = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), T), dtype=torch.long, device=device)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)
        for i, c in enumerate(group):
            n0 = len(ctx_ids)
            tgt = ids[i, n0 : n0 + len(c)]
            rows = logp[i, n0 - 1 : n0 - 1 + len(c)]
            lp = rows.gather(-1, tgt.unsqueeze(-1)).sum()
            scores.append(ChoiceScore(float(lp), len(c), bool((rows.argmax(-1) == tgt).all())))
    return scores
