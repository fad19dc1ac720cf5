"""The OLMo-repo backend: re-runs with the user's checkout of OLMo (the paper's fork).

The paper edits a copy of the official config by hand for every re-run (its README, "Re-running
pretraining"); :func:`rerun_config` makes that copy: ``run_name``, ``load_path``, ``stop_after``,
``max_duration`` (tokens or steps, never epochs: the LR schedule depends on it), ``save_folder``,
``data.paths`` = the modified memmaps in order, and the fork's two flags ``data.shuffle_train:
false`` and ``data.set_start_index: false``. Like the paper's configs it saves every
``save_interval`` steps, keeps one checkpoint and uses OLMo's default (``torch_legacy``) sharded
checkpointer. The commands then train (``torchrun -m scripts.train``), unshard
(``scripts/unshard.py``) and convert to HF (``scripts/convert_olmo2_to_hf.py``) inside the checkout.
"""

from __future__ import annotations

import copy
import os
import shlex
from pathlib import Path

import yaml

from intervene.atomic import write_text


def rerun_config(
    base: dict,
    *,
    run_name: str,
    load_path: str,
    data_paths: list[str],
    stop_after: int,
    save_folder: str,
    max_duration: str | int | None = None,
    save_interval: int | None = None,
) -> dict:
    cfg = copy.deepcopy(base)
    md = base.get("max_duration") if max_duration is None else max_duration
    if md is None or str(md).strip().endswith("ep"):
        raise ValueError(
            f"max_duration {md!r}: a re-run needs the original run's length in tokens (OLMo 2 1B: 4e12T) or "
            "steps (OLMo 2 7B: 928646), not epochs, or the LR schedule changes"
        )
    if not data_paths:
        raise ValueError("a re-run needs at least one data file")
    cfg["run_name"] = run_name
    cfg["load_path"] = str(load_path)
    cfg["stop_after"] = int(stop_after)
    cfg["max_duration"] = md
    cfg["save_folder"] = str(save_folder)
    cfg["save_overwrite"] = True
    cfg["save_interval"] = int(save_interval or stop_after)
    cfg["save_num_checkpoints_to_keep"] = 1
    cfg.pop("sharded_checkpointer", None)  # the paper's configs fall back to OLMo's default
    data = cfg.setdefault("data", {})
    data["paths"] = [str(p) for p in data_paths]
    data["shuffle_train"] = False
    data["set_start_index"] = False
    return cfg


def write_rerun_config(
    base_config: str | os.PathLike, out: str | os.PathLike, *, data_list: str | os.PathLike, **kwargs
) -> dict:
    """Read the user's OLMo config, write the re-run config; data files come from a list file."""
    from intervene.olmo import read_path_list

    base = yaml.safe_load(Path(base_config).read_text())
    paths = [os.path.abspath(p) for p in read_path_list(data_list)]  # OLMo resolves against its CWD
    cfg = rerun_config(base, data_paths=paths, **kwargs)
    write_text(out, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return cfg


def train_command(repo: str, config: str, run_name: str, nproc: int) -> str:
    return (
        f"cd {shlex.quote(repo)} && torchrun --nproc_per_node={int(nproc)} -m scripts.train "
        f"{shlex.quote(os.path.abspath(config))} --run_name={shlex.quote(run_name)}"
    )


def unshard_command(repo: str, sharded: str, out: str) -> str:
    return (
        f"cd {shlex.quote(repo)} && python scripts/unshard.py {shlex.quote(os.path.abspath(sharded))} "
        f"{shlex.quote(os.path.abspath(out))}"
    )


def convert_command(repo: str, unsharded: str, out: str, tokenizer_json: str) -> str:
    return (
        f"cd {shlex.quote(repo)} && python scripts/convert_olmo2_to_hf.py --input_dir "
        f"{shlex.quote(os.path.abspath(unsharded))} --output_dir {shlex.quote(os.path.abspath(out))} "
        f"--tokenizer_json_path {shlex.quote(os.path.abspath(tokenizer_json))}"
    )
