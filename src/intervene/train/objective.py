"""The training objective as one module, so DDP sees a single forward per micro-batch."""

from __future__ import annotations

import torch
from torch import nn

from intervene.train.loss import fused_olmo_loss, olmo_core_loss, olmo_loss


class OlmoObjective(nn.Module):
    """``forward(input_ids, batch_tokens, instance_mask=None) -> (loss, ce, z)`` with OLMo's loss.

    ``fused``: the loss is computed from the last hidden states in token chunks without the full
    logits (:func:`intervene.train.loss.fused_olmo_loss`; OLMo's ``fused_loss: true`` plays the same
    role with flash-attn's kernel). Not for ``torch.compile``: compiling its custom autograd.Function
    gave zero gradients on H100, so the trainer compiles the plain loss instead
    (benchmarks/results/gpu_train_h100.md).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        z_loss: bool,
        fused: bool = False,
        chunk: int = 4096,
        olmo_core_z_loss: float | None = None,
        olmo_core: bool = False,
    ):
        super().__init__()
        self.model = model
        self.z_loss, self.fused, self.chunk = z_loss, fused, chunk
        # re-runs of OLMo-core runs: its loss layout and z-loss multiplier (None: no z-loss)
        self.olmo_core, self.olmo_core_z_loss = olmo_core, olmo_core_z_loss
        #: apply the head to the first L - 1 positions only (the trainer sets it when it compiles on
        #: a GPU without FSDP: the model's own forward is bypassed, as for ``fused``)
        self.shifted_head = False

    def forward(self, input_ids: torch.Tensor, batch_tokens: int, instance_mask: torch.Tensor | None = None):
        """``batch_tokens``: what the micro-batch's sums are divided by (OLMo: the device batch's
        tokens; OLMo-core: :func:`intervene.train.loss.olmo_core_loss_divisor`)."""
        if self.olmo_core:
            logits = self.model(input_ids=input_ids).logits
            return olmo_core_loss(
                logits,
                input_ids,
                batch_tokens,
                z_loss_multiplier=self.olmo_core_z_loss,
                instance_mask=instance_mask,
            )
        if self.fused:
            hidden = self.model.model(input_ids=input_ids).last_hidden_state
            return fused_olmo_loss(
                hidden,
                self.model.lm_head.weight,
                input_ids,
                batch_tokens,
                z_loss=self.z_loss,
                chunk=self.chunk,
                instance_mask=instance_mask,
            )
        if self.shifted_head:  # the head on the positions that predict a token only (no logits copy)
            hidden = self.model.model(input_ids=input_ids).last_hidden_state
            logits = self.model.lm_head(hidden[:, :-1])
            return olmo_loss(
                logits, input_ids, batch_tokens, z_loss=self.z_loss, instance_mask=instance_mask, shifted=True
            )
        logits = self.model(input_ids=input_ids).logits
        return olmo_loss(logits, input_ids, batch_tokens, z_loss=self.z_loss, instance_mask=instance_mask)
