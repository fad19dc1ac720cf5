"""OLMo's training loss (``olmo/train.py``: ``cross_entropy_loss``, ``train_micro_batch``).

Labels are the inputs shifted left (the last position predicts nothing); the cross-entropy and the
z-loss (``1e-4 * logsumexp(logits)^2`` on unmasked positions) are summed and divided by the
number of tokens of the whole device batch (``input_ids.numel()``, positions included that predict
nothing), so that micro-batches and ranks add up to OLMo's per-token mean over the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Z_LOSS_MULTIPLIER = 1e-4  # olmo/train.py default; OLMo 2's auxiliary_loss_multiplier is never read


def olmo_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    batch_tokens: int,
    *,
    z_loss: bool = True,
    instance_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(loss, ce, z) of one micro-batch, each already divided by ``batch_tokens``."""
    labels = input_ids.clone()
    if instance_mask is not None:
        labels.masked_fill_(~instance_mask.unsqueeze(-1), -100)
    labels = labels[..., 1:].reshape(-1)
    flat = logits[..., :-1, :].reshape(-1, logits.size(-1))
    ce = F.cross_entropy(flat, labels, ignore_index=-100, reduction="sum") / batch_tokens
    if not z_loss:
        return ce, ce, None
    z = Z_LOSS_MULTIPLIER * (flat.logsumexp(-1).pow(2) * (labels != -100)).sum() / batch_tokens
    return ce + z, ce, z
