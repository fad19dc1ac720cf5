"""Subcommands of training: the built-in trainer, the replay check, OLMo / OLMo-core checkpoints and the fork's inputs."""

from __future__ import annotations

import argparse
import json

from intervene.cli.common import OUT, log
from intervene.cli_build import Command, arg, call, command, opt
from intervene.cli_types import below, nonneg_int, positive_int
from intervene.settings import DataConfig, DecodeConfig, ReplayCheckConfig, TrainConfig


def _cmd_train(a: argparse.Namespace) -> None:
    from intervene.train.trainer import train

    log.info("train: %s", json.dumps(train(a.train_config, a.out, TrainConfig.from_namespace(a))))


def _cmd_replay_check(a: argparse.Namespace) -> None:
    from intervene.train.replay import compare_checkpoints, replay_check

    if a.original:
        result = replay_check(
            a.train_config,
            a.original,
            a.from_step,
            a.steps,
            a.batches_root,
            a.batches_per_group,
            a.work,
            a.out,
            atol=a.atol,
            device=a.device,
            group_dirs=a.group_dirs,
        )
    else:
        result = compare_checkpoints(a.reference, a.replay, a.out, atol=a.atol)
    if result is None:  # a rank other than 0 under torchrun: rank 0 compares and reports
        return
    log.info("replay check: %s", json.dumps(result))
    if not result["passed"]:
        raise ValueError(
            f"{a.out}: the replay differs from the original run (max |diff| {result['max_abs_diff']})"
        )


def _cmd_import_olmo(a: argparse.Namespace) -> None:
    from intervene.train.olmo_import import import_olmo_checkpoint

    out = import_olmo_checkpoint(a.olmo_dir, a.out, a.train_config)
    log.info("imported %s -> %s", a.olmo_dir, out)


def _cmd_export_olmo(a: argparse.Namespace) -> None:
    from intervene.train.olmo_export import export_olmo_checkpoint

    out = export_olmo_checkpoint(a.checkpoint, a.out, a.train_config)
    log.info("exported %s -> %s", a.checkpoint, out)


def _cmd_olmo_config(a: argparse.Namespace) -> None:
    from intervene.train.olmo_backend import write_rerun_config

    write_rerun_config(
        a.base_config,
        a.out,
        data_list=a.data_list,
        run_name=a.run_name,
        load_path=a.load_path,
        stop_after=a.stop_after,
        save_folder=a.save_folder,
        max_duration=a.max_duration,
    )
    log.info("OLMo re-run config -> %s", a.out)


def _cmd_batch_list(a: argparse.Namespace) -> None:
    from intervene.olmo import write_path_list
    from intervene.train.replay import decoded_batch_files, group_batch_files

    if a.group_dirs:
        files = group_batch_files(a.group_dirs, a.first, a.last)
    elif a.batches_root:
        files = decoded_batch_files(a.batches_root, a.first, a.last, a.batches_per_group)
    else:
        raise ValueError("batch-list: give --group-dirs (or --batches-root with --batches-per-group)")
    write_path_list(a.out, files)
    log.info("%d batch files -> %s", len(files), a.out)


def _cmd_fetch_checkpoint(a: argparse.Namespace) -> None:
    from intervene.train.released import fetch_olmo_core, fetch_unsharded

    fetch = fetch_olmo_core if a.loader == "olmo_core" else fetch_unsharded
    log.info("fetched %s -> %s", a.url, fetch(a.url, a.out))


def _cmd_import_olmo_core(a: argparse.Namespace) -> None:
    from intervene.train.olmo_core_import import import_olmo_core_checkpoint

    out = import_olmo_core_checkpoint(
        a.checkpoint, a.out, a.train_config, skip_step_as_adamw=a.skip_step_as_adamw
    )
    log.info("imported %s -> %s", a.checkpoint, out)


