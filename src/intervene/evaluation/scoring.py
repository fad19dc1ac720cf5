"""Log-likelihoods of continuations: each context scored once, all its choices from its KV cache.

ParaRel asks up to 403 choices per context. Instead of one sequence per (context, choice) pair (the
paper's path), the context runs once with ``use_cache=True`` and the choices run as one right-padded
batch on top of the cached keys/values (padding at the end cannot change earlier positions under
causal attention). Only the targets' log-probs are taken (logit minus logsumexp).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _cache_kwarg(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); use whichever the model takes."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@dataclass
class ChoiceScore:
    sum_logits: float
    num_tokens: int
    is_greedy: bool


def _target_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) and whether target is the argmax, without materialising the log-softmax."""
    logits = logits.float()
    lse = logits.logsumexp(-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    greedy = logits.argmax(-1) == targets
    return picked - lse, greedy


@torch.no_grad()
def score_context(
    model, ctx_ids: list[int], conts: list[list[int]], *, device: str = "cpu", max_batch: int = 512
) -> list[ChoiceScore]:
    """Scores of every continuation after one context (context run once, choices batched on its cache)."""
    if not ctx_ids:
        raise ValueError("empty context")
    if any(len(c) == 0 for c in conts):
        raise ValueError("empty continuation")
    ctx = torch.tensor([ctx_ids], device=device)
    out = model(input_ids=ctx, use_cache=True)
    first_logits = out.logits[0, -1]
    cache = getattr(out, "cache", None) or out.past_key_values
    kw = _cache_kwarg(model)
    n_ctx = len(ctx_ids)
    scores: list[ChoiceScore] = []
    for lo in range(0, len(conts), max_batch):
        group = conts[lo : lo + max_batch]
        B, T = len(group), max(len(c) for c in group)
        ids = torch.zeros((B, T), dtype=torch.long, device=device)
        for i, c in enumerate(group):
            ids[i, : len(c)] = torch.tensor(c, device=device)
        lp0, g0 = _target_logprobs(first_logits.expand(B, -1), ids[:, 0])
        lp, greedy = lp0.unsqueeze(1), g0.unsqueeze(1)
        if T > 1:
            import copy

            rep = copy.deepcopy(cache)
            rep.batch_repeat_interleave(B)
            pos = torch.arange(n_ctx, n_ctx + T - 1, device=device).unsqueeze(0).expand(B, -1)
            logits = model(input_ids=ids[:, :-1], position_ids=pos, use_cache=True, **{kw: rep}).logits
            lpr, gr = _target_logprobs(logits, ids[:, 1:])
            lp, greedy = torch.cat([lp, lpr], 1), torch.cat([greedy, gr], 1)
        for i, c in enumerate(group):
            n = len(c)
            scores.append(ChoiceScore(float(lp[i, :n].sum()), n, bool(greedy[i, :n].all())))
    return scores


@torch.no_grad()
def score_pairs(
    model, ctx_ids: list[int], conts: list[list[int]], *, device: str = "cpu", batch_size: int = 8
) -> list[ChoiceScore]:
    """The paper's path: every (context, continuation) its own sequence, batches of ``batch_size``
    (right-padded). The reference the fast path must equal."""
    scores: list[ChoiceScore] = []
    for lo in range(0, len(conts), batch_size):
        group = conts[lo : lo + batch_size]
        seqs = [ctx_ids + c for c in group]
        T = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), T), dtype=torch.long, device=device)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, device=device)
        logits = model(input_ids=ids).logits
        for i, c in enumerate(group):
            n0 = len(ctx_ids)
            lp, g = _target_logprobs(logits[i, n0 - 1 : n0 - 1 + len(c)], ids[i, n0 : n0 + len(c)])
            scores.append(ChoiceScore(float(lp.sum()), len(c), bool(g.all())))
    return scores
