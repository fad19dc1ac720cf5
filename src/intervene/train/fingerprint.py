"""What defines a training run, so that a run folder resumes only from its own checkpoints.

A run folder (``out_dir`` of :func:`intervene.train.trainer.train`) holds ``fingerprint.json``,
written before its first checkpoint. It records everything that decides the bytes of a checkpoint
at step N:

- ``format``: :data:`TRAINER_FORMAT`, bumped whenever a trainer change alters what step N holds;
- ``config``: the train config, less the keys that only say where, how often or how long to save
  and log (:data:`IGNORED_CONFIG_KEYS`; ``data.paths`` is covered by ``data``);
- ``data``: every token or batch file read, in order, by path (relative to the run folder) and
  content identity (:func:`file_identity`);
- ``order``: the original run's order file (identity) or the seed it is computed from; a re-run's
  ``order_seed``;
- ``init``: the initialisation seed of a run from scratch, or the identity of the checkpoint a run
  starts from (``--load-path``: its ``model.safetensors``, ``optim.pt`` and ``train.pt``);
- ``execution``: world size, strategy, device and micro-batch size (each changes the float
  summation order, hence the bytes), and ``deterministic: true`` for a run in the deterministic GPU
  mode (:mod:`intervene.train.determinism`; absent when off, so that the fingerprints of runs made
  before the mode existed still match): a run never resumes under the other mode.

Paths are stored relative to the run folder, so a results tree that moves as a whole (or a copy of
the working directory) keeps its fingerprints. ``stop_at``/``--stop-after`` and the save interval are
not part of it: they decide where a run ends, not what its steps compute, so a run can be extended.
The torch version is not part of it either: a resumed run after an upgrade is a valid run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from intervene.atomic import remove_stale_temporaries, write_text

log = logging.getLogger("intervene.train")

#: Bump when a trainer change makes step N of the same inputs hold other bytes.
TRAINER_FORMAT = 1
FINGERPRINT_FILE = "fingerprint.json"
#: Files up to this size are hashed whole: every decoded batch of OLMo 2 (1024 x 4096 uint32 tokens
#: = 16 MiB) and every file of the toy world. Above it (corpus token files of GBs, order files,
#: a 7B checkpoint's weights and moments) the size and three 1 MiB blocks (start, middle, end) are
#: hashed: a different download, tokenisation, seed or checkpoint changes them, while hashing a
#: stage-1 corpus whole (TBs) at every start would cost more than the training it guards.
FULL_HASH_MAX_BYTES = 64 << 20
SAMPLE_BLOCK_BYTES = 1 << 20
#: Train-config keys that do not change what a step computes (where/how often/how long to save and
#: log), and the data paths (the ``data`` entry covers what is read).
IGNORED_CONFIG_KEYS = frozenset(
    {
        "run_name",
        "save_folder",
        "remote_save_folder",
        "save_overwrite",
        "save_interval",
        "save_interval_unsharded",
        "save_interval_ephemeral",
        "save_num_checkpoints_to_keep",
        "save_num_unsharded_checkpoints_to_keep",
        "stop_at",
        "stop_after",
        "load_path",
        "wandb",
        "console_log_interval",
        "speed_monitor",
        "eval_interval",
        "evaluators",
        "time_limit",
        "tokenizer",
    }
)
IGNORED_DATA_KEYS = frozenset({"paths", "datasets", "num_workers", "prefetch_factor", "persistent_workers"})
#: The checkpoint files a run started with ``--load-path`` reads.
CHECKPOINT_FILES = ("model.safetensors", "optim.pt", "train.pt")
_STEP_DIR = re.compile(r"^step\d+$")
#: What the trainer writes into a run folder besides ``step{N}/`` (removed with them when stale).
RUN_FILES = ("metrics.jsonl", "summary.json")


def _rel(path: str | os.PathLike, base: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base))


def file_identity(path: str | os.PathLike, base: str | os.PathLike) -> dict:
    """``{"path", "bytes", "sha256"}`` of a file (whole file up to :data:`FULL_HASH_MAX_BYTES`), or
    ``"sha256_sampled"`` (size and three :data:`SAMPLE_BLOCK_BYTES` blocks) for a larger one."""
    p = Path(path)
    size = p.stat().st_size
    ident: dict = {"path": _rel(p, Path(base)), "bytes": size}
    with open(p, "rb") as fh:
        if size <= FULL_HASH_MAX_BYTES:
            h = hashlib.sha256()
            while chunk := fh.read(SAMPLE_BLOCK_BYTES):
                h.update(chunk)
            ident["sha256"] = h.hexdigest()
        else:
            h = hashlib.sha256(size.to_bytes(8, "little"))
            for offset in (0, (size - SAMPLE_BLOCK_BYTES) // 2, size - SAMPLE_BLOCK_BYTES):
                fh.seek(offset)
                h.update(fh.read(SAMPLE_BLOCK_BYTES))
            ident["sha256_sampled"] = h.hexdigest()
    return ident


def checkpoint_identity(path: str | os.PathLike, base: str | os.PathLike) -> dict:
    """The identity of a checkpoint folder a run starts from: the files the trainer loads."""
    p = Path(path)
    return {
        "path": _rel(p, Path(base)),
        "files": {n: file_identity(p / n, p) for n in CHECKPOINT_FILES if (p / n).exists()},
    }


def config_section(raw: dict) -> dict:
    """The train config less :data:`IGNORED_CONFIG_KEYS` (and ``data``'s :data:`IGNORED_DATA_KEYS`)."""
    out = {k: v for k, v in raw.items() if k not in IGNORED_CONFIG_KEYS}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in IGNORED_DATA_KEYS}
    return out


