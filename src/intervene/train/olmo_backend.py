"""The OLMo-repo backend (``train.backend: olmo``): re-runs with the user's checkout of the paper's
fork of OLMo (rahuln/OLMo, branch mod-pretrain) instead of this package's trainer.

The paper edits a copy of the official config by hand for every re-run (its README, "Re-running
pretraining"); :func:`rerun_config` makes that copy for one run of one window [first, last):
``load_path`` = the original run's unsharded checkpoint at ``first``, ``stop_after`` = the window's
length, ``max_duration`` in tokens or steps (never epochs: the LR schedule depends on it),
``data.paths`` = the window's raw token memmaps in batch order, and the fork's two flags
``data.shuffle_train: false`` (read the files in order) and ``data.set_start_index: false`` (from
instance 0, not from ``first x batch size``). Facts from the fork's ``olmo/config.py``,
``olmo/train.py`` (``Trainer.fit``, ``_save_checkpoint``) and ``scripts/train.py``.

Unlike the paper (sharded checkpoints, then a second ``--force_save_unsharded --dry_run`` launch to
unshard) the config saves only one unsharded checkpoint, ``{save_folder}/step{last}-unsharded``:
``save_interval_unsharded`` = the window length (the fork also saves one at the end of ``fit``),
no sharded or ephemeral checkpoints. ``scripts/convert_olmo2_to_hf.py`` then reads it directly.
"""

from __future__ import annotations

import copy
import os
import shlex

import numpy as np
import yaml

from intervene.atomic import write_text

#: The first bytes of a .npy file (numpy's format header). OLMo reads its data files as raw
#: memmaps: a header would be read as tokens and shift every instance.
NPY_MAGIC = b"\x93NUMPY"
#: The dtype of the memmaps this package writes (rule `memmap`, intervene.swap.write_memmaps).
MEMMAP_DTYPE = "uint32"


def _is_url(p: str) -> bool:
    return "://" in str(p)


def _local(p: str) -> str:
    """An absolute path (the fork runs inside its checkout), URLs unchanged."""
    return str(p) if _is_url(p) else os.path.abspath(p)


def rerun_config(
    base: dict,
    *,
    run_name: str,
    load_path: str,
    data_paths: list[str],
    stop_after: int,
    save_folder: str,
    max_duration: str | int | None = None,
) -> dict:
    """The fork's config of one re-run: ``base`` (the original run's OLMo config) with the
    re-run's settings; everything else (model, optimizer, schedule, batch, seed, instance filter,
    dtype) unchanged."""
    cfg = copy.deepcopy(base)
    md = base.get("max_duration") if max_duration is None else max_duration
    if md is None or str(md).strip().endswith("ep"):
        raise ValueError(
            f"max_duration {md!r}: a re-run needs the original run's length in tokens (OLMo 2 1B: 4e12T) or "
            "steps (OLMo 2 7B: 928646), not epochs, or the LR schedule changes (set train.olmo.max_duration)"
        )
    if not data_paths:
        raise ValueError("a re-run needs at least one data file")
    if not str(load_path).rstrip("/").endswith("-unsharded"):
        # the fork restores a path ending in -unsharded as unsharded, anything else as sharded
        raise ValueError(f"load_path {load_path!r}: an OLMo unsharded checkpoint folder ends in -unsharded")
    steps = int(stop_after)
    cfg["run_name"] = run_name
    cfg["load_path"] = str(load_path)
    # the counters (step, tokens seen: the LR) and the optimizer state come from the checkpoint
    cfg["restore_dataloader"] = True
    cfg["reset_optimizer_state"] = False
    cfg["reset_trainer_state"] = False
    cfg["try_load_latest_save"] = False
    cfg["stop_at"] = None  # fit() stops at the loaded step + stop_after
    cfg["stop_after"] = steps
    cfg["max_duration"] = md
    cfg["save_folder"] = str(save_folder)
    cfg["save_overwrite"] = True
    # one unsharded checkpoint, step{last}-unsharded; no sharded or ephemeral ones
    cfg["save_interval_unsharded"] = steps
    cfg["save_num_unsharded_checkpoints_to_keep"] = 1
    cfg["save_num_checkpoints_to_keep"] = 0
    cfg["save_interval_ephemeral"] = None
    cfg.pop("sharded_checkpointer", None)  # the paper's configs fall back to OLMo's default
    data = cfg.setdefault("data", {})
    data["paths"] = [str(p) for p in data_paths]
    data["shuffle_train"] = False
    data["set_start_index"] = False
    return cfg


