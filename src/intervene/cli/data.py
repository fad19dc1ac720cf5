"""Subcommands of data: the toy world, downloads, the data order, decoded batches and their doc info, ParaRel."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from intervene.cli.common import OUT, log
from intervene.cli_build import Command, arg, call, command, opt
from intervene.cli_types import batch_range, below, positive_int
from intervene.settings import DataConfig, DecodeConfig, DownloadConfig


def _cmd_world(a: argparse.Namespace) -> None:
    import yaml

    from intervene.world.build import build_world

    spec = {}
    if a.config:
        spec = (yaml.safe_load(Path(a.config).read_text()) or {}).get("world", {})
    if a.spec_json:
        spec = json.loads(a.spec_json)
    for kv in a.set or []:
        k, _, v = kv.partition("=")
        spec[k] = yaml.safe_load(v)
    summary = build_world(a.out, spec)
    log.info("world: %s", json.dumps({k: v for k, v in summary.items() if k != "spec"}))


def _cmd_download(a: argparse.Namespace) -> None:
    from intervene.download import download_train_config

    download_train_config(
        a.train_config,
        a.root,
        a.out_config,
        shard=a.shard,
        num_shards=a.num_shards,
        workers=a.workers,
        manifest=a.manifest,
        progress=not a.quiet,
    )


def _cmd_data_order(a: argparse.Namespace) -> None:
    from intervene.data_order import build_data_order

    order = build_data_order(a.train_config, a.out, a.manifest, world_size=a.world_size, loader=a.loader)
    log.info("data order: %d instances -> %s", len(order), a.out)


def _cmd_decode(a: argparse.Namespace) -> None:
    from intervene.decode import decode_group, group_batches

    if a.batches:
        batches = a.batches  # a range (cli_types.batch_range)
    else:
        batches = group_batches(a.group - 1, a.batches_per_group, a.first_batch, a.last_batch)
    decode_group(
        a.train_config,
        a.order,
        a.tokenizer,
        a.out,
        batches,
        manifest=a.manifest,
        world_size=a.world_size,
        keep_tokens=not a.text_only,
        write_text=not a.tokens_only,
        progress=not a.quiet,
    )


def _cmd_doc_info(a: argparse.Namespace) -> None:
    from intervene.doc_info import write_group_doc_info

    rows = write_group_doc_info(a.group_dir, a.tokenizer, a.out, check_text=a.check_text)
    log.info(
        "doc info: %d rows -> %s%s", len(rows), a.out, " (checked against the text)" if a.check_text else ""
    )


COMMANDS: tuple[Command, ...] = (
    command(
        "world",
        "generate the built-in toy world (corpus, tokenizer, eval items)",
        _cmd_world,
        "toy world | results/world/train_config.yaml | intervene.world.build.build_world",
        arg("--out", required=True, help="output folder"),
        arg("--config", help="pipeline config YAML whose `world:` section to use"),
        arg("--spec-json", help="world parameters as a JSON object (overrides --config)"),
        arg("--set", action="append", metavar="KEY=VALUE", help="override one world parameter"),
    ),
    command(
        "download",
        "download a train config's data files (one shard of them)",
        _cmd_download,
        "download (URL data) | resources/manifests/shard_{i}.tsv | intervene.download.download_train_config",
        arg("--train-config", required=True, help="OLMo train YAML whose data.paths are URLs"),
        arg(
            "--root",
            required=True,
            help="local mirror root (files go to ROOT/<host>/<path>)",
            key=(DownloadConfig, "root"),
        ),
        opt(DownloadConfig, "shard"),
        opt(DownloadConfig, "num_shards"),
        opt(DownloadConfig, "workers"),
        arg("--manifest", help="write url/path/bytes TSV of this shard here"),
        arg("--out-config", help="also write the train config with local paths here"),
        arg("--quiet", action="store_true"),
        checks=(
            (lambda a: a.shard < a.num_shards, "--shard must be below --num-shards (shards are 0-based)"),
        ),
    ),
    command(
        "localize",
        "rewrite a train config's URL paths to the local mirror",
        call("intervene.download:localize_train_config", "train_config", "root", "out"),
        "localize config | results/data/train_config.local.yaml | intervene.download.localize_train_config",
        arg("--train-config", required=True),
        arg("--root", required=True),
        OUT,
    ),
    command(
        "pararel",
        "split the hub ParaRel dataset into the 12 relation datasets and their term files",
        call(
            "intervene.pararel_source:build_pararel",
            "source",
            "data_dir",
            "terms_dir",
            templates="templates",
            questions="questions",
            log_as="pararel",
        ),
        "pararel (eval.pararel_hub) | eval.sources.pararel, match.terms_dir | intervene.pararel_source.build_pararel",
        arg(
            "--source",
            required=True,
            help="coastalcph/pararel_patterns or a local copy (save_to_disk, parquet, jsonl)",
        ),
        arg("--data-dir", required=True, help="folder for the pararel_patterns_{rel} datasets"),
        arg("--terms-dir", required=True, help="folder for the pararel_patterns_{rel}_train.txt term files"),
        arg("--templates", help="relation-to-template JSON (default: the paper's)"),
        arg("--questions", help="relation-to-question JSON, [X] = subject (default: the paper's)"),
    ),
    command(
        "data-order",
        "build OLMo's global_indices.npy from the files' sizes",
        _cmd_data_order,
        "data order | results/data/global_indices.npy | intervene.data_order.build_data_order",
        arg("--train-config", required=True),
        arg("--out", required=True, help="global_indices.npy (raw uint32)"),
        arg("--manifest", required=True, help="TSV of the files and sizes the order was built for"),
        opt(DataConfig, "world_size"),
        opt(DataConfig, "loader"),
    ),
    command(
        "decode",
        "write one batch group as token arrays and text",
        _cmd_decode,
        "decode | results/data/batches/{group} | intervene.decode.decode_group",
        arg("--train-config", required=True),
        arg("--order", required=True, help="global_indices.npy"),
        arg("--manifest", help="data-order manifest (checks the files did not change)"),
        arg("--tokenizer", required=True, help="HF tokenizer folder"),
        arg("--out", required=True, help="group folder to write"),
        arg("--group", type=positive_int, help="1-based group number (folder 001 is group 1)"),
        opt(DecodeConfig, "batches_per_group"),
        opt(DecodeConfig, "first_batch"),
        opt(DecodeConfig, "last_batch"),
        arg("--batches", type=batch_range, help="explicit range START:END instead of --group"),
        opt(DataConfig, "world_size"),
        arg("--tokens-only", action="store_true"),
        arg("--text-only", action="store_true"),
        arg("--quiet", action="store_true"),
        checks=(
            (below("first_batch", "last_batch"), "--first-batch must be below --last-batch"),
            (lambda a: a.batches is not None or a.group is not None, "give --group or --batches"),
        ),
    ),
    command(
        "doc-info",
        "locate every document of a decoded batch group",
        _cmd_doc_info,
        "doc info | results/data/doc_info/{group}.npy | intervene.doc_info.write_group_doc_info",
        arg("--group-dir", required=True, help="folder of {b}.npy token batches"),
        arg("--tokenizer", required=True),
        arg("--out", required=True, help="doc info .npy (int64 [n, 4])"),
        arg("--check-text", action="store_true", help="verify rows line up with {b}.json.gz lines"),
    ),
)
