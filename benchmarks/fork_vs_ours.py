"""The paper's OLMo fork against our trainer on one GPU: same initial weights, same data order, same
config; then the fork's re-run over rewritten raw memmaps (``train.backend: olmo``'s path).

Runs, all from one OLMo 2-shaped config over the toy world's token files (``intervene world``):

- ``ours_ddp`` / ``ours_fsdp``: ``intervene train`` from scratch (step 0 = the initial weights), fp32
  weights and bf16 autocast, resp. FSDP2 with bf16 parameters and fp32 reductions;
- ``fork_ddp`` / ``fork_fsdp``: ``torchrun -m scripts.train`` in the fork's checkout from our step 0
  exported to OLMo's format (``intervene.train.olmo_export``), ``distributed_strategy: ddp``
  (fp32 weights, autocast) resp. ``fsdp`` with ``precision: mixed`` (OLMo 2's setting);
- ``fork_rerun``: the fork from its own step ``half`` checkpoint over the window's batches rewritten
  (a token permutation) and written as raw uint32 memmaps, config by
  ``intervene.train.olmo_backend.write_rerun_config`` (as rule olmo_rerun_config); ``ours_rerun``:
  our trainer over the same files from that checkpoint imported (``olmo_import``).

Compared: per-step cross-entropy, z-loss and gradient norm; the batches' instance indices (the
fork's ``data-indices`` file against our global order); the final weights (max |diff|). The
reference for "bf16 tolerance" is the spread between two runs of one implementation that differ
only in bf16 placement (``ours_ddp`` vs ``ours_fsdp``, ``fork_ddp`` vs ``fork_fsdp``).

    python benchmarks/fork_vs_ours.py --fork OLMO_CHECKOUT --world WORLD_DIR --work SCRATCH --out OUT

(driver with the environment: benchmarks/fork_vs_ours.sh; results: benchmarks/results/fork_vs_ours_h200.md)
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

#: OLMo 2's instance filter (configs/official-1124/OLMo2-7B-stage1.yaml).
INSTANCE_FILTER = {"repetition_max_period": 13, "repetition_min_period": 1, "repetition_max_count": 32}


def log(msg: str) -> None:
    print(f"[fork_vs_ours {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(
    cmd: list[str] | str, logfile: Path, cwd: str | None = None, env: dict | None = None
) -> tuple[bool, float]:
    t0 = time.perf_counter()
    with open(logfile, "w") as fh:
        rc = subprocess.call(
            cmd,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            shell=isinstance(cmd, str),
        )
    dt = time.perf_counter() - t0
    if rc != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        log(f"FAILED ({rc}) {cmd}\n" + "\n".join(tail))
    return rc == 0, dt


def configs(world: Path, work: Path, steps: int, half: int) -> dict[str, Path]:
    """The base config for each strategy: the world's OLMo 2 config with absolute data paths, OLMo
    2's instance filter, the fork's logging (every step) and unsharded checkpoints at ``half``."""
    raw = yaml.safe_load((world / "train_config.yaml").read_text())
    raw["data"]["paths"] = [str((world / p).resolve()) for p in raw["data"]["paths"]]
    raw["data"]["instance_filter"] = dict(INSTANCE_FILTER)
    raw["data"]["num_workers"] = 0
    # a tokenizer.json file: the fork builds its tokenizer (for evaluators) from a file or a hub id
    raw["tokenizer"]["identifier"] = str(
        (world / raw["tokenizer"]["identifier"] / "tokenizer.json").resolve()
    )
    raw.update(
        precision="amp_bf16",
        stop_at=steps,
        save_overwrite=True,
        save_interval_unsharded=half,
        save_num_unsharded_checkpoints_to_keep=-1,
        save_num_checkpoints_to_keep=0,
        save_interval_ephemeral=None,
        console_log_interval=1,
        eval_interval=100000,
        wandb={"project": "fork-vs-ours", "entity": None, "log_interval": 1, "rank_zero_only": True},
    )
    out = {}
    ddp = copy.deepcopy(raw)
    ddp["distributed_strategy"] = "ddp"
    ddp["ddp"] = {"grad_sync_mode": "batch", "find_unused_params": False}
    ddp["model"]["init_device"] = "cuda"  # the fork's DDP path requires it
    fsdp = copy.deepcopy(raw)
    fsdp["distributed_strategy"] = "fsdp"
    fsdp["fsdp"] = {"wrapping_strategy": "by_block_and_size", "precision": "mixed"}
    fsdp["model"]["init_device"] = "meta"
    for name, cfg in (("ddp", ddp), ("fsdp", fsdp)):
        out[name] = work / f"base_{name}.yaml"
        out[name].write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def fork_config(base: Path, out: Path, **over) -> Path:
    cfg = yaml.safe_load(base.read_text())
    cfg.update(over)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def fork_metrics(path: Path) -> dict[int, dict]:
    """Per step: ce, z, grad norm, masked instances (the wandb stand-in's full-precision log)."""
    rows = {}
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "train/CrossEntropyLoss" in rec:
            rows[int(rec["step"])] = {
                "ce": rec["train/CrossEntropyLoss"],
                "z": rec.get("train/ZLoss"),
                "grad_norm": rec.get("optim/total_grad_norm"),
                "lr": rec.get("optim/learning_rate_group0"),
                "masked": rec.get("train/masked_instances_local_rank"),
            }
    return rows


def ours_metrics(run_dir: Path) -> dict[int, dict]:
    rows = {}
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rows[int(rec["step"])] = {
            "ce": rec["ce_loss"],
            "z": rec["z_loss"],
            "grad_norm": rec["grad_norm"],
            "lr": rec["lr"],
        }
    return rows


def hf_weights_of_olmo(model_pt: Path, raw: dict) -> dict[str, torch.Tensor]:
    from intervene.train.olmo_import import olmo_to_hf

    m = raw["model"]
    d = int(m["d_model"])
    d_kv = d // int(m["n_heads"]) * int(m.get("n_kv_heads") or m["n_heads"])
    out = {}
    for k, v in torch.load(model_pt, map_location="cpu", weights_only=True).items():
        out.update(olmo_to_hf(k, v.float(), d, d_kv))
    return out


def hf_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(ckpt / "model.safetensors")).items()}


