"""The training loop: OLMo 2's step, on one process or under ``torchrun`` (DDP; gloo on CPU, NCCL on GPU).

One optimizer step (``olmo/train.py`` ``train_step``): count the step and its tokens first; split
the rank's device batch into micro-batches; sum each micro-batch's loss divided by the device
batch's tokens and back-propagate (bf16 autocast on GPU, fp32 on CPU; DDP averages over ranks);
clip the global gradient norm; set the scheduled LR on every group; ``AdamW.step``.

Original runs read batch ``b = global_step`` of the global order; re-runs read the given files from
instance 0 (the paper's fork: ``shuffle_train: false``, ``set_start_index: false``) while step,
token counter (hence LR) and optimizer state come from the checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from intervene.atomic import write_text
from intervene.data_order import data_files, load_order, read_manifest
from intervene.olmo import global_indices, load_train_config, read_path_list, resolve_path
from intervene.train.checkpoint import checkpoints, load_model_weights, load_training_state, save_checkpoint
from intervene.train.data import BatchStream, InstanceFiles
from intervene.train.fingerprint import claim_run_dir, file_identity, run_fingerprint
from intervene.train.fsdp import (
    full_model_state,
    full_optimizer_state,
    load_full_optimizer_state,
    shard_model,
)
from intervene.train.instance_filter import instance_mask
from intervene.train.model import build_model, use_causal_attention
from intervene.train.objective import OlmoObjective
from intervene.train.optim import build_optimizer, scheduled_lr

log = logging.getLogger("intervene.train")


def _dist_env() -> tuple[int, int, int]:
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def objective_inner(objective):
    return objective.module if hasattr(objective, "module") else objective


def optimizer_step(
    objective,
    optimizer,
    tokens: torch.Tensor,
    micro: int,
    max_norm: float,
    lr: float,
    autocast=None,
    instance_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One OLMo optimizer step over a rank's device batch; returns (ce, z, grad norm) before clipping."""
    autocast = autocast or nullcontext()
    ce_sum = torch.zeros((), device=tokens.device)
    z_sum = torch.zeros((), device=tokens.device)
    chunks = torch.split(tokens, micro)
    masks = torch.split(instance_mask, micro) if instance_mask is not None else [None] * len(chunks)
    ddp = hasattr(objective, "no_sync")
    for i, (mb, mask) in enumerate(zip(chunks, masks, strict=True)):
        sync = objective.no_sync() if ddp and i < len(chunks) - 1 else nullcontext()
        with sync:
            with autocast:
                loss, ce, z = objective(mb, tokens.numel(), mask)
            loss.backward()
        ce_sum += ce.detach()
        if z is not None:
            z_sum += z.detach()
    params = [p for p in objective.parameters() if p.grad is not None]
    if max_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    elif hasattr(params[0], "full_tensor"):  # sharded (FSDP): the norm of the whole gradient
        grad_norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
    else:
        grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return ce_sum, z_sum, grad_norm


