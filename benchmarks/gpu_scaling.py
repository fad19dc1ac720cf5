"""Weak scaling of the trainer's optimizer step over the GPUs of one host (DDP or FSDP2) at the
OLMo 2 1B shape: every rank runs the same per-GPU batch as one GPU of the paper's run, so tokens/s
per GPU at N GPUs over tokens/s at one GPU is the scaling efficiency.

The step is the trainer's own (``intervene.train.trainer``: ``_objective`` wraps the loss in DDP or
shards the model with FSDP2 and compiles it as ``compile: true`` does, ``optimizer_step`` runs the
micro-batches, clipping and fused AdamW), followed by the loop's all-reduce of the CE for the log.
Only the data and the initialisation differ from a run: random tokens per rank, transformers' random
init instead of OLMo's (which is done on the CPU and costs minutes at 1B; the values do not change
the speed). One launch per (GPU count, strategy):

    torchrun --standalone --nproc_per_node=N benchmarks/gpu_scaling.py --strategy ddp --out R.json
    python3 benchmarks/gpu_scaling.py --table R1.json R2.json ...     # the Markdown table

MFU = tokens/s per GPU x (6 N + 12 L d T) / 989 TFLOP/s, N = parameters without the input embedding
(as benchmarks/gpu_train.py). ``--device cpu --tiny`` checks the launch path under gloo.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: H100/H200 SXM dense bf16 Tensor Core peak (NVIDIA's data sheets), as benchmarks/gpu_train.py
PEAK = 989e12
TINY = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "max_sequence_length": 64,
    "vocab_size": 500,
    "embedding_size": 512,
    "eos_token_id": 0,
    "pad_token_id": 1,
}


def _build(raw: dict, dev):
    import torch
    from transformers import Olmo2ForCausalLM

    from intervene.train.model import olmo2_config, use_causal_attention

    cfg = olmo2_config(raw)
    cfg._attn_implementation = "sdpa"
    with torch.device(dev):
        model = Olmo2ForCausalLM(cfg)
    use_causal_attention(model)  # as the trainer: maskless causal SDPA
    return model


def measure(a: argparse.Namespace) -> dict:
    import torch
    import torch.distributed as dist

    from intervene.olmo import load_train_config
    from intervene.train.fsdp import shard_model
    from intervene.train.optim import build_optimizer
    from intervene.train.trainer import _dist_env, _objective, optimizer_step

    rank, world, local_rank = _dist_env()
    cuda = a.device == "cuda"
    dev = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
    dist.init_process_group("nccl" if cuda else "gloo", device_id=dev if cuda else None)
    raw = dict(load_train_config(a.train_config).raw)
    raw["model"] = {**raw["model"], **(TINY if a.tiny else {})}
    raw["compile"] = cuda and not a.no_compile
    T = int(raw["model"]["max_sequence_length"])
    vocab = int(raw["model"]["embedding_size"])
    torch.manual_seed(0)
    model = _build(raw, dev)
    n_params = sum(p.numel() for p in model.parameters()) - model.model.embed_tokens.weight.numel()
    m = raw["model"]
    flops_per_token = 6 * n_params + 12 * int(m["n_layers"]) * int(m["d_model"]) * T
    fsdp = a.strategy == "fsdp"
    if fsdp:
        shard_model(model, bf16=cuda)
    opt = build_optimizer(model, raw["optimizer"], fused=cuda or None)
    objective = _objective(model, raw, a.device, world, local_rank, fsdp)
    gen = torch.Generator(device=dev).manual_seed(1000 + rank)  # each rank its own data
    tokens = torch.randint(0, int(m["vocab_size"]), (a.seqs_per_gpu, T), device=dev, generator=gen)
    assert tokens.max() < vocab
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else None
    max_norm = float(raw.get("max_grad_norm") or 0.0)
    lr = float(raw["optimizer"]["learning_rate"])
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times, stats = [], []
    dist.barrier()
    for _ in range(a.warmup + a.steps):
        sync()
        t = time.perf_counter()
        ce, _, gn = optimizer_step(objective, opt, tokens, a.micro, max_norm, lr, autocast)
        if world > 1:  # the trainer's loop: the CE averaged over ranks for the metrics line
            dist.all_reduce(ce)
            ce /= world
        stats.append((float(ce), float(gn)))  # the trainer's log reads both back (a sync)
        sync()
        times.append(time.perf_counter() - t)
    timed = times[a.warmup :]
    tps_gpu = a.seqs_per_gpu * T * len(timed) / sum(timed)
    peak = torch.tensor(torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else 0.0, device=dev)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    r = {
        "gpus": world,
        "strategy": a.strategy,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "compile": raw["compile"],
        "seq_len": T,
        "seqs_per_gpu": a.seqs_per_gpu,
        "micro": a.micro,
        "accumulation": -(-a.seqs_per_gpu // a.micro),
        "global_batch_seqs": a.seqs_per_gpu * world,
        "warmup_steps": a.warmup,
        "warmup_s": round(sum(times[: a.warmup]), 1),
        "step_s": [round(x, 3) for x in timed],
        "tokens_per_s": round(tps_gpu * world),
        "tokens_per_s_per_gpu": round(tps_gpu),
        "mfu": round(tps_gpu * flops_per_token / PEAK, 4),
        "peak_mem_gb_max_rank": round(float(peak), 1),
        "n_params_no_emb": n_params,
        "ce_first_last": [round(stats[0][0], 4), round(stats[-1][0], 4)],
        "grad_norm_first_last": [round(stats[0][1], 4), round(stats[-1][1], 4)],
    }
    dist.destroy_process_group()
    return r


def table(files: list[str]) -> str:
    """Markdown rows; efficiency = tokens/s per GPU over the 1-GPU run of the same strategy."""
    rows = [json.loads(Path(f).read_text()) for f in files if Path(f).exists()]
    base = {r["strategy"]: r["tokens_per_s_per_gpu"] for r in rows if r["gpus"] == 1}
    out = [
        "| GPUs | strategy | tokens/s | per GPU | MFU | efficiency | step s (timed) | peak GB | CE first -> last |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["strategy"], r["gpus"])):
        b = base.get(r["strategy"])
        eff = f"{r['tokens_per_s_per_gpu'] / b:.1%}" if b else "n/a"
        out.append(
            f"| {r['gpus']} | {r['strategy']} | {r['tokens_per_s']:,} | {r['tokens_per_s_per_gpu']:,} "
            f"| {r['mfu']:.1%} | {eff} | {', '.join(map(str, r['step_s']))} | {r['peak_mem_gb_max_rank']} "
            f"| {r['ce_first_last'][0]} -> {r['ce_first_last'][1]} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-config", default="config/olmo2-1b/train_config.yaml")
    ap.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    # the paper's run: 512 sequences per step over 16 GPUs, micro-batches of 4 (OLMo2-1B-stage1.yaml)
    ap.add_argument("--seqs-per-gpu", type=int, default=32)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a tiny model (checks the launch path)")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", help="JSON result (rank 0)")
    ap.add_argument("--table", nargs="+", help="print the Markdown table of these results and exit")
    a = ap.parse_args()
    if a.table:
        print(table(a.table))
        return
    r = measure(a)
    from intervene.train.trainer import _dist_env

    if _dist_env()[0] == 0:
        print("SCALING", json.dumps(r), flush=True)
        if a.out:
            Path(a.out).write_text(json.dumps(r, indent=1) + "\n")


if __name__ == "__main__":
    main()