def check_data_files(paths: list[str], *, dtype: str, seq_len: int, batch_size: int, steps: int) -> None:
    """Refuse data the fork would read wrongly with exit 0: a .npy header (read as tokens), a file
    that is not exactly one batch (step i must read file i), or fewer/more files than steps."""
    from intervene.olmo import DataError

    if len(paths) != steps:
        raise DataError(f"the data list names {len(paths)} batch files; the window has {steps} steps")
    want = batch_size * seq_len * np.dtype(dtype).itemsize
    for p in paths:
        try:
            with open(p, "rb") as f:
                head = f.read(len(NPY_MAGIC))
            size = os.path.getsize(p)
        except FileNotFoundError:
            raise DataError(f"{p}: data file not found") from None
        if head == NPY_MAGIC:
            raise DataError(f"{p}: a .npy file with a header; OLMo reads raw token memmaps (rule memmap)")
        if size != want:
            raise DataError(
                f"{p}: {size} bytes, expected one batch of {batch_size} x {seq_len} {dtype} tokens ({want} bytes)"
            )


def write_rerun_config(
    base_config: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data_list: str | os.PathLike,
    run_name: str,
    load_path: str,
    stop_after: int,
    save_folder: str,
    max_duration: str | int | None = None,
) -> dict:
    """Read the original run's OLMo config, check the re-run's raw memmaps (listed in order in
    ``data_list``) against it, write the re-run's config. Paths become absolute: the fork runs in
    its checkout."""
    from intervene.olmo import DataError, load_train_config, read_path_list

    spec = load_train_config(base_config)
    if np.dtype(spec.dtype) != np.dtype(MEMMAP_DTYPE):
        raise DataError(
            f"{base_config}: data.memmap_dtype is {spec.dtype}; the re-run's memmaps hold {MEMMAP_DTYPE} tokens"
        )
    paths = [os.path.abspath(p) for p in read_path_list(data_list)]
    check_data_files(
        paths, dtype=spec.dtype, seq_len=spec.seq_len, batch_size=spec.global_batch_size, steps=stop_after
    )
    cfg = rerun_config(
        spec.raw,
        run_name=run_name,
        load_path=_local(load_path),
        data_paths=paths,
        stop_after=stop_after,
        save_folder=_local(save_folder),
        max_duration=max_duration,
    )
    write_text(out, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return cfg


def final_checkpoint(save_folder: str, last: int) -> str:
    """The unsharded checkpoint a re-run of window [first, last) ends with (the fork names it by
    its global step, restored from the start checkpoint and advanced by stop_after)."""
    return os.path.join(save_folder, f"step{int(last)}-unsharded")


def train_command(repo: str, config: str, run_name: str, nproc: int) -> str:
    """The paper's launch: ``torchrun -m scripts.train CONFIG --run_name=NAME`` in the checkout."""
    return (
        f"cd {shlex.quote(repo)} && torchrun --nproc_per_node={int(nproc)} -m scripts.train "
        f"{shlex.quote(os.path.abspath(config))} --run_name={shlex.quote(run_name)}"
    )


def convert_command(repo: str, unsharded: str, out: str, tokenizer_json: str) -> str:
    """The fork's HF conversion of an unsharded checkpoint (reads its config.yaml and model.pt);
    a run that stopped before the window's end has no such checkpoint: say so and fail."""
    ckpt = shlex.quote(os.path.abspath(unsharded))
    missing = shlex.quote(f"{unsharded}/model.pt: not written; the OLMo run did not reach the window's end")
    return (
        f"if [ ! -f {ckpt}/model.pt ]; then echo {missing} >&2; exit 1; fi; "
        f"cd {shlex.quote(repo)} && python scripts/convert_olmo2_to_hf.py --input_dir {ckpt} "
        f"--output_dir {shlex.quote(os.path.abspath(out))} "
        f"--tokenizer_json_path {shlex.quote(os.path.abspath(tokenizer_json))}"
    )


def checkpoint_template_problem(template: str) -> str | None:
    """Why a ``train.olmo.checkpoints`` template cannot name the windows' start checkpoints (None
    when it can)."""
    if "{step}" not in template:
        return "needs {step} (the window's first step)"
    if not template.rstrip("/").endswith("-unsharded"):
        return "must end in -unsharded (the fork restores other paths as sharded checkpoints)"
    return None
