"""Peak memory of the whole-checkpoint jobs (export-olmo, import-olmo) per parameter, to check the
request of :mod:`intervene.train.checkpoint_memory` (not in ``make bench``).

Builds an OLMo 2-shaped model of the given width (the 1B train config's other settings), takes one
AdamW step so that both moments exist, saves it as our checkpoint, then runs ``intervene
export-olmo`` and ``intervene import-olmo`` on it in their own processes under ``/usr/bin/time
-v``; a model of width 64 gives the processes' baseline. Prints bytes per parameter above it.

    PYTHONPATH=src python -m benchmarks.bench_checkpoint_memory --out DIR [--d-model 768 --layers 6]
"""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(out: Path, d: int, layers: int, vocab: int) -> tuple[Path, int]:
    from intervene.train.checkpoint import save_checkpoint
    from intervene.train.model import build_model
    from intervene.train.optim import build_optimizer

    raw = yaml.safe_load((REPO / "config/olmo2-1b/train_config.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["model"].update(d_model=d, n_layers=layers, n_heads=max(1, d // 64), vocab_size=vocab - 1)
    raw["model"].update(pad_token_id=vocab - 2, eos_token_id=vocab - 3)
    raw["model"].update(embedding_size=vocab, mlp_hidden_size=None, mlp_ratio=8)
    model = build_model(raw, seed=0)
    opt = build_optimizer(model, raw["optimizer"])
    ids = torch.randint(0, vocab - 1, (1, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    state = {"global_step": 1, "global_train_tokens_seen": 16, "global_train_examples_seen_this_epoch": 1}
    state.update(epoch=0, world_size=1, run_start_step=0)
    path = save_checkpoint(out / f"ours_d{d}" / "step1", model, opt, state, raw)
    return path, n


def peak_rss_mb(argv: list[str]) -> float:
    r = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(argv)} failed: {r.stderr[-2000:]}")
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024


def measure(out: Path, d: int, layers: int, vocab: int) -> tuple[int, float, float]:
    ckpt, n = make_checkpoint(out, d, layers, vocab)
    exported = out / f"olmo_d{d}" / "step1-unsharded"
    cli = [sys.executable, "-m", "intervene.cli"]
    export = peak_rss_mb([*cli, "export-olmo", "--checkpoint", str(ckpt), "--out", str(exported)])
    imported = out / f"back_d{d}" / "step1"
    imp = peak_rss_mb([*cli, "import-olmo", "--olmo-dir", str(exported), "--out", str(imported)])
    return n, export, imp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=50304)
    a = ap.parse_args()
    out = Path(a.out)
    n0, e0, i0 = measure(out, 64, 1, 512)
    n, e, i = measure(out, a.d_model, a.layers, a.vocab)
    print(f"baseline (width 64, {n0:,} parameters): export {e0:.0f} MB, import {i0:.0f} MB")
    print(f"model ({n:,} parameters): export {e:.0f} MB, import {i:.0f} MB")
    for name, peak, base in (("export-olmo", e, e0), ("import-olmo", i, i0)):
        print(f"{name}: {(peak - base) * 2**20 / (n - n0):.1f} bytes per parameter above the baseline")


if __name__ == "__main__":
    main()
