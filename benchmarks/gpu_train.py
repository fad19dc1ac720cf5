"""GPU proof of the trainer (run on a machine with 2 GPUs; not part of ``make bench``).

Part 1: the built-in trainer under torchrun with NCCL and bf16 on 1 and 2 GPUs over the same
synthetic data: the loss decreases and the 2-GPU run equals the 1-GPU run within bf16 tolerance.
Part 2: training throughput and MFU on one GPU for the OLMo 2 1B shape (d 2048, 16 layers, 16
heads, SwiGLU 8192, vocabulary 100352, sequences of 4096), against a plain transformers loop
(fp32 weights, bf16 autocast, SDPA, fused AdamW, HF's loss), eager and ``torch.compile``d, and
against OLMo-core (``ai2-olmo-core``: its OLMo 2 1B model and ``TransformerTrainModule``, compiled,
z-loss, clipping, fused AdamW, the embedding without weight decay), both with fp32 master weights:
``olmo_core`` under bf16 autocast as ours, ``olmo_core_fsdp`` as OLMo-core's own recipe (FSDP on one
GPU, bf16 parameters gathered, fp32 gradient reduction).
MFU = tokens/s x (6 N + 12 L d T) / 989e12, N = parameters without the input embedding.

    PYTHONPATH=src python3 benchmarks/gpu_train.py --out OUTDIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

PEAK = 989e12
SHAPE_1B = {
    "d_model": 2048,
    "n_layers": 16,
    "n_heads": 16,
    "mlp_hidden_size": 16384,
    "vocab_size": 100278,
    "embedding_size": 100352,
    "max_sequence_length": 4096,
}


def small_world(d: Path) -> Path:
    """Synthetic learnable data (a sparse random bigram chain) and a small OLMo-style config."""
    rng = np.random.default_rng(0)
    V, L, n_inst = 4096, 256, 2048
    nxt = rng.integers(0, V, size=(V, 4))
    toks = np.empty(n_inst * L, dtype=np.uint32)
    t = 1
    for i in range(toks.size):
        t = int(nxt[t, rng.integers(4)]) if rng.random() < 0.9 else int(rng.integers(V))
        toks[i] = t
    d.mkdir(parents=True, exist_ok=True)
    toks[: toks.size // 2].tofile(d / "a.npy")
    toks[toks.size // 2 :].tofile(d / "b.npy")
    cfg = {
        "seed": 6198,
        "model": {
            "d_model": 256,
            "n_layers": 4,
            "n_heads": 4,
            "mlp_hidden_size": 2048,
            "max_sequence_length": L,
            "vocab_size": V,
            "embedding_size": V,
            "eos_token_id": 0,
            "pad_token_id": 1,
            "rope_theta": 500000,
            "layer_norm_eps": 1e-6,
            "init_std": 0.02,
            "init_cutoff_factor": 3,
            # OLMo's defaults are 0.1 (and the built-in trainer refuses dropout): as OLMo 2's configs
            "attention_dropout": 0.0,
            "residual_dropout": 0.0,
            "embedding_dropout": 0.0,
        },
        "softmax_auxiliary_loss": True,
        "fused_loss": True,
        "optimizer": {
            "name": "adamw",
            "learning_rate": 2e-3,
            "weight_decay": 0.1,
            "eps": 1e-8,
            "betas": [0.9, 0.95],
        },
        "scheduler": {
            "name": "cosine_with_warmup",
            "units": "tokens",
            "t_warmup": 5 * 32 * L,
            "t_max": 200 * 32 * L,
            "alpha_f": 0.1,
        },
        "global_train_batch_size": 32,
        "device_train_microbatch_size": 8,
        "max_grad_norm": 1.0,
        "data": {"paths": ["a.npy", "b.npy"], "memmap_dtype": "uint32", "drop_last": True},
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d / "config.yaml"


def part1(out: Path, runs=((1, "ddp"), (2, "ddp"))) -> dict:
    from intervene.train.replay import compare_checkpoints, run_losses

    cfg = small_world(out / "p1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    res = {}
    for n, strategy in runs:
        key = n if strategy == "ddp" else f"{n}_{strategy}"
        run = out / "p1" / f"gpu{key}"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={n}",
            "-m",
            "intervene.cli",
            "train",
            "--train-config",
            str(cfg),
            "--out",
            str(run),
            "--stop-after",
            "40",
            "--save-interval",
            "40",
            "--device",
            "cuda",
            "--strategy",
            strategy,
        ]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        ce = run_losses(run)
        res[key] = {
            "seconds": round(time.perf_counter() - t, 1),
            "ce_first": ce[0],
            "ce_last": ce[-1],
            "ce": ce,
        }
    cmp = compare_checkpoints(out / "p1" / "gpu1" / "step40", out / "p1" / "gpu2" / "step40", atol=5e-2)
    rel = max(abs(a - b) / abs(a) for a, b in zip(res[1]["ce"], res[2]["ce"], strict=True))
    summary = {
        "loss_1gpu": [res[1]["ce_first"], res[1]["ce_last"]],
        "loss_2gpu": [res[2]["ce_first"], res[2]["ce_last"]],
        "max_rel_loss_diff_1v2": rel,
        "max_abs_weight_or_moment_diff_1v2": cmp["max_abs_diff"],
        "seconds": [res[1]["seconds"], res[2]["seconds"]],
    }
    for key in (k for k in res if isinstance(k, str)):  # sharded runs against the 2-GPU DDP run
        c = compare_checkpoints(
            out / "p1" / "gpu2" / "step40", out / "p1" / f"gpu{key}" / "step40", atol=5e-2
        )
        summary[f"gpu{key}"] = {
            "loss": [res[key]["ce_first"], res[key]["ce_last"]],
            "max_rel_loss_diff_vs_2gpu_ddp": max(
                abs(a - b) / abs(a) for a, b in zip(res[2]["ce"], res[key]["ce"], strict=True)
            ),
            "max_abs_weight_or_moment_diff_vs_2gpu_ddp": c["max_abs_diff"],
            "seconds": res[key]["seconds"],
        }
    print("PART1", json.dumps(summary), flush=True)
    return summary


def build_1b():
    import torch
    from transformers import Olmo2Config, Olmo2ForCausalLM

    s = SHAPE_1B
    cfg = Olmo2Config(
        vocab_size=s["embedding_size"],
        hidden_size=s["d_model"],
        intermediate_size=s["mlp_hidden_size"] // 2,
        num_hidden_layers=s["n_layers"],
        num_attention_heads=s["n_heads"],
        max_position_embeddings=4096,
        rope_theta=500000,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = Olmo2ForCausalLM(cfg)
    return model


class LigerObjective:
    """OLMo's objective with Liger's fused linear cross-entropy (``lse_square_scale`` = OLMo's z-loss
    multiplier 1e-4, summed, divided by the batch's tokens as olmo_loss does)."""

    def __init__(self, model):
        import torch
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        self.model = model
        self.fn = LigerFusedLinearCrossEntropyLoss(
            lse_square_scale=1e-4, reduction="sum", return_z_loss=True, accum_dtype=torch.float32
        )

    def parameters(self):
        return self.model.parameters()

    def __call__(self, input_ids, batch_tokens, instance_mask=None):
        h = (
            self.model.model(input_ids=input_ids)
            .last_hidden_state[:, :-1]
            .reshape(-1, self.model.config.hidden_size)
        )
        w = self.model.lm_head.weight
        out = self.fn(w.to(h.dtype), h, input_ids[:, 1:].reshape(-1))
        loss, z = (out.loss, out.z_loss) if hasattr(out, "loss") else out
        return loss / batch_tokens, (loss - z).detach() / batch_tokens, z.detach() / batch_tokens


def liger_vs_plain(model, liger, mb, ac) -> dict:
    """Loss and lm_head/first-layer gradients of one micro-batch: Liger vs the plain olmo_loss."""

    from intervene.train.objective import OlmoObjective

    plain = OlmoObjective(model, z_loss=True, fused=False)
    grads = {}
    for k, obj in (("plain", plain), ("liger", liger)):
        with ac:
            loss, ce, z = obj(mb, mb.numel())
        loss.backward()
        grads[k] = (
            float(loss),
            float(z),
            model.lm_head.weight.grad.clone(),
            model.model.layers[0].mlp.down_proj.weight.grad.clone(),
        )
        model.zero_grad(set_to_none=True)
    (lp, zp, hp, dp), (ll, zl, hl, dl) = grads["plain"], grads["liger"]
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    return {
        "loss": [round(lp, 5), round(ll, 5)],
        "z": [round(zp, 7), round(zl, 7)],
        "rel_grad_diff_lm_head": round(rel(hl, hp), 5),
        "rel_grad_diff_layer0_down": round(rel(dl, dp), 5),
    }


def kernel_category(name: str) -> str:
    """A CUDA kernel's kind, from its name (cuBLAS/CUTLASS GEMMs, attention, inductor's Triton
    kernels, AdamW, the rest)."""
    n = name.lower()
    if any(k in n for k in ("flash", "fmha", "cudnn", "attention", "sdpa")):
        return "attention"
    if any(k in n for k in ("gemm", "cutlass", "xmma", "nvjet", "sm90_", "cublas")):
        return "gemm"
    if "adam" in n or "multi_tensor" in n:
        return "optimizer"
    if n.startswith("triton") or "triton_" in n:
        return "triton (inductor)"
    if "nccl" in n:
        return "nccl"
    return "other"


def profile_step(step, out: Path, tag: str) -> dict:
    """GPU time of one step by kernel category and the top kernels (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    cats: dict[str, float] = {}
    kernels = []
    for e in prof.key_averages():
        us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if not us or e.key.startswith(("ProfilerStep", "cudaDeviceSynchronize")) or e.count == 0:
            continue
        if getattr(e, "device_type", None) is not None and "CUDA" not in str(e.device_type):
            continue
        kind = kernel_category(e.key)
        cats[kind] = cats.get(kind, 0.0) + us / 1e3
        kernels.append((us / 1e3, e.count, e.key[:110]))
    kernels.sort(reverse=True)
    r = {
        "tag": tag,
        "wall_ms": round(wall * 1e3, 1),
        "gpu_ms_by_category": {k: round(v, 1) for k, v in sorted(cats.items(), key=lambda x: -x[1])},
        "top_kernels": [[round(ms, 1), c, k] for ms, c, k in kernels[:30]],
    }
    (out / f"profile_{tag}.json").write_text(json.dumps(r, indent=1))
    return r


class _MetricSink:
    """The part of OLMo-core's Trainer its train module calls during a step: the metrics it records
    (the CE loss and the grad norm are read back to show the run trains)."""

    def __init__(self, device):
        self.device, self.dp_process_group, self.metrics = device, None, {}

    def record_metric(self, name, value, reduce_type=None, namespace=None, merge_strategy=None):
        self.metrics[f"{namespace}/{name}" if namespace else name] = value

    def record_ce_loss(self, value, reduce_type=None):
        self.metrics["train/CE loss"] = value


def build_olmo_core(micro: int, fsdp: bool, device: str = "cuda", shape: dict = SHAPE_1B, cfg=None):
    """OLMo-core's OLMo 2 1B (d 2048, 16 layers, SwiGLU 8192: ``olmo2_1B_v2``) and its train module with
    OLMo's semantics: fp32 master weights, z-loss, global grad-norm clipping 1.0, AdamW (fused) with
    the embedding excluded from weight decay, ``compile_model`` (per block, as OLMo-core compiles)."""
    import torch
    from olmo_core.config import DType
    from olmo_core.distributed.parallel import DataParallelType
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.optim import AdamWConfig, OptimGroupOverride
    from olmo_core.train.train_module import (
        TransformerDataParallelConfig,
        TransformerTrainModuleConfig,
    )

    T = shape["max_sequence_length"]
    if fsdp:  # one-process NCCL group: OLMo-core applies FSDP only when distributed
        import torch.distributed as dist

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        dist.init_process_group("nccl", device_id=torch.device("cuda", 0))
    cfg = cfg or TransformerConfig.olmo2_1B_v2(vocab_size=shape["embedding_size"])
    model = cfg.build(init_device="meta")
    tm_cfg = TransformerTrainModuleConfig(
        rank_microbatch_size=micro * T,
        max_sequence_length=T,
        optim=AdamWConfig(
            lr=1e-4,
            weight_decay=0.1,
            betas=(0.9, 0.95),
            eps=1e-8,
            group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts={"weight_decay": 0.0})],
            fused=True,
        ),
        z_loss_multiplier=1e-4,
        max_grad_norm=1.0,
        compile_model=device == "cuda",
        dp_config=(
            TransformerDataParallelConfig(
                name=DataParallelType.fsdp, param_dtype=DType.bfloat16, reduce_dtype=DType.float32
            )
            if fsdp
            else None
        ),
        autocast_precision=None if fsdp or device != "cuda" else DType.bfloat16,
    )
    tm = tm_cfg.build(model, device=torch.device(device))
    tm._trainer = _MetricSink(torch.device(device))  # no Trainer: the loop below is its _train_batch
    return tm


def variant(name: str, micro: int, n_micro: int, steps: int, warm: int, prof_dir: Path | None = None) -> dict:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    if name.startswith("olmo_core"):
        tm = build_olmo_core(micro, fsdp="fsdp" in name)
        model = tm.model
        n_params = sum(p.numel() for p in model.parameters()) - model.embeddings.weight.numel()
    else:
        model = build_1b()
        n_params = sum(p.numel() for p in model.parameters()) - model.model.embed_tokens.weight.numel()
    T = SHAPE_1B["max_sequence_length"]
    flops_per_token = 6 * n_params + 12 * SHAPE_1B["n_layers"] * SHAPE_1B["d_model"] * T
    gen = torch.Generator(device="cuda").manual_seed(0)
    tokens = torch.randint(0, SHAPE_1B["vocab_size"], (micro * n_micro, T), device="cuda", generator=gen)
    if name.startswith("baseline"):
        fwd = torch.compile(model) if name == "baseline_compiled" else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=True)

        def step():
            for mb in torch.split(tokens, micro):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = fwd(input_ids=mb, labels=mb).loss / n_micro
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    elif name.startswith("olmo_core"):
        stats = []

        def step():  # as OLMo-core's Trainer: zero grads, train_batch (micro-batches), optim_step
            tm.zero_grads()
            tm.train_batch({"input_ids": tokens})
            tm.optim_step()
            m = tm.trainer.metrics
            stats.append((float(m["train/CE loss"]), float(m["optim/total grad norm"])))
    else:
        from intervene.train.objective import OlmoObjective
        from intervene.train.optim import build_optimizer
        from intervene.train.trainer import optimizer_step

        fused = "fused" in name
        if "fsdp" in name:  # FSDP2 on one GPU: bf16 parameters gathered, fp32 master weights and moments
            import torch.distributed as dist

            from intervene.train.fsdp import shard_model

            dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1)
            shard_model(model, bf16=True)
        if "causal" in name:  # the trainer's attention: SDPA is_causal, no mask tensor when compiled
            from intervene.train.model import use_causal_attention

            use_causal_attention(model)
        if "rtable" in name:  # the trainer when it compiles on a GPU: rotary (cos, sin) from a table
            from intervene.train.model import use_rotary_table

            use_rotary_table(model)
        objective = OlmoObjective(model, z_loss=True, fused=fused)
        objective.shifted_head = "shead" in name  # the head on the first L - 1 positions only
        if name == "ours_layers_fused":  # the per-layer compilation measured first (slower)
            for layer in model.model.layers:
                layer.compile()
        if "cdt" in name:
            import torch._inductor.config as inductor_config

            inductor_config.coordinate_descent_tuning = True
        if "whole" in name:  # NB: with the fused loss this gives zero gradients (see results)
            objective = torch.compile(objective)
        if "body" in name:  # what the trainer does with compile: true and the fused loss
            model.model.compile()
        if "cudnn" in name:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            sdpa_kernel(SDPBackend.CUDNN_ATTENTION).__enter__()
        if "liger" in name:  # compiled body + Liger's fused linear CE with z-loss (eager Triton)
            model.model.compile()
            objective = LigerObjective(model)
        ac = torch.autocast("cuda", dtype=torch.bfloat16)
        if "bf16diag" in name:  # diagnostic bound only (not OLMo's fp32 master weights): no casts
            from contextlib import nullcontext

            model.to(torch.bfloat16)
            ac = nullcontext()
        opt = build_optimizer(
            model, {"learning_rate": 1e-4, "weight_decay": 0.1, "betas": [0.9, 0.95], "eps": 1e-8}, fused=True
        )
        if "liger" in name:
            check = liger_vs_plain(model, objective, tokens[:micro], ac)

        stats = []

        def step():
            ce, _, gn = optimizer_step(objective, opt, tokens, micro, 1.0, 1e-4, ac)
            stats.append((float(ce), float(gn)))

    t_compile = time.perf_counter()
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    t_compile = time.perf_counter() - t_compile
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    tps = steps * tokens.numel() / dt
    r = {
        "variant": name,
        "micro": micro,
        "tokens_per_step": tokens.numel(),
        "tokens_per_s": round(tps),
        "mfu": round(tps * flops_per_token / PEAK, 4),
        "warmup_s": round(t_compile, 1),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1),
        "n_params_no_emb": n_params,
        "gpu": torch.cuda.get_device_name(),
    }
    if not name.startswith("baseline"):
        # proof that it trains (OLMo-core: its CE over the tokens of the batch, as ours): CE falls over the steps and the gradient is not zero
        r["ce_first_last"] = [round(stats[0][0], 4), round(stats[-1][0], 4)]
        r["grad_norm_first_last"] = [round(stats[0][1], 4), round(stats[-1][1], 4)]
    if "liger" in name:
        r["liger_vs_plain"] = check
    if prof_dir is not None:
        pr = profile_step(step, prof_dir, f"{name}_{micro}")
        r["profile_gpu_ms"] = pr["gpu_ms_by_category"]
        r["profile_wall_ms"] = pr["wall_ms"]
        print("PROFILE", json.dumps(pr), flush=True)
    print("PART2", json.dumps(r), flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant")
    ap.add_argument("--micro", type=int, default=2)
    ap.add_argument("--parts", default="1,2")
    ap.add_argument("--seqs-per-step", type=int, default=8, help="sequences per optimizer step (one GPU)")
    ap.add_argument("--fsdp", action="store_true", help="part 1 also trains with FSDP2 on 2 GPUs")
    ap.add_argument("--profile", action="store_true", help="profile one step per variant by kernel kind")
    ap.add_argument(
        "--variants",
        default="baseline_eager:2,baseline_compiled:2,ours_layers_fused:2,ours_whole_plain:2,ours_whole_fused:2",
    )
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.variant:
        variant(
            a.variant,
            a.micro,
            n_micro=a.seqs_per_step // a.micro,
            steps=4,
            warm=3,
            prof_dir=out if a.profile else None,
        )
        return
    rows = []
    if "1" in a.parts:
        try:
            runs = ((1, "ddp"), (2, "ddp"), (2, "fsdp")) if a.fsdp else ((1, "ddp"), (2, "ddp"))
            rows.append({"part1": part1(out, runs)})
        except Exception as e:  # keep going to part 2, report the failure
            print("PART1 FAILED", e, flush=True)
    if "2" in a.parts:
        variants = [v.split(":") for v in a.variants.split(",")]
        for name, micro in ((n, int(m)) for n, m in variants):
            cmd = [sys.executable, __file__, "--out", str(out), "--variant", name, "--micro", str(micro)]
            cmd += ["--seqs-per-step", str(a.seqs_per_step)] + (["--profile"] if a.profile else [])
            r = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env={**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0")},
                timeout=300,
            )
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PART2")]
            if lines:
                rows.append(json.loads(lines[-1][6:]))
            else:
                print("VARIANT FAILED", name, micro, r.stderr[-1500:], flush=True)
    (out / "gpu_train.json").write_text(json.dumps(rows, indent=1))
    print("| variant | micro | tokens/s | MFU | peak GB | warm-up s |")
    for r in rows:
        if "variant" in r:
            print(
                f"| {r['variant']} | {r['micro']} | {r['tokens_per_s']} | {r['mfu']:.1%} | {r['peak_mem_gb']} | {r['warmup_s']} |"
            )


if __name__ == "__main__":
    main()