def weight_diff(a: dict[str, torch.Tensor] | None, b: dict[str, torch.Tensor] | None) -> dict | None:
    if not a or not b:
        return None
    if sorted(a) != sorted(b):
        return {"error": f"different tensors: {sorted(set(a) ^ set(b))[:4]}"}
    worst, worst_name, rel = 0.0, None, 0.0
    for k in a:
        d = (a[k] - b[k]).abs().max().item()
        if d > worst:
            worst, worst_name = d, k
        rel = max(rel, d / max(a[k].abs().max().item(), 1e-12))
    total = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)).item()
    norm = torch.sqrt(sum((a[k] ** 2).sum() for k in a)).item()
    return {"max_abs": worst, "tensor": worst_name, "max_rel_to_tensor_max": rel, "rel_l2": total / norm}


def our_order(config: Path, steps: int) -> np.ndarray:
    """Instance indices of batches 0..steps-1 in our trainer's original-run order."""
    from intervene.data_order import data_files
    from intervene.olmo import global_indices, load_train_config
    from intervene.train.data import InstanceFiles

    spec = load_train_config(config)
    n = InstanceFiles(data_files(spec), spec.dtype, spec.seq_len).num_instances
    order = global_indices(n, spec.seed, spec.epoch, 1, spec.drop_last)
    return order[: steps * spec.global_batch_size].reshape(steps, spec.global_batch_size)


def fork_order(save_folder: Path) -> dict[int, list[int]]:
    f = save_folder / "data-indices" / "rank0.tsv.gz"
    if not f.exists():
        return {}
    rows = {}
    with gzip.open(f, "rt") as fh:
        for line in fh:
            parts = line.split()
            rows[int(parts[0])] = [int(x) for x in parts[1:]]
    return rows


