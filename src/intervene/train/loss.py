"""OLMo's training loss (``olmo/train.py``: ``cross_entropy_loss``, ``train_micro_batch``).

Labels are the inputs shifted left (the last position predicts nothing); the cross-entropy and the
z-loss (``1e-4 * logsumexp(logits)^2`` on unmasked positions) are summed and divided by the
number of tokens of the whole device batch (``input_ids.numel()``, positions included that predict
nothing), so that micro-batches and ranks add up to OLMo's per-token mean over the global batch.

OLMo 2's configs set ``fused_loss: true``: OLMo then takes flash-attn's triton cross-entropy, whose
returned loss already holds ``lse_square_scale * lse^2`` (its z-loss output is marked
non-differentiable), and ``train_micro_batch`` adds the z-loss once more. The gradient is that of
ce + z, as here; OLMo's *reported* values are not: its CrossEntropyLoss is ce + z and its total
loss ce + 2 z (flash-attn ``ops/triton/cross_entropy.py``; read for the fact, GPU only, not run here).
Compare our ``ce`` with OLMo's logged loss minus its z-loss.
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
    shifted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(loss, ce, z) of one micro-batch, each already divided by ``batch_tokens``. ``shifted``: the
    logits are those of the first ``L - 1`` positions only (the head was applied to them alone), so
    no slice of the full logits is taken (compiled, that slice is a copy of every logit)."""
    labels = input_ids.clone()
    if instance_mask is not None:
        labels.masked_fill_(~instance_mask.unsqueeze(-1), -100)
    labels = labels[..., 1:].reshape(-1)
    flat = (logits if shifted else logits[..., :-1, :]).reshape(-1, logits.size(-1))
    ce = F.cross_entropy(flat, labels, ignore_index=-100, reduction="sum") / batch_tokens
    if not z_loss:
        return ce, ce, None
    z = Z_LOSS_MULTIPLIER * (flat.logsumexp(-1).pow(2) * (labels != -100)).sum() / batch_tokens
    return ce + z, ce, z


def olmo_core_loss_divisor(input_ids: torch.Tensor, instance_mask: torch.Tensor | None = None) -> int:
    """What OLMo-core divides a rank's summed losses by (``TransformerTrainModule.train_batch``:
    ``batch_num_tokens_for_loss``): the device batch's labels that are not ignored (``L - 1`` per
    instance: the last position's label is padding), plus ``L`` for every instance the instance filter
    masked (OLMo-core counts those tokens as zero-loss tokens). OLMo divides by ``input_ids.numel()``."""
    n, seq = input_ids.shape
    if instance_mask is None:
        return n * (seq - 1)
    masked = int((~instance_mask).sum())
    return (n - masked) * (seq - 1) + masked * seq


def olmo_core_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    divisor: int,
    *,
    z_loss_multiplier: float | None,
    instance_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(loss, ce, z) of one micro-batch as OLMo-core's ``TransformerTrainModule`` computes them
    (ai2-olmo-core 2.4.0 ``data/utils.py`` ``get_labels``, ``nn/functional/cross_entropy_loss.py``,
    ``nn/lm_head.py`` ``_finalize_loss``; read for the facts): labels are the inputs shifted left and
    padded with -100 at the last position, the sums run over all ``B * L`` positions in that layout
    (so CPU reductions add in its order), z-loss is ``z_loss_multiplier * logsumexp^2`` on labelled
    positions, and ``loss = (ce_sum + z_sum) / divisor`` (``divisor``:
    :func:`olmo_core_loss_divisor` of the whole device batch)."""
    labels = input_ids.clone()
    if instance_mask is not None:
        labels.masked_fill_(~instance_mask.unsqueeze(-1), -100)
    labels = F.pad(labels[..., 1:], (0, 1, 0, 0), value=-100).reshape(-1)
    flat = logits.reshape(-1, logits.size(-1)).float()
    ce_sum = F.cross_entropy(flat, labels, ignore_index=-100, reduction="sum")
    if z_loss_multiplier is None:
        return ce_sum / divisor, ce_sum.detach() / divisor, None
    z_sum = z_loss_multiplier * (flat.logsumexp(-1).pow(2) * (labels != -100)).sum()
    return (ce_sum + z_sum) / divisor, ce_sum.detach() / divisor, z_sum.detach() / divisor


class _FusedLinearCE(torch.autograd.Function):
    """Cross-entropy + z-loss of ``hidden @ weight.T`` without materialising the logits.

    Works through the tokens in chunks: each chunk's logits are formed, reduced to its loss terms
    and turned straight into the gradients of ``hidden`` and ``weight`` (softmax * (1 + 2 z lse)
    minus the one-hot target), then dropped. With OLMo 2's 100k vocabulary this saves the
    ``tokens x vocab`` fp32 logits (3.3 GB per 2 x 4096 tokens) and a pass over them.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, z_mult: float, chunk: int):
        n = hidden.shape[0]
        ce = torch.zeros((), dtype=torch.float32, device=hidden.device)
        zs = torch.zeros((), dtype=torch.float32, device=hidden.device)
        g_hidden = torch.empty_like(hidden)
        g_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        w = weight.to(hidden.dtype)
        for lo in range(0, n, chunk):
            h = hidden[lo : lo + chunk]
            t = targets[lo : lo + chunk]
            logits = (h @ w.t()).float()
            lse = logits.logsumexp(-1)
            valid = t != -100
            tt = t.clamp_min(0)
            picked = logits.gather(1, tt[:, None]).squeeze(1)
            ce += ((lse - picked) * valid).sum()
            zs += (lse.pow(2) * valid).sum()
            g = torch.softmax(logits, -1).mul_((1 + 2 * z_mult * lse)[:, None])
            # one add per row: no two threads meet on an element, so the result does not depend on
            # their order (and PyTorch's deterministic mode gives scatter_add_ a deterministic kernel)
            g.scatter_add_(1, tt[:, None], -torch.ones_like(picked)[:, None])
            g.mul_(valid[:, None])
            g = g.to(hidden.dtype)
            g_hidden[lo : lo + chunk] = g @ w
            g_weight += (g.t() @ h).float()
        ctx.save_for_backward(g_hidden, g_weight)
        ctx.weight_dtype = weight.dtype
        return ce, zs

    @staticmethod
    def backward(ctx, g_ce, g_z):
        g_hidden, g_weight = ctx.saved_tensors
        # the gradient was formed for ce + z_mult * zs; both outputs enter the loss with those weights
        scale = g_ce
        return g_hidden * scale.to(g_hidden.dtype), (g_weight * scale).to(ctx.weight_dtype), None, None, None


def fused_olmo_loss(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    input_ids: torch.Tensor,
    batch_tokens: int,
    *,
    z_loss: bool = True,
    chunk: int = 4096,
    instance_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`olmo_loss` computed from the last hidden states and the LM head's weight (same values
    and gradients; the loss must enter the objective as returned, i.e. ``loss.backward()``)."""
    labels = input_ids
    if instance_mask is not None:
        labels = input_ids.masked_fill(~instance_mask.unsqueeze(-1), -100)
    targets = labels[..., 1:].reshape(-1)
    h = hidden[..., :-1, :].reshape(-1, hidden.size(-1))
    z_mult = Z_LOSS_MULTIPLIER if z_loss else 0.0
    ce_sum, z_sum = _FusedLinearCE.apply(h, lm_head_weight, targets, z_mult, chunk)
    ce = ce_sum / batch_tokens
    if not z_loss:
        return ce, ce, None
    z = z_mult * z_sum.detach() / batch_tokens  # its gradient is already folded into ce's
    return ce + z, ce, z