COMMANDS: tuple[Command, ...] = (
    command(
        "train",
        "pretrain (original run or re-run); launch with torchrun for several processes",
        _cmd_train,
        "original run (toy), re-run r of an intervention or a control | results/train/original/summary.json, results/reruns/{run}/run{r}/summary.json | intervene.train.trainer.train",
        arg("--train-config", required=True, help="OLMo train YAML"),
        arg(
            "--out",
            required=True,
            help="run folder (step{N}/ checkpoints, metrics.jsonl, fingerprint.json); resumes only a"
            " run of the same fingerprint, else starts fresh",
        ),
        opt(TrainConfig, "load_path"),
        opt(TrainConfig, "data_list"),
        opt(TrainConfig, "order_path", "--order"),
        opt(TrainConfig, "manifest"),
        opt(TrainConfig, "stop_after"),
        opt(TrainConfig, "save_interval"),
        opt(TrainConfig, "seed"),
        opt(TrainConfig, "order_seed"),
        opt(TrainConfig, "strategy"),
        opt(TrainConfig, "device"),
        opt(TrainConfig, "microbatch"),
        opt(TrainConfig, "tokenizer_dir", "--tokenizer"),
        opt(TrainConfig, "deterministic"),
    ),
    command(
        "replay-check",
        "re-run the unmodified batches and compare with the original run",
        _cmd_replay_check,
        "replay check | results/train/replay_check.json | intervene.train.replay.replay_check",
        arg("--out", required=True, help="JSON report"),
        opt(ReplayCheckConfig, "atol"),
        arg("--train-config", group="replay and compare"),
        arg(
            "--original",
            group="replay and compare",
            help="the original run's folder (step{N}/ checkpoints)",
        ),
        opt(ReplayCheckConfig, "from_step", group="replay and compare"),
        opt(ReplayCheckConfig, "steps", group="replay and compare"),
        arg(
            "--group-dirs",
            nargs="+",
            group="replay and compare",
            help="the decoded group folders holding the batches (instead of --batches-root)",
        ),
        arg(
            "--batches-root",
            group="replay and compare",
            help="decoded batch groups (results/data/batches)",
        ),
        opt(DecodeConfig, "batches_per_group", group="replay and compare"),
        arg("--work", group="replay and compare", help="folder for the replay run"),
        opt(TrainConfig, "device", group="replay and compare"),
        arg(
            "--reference",
            group="or only compare two checkpoints",
            help="original run's checkpoint step{c+k}",
        ),
        arg("--replay", group="or only compare two checkpoints", help="replay's checkpoint step{c+k}"),
    ),
    command(
        "fetch-checkpoint",
        "download a released OLMo unsharded checkpoint folder",
        _cmd_fetch_checkpoint,
        "released checkpoint (fetch) | resources/checkpoints/step{N}-unsharded | intervene.train.released.fetch_unsharded",
        arg(
            "--url",
            required=True,
            help=".../stepN-unsharded/ (config.yaml, model.pt, optim.pt, train.pt); olmo_core: .../stepN/",
        ),
        opt(
            DataConfig,
            "loader",
            "--format",
            help="the run's trainer (data.loader): olmo_core: an OLMo-core checkpoint folder"
            " (model_and_optim/ DCP files, train/rank0.pt)",
        ),
        OUT,
    ),
    command(
        "import-olmo",
        "import an OLMo unsharded checkpoint (model, optimizer, counters)",
        _cmd_import_olmo,
        "OLMo checkpoint import (released checkpoints: with `train.released`) | results/train/original/step{N} | intervene.train.olmo_import.import_olmo_checkpoint",
        arg("--olmo-dir", required=True, help="stepN-unsharded/ with model.pt, optim.pt, train.pt"),
        arg("--out", required=True, help="our checkpoint folder (e.g. RUN/stepN)"),
        arg(
            "--train-config",
            help="train YAML for the model shape (default: the checkpoint's config.yaml)",
        ),
    ),
    command(
        "memmap",
        "rewritten batches as OLMo raw uint32 memmaps, with their path list",
        call("intervene.swap:write_memmaps", "batches_dir", "out_dir", log_as="memmap"),
        "OLMo memmaps of a rewritten window | results/interventions/{name}/memmap | intervene.swap.write_memmaps",
        arg("--batches-dir", required=True, help="a swap's output folder (with data_list.txt)"),
        arg("--out-dir", required=True),
    ),
    command(
        "batch-list",
        "list decoded batches [first, last) in order (a control re-run's data)",
        _cmd_batch_list,
        "control batch list | results/reruns/control_{first}_{last}/data_list.txt | intervene.train.replay.decoded_batch_files",
        arg("--group-dirs", nargs="+", help="the decoded group folders holding the batches"),
        arg("--batches-root", help="decoded batch groups (results/data/batches), instead of --group-dirs"),
        arg("--first", type=nonneg_int, required=True),
        arg("--last", type=positive_int, required=True),
        opt(DecodeConfig, "batches_per_group"),
        OUT,
        checks=((below("first", "last"), "--first must be below --last (batches [first, last))"),),
    ),
    command(
        "olmo-config",
        "write the OLMo (paper's fork) config of a re-run",
        _cmd_olmo_config,
        "OLMo-repo re-run (train.backend: olmo) | results/olmo/{run}/run{r}/hf | intervene.train.olmo_backend.write_rerun_config",
        arg(
            "--base-config",
            required=True,
            help="the original run's OLMo config (e.g. OLMo2-1B-stage1.yaml)",
        ),
        arg("--data-list", required=True, help="file listing the window's raw token memmaps in batch order"),
        arg("--run-name", required=True),
        arg("--load-path", required=True, help="the window's first checkpoint (OLMo's stepN-unsharded)"),
        arg("--stop-after", type=positive_int, required=True, help="steps to re-run: the window's length"),
        arg("--save-folder", required=True),
        arg("--max-duration", help="override: tokens ('4e12T') or steps of the original run"),
        OUT,
    ),
    command(
        "export-olmo",
        "export our checkpoint as an OLMo unsharded checkpoint (model, optimizer, counters)",
        _cmd_export_olmo,
        "a start checkpoint for the OLMo fork (train.backend: olmo) | stepN-unsharded/ | intervene.train.olmo_export.export_olmo_checkpoint",
        arg("--checkpoint", required=True, help="our checkpoint (e.g. results/train/original/step{N})"),
        arg("--out", required=True, help="the OLMo folder to write; its name ends in -unsharded"),
        arg("--train-config", help="train YAML (default: the checkpoint's config.yaml)"),
    ),
    command(
        "import-olmo-core",
        "import an OLMo-core checkpoint (model, AdamW state, counters)",
        _cmd_import_olmo_core,
        "OLMo-core checkpoint import | RUN/step{N} | intervene.train.olmo_core_import.import_olmo_core_checkpoint",
        arg("--checkpoint", required=True, help="OLMo-core stepN/ (model_and_optim/, train/rank0.pt)"),
        arg("--out", required=True, help="our checkpoint folder (e.g. RUN/stepN)"),
        arg("--train-config", help="the run's OLMo-core config (default: the checkpoint's config.json)"),
        arg(
            "--skip-step-as-adamw",
            action="store_true",
            help="import a SkipStepAdamW run's state as AdamW's (our trainer never skips a step)",
        ),
    ),
)