def rewrite_window(config: Path, first: int, last: int, out: Path) -> tuple[Path, dict]:
    """Batches [first, last) of the original order with a token permutation (the 16 most frequent
    tokens of the window other than EOS/pad, each replaced by the next one), as raw uint32 memmaps,
    one batch per file, and their data list."""
    from intervene.data_order import data_files
    from intervene.olmo import global_indices, load_train_config
    from intervene.train.data import BatchStream, InstanceFiles

    spec = load_train_config(config)
    src = InstanceFiles(data_files(spec), spec.dtype, spec.seq_len)
    order = global_indices(src.num_instances, spec.seed, spec.epoch, 1, spec.drop_last)
    stream = BatchStream(src, order, spec.global_batch_size, 0, 1)
    batches = [np.asarray(stream.device_batch(b)) for b in range(first, last)]
    m = spec.raw["model"]
    special = {int(m["eos_token_id"]), int(m["pad_token_id"])}
    counts = np.bincount(np.concatenate([b.ravel() for b in batches]).astype(np.int64))
    top = [int(t) for t in np.argsort(-counts, kind="stable") if int(t) not in special][:16]
    perm = np.arange(counts.size, dtype=np.int64)
    perm[top] = np.roll(top, -1)
    out.mkdir(parents=True, exist_ok=True)
    paths, changed = [], 0
    for b, batch in zip(range(first, last), batches, strict=True):
        new = perm[batch.astype(np.int64)].astype(np.uint32)
        changed += int((new != batch).sum())
        p = out / f"{b}.npy"
        new.tofile(p)  # raw tokens, no header: what OLMo's memmap reader reads
        paths.append(str(p))
    (out / "data_list.txt").write_text("".join(p + "\n" for p in paths))
    total = sum(b.size for b in batches)
    return out / "data_list.txt", {"tokens": total, "changed": changed, "permuted_tokens": len(top)}


