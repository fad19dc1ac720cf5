"""The deterministic training mode on one GPU (``train.deterministic``; not part of ``make bench``).

Three parts, one call (``--parts sdpa,replay,speed``):

- ``sdpa``: each attention backend of ``scaled_dot_product_attention`` (flash, memory-efficient,
  cuDNN, math) at the OLMo 2 1B attention shape (bf16, causal, 16 heads of 128, 4096 tokens), forward
  and backward twice on the same inputs, with and without PyTorch's deterministic algorithms: are the
  gradients bit-identical, and how long does a forward + backward take;
- ``replay``: the small OLMo 2-shaped model of ``gpu_train.py`` (bf16 autocast, 4 micro-batches per
  step) trains ``--steps`` steps with a checkpoint midway; the second half is replayed from that
  checkpoint over the same batches (written as ``.npy`` files, as the decode stage does) and the two
  final checkpoints are compared (weights and AdamW moments). Per mode (default, deterministic) and
  per path: ``compile`` (the whole objective compiled: the 1B recipe), ``eager_fused`` (the chunked
  fused loss), ``eager`` (the plain loss, as the toy world's config trains);
- ``speed``: tokens/s of the trainer's compiled step (``gpu_train.variant``
  ``ours_whole_plain_causal``) at the OLMo 2 1B shape, one fresh process per mode: the cost ratio.
  ``deterministic_nofill`` also switches off ``torch.utils.deterministic.fill_uninitialized_memory``
  (PyTorch fills every new tensor with NaN in deterministic mode) to show what that costs.

    source benchmarks/device_setup.sh .device_wheels
    python3 benchmarks/gpu_deterministic.py --out OUTDIR
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_train import small_world  # noqa: E402

MODES = ("default", "deterministic")
PATHS = {  # train-config changes of each replay path
    "compile": {"compile": True},
    "eager_fused": {"fused_loss": True},
    "eager": {"fused_loss": False},
}
BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")


def _env(mode: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if mode != "default":  # as the trainer does before CUDA starts
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    return env


def sdpa_probe(repeats: int = 5) -> list[dict]:
    """Bit-identity of two backward passes and fwd+bwd milliseconds per backend and mode."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator(device="cuda").manual_seed(0)
    shape = (2, 16, 4096, 128)
    q, k, v, go = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4))
    rows = []
    for det in (False, True):
        torch.use_deterministic_algorithms(det)
        for name in BACKENDS:
            row = {"backend": name, "deterministic_algorithms": det}
            try:
                grads, times = [], []
                for _ in range(repeats):
                    qq, kk, vv = (x.detach().requires_grad_() for x in (q, k, v))
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    with sdpa_kernel(getattr(SDPBackend, name)):
                        out = torch.nn.functional.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
                    out.backward(go)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
                    grads.append(torch.cat([x.grad.flatten() for x in (qq, kk, vv)]))
                row["bit_identical_backward"] = all(torch.equal(grads[0], x) for x in grads[1:])
                row["max_abs_diff"] = max(float((grads[0] - x).abs().max()) for x in grads[1:])
                row["fwd_bwd_ms"] = round(1e3 * sorted(times[1:])[len(times[1:]) // 2], 2)
            except RuntimeError as e:  # a backend refused (shape, GPU, or deterministic mode)
                row["error"] = str(e).splitlines()[0][:160]
            rows.append(row)
            print("SDPA", json.dumps(row), flush=True)
    torch.use_deterministic_algorithms(False)
    return rows


def train_one(cfg: str, out: str, mode: str, extra: list[str], device: str = "cuda") -> None:
    """One ``train`` call in this process, in ``mode`` (``deterministic_nofill``: the mode without
    PyTorch's NaN-filling of new tensors)."""
    import torch

    from intervene.train.trainer import train

    if mode == "deterministic_nofill":
        torch.utils.deterministic.fill_uninitialized_memory = False
    kw = dict(zip(extra[::2], extra[1::2], strict=True))
    train(
        cfg,
        out,
        device=device,
        deterministic=mode != "default",
        stop_after=int(kw["stop_after"]),
        save_interval=int(kw["save_interval"]) if "save_interval" in kw else None,
        load_path=kw.get("load_path"),
        data_list=kw.get("data_list"),
    )


def replay(
    out: Path, steps: int, modes: tuple[str, ...], paths: tuple[str, ...], device: str = "cuda"
) -> list[dict]:
    """Original run and replay of its second half per (path, mode); the pairs run side by side."""
    from safetensors.torch import load_file

    from intervene.olmo import global_indices, load_train_config
    from intervene.train.data import InstanceFiles
    from intervene.train.replay import compare_checkpoints, run_losses

    base = small_world(out / "w")
    raw = yaml.safe_load(base.read_text())
    half = steps // 2
    jobs = {}
    for path in paths:
        cfg = base.parent / f"{path}.yaml"
        cfg.write_text(yaml.safe_dump({**raw, **PATHS[path]}))
        for mode in modes:
            jobs[(path, mode)] = cfg
    spec = load_train_config(base)
    files = InstanceFiles([base.parent / p for p in spec.paths], spec.dtype, spec.seq_len)
    order = global_indices(files.num_instances, spec.seed, 0, 1, spec.drop_last)
    G = spec.global_batch_size
    bdir = out / "batches"
    bdir.mkdir(parents=True, exist_ok=True)
    for b in range(half, steps):
        np.save(bdir / f"{b}.npy", files.read(np.asarray(order[b * G : (b + 1) * G], dtype=np.int64)))
    (out / "list.txt").write_text("".join(f"batches/{b}.npy\n" for b in range(half, steps)))

    def launch(stage: str, key, args: list[str]):
        path, mode = key
        cmd = [sys.executable, __file__, "--train-one", str(jobs[key]), str(out / f"{path}_{mode}_{stage}")]
        cmd += ["--mode", mode, "--device", device, "--", *args]
        log = open(out / f"{path}_{mode}_{stage}.log", "w")
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(mode))

    def wait(procs: dict, stage: str) -> dict:
        t = {}
        for key, (p, t0) in procs.items():
            try:
                rc = p.wait(timeout=max(1.0, 300 - (time.perf_counter() - t0)))
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            t[key] = round(time.perf_counter() - t0, 1)
            if rc:
                tail = (out / f"{key[0]}_{key[1]}_{stage}.log").read_text()[-1500:]
                print("FAILED", stage, key, tail, flush=True)
        return t

    started = {
        k: (launch("orig", k, ["stop_after", str(steps), "save_interval", str(half)]), time.perf_counter())
        for k in jobs
    }
    t_orig = wait(started, "orig")
    started = {}
    for k in jobs:
        args = [
            "stop_after",
            str(steps - half),
            "load_path",
            str(out / f"{k[0]}_{k[1]}_orig" / f"step{half}"),
        ]
        started[k] = (launch("replay", k, [*args, "data_list", str(out / "list.txt")]), time.perf_counter())
    t_rep = wait(started, "replay")
    rows = []
    for path, mode in jobs:
        o, r = out / f"{path}_{mode}_orig", out / f"{path}_{mode}_replay"
        row = {"path": path, "mode": mode, "seconds_orig_replay": [t_orig[(path, mode)], t_rep[(path, mode)]]}
        try:
            c = compare_checkpoints(o / f"step{steps}", r / f"step{steps}")
            w0, w1 = (load_file(str(o / f"step{s}" / "model.safetensors")) for s in (half, steps))
            moved = max(float((w0[k] - w1[k]).abs().max()) for k in w0)  # training moved the weights
            la, lb = run_losses(o)[half:], run_losses(r)
            row.update(
                tensors=c["tensors"],
                tensors_not_bit_identical=c["tensors_not_bit_identical"],
                max_abs_diff=c["max_abs_diff"],
                counters_equal=c["counters_equal"],
                losses_equal=la == lb,
                ce_first_last=[run_losses(o)[0], run_losses(o)[-1]],
                weights_moved_second_half=moved,
            )
        except (FileNotFoundError, ValueError) as e:
            row["error"] = str(e)[:300]
        rows.append(row)
        print("REPLAY", json.dumps(row), flush=True)
    return rows


def speed_one(mode: str, micro: int, seqs: int, steps: int, warm: int) -> None:
    import torch

    from benchmarks.gpu_train import variant
    from intervene.train.determinism import deterministic_mode

    if mode == "deterministic_nofill":
        torch.utils.deterministic.fill_uninitialized_memory = False
    with deterministic_mode(mode != "default"):
        r = variant("ours_whole_plain_causal", micro, n_micro=seqs // micro, steps=steps, warm=warm)
    print("SPEED", json.dumps({"mode": mode, **r}), flush=True)


def speed(modes: tuple[str, ...], micro: int, seqs: int, steps: int, warm: int) -> list[dict]:
    rows = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--speed-one", mode, "--micro", str(micro), "--seqs", str(seqs)]
        cmd += ["--steps", str(steps), "--warm", str(warm)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=_env(mode), timeout=240)
        except subprocess.TimeoutExpired:
            print("SPEED TIMEOUT", mode, flush=True)
            continue
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("SPEED ")]
        if lines:
            rows.append(json.loads(lines[-1][6:]))
            print(lines[-1], flush=True)
        else:
            print("SPEED FAILED", mode, r.stderr[-2000:], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--parts", default="sdpa,replay,speed")
    ap.add_argument("--steps", type=int, default=20, help="original run's steps (replay: the second half)")
    ap.add_argument("--paths", default="compile,eager_fused,eager")
    ap.add_argument("--speed-modes", default="default,deterministic,deterministic_nofill")
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--seqs", type=int, default=8, help="sequences per optimizer step (speed)")
    ap.add_argument("--timed", type=int, default=4, dest="steps_timed")
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--mode", default="default")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the replay part's plumbing")
    ap.add_argument("--train-one", nargs=2, metavar=("CONFIG", "OUT"))
    ap.add_argument("--speed-one")
    ap.add_argument("--sdpa-one", action="store_true")
    ap.add_argument("rest", nargs="*")
    a = ap.parse_args()
    if a.train_one:
        train_one(*a.train_one, a.mode, a.rest, a.device)
        return
    if a.sdpa_one:
        sdpa_probe()
        return
    if a.speed_one:
        speed_one(a.speed_one, a.micro, a.seqs, a.steps_timed, a.warm)
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    res: dict = {
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cublas_workspace_config_at_start": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    try:
        import torch._inductor.config as ic

        res["inductor_has_deterministic"] = hasattr(ic, "deterministic")
    except ImportError:
        res["inductor_has_deterministic"] = None
    parts = a.parts.split(",")
    if "replay" in parts:  # first: its processes start before this one touches CUDA
        res["replay"] = replay(out / "replay", a.steps, MODES, tuple(a.paths.split(",")), a.device)
        (out / "gpu_deterministic.json").write_text(json.dumps(res, indent=1))
    if "sdpa" in parts:  # its own process: the math backend's cuBLAS needs the workspace setting
        cmd = [sys.executable, __file__, "--sdpa-one"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env("deterministic"), timeout=120)
        res["sdpa"] = [json.loads(ln[5:]) for ln in r.stdout.splitlines() if ln.startswith("SDPA ")]
        print(r.stdout if res["sdpa"] else r.stderr[-2000:], flush=True)
        (out / "gpu_deterministic.json").write_text(json.dumps(res, indent=1))
    if "speed" in parts:
        modes = tuple(a.speed_modes.split(","))
        res["speed"] = speed(modes, a.micro, a.seqs, a.steps_timed, a.warm)
        (out / "gpu_deterministic.json").write_text(json.dumps(res, indent=1))
    print("RESULT", json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
