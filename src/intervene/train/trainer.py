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

import dataclasses
import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from intervene.atomic import write_text
from intervene.data_order import data_files, load_order, read_manifest
from intervene.olmo import global_indices, load_train_config, read_path_list, resolve_path
from intervene.settings import TrainConfig
from intervene.train.checkpoint import checkpoints, load_model_weights, load_training_state, save_checkpoint
from intervene.train.data import BatchStream, InstanceFiles
from intervene.train.determinism import deterministic_mode
from intervene.train.fingerprint import claim_run_dir, file_identity, run_fingerprint
from intervene.train.fsdp import (
    full_model_state,
    full_optimizer_state,
    load_full_optimizer_state,
    shard_model,
)
from intervene.train.instance_filter import instance_mask
from intervene.train.loss import olmo_core_loss_divisor
from intervene.train.model import build_model, use_causal_attention, use_rotary_table
from intervene.train.objective import OlmoObjective
from intervene.train.olmo_core_import import rerun_config
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
    loss_divisor: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One OLMo optimizer step over a rank's device batch; returns (ce, z, grad norm) before clipping.
    ``loss_divisor``: what the summed losses are divided by (default: the device batch's tokens, OLMo's)."""
    autocast = autocast or nullcontext()
    divisor = tokens.numel() if loss_divisor is None else loss_divisor
    ce_sum = torch.zeros((), device=tokens.device)
    z_sum = torch.zeros((), device=tokens.device)
    chunks = torch.split(tokens, micro)
    masks = torch.split(instance_mask, micro) if instance_mask is not None else [None] * len(chunks)
    ddp = hasattr(objective, "no_sync")
    for i, (mb, mask) in enumerate(zip(chunks, masks, strict=True)):
        sync = objective.no_sync() if ddp and i < len(chunks) - 1 else nullcontext()
        with sync:
            with autocast:
                loss, ce, z = objective(mb, divisor, mask)
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
    settings: TrainConfig | None = None,
    **overrides,
) -> dict:
    """Train and save ``out_dir/step{N}`` checkpoints; resumes from the newest one in ``out_dir``
    when the folder's fingerprint (:mod:`intervene.train.fingerprint`) equals this call's, else
    removes the folder's checkpoints and metrics and starts fresh.

    ``settings`` (:class:`intervene.settings.TrainConfig`; ``overrides``: its fields as keywords)
    say where the run starts and what it reads. ``data_list`` switches to a re-run over those
    files (requires ``load_path``). ``order_seed`` (re-runs only) reads the files' instances in a
    seeded permutation instead of in order: how repeated runs of one intervention differ on CPU,
    where a replay is otherwise bit-identical; run r of an intervention and run r of its control
    share the seed, hence the permutation (paired runs). ``strategy``: ``ddp`` (replicated weights)
    or ``fsdp`` (FSDP2: weights, gradients and AdamW state sharded; see
    :mod:`intervene.train.fsdp`). ``manifest`` (the data-order stage's ``data_files.tsv``): the
    original run's token files must have the sizes recorded there; batch files are checked against
    their folder's ``manifest.tsv``. ``deterministic``: deterministic GPU kernels and reduction
    orders (:mod:`intervene.train.determinism`), so that a replay is bit-identical on GPUs too.
    Returns a summary.
    """
    s = dataclasses.replace(settings or TrainConfig(), **overrides)
    with deterministic_mode(s.deterministic):  # before CUDA starts: it sets cuBLAS's workspace
        run = _Run.start(train_config, out_dir, s)
        run.claim()
        run.build()
        first_batch, end_step = run.schedule()
        run.trim_metrics()
        if run.state["global_step"] == 0 and not run.existing and s.data_list is None:
            run.save()  # OLMo saves the initial weights as step 0
        t0 = time.perf_counter()
        run.loop(first_batch, end_step)
        if run.world > 1:
            dist.barrier()
    summary = {
        "final_step": run.state["global_step"],
        "world_size": run.world,
        "order_seed": s.order_seed,
        "strategy": s.strategy,
        "deterministic": s.deterministic,
        "checkpoints": sorted(checkpoints(run.out)),
    }
    if run.rank == 0:  # written last: its presence means the run is complete
        write_text(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("trained to step %d in %.1f s", run.state["global_step"], time.perf_counter() - t0)
    return summary


@dataclass
class _Run:
    """One call of :func:`train`: its settings, processes, data, and (after :meth:`build`) model,
    optimizer and counters; the steps of :func:`train` are its methods, in that order."""

    s: TrainConfig
    train_config: Path
    out: Path
    rank: int
    world: int
    local_rank: int
    device: str
    dev: torch.device
    spec: Any
    raw: dict
    seed: int
    tok_dir: Path | str | None
    save_interval: int
    source: InstanceFiles
    order: np.ndarray
    stream: BatchStream
    micro: int
    existing: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    model: Any = None
    optimizer: Any = None
    objective: Any = None

    @classmethod
    def start(cls, train_config, out_dir, s: TrainConfig) -> _Run:
        """Processes, devices, the train config and the data stream."""
        rank, world, local_rank = _dist_env()
        device = s.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(f"cuda:{local_rank}" if device == "cuda" else "cpu")
        if device == "cuda":
            torch.cuda.set_device(dev)
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        spec = load_train_config(train_config)
        raw = spec.raw
        if spec.loader == "olmo_core":  # re-runs only: model, optimizer, schedule of the imported checkpoint
            raw = rerun_config(raw, str(train_config), s.load_path, s.data_list)
        tok_dir = s.tokenizer_dir
        if tok_dir is None and (raw.get("tokenizer") or {}).get("identifier"):
            cand = resolve_path(raw["tokenizer"]["identifier"], Path(train_config).parent)
            tok_dir = cand if cand.is_dir() else None
        source, order = _data(spec, s, world)
        gbs = spec.global_batch_size
        return cls(
            s=s,
            train_config=Path(train_config),
            out=Path(out_dir),
            rank=rank,
            world=world,
            local_rank=local_rank,
            device=device,
            dev=dev,
            spec=spec,
            raw=raw,
            seed=int(raw.get("seed", 6198) if s.seed is None else s.seed),
            tok_dir=tok_dir,
            save_interval=int(
                s.save_interval or raw.get("save_interval_unsharded") or raw.get("save_interval") or 1000
            ),
            source=source,
            order=order,
            stream=BatchStream(source, order, gbs, rank, world),
            micro=int(s.microbatch or raw.get("device_train_microbatch_size") or gbs // world),
        )

    @property
    def fsdp(self) -> bool:
        return self.s.strategy == "fsdp"

    def claim(self) -> None:
        """The run folder: resume only from checkpoints of this very run (same fingerprint)."""
        s, spec = self.s, self.spec
        if s.strategy not in ("ddp", "fsdp"):
            raise ValueError(f"strategy must be ddp or fsdp, not {s.strategy!r}")
        if self.rank == 0:
            if s.data_list is not None:
                order_id = {"order_seed": s.order_seed}
            elif s.order_path is not None:
                order_id = {"file": file_identity(s.order_path, self.out)}
            else:
                order_id = {
                    "global_indices": {"seed": spec.seed, "epoch": spec.epoch, "drop_last": spec.drop_last}
                }
            fingerprint = run_fingerprint(
                self.out,
                raw=self.raw,
                data_files=self.source.files,
                order=order_id,
                init_seed=self.seed,
                load_path=s.load_path,
                # CPU float reductions depend on the thread count (Snakemake sets OMP_NUM_THREADS per rule)
                execution={
                    "world_size": self.world,
                    "strategy": s.strategy,
                    "device": self.device,
                    "micro_batch": self.micro,
                    "cpu_threads": torch.get_num_threads() if self.device == "cpu" else None,
                    # recorded only when on, so that the default runs' fingerprints stay as they were
                    **({"deterministic": True} if s.deterministic else {}),
                },
            )
            claim_run_dir(self.out, fingerprint)
        if self.world > 1:
            dist.barrier()  # the other ranks look for checkpoints once rank 0 has cleared stale ones

    def build(self) -> None:
        """Model, optimizer and counters, from the newest checkpoint of the run, else ``load_path``."""
        device, raw = self.device, self.raw
        if self.fsdp and not dist.is_initialized():  # FSDP2 needs a process group, one process too
            dist.init_process_group(
                "nccl" if device == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1
            )
        model = build_model(raw, self.seed)
        use_causal_attention(model)  # full sequences: no mask tensor, also when compiled
        model.to(self.dev)
        self.existing = checkpoints(self.out)
        self.state = {
            "global_step": 0,
            "global_train_tokens_seen": 0,
            "global_train_examples_seen_this_epoch": 0,
            "epoch": 0,
            "world_size": self.world,
            "run_start_step": 0,
        }
        resume = self.existing[max(self.existing)] if self.existing else None
        start = resume or (Path(self.s.load_path) if self.s.load_path else None)
        if start is not None:
            load_model_weights(start, model)  # unsharded weights, before any sharding
        if self.fsdp:
            shard_model(model, bf16=device == "cuda")
        optimizer = build_optimizer(model, raw["optimizer"], fused=(device == "cuda") or None)
        if start is not None:
            load_opt = (lambda sd: load_full_optimizer_state(model, optimizer, sd)) if self.fsdp else None
            self.state.update(load_training_state(start, optimizer, load_opt))
            if resume is None:  # a new run from someone else's checkpoint starts counting here
                self.state["run_start_step"] = self.state["global_step"]
            log.info("starting from %s at step %d", start, self.state["global_step"])
        self.model, self.optimizer = model, optimizer
        self.objective = _objective(model, raw, device, self.world, self.local_rank, self.fsdp)

    def schedule(self) -> tuple[int, int]:
        """Which batch comes next and the step to stop at."""
        s, state, stream = self.s, self.state, self.stream
        run_start = int(state["run_start_step"])
        if s.data_list is not None:  # re-run: the given files from instance 0
            first_batch = state["global_step"] - run_start
            end_step = run_start + (s.stop_after or stream.num_batches)
        else:  # original order: batch b is step b + 1
            first_batch = state["global_step"]
            end_step = (
                run_start + s.stop_after
                if s.stop_after
                else int(self.raw.get("stop_at") or stream.num_batches)
            )
        if end_step - state["global_step"] > stream.num_batches - first_batch:
            raise ValueError(
                f"steps up to {end_step} requested, but the data hold only {stream.num_batches - first_batch} more batches"
            )
        return first_batch, end_step

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def trim_metrics(self) -> None:
        """Drop metrics of steps after the checkpoint the run resumes from."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank != 0 or not self.metrics_path.exists():
            return
        kept = []
        for ln in self.metrics_path.read_text().splitlines():
            try:
                rec = json.loads(ln)
            except json.JSONDecodeError:  # a line cut short by a kill: nothing after it counts
                break
            if rec["step"] > self.state["global_step"]:
                break
            kept.append(ln)
        write_text(self.metrics_path, "".join(ln + "\n" for ln in kept))

    def save(self) -> None:
        model, optimizer, rank = self.model, self.optimizer, self.rank
        path = self.out / f"step{self.state['global_step']}"
        if self.fsdp:  # every rank takes part in gathering the unsharded states; rank 0 writes them
            msd, osd = full_model_state(model), full_optimizer_state(model, optimizer)
            if rank == 0:
                save_checkpoint(
                    path,
                    model,
                    optimizer,
                    dict(self.state),
                    self.raw,
                    self.tok_dir,
                    model_state=msd,
                    optimizer_state=osd,
                )
        elif rank == 0:
            save_checkpoint(path, model, optimizer, dict(self.state), self.raw, self.tok_dir)
        if self.world > 1:
            dist.barrier()

    def loop(self, first_batch: int, end_step: int) -> None:
        """Optimizer steps up to ``end_step``, a metrics line per step, checkpoints on schedule."""
        raw, state, world = self.raw, self.state, self.world
        gbs = self.spec.global_batch_size
        tokens_per_step = gbs * self.spec.seq_len
        max_norm = float(raw.get("max_grad_norm") or 0.0)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device == "cuda" else nullcontext()
        t0 = time.perf_counter()
        b = first_batch
        while state["global_step"] < end_step:
            state["global_step"] += 1
            state["global_train_tokens_seen"] += tokens_per_step
            state["global_train_examples_seen_this_epoch"] += gbs
            batch = self.stream.device_batch(b)
            b += 1
            # OLMo 2's repetition filter (an OLMo-core run's filter is refused with its data order)
            keep = instance_mask(batch, (raw.get("data") or {}).get("instance_filter"))
            tokens = torch.from_numpy(batch.astype(np.int64)).to(self.dev)
            mask = None if keep is None else torch.from_numpy(keep).to(self.dev)
            lr = scheduled_lr(raw, state["global_step"], state["global_train_tokens_seen"])
            ce_sum, z_sum, grad_norm = optimizer_step(
                self.objective,
                self.optimizer,
                tokens,
                self.micro,
                max_norm,
                lr,
                autocast,
                instance_mask=mask,
                loss_divisor=olmo_core_loss_divisor(tokens, mask) if "olmo_core" in raw else None,
            )
            if world > 1:
                dist.all_reduce(ce_sum)
                dist.all_reduce(z_sum)
                ce_sum /= world
                z_sum /= world
            if self.rank == 0:
                rate = tokens_per_step * (b - first_batch) / (time.perf_counter() - t0)
                self.log_step(lr, ce_sum, z_sum, grad_norm, rate)
            if state["global_step"] % self.save_interval == 0 or state["global_step"] == end_step:
                self.save()

    def log_step(self, lr: float, ce_sum, z_sum, grad_norm, rate: float) -> None:
        step = self.state["global_step"]
        rec = {
            "step": step,
            "lr": lr,
            "ce_loss": round(float(ce_sum), 6),
            "z_loss": round(float(z_sum), 8),
            "grad_norm": round(float(grad_norm), 6),
        }
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if step % 10 == 0:
            log.info(
                "step %d lr %.3g ce %.4f z %.2e |g| %.3f %.0f tok/s",
                step,
                lr,
                rec["ce_loss"],
                rec["z_loss"],
                rec["grad_norm"],
                rate,
            )


def _data(spec, s: TrainConfig, world: int) -> tuple[InstanceFiles, np.ndarray]:
    """The token source and the order its instances are read in: a re-run's listed files from
    instance 0 (optionally permuted by ``order_seed``), else the original run's global order."""
    L = spec.seq_len
    if s.data_list is not None:
        if s.load_path is None:
            raise ValueError("a re-run over given batch files needs the checkpoint to start from (load_path)")
        source = InstanceFiles(read_path_list(s.data_list), spec.dtype, L)
        order = np.arange(source.num_instances, dtype=np.int64)
        if s.order_seed is not None:
            order = np.random.Generator(np.random.PCG64(int(s.order_seed))).permutation(order)
        return source, order
    if s.order_seed is not None:
        raise ValueError("order_seed permutes a re-run's batch files: it needs data_list")
    sizes = dict(read_manifest(s.manifest)) if s.manifest is not None else None
    source = InstanceFiles(data_files(spec), spec.dtype, L, sizes=sizes)
    if s.order_path is not None:
        return source, load_order(s.order_path, source.num_instances, world, spec.drop_last)
    return source, global_indices(source.num_instances, spec.seed, spec.epoch, world, spec.drop_last)


def _objective(model, raw: dict, device: str, world: int, local_rank: int, fsdp: bool):
    """The loss module (OLMo's CE + z-loss), wrapped in DDP and compiled as configured."""
    core = "olmo_core" in raw  # a re-run of an OLMo-core run: its loss (intervene.train.loss.olmo_core_loss)
    objective = OlmoObjective(
        model,
        z_loss=bool(raw.get("softmax_auxiliary_loss", False)),
        fused=bool(raw.get("fused_loss", False)) and not core,
        olmo_core=core,
        olmo_core_z_loss=raw.get("auxiliary_loss_multiplier") if raw.get("softmax_auxiliary_loss") else None,
    )
    if raw.get("compile") and device == "cuda":
        use_rotary_table(model)  # compiled, a table beats cos/sin per layer (intervene.train.model)
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
        # the head on the L - 1 positions that predict a token: no compiled copy of the logits to
        # drop the last one (H200, 1B shape, micro-batch 8: 64,143 -> 64,719 tokens/s, 87 -> 76 GB);
        # not sharded, since it calls the head outside the model's forward (as the fused loss)
        objective_inner(objective).shifted_head = not fsdp
        objective = torch.compile(objective)  # after DDP, as PyTorch recommends
    return objective
