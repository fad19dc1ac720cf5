"""GPU replay fidelity and torch.compile under DDP (2 GPUs by default, ``--nproc``; not in ``make bench``).

The synthetic setup of gpu_train.py part 1, on 2 GPUs with NCCL and bf16: (a) the original run
(``compile: true``) for 40 steps with checkpoints at 20 and 40; (b) the replay of batches 20-39
(written as ``.npy`` batches from the data order) from step 20; (c) the comparison of the two step-40
checkpoints. On GPU the replay is expected within bf16 tolerance, not bit-exact.

    PYTHONPATH=src python3 benchmarks/gpu_replay.py --out OUTDIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_train import small_world  # noqa: E402


def main() -> None:
    from intervene.olmo import global_indices, load_train_config
    from intervene.train.data import InstanceFiles
    from intervene.train.replay import compare_checkpoints, run_losses

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--nproc", type=int, default=2, help="GPUs (processes) per run")
    a = ap.parse_args()
    out = Path(a.out)
    cfg_path = small_world(out / "w")
    raw = yaml.safe_load(cfg_path.read_text())
    raw["compile"] = True
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={a.nproc}",
        "-m",
        "intervene.cli",
        "train",
        "--train-config",
        str(cfg_path),
        "--device",
        "cuda",
    ]

    def torchrun(*args: str) -> None:
        r = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=500)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])

    torchrun("--out", str(out / "orig"), "--stop-after", "40", "--save-interval", "20")
    spec = load_train_config(cfg_path)
    files = InstanceFiles([cfg_path.parent / p for p in spec.paths], spec.dtype, spec.seq_len)
    order = global_indices(files.num_instances, spec.seed, 0, a.nproc, spec.drop_last)
    bdir = out / "batches"
    bdir.mkdir(parents=True, exist_ok=True)
    G = spec.global_batch_size
    for b in range(20, 40):
        np.save(bdir / f"{b}.npy", files.read(np.asarray(order[b * G : (b + 1) * G], dtype=np.int64)))
    (out / "list.txt").write_text("".join(f"batches/{b}.npy\n" for b in range(20, 40)))
    torchrun(
        "--out",
        str(out / "replay"),
        "--load-path",
        str(out / "orig" / "step20"),
        "--data-list",
        str(out / "list.txt"),
    )
    res = compare_checkpoints(out / "orig" / "step40", out / "replay" / "step40", atol=5e-2)

    a, b = run_losses(out / "orig")[20:], run_losses(out / "replay")
    res["max_rel_loss_diff_steps_21_40"] = max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))
    res["loss_first_last"] = [run_losses(out / "orig")[0], run_losses(out / "orig")[-1]]
    # training really moved the weights (a zero-gradient run would replay "exactly" too); NB the
    # comparison covers the optimizer state too, whose step counters differ by 20 anyway
    res["orig_step20_vs_step40_max_abs_diff"] = compare_checkpoints(
        out / "orig" / "step20", out / "orig" / "step40", atol=0.0
    )["max_abs_diff"]
    print("REPLAY", json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
