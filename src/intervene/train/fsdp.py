"""FSDP2 (``fully_shard``) for the trainer: parameters, gradients and AdamW moments sharded over the
ranks, so models whose fp32 weights and optimizer state exceed one GPU (OLMo 2 7B) train.

Each transformer block is its own shard unit, the root holds the embedding, final norm and head
(OLMo's ``by_block`` wrapping). On GPU the parameters are gathered in bf16 and gradients reduced in
fp32 (OLMo's ``precision: mixed``). Checkpoints stay the unsharded layout the DDP path writes
(``model.safetensors``; ``optim.pt`` = ``torch.optim.AdamW.state_dict()`` of the unsharded
optimizer, parameters numbered in group order), so runs move between DDP and FSDP.
"""

from __future__ import annotations

import torch


def shard_model(model: torch.nn.Module, *, bf16: bool) -> None:
    """Shard an ``Olmo2ForCausalLM`` in place: every decoder layer, then the root."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_model_state(model: torch.nn.Module) -> dict:
    """The unsharded weights on the CPU of rank 0 (a collective: every rank calls it; the others get
    an empty dict)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(cpu_offload=True))


def _param_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    names = {p: n for n, p in model.named_parameters()}
    return [names[p] for g in optimizer.param_groups for p in g["params"]]


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The unsharded AdamW state in ``optimizer.state_dict()``'s layout (parameters numbered in
    group order; a collective, its result on rank 0)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    if not optimizer.state:  # nothing stepped yet (the step-0 checkpoint): torch's getter would
        return optimizer.state_dict()  # initialise the state with a zero-lr step, counting a step
    osd = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    if not osd:  # ranks other than 0 receive nothing with cpu_offload (only rank 0 writes)
        return {}
    index = {n: i for i, n in enumerate(_param_names(model, optimizer))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in osd["param_groups"]]
    return {"state": {index[n]: s for n, s in osd["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, sd: dict) -> None:
    """Load an unsharded ``optimizer.state_dict()`` (an ``optim.pt``) into the sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    if not sd["state"]:  # a step-0 checkpoint: hyperparameters only, no tensors to shard
        optimizer.load_state_dict(sd)
        return
    names = _param_names(model, optimizer)
    osd = {
        "state": {names[i]: s for i, s in sd["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, optim_state_dict=osd, options=_options())