def train(
    train_config: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    load_path: str | os.PathLike | None = None,
    data_list: str | os.PathLike | None = None,
    order_path: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    stop_after: int | None = None,
    save_interval: int | None = None,
    seed: int | None = None,
    order_seed: int | None = None,
    strategy: str = "ddp",
    device: str | None = None,
    microbatch: int | None = None,
    tokenizer_dir: str | os.PathLike | None = None,
) -> dict:
    """Train and save ``out_dir/step{N}`` checkpoints; resumes from the newest one in ``out_dir``
    when the folder's fingerprint (:mod:`intervene.train.fingerprint`) equals this call's, else
    removes the folder's checkpoints and metrics and starts fresh.

    ``data_list`` switches to a re-run over those files (requires ``load_path``). ``order_seed``
    (re-runs only) reads the files' instances in a seeded permutation instead of in order: how
    repeated runs of one intervention differ on CPU, where a replay is otherwise bit-identical; run r
    of an intervention and run r of its control share the seed, hence the permutation (paired runs).
    ``strategy``: ``ddp`` (replicated weights) or ``fsdp`` (FSDP2: weights, gradients and AdamW
    state sharded; see :mod:`intervene.train.fsdp`). ``manifest`` (the data-order stage's
    ``data_files.tsv``): the original run's token files must have the sizes recorded there; batch
    files are checked against their folder's ``manifest.tsv``. Returns a summary.
    """
    rank, world, local_rank = _dist_env()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu")
    if device == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")

    spec = load_train_config(train_config)
    raw = spec.raw
    gbs, L = spec.global_batch_size, spec.seq_len
    tokens_per_step = gbs * L
    seed = int(raw.get("seed", 6198) if seed is None else seed)
    tok_dir = tokenizer_dir
    if tok_dir is None and (raw.get("tokenizer") or {}).get("identifier"):
        cand = resolve_path(raw["tokenizer"]["identifier"], Path(train_config).parent)
        tok_dir = cand if cand.is_dir() else None
    save_interval = int(
        save_interval or raw.get("save_interval_unsharded") or raw.get("save_interval") or 1000
    )

    # --- data
    if data_list is not None:
        if load_path is None:
            raise ValueError("a re-run over given batch files needs the checkpoint to start from (load_path)")
        source = InstanceFiles(read_path_list(data_list), spec.dtype, L)
        order = np.arange(source.num_instances, dtype=np.int64)
        if order_seed is not None:
            order = np.random.Generator(np.random.PCG64(int(order_seed))).permutation(order)
    else:
        if order_seed is not None:
            raise ValueError("order_seed permutes a re-run's batch files: it needs data_list")
        sizes = dict(read_manifest(manifest)) if manifest is not None else None
        source = InstanceFiles(data_files(spec), spec.dtype, L, sizes=sizes)
        if order_path is not None:
            order = load_order(order_path, source.num_instances, world, spec.drop_last)
        else:
            order = global_indices(source.num_instances, spec.seed, spec.epoch, world, spec.drop_last)
    stream = BatchStream(source, order, gbs, rank, world)
    device_bs = gbs // world
    micro = int(microbatch or raw.get("device_train_microbatch_size") or device_bs)

    # --- the run folder: resume only from checkpoints of this very run (same fingerprint)
    if strategy not in ("ddp", "fsdp"):
        raise ValueError(f"strategy must be ddp or fsdp, not {strategy!r}")
    if rank == 0:
        if data_list is not None:
            order_id = {"order_seed": order_seed}
        elif order_path is not None:
            order_id = {"file": file_identity(order_path, out_dir)}
        else:
            order_id = {
                "global_indices": {"seed": spec.seed, "epoch": spec.epoch, "drop_last": spec.drop_last}
            }
        fingerprint = run_fingerprint(
            out_dir,
            raw=raw,
            data_files=source.files,
            order=order_id,
            init_seed=seed,
            load_path=load_path,
            # CPU float reductions depend on the thread count (Snakemake sets OMP_NUM_THREADS per rule)
            execution={
                "world_size": world,
                "strategy": strategy,
                "device": device,
                "micro_batch": micro,
                "cpu_threads": torch.get_num_threads() if device == "cpu" else None,
            },
        )
        claim_run_dir(out_dir, fingerprint)
    if world > 1:
        dist.barrier()  # the other ranks look for checkpoints once rank 0 has cleared stale ones

    # --- model, optimizer, state
    fsdp = strategy == "fsdp"
    if fsdp and not dist.is_initialized():  # FSDP2 needs a process group, one process too
        dist.init_process_group(
            "nccl" if device == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1
        )
    model = build_model(raw, seed)
    use_causal_attention(model)  # full sequences: no mask tensor, also when compiled
    model.to(dev)
    out = Path(out_dir)
    existing = checkpoints(out)
    state = {
        "global_step": 0,
        "global_train_tokens_seen": 0,
        "global_train_examples_seen_this_epoch": 0,
        "epoch": 0,
        "world_size": world,
        "run_start_step": 0,
    }
    resume = existing[max(existing)] if existing else None
    start = resume or (Path(load_path) if load_path else None)
    if start is not None:
        load_model_weights(start, model)  # unsharded weights, before any sharding
    if fsdp:
        shard_model(model, bf16=device == "cuda")
    optimizer = build_optimizer(model, raw["optimizer"], fused=(device == "cuda") or None)
    if start is not None:
        load_opt = (lambda sd: load_full_optimizer_state(model, optimizer, sd)) if fsdp else None
        state.update(load_training_state(start, optimizer, load_opt))
        if resume is None:  # a new run from someone else's checkpoint starts counting here
            state["run_start_step"] = state["global_step"]
        log.info("starting from %s at step %d", start, state["global_step"])
    objective = OlmoObjective(
        model,
        z_loss=bool(raw.get("softmax_auxiliary_loss", False)),
        fused=bool(raw.get("fused_loss", False)),
    )
    if fsdp:
        # the fused loss reads the head's weight directly, bypassing the sharded root's gather:
        # sharded, the loss goes through the model's own forward (same values, tested)
        objective.fused = False
    if world > 1 and not fsdp:
        objective = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[local_rank] if device == "cuda" else None
        )
    if raw.get("compile") and device == "cuda":
        # Compiled, the plain loss is the fastest correct choice (H100, 1B shape: 56.6 % MFU with the
        # maskless causal attention; a compiled body + the eager fused loss was slower, and compiling
        # the fused loss's custom autograd.Function gave zero gradients). Same values either way.
        objective_inner(objective).fused = False
        objective = torch.compile(objective)  # after DDP, as PyTorch recommends

    # --- which batch comes next and where to stop
    run_start = int(state["run_start_step"])
    if data_list is not None:  # re-run: the given files from instance 0
        first_batch = state["global_step"] - run_start
        end_step = run_start + (stop_after or stream.num_batches)
    else:  # original order: batch b is step b + 1
        first_batch = state["global_step"]
        end_step = run_start + stop_after if stop_after else int(raw.get("stop_at") or stream.num_batches)
    if end_step - state["global_step"] > stream.num_batches - first_batch:
        raise ValueError(
            f"steps up to {end_step} requested, but the data hold only {stream.num_batches - first_batch} more batches"
        )

    max_norm = float(raw.get("max_grad_norm") or 0.0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    metrics_path = out / "metrics.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0 and metrics_path.exists():  # drop steps after the checkpoint we resume from
        kept = []
        for ln in metrics_path.read_text().splitlines():
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:  # a line cut short by a kill: nothing after it counts
                break
            if rec["step"] > state["global_step"]:
                break
            kept.append(ln)
        write_text(metrics_path, "".join(ln + "\n" for ln in kept))

    def save() -> None:
        path = out / f"step{state['global_step']}"
        if fsdp:  # every rank takes part in gathering the unsharded states; rank 0 writes them
            msd, osd = full_model_state(model), full_optimizer_state(model, optimizer)
            if rank == 0:
                save_checkpoint(
                    path, model, optimizer, dict(state), raw, tok_dir, model_state=msd, optimizer_state=osd
                )
        elif rank == 0:
            save_checkpoint(path, model, optimizer, dict(state), raw, tok_dir)
        if world > 1:
            dist.barrier()

    if state["global_step"] == 0 and not existing and data_list is None:
        save()  # OLMo saves the initial weights as step 0

    t0 = time.perf_counter()
    b = first_batch
    while state["global_step"] < end_step:
        state["global_step"] += 1
        state["global_train_tokens_seen"] += tokens_per_step
        state["global_train_examples_seen_this_epoch"] += gbs
        batch = stream.device_batch(b)
        b += 1
        keep = instance_mask(batch, raw["data"].get("instance_filter"))  # OLMo 2's repetition filter
        tokens = torch.from_numpy(batch.astype(np.int64)).to(dev)
        mask = None if keep is None else torch.from_numpy(keep).to(dev)
        lr = scheduled_lr(raw, state["global_step"], state["global_train_tokens_seen"])
        ce_sum, z_sum, grad_norm = optimizer_step(
            objective, optimizer, tokens, micro, max_norm, lr, autocast, instance_mask=mask
        )
        if world > 1:
            dist.all_reduce(ce_sum)
            dist.all_reduce(z_sum)
            ce_sum /= world
            z_sum /= world
        if rank == 0:
            rec = {
                "step": state["global_step"],
                "lr": lr,
                "ce_loss": round(float(ce_sum), 6),
                "z_loss": round(float(z_sum), 8),
                "grad_norm": round(float(grad_norm), 6),
            }
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            if state["global_step"] % 10 == 0:
                rate = tokens_per_step * (b - first_batch) / (time.perf_counter() - t0)
                log.info(
                    "step %d lr %.3g ce %.4f z %.2e |g| %.3f %.0f tok/s",
                    state["global_step"],
                    lr,
                    rec["ce_loss"],
                    rec["z_loss"],
                    rec["grad_norm"],
                    rate,
                )
        if state["global_step"] % save_interval == 0 or state["global_step"] == end_step:
            save()
    if world > 1:
        dist.barrier()
    summary = {
        "final_step": state["global_step"],
        "world_size": world,
        "order_seed": order_seed,
        "strategy": strategy,
        "checkpoints": sorted(checkpoints(out)),
    }
    if rank == 0:  # written last: its presence means the run is complete
        write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("trained to step %d in %.1f s", state["global_step"], time.perf_counter() - t0)
    return summary