def fmt(x, nd=4):
    return "—" if x is None else f"{x:.{nd}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fork", required=True, help="the fork's checkout (olmo/, scripts/train.py)")
    ap.add_argument("--world", required=True, help="an `intervene world` folder")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--half", type=int, default=32)
    a = ap.parse_args(argv)
    from intervene.train.olmo_backend import train_command, write_rerun_config
    from intervene.train.olmo_export import export_olmo_checkpoint
    from intervene.train.olmo_import import import_olmo_checkpoint

    fork, world, work, out = Path(a.fork).resolve(), Path(a.world).resolve(), Path(a.work), Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    steps, half = a.steps, a.half
    base = configs(world, work, steps, half)
    raw = yaml.safe_load(base["ddp"].read_text())
    py = sys.executable
    res: dict = {"steps": steps, "half": half, "times_s": {}, "ok": {}}
    res["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    res["torch"] = torch.__version__
    res["fork_commit"] = (fork / "COMMIT").read_text().strip() if (fork / "COMMIT").exists() else None

    # ours, from scratch (step 0 = the initial weights both sides start from)
    for strat in ("ddp", "fsdp"):
        name = f"ours_{strat}"
        cmd = [
            py,
            "-m",
            "intervene.cli",
            "train",
            "--train-config",
            str(base[strat]),
            "--out",
            str(work / name),
            "--device",
            "cuda",
            "--save-interval",
            str(half),
            "--strategy",
            strat,
        ]
        res["ok"][name], res["times_s"][name] = run(cmd, logs / f"{name}.log")
        log(f"{name}: ok={res['ok'][name]} {res['times_s'][name]:.1f} s")

    init = work / "init" / "step0-unsharded"
    if res["ok"]["ours_ddp"]:
        export_olmo_checkpoint(work / "ours_ddp" / "step0", init)
        w0 = (
            weight_diff(hf_weights(work / "ours_ddp" / "step0"), hf_weights(work / "ours_fsdp" / "step0"))
            if res["ok"]["ours_fsdp"]
            else None
        )
        res["init_ours_ddp_vs_fsdp"] = w0

    # the fork from the exported step 0
    for strat in ("ddp", "fsdp"):
        name = f"fork_{strat}"
        if not init.exists():
            res["ok"][name] = False
            continue
        cfg = fork_config(
            base[strat],
            work / f"{name}.yaml",
            run_name=name,
            load_path=str(init),
            save_folder=str(work / name),
            restore_dataloader=True,
        )
        cmd = train_command(str(fork), str(cfg), name, 1)
        env = {"WANDB_STUB_LOG": str(work / f"{name}_metrics.jsonl"), "OMP_NUM_THREADS": "4"}
        res["ok"][name], res["times_s"][name] = run(cmd, logs / f"{name}.log", env=env)
        log(f"{name}: ok={res['ok'][name]} {res['times_s'][name]:.1f} s")

    # the re-run over rewritten memmaps: the fork from its step-half checkpoint, ours from its import
    data_list, rew = rewrite_window(base["ddp"], half, steps, work / "rewritten")
    res["rewrite"] = rew
    start = work / "fork_ddp" / f"step{half}-unsharded"
    if start.exists():
        rerun_cfg = work / "fork_rerun.yaml"
        write_rerun_config(
            base["ddp"],
            rerun_cfg,
            data_list=data_list,
            run_name="fork_rerun",
            load_path=str(start),
            stop_after=steps - half,
            save_folder=str(work / "fork_rerun"),
        )
        cmd = train_command(str(fork), str(rerun_cfg), "fork_rerun", 1)
        env = {"WANDB_STUB_LOG": str(work / "fork_rerun_metrics.jsonl"), "OMP_NUM_THREADS": "4"}
        res["ok"]["fork_rerun"], res["times_s"]["fork_rerun"] = run(cmd, logs / "fork_rerun.log", env=env)
        import_olmo_checkpoint(start, work / "rerun_start")
        cmd = [
            py,
            "-m",
            "intervene.cli",
            "train",
            "--train-config",
            str(base["ddp"]),
            "--out",
            str(work / "ours_rerun"),
            "--device",
            "cuda",
            "--load-path",
            str(work / "rerun_start"),
            "--data-list",
            str(data_list),
            "--stop-after",
            str(steps - half),
            "--save-interval",
            str(steps - half),
        ]
        res["ok"]["ours_rerun"], res["times_s"]["ours_rerun"] = run(cmd, logs / "ours_rerun.log")
        log(f"reruns: {res['ok'].get('fork_rerun')} {res['ok'].get('ours_rerun')}")

    # losses
    m = {
        "ours_ddp": ours_metrics(work / "ours_ddp"),
        "ours_fsdp": ours_metrics(work / "ours_fsdp"),
        "fork_ddp": fork_metrics(work / "fork_ddp_metrics.jsonl"),
        "fork_fsdp": fork_metrics(work / "fork_fsdp_metrics.jsonl"),
        "fork_rerun": fork_metrics(work / "fork_rerun_metrics.jsonl"),
        "ours_rerun": ours_metrics(work / "ours_rerun"),
    }
    res["metrics"] = m

    def max_diff(x, y, key="ce"):
        common = [s for s in x if s in y and x[s][key] is not None and y[s][key] is not None]
        if not common:
            return None
        return {"steps": len(common), "max_abs": max(abs(x[s][key] - y[s][key]) for s in common)}

    pairs = {
        "ours_ddp vs fork_ddp": ("ours_ddp", "fork_ddp"),
        "ours_fsdp vs fork_fsdp": ("ours_fsdp", "fork_fsdp"),
        "ours_ddp vs ours_fsdp (ours, bf16 placement)": ("ours_ddp", "ours_fsdp"),
        "fork_ddp vs fork_fsdp (fork, bf16 placement)": ("fork_ddp", "fork_fsdp"),
        "ours_ddp vs fork_fsdp": ("ours_ddp", "fork_fsdp"),
        "ours_rerun vs fork_rerun": ("ours_rerun", "fork_rerun"),
    }
    res["loss_diff"] = {
        k: {key: max_diff(m[x], m[y], key) for key in ("ce", "z", "grad_norm", "lr")}
        for k, (x, y) in pairs.items()
    }

    # data order: the fork's batches against ours
    ours_o = our_order(base["ddp"], steps)
    fo = fork_order(work / "fork_ddp")
    res["order"] = {
        "fork_steps_logged": len(fo),
        "equal_steps": sum(1 for s, idx in fo.items() if 1 <= s <= steps and list(ours_o[s - 1]) == idx),
    }
    fr = fork_order(work / "fork_rerun")
    gbs = int(raw["global_train_batch_size"])
    res["order"]["rerun_in_file_order"] = bool(fr) and all(
        idx == list(range((s - half - 1) * gbs, (s - half) * gbs)) for s, idx in fr.items()
    )

    # final weights
    def fork_final(name):
        p = work / name / f"step{steps}-unsharded" / "model.pt"
        return hf_weights_of_olmo(p, raw) if p.exists() else None

    def ours_final(name):
        p = work / name / f"step{steps}"
        return hf_weights(p) if (p / "model.safetensors").exists() else None

    W = {n: fork_final(n) for n in ("fork_ddp", "fork_fsdp", "fork_rerun")}
    W.update({n: ours_final(n) for n in ("ours_ddp", "ours_fsdp", "ours_rerun")})
    res["weights"] = {k: weight_diff(W[x], W[y]) for k, (x, y) in pairs.items()}
    w_init = hf_weights(work / "ours_ddp" / "step0") if (work / "ours_ddp" / "step0").exists() else None
    res["weights_moved_from_init"] = {n: weight_diff(W[n], w_init) for n in ("ours_ddp", "fork_ddp")}
    res["weights_rerun_vs_main"] = {"fork_rerun vs fork_ddp": weight_diff(W["fork_rerun"], W["fork_ddp"])}

    (out / "fork_vs_ours.json").write_text(json.dumps(res, indent=1, default=str))
    table = [
        "| step | lr | ours_ddp ce | fork_ddp ce | diff | ours_fsdp ce | fork_fsdp ce | diff | ours_rerun ce | fork_rerun ce | diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in range(1, steps + 1):

        def g(name, s=s):
            r = m[name].get(s)
            return None if r is None else r["ce"]

        def d(x, y):
            return None if x is None or y is None else x - y

        a1, b1, a2, b2, a3, b3 = (
            g("ours_ddp"),
            g("fork_ddp"),
            g("ours_fsdp"),
            g("fork_fsdp"),
            g("ours_rerun"),
            g("fork_rerun"),
        )
        lr = (m["ours_ddp"].get(s) or {}).get("lr")
        table.append(
            f"| {s} | {fmt(lr, 6) if lr is not None else '—'} | {fmt(a1)} | {fmt(b1)} | {fmt(d(a1, b1))} | {fmt(a2)} | {fmt(b2)} | {fmt(d(a2, b2))} | {fmt(a3)} | {fmt(b3)} | {fmt(d(a3, b3))} |"
        )
    (out / "loss_table.md").write_text("\n".join(table) + "\n")
    log(
        json.dumps(
            {k: res[k] for k in ("ok", "times_s", "loss_diff", "order", "weights", "rewrite")},
            indent=1,
            default=str,
        )
    )
    with open(out / "logs.txt", "w") as fh:
        for f in sorted(logs.iterdir()):
            lines = f.read_text(errors="replace").splitlines()
            fh.write(f"===== {f.name} ({len(lines)} lines; first 60 and last 60)\n")
            fh.write("\n".join(lines[:60] + ["..."] + lines[-60:]) + "\n")
    return 0 if all(res["ok"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