def run_fingerprint(
    run_dir: str | os.PathLike,
    *,
    raw: dict,
    data_files: list[str | os.PathLike],
    order: dict,
    init_seed: int,
    load_path: str | os.PathLike | None,
    execution: dict,
) -> dict:
    """The fingerprint of a run in ``run_dir`` (see the module docstring for what each entry covers)."""
    base = Path(run_dir)
    init = {"seed": init_seed} if load_path is None else {"checkpoint": checkpoint_identity(load_path, base)}
    fp = {
        "format": TRAINER_FORMAT,
        "config": config_section(raw),
        "data": [file_identity(f, base) for f in data_files],
        "order": order,
        "init": init,
        "execution": execution,
    }
    # one JSON round trip: tuples become lists, keys strings, as they will be read back
    return json.loads(json.dumps(fp, sort_keys=True, default=str))


def differences(old, new, prefix: str = "") -> list[str]:
    """Dotted keys where two fingerprints differ (``data[3].sha256``, ``order.order_seed``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(key)
            else:
                out += differences(old[k], new[k], key)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{prefix} ({len(new)} entries, were {len(old)})"]
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += differences(a, b, f"{prefix}[{i}]")
        return out
    return [] if old == new else [prefix or "fingerprint"]


def read_fingerprint(run_dir: str | os.PathLike) -> dict | None:
    """The stored fingerprint, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(run_dir) / FINGERPRINT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def run_outputs(run_dir: Path) -> list[Path]:
    """What a trainer left in ``run_dir``: checkpoints and its files (not the fingerprint)."""
    if not run_dir.is_dir():
        return []
    steps = [p for p in run_dir.iterdir() if _STEP_DIR.match(p.name) and p.is_dir()]
    return sorted(steps) + [run_dir / n for n in RUN_FILES if (run_dir / n).exists()]


def claim_run_dir(run_dir: str | os.PathLike, fingerprint: dict) -> list[str]:
    """Make ``run_dir`` a folder of this run: keep what it holds when its fingerprint equals
    ``fingerprint``; otherwise remove the trainer's outputs (checkpoints, metrics, summary), say what
    differed, and record the new fingerprint. Returns the differing keys (empty: resumable as is)."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(d, recursive=False)
    stored = read_fingerprint(d)
    outputs = run_outputs(d)
    if stored == fingerprint:
        return []
    if stored is None:
        diff = ["no fingerprint.json"] if outputs else []
    else:
        diff = differences(stored, fingerprint)
    if outputs:
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        log.warning(
            "%s: outputs of another configuration (%s); starting fresh, removing %s",
            d,
            shown,
            ", ".join(p.name for p in outputs),
        )
        for p in outputs:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    write_text(d / FINGERPRINT_FILE, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    return diff
