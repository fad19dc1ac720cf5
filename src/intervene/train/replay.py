"""Replay fidelity: a re-run over the *unmodified* batches must reproduce the original run.

On CPU the comparison is bit-for-bit (weights and AdamW moments); on GPU within a tolerance (bf16
autocast and non-deterministic reductions), or bit-for-bit again when the original run was trained
in the deterministic mode (``train.deterministic``, :mod:`intervene.train.determinism`): the replay
then runs in that mode too and must be equal, whatever tolerance was given.

The replay runs as the original did: the same number of processes (launched the same way, e.g.
under torchrun), strategy and micro-batch, all read from the original run's fingerprint. A replay
of a 2-process run on one process sums the gradients in another order; on two H200s that alone
moved weights by 0.0104 over 40 steps, past the demo's 0.01, so it is refused instead of compared.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from intervene.atomic import write_text
from intervene.train.fingerprint import read_fingerprint

log = logging.getLogger("intervene.train")


def run_losses(run_dir: str | os.PathLike, key: str = "ce_loss") -> list[float]:
    """Per-step values of ``key`` from a run's ``metrics.jsonl``."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)[key] for x in lines if x.strip()]


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {f"model.{k}": v for k, v in load_file(str(ckpt / "model.safetensors")).items()}
    optim = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=True)
    for pid, st in optim["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            out[f"optim.{pid}.{name}"] = st[name]
    return out


def compare_checkpoints(
    reference: str | os.PathLike,
    replay: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    atol: float = 0.0,
    deterministic: bool = False,
) -> dict:
    """Weights, AdamW moments and counters of two checkpoints: equal bit for bit when ``atol`` is 0
    or ``deterministic`` (both runs in the deterministic mode), else within ``atol``."""
    if deterministic:
        atol = 0.0
    a, b = _tensors(Path(reference)), _tensors(Path(replay))
    if a.keys() != b.keys():
        raise ValueError(f"{replay}: checkpoint holds other tensors than {reference}")
    max_diff, n_diff = 0.0, 0
    for k in sorted(a):
        x, y = a[k].double(), b[k].double()
        if x.shape != y.shape:
            raise ValueError(f"{replay}: {k} has shape {tuple(y.shape)}, reference {tuple(x.shape)}")
        d = float((x - y).abs().max()) if x.numel() else 0.0
        max_diff = max(max_diff, d)
        n_diff += int(not torch.equal(a[k], b[k]))
    ta = torch.load(Path(reference) / "train.pt", weights_only=False)
    tb = torch.load(Path(replay) / "train.pt", weights_only=False)
    counters = ("global_step", "global_train_tokens_seen")
    result = {
        "reference": str(reference),
        "replay": str(replay),
        "tensors": len(a),
        "tensors_not_bit_identical": n_diff,
        "max_abs_diff": max_diff,
        "atol": atol,
        "deterministic": deterministic,
        "counters_equal": all(ta[c] == tb[c] for c in counters),
    }
    result["passed"] = result["counters_equal"] and (n_diff == 0 if atol == 0 else max_diff <= atol)
    if out is not None:
        write_text(out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def run_execution(run_dir: str | os.PathLike) -> dict:
    """How the run in ``run_dir`` was executed (world size, strategy, device, micro-batch, ...), from
    its fingerprint; empty when it has none."""
    fp = read_fingerprint(run_dir) or {}
    return dict(fp.get("execution") or {})


def replay_execution(original_run: str | os.PathLike, world_size: int) -> dict:
    """The trainer settings a replay of ``original_run`` needs to be the same computation (strategy,
    micro-batch, deterministic mode); refuses a replay on another number of processes, naming the
    launch that matches. An original without a fingerprint replays with the defaults."""
    ex = run_execution(original_run)
    want = int(ex.get("world_size", world_size))
    if want != world_size:
        launch = (
            "intervene replay-check"
            if want == 1
            else f"torchrun --nproc_per_node={want} -m intervene.cli replay-check"
        )
        raise ValueError(
            f"{original_run}: trained on {want} process(es), the replay runs on {world_size};"
            f" launch it as the original ({launch} ...; the workflow's train.nproc/train.nodes)"
        )
    out: dict = {"deterministic": bool(ex.get("deterministic", False))}
    if ex.get("strategy"):
        out["strategy"] = ex["strategy"]
    if ex.get("micro_batch"):
        out["microbatch"] = int(ex["micro_batch"])
    return out


def decoded_batch_files(
    batches_root: str | os.PathLike, first: int, last: int, batches_per_group: int
) -> list[Path]:
    """The decode stage's ``{group}/{b}.npy`` files of batches ``[first, last)``, in order."""
    from intervene.layout import batch_files

    files = batch_files(batches_root, first, last, batches_per_group)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]}: decoded batch missing ({len(missing)} of {len(files)} missing)"
        )
    return files


def group_batch_files(group_dirs: list[str | os.PathLike], first: int, last: int) -> list[Path]:
    """The ``{b}.npy`` files of batches ``[first, last)`` among the decoded group folders, in order.
    The decode stage names each batch by its global number, so the folders a job gets as inputs
    are enough: no grouping arithmetic, no root folder."""
    have: dict[int, Path] = {}
    for d in group_dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: decoded batch group folder not found")
        for p in Path(d).glob("*.npy"):
            if p.stem.isdigit():
                have.setdefault(int(p.stem), p)
    missing = [b for b in range(first, last) if b not in have]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(map(str, group_dirs))}: decoded batch {missing[0]}.npy missing"
            f" ({len(missing)} of the {last - first} batches [{first}, {last}) missing)"
        )
    return [have[b] for b in range(first, last)]


def replay_check(
    train_config: str | os.PathLike,
    original_run: str | os.PathLike,
    from_step: int,
    steps: int,
    batches_root: str | os.PathLike | None,
    batches_per_group: int,
    work_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    atol: float = 0.0,
    device: str | None = None,
    group_dirs: list[str | os.PathLike] | None = None,
) -> dict | None:
    """Re-run ``steps`` steps from the original run's ``step{from_step}`` over the decoded, unmodified
    batches (in ``group_dirs``, else under ``batches_root`` in groups of ``batches_per_group``) and
    compare with its ``step{from_step + steps}``. The replay runs as the original run did (processes,
    strategy, micro-batch, mode; :func:`replay_execution`); when that is the deterministic mode, the
    check demands bit-identity (``atol`` is not used). Under torchrun every process trains and rank 0
    alone compares and writes ``out``; the other ranks return None."""
    from intervene.olmo import write_path_list
    from intervene.train.trainer import train

    orig = Path(original_run)
    work = Path(work_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    execution = replay_execution(orig, world)
    deterministic = execution["deterministic"]
    if deterministic and atol:
        log.info(
            "%s was trained deterministically: the replay must be bit-identical (atol %g unused)", orig, atol
        )
    if group_dirs:
        files = group_batch_files(group_dirs, from_step, from_step + steps)
    else:
        files = decoded_batch_files(batches_root, from_step, from_step + steps, batches_per_group)
    work.mkdir(parents=True, exist_ok=True)
    lst = work / "data_list.txt"
    write_path_list(lst, files)
    train(
        train_config,
        work / "run",
        load_path=orig / f"step{from_step}",
        data_list=lst,
        stop_after=steps,
        save_interval=steps,
        device=device,
        **execution,
    )
    if rank != 0:  # train() ends with a barrier: rank 0 finds every rank's part saved
        return None
    return compare_checkpoints(
        orig / f"step{from_step + steps}",
        work / "run" / f"step{from_step + steps}",
        out,
        atol=atol,
        deterministic=deterministic,
    )
