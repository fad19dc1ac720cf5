"""Subcommands of tools: output verification and comparison, the config check, the plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from intervene.cli.common import _merged, log
from intervene.cli_build import Command, arg, call, command


def _cmd_verify(a: argparse.Namespace) -> None:
    from intervene.manifest import verify_data_files, verify_manifest

    if not a.folders and not a.data_files:
        raise ValueError("verify: give folders (decoded groups, swap or memmap outputs) or --data-files")
    for d in a.folders:
        r = verify_manifest(d, hash=not a.sizes_only, required=True)
        what = "sizes" if a.sizes_only else f"sizes and {r['hash']}"
        log.info("%s: %d files, %d bytes: %s match its manifest.tsv", d, r["files"], r["bytes"], what)
    if a.data_files:
        r = verify_data_files(a.data_files)
        log.info("%s: %d token files, %d bytes: sizes match", a.data_files, r["files"], r["bytes"])


def _cmd_digest_results(a: argparse.Namespace) -> None:
    from intervene.compare_results import digest_tree, format_digest

    sys.stdout.write(format_digest(digest_tree(a.root)))


def _cmd_compare_results(a: argparse.Namespace) -> None:
    from intervene.compare_results import ResultsDiffer, compare_results

    diffs = compare_results(a.before, a.after)
    for d in diffs:
        print(d)
    if diffs:
        raise ResultsDiffer(f"{a.before} vs {a.after}: {len(diffs)} files differ (listed above)")
    log.info("%s and %s: identical (except the excluded paths and JSON keys)", a.before, a.after)


def _cmd_check_config(a: argparse.Namespace) -> None:
    import yaml

    from intervene.config_check import check_config

    config: dict = {}
    for path in a.configs:  # merged in order, as Snakemake merges --configfile onto config.yaml
        config = _merged(config, yaml.safe_load(Path(path).read_text()) or {})
    check_config(config, schema=a.schema, root=a.root)
    log.info("config %s: ok", " + ".join(a.configs))


COMMANDS: tuple[Command, ...] = (
    command(
        "verify",
        "check folders against their manifest.tsv (sizes and hashes) and token files' sizes",
        _cmd_verify,
        "verify a folder's manifest |  | intervene.manifest.verify_manifest",
        arg("folders", nargs="*", help="decoded groups, swap or memmap output folders"),
        arg("--sizes-only", action="store_true", help="skip the hashes (one stat per file)"),
        arg("--data-files", help="data-order manifest (data_files.tsv): check the token files' sizes"),
    ),
    command(
        "digest-results",
        "size and sha256 of every compared file of a results tree (TSV)",
        _cmd_digest_results,
        "",
        arg("root", help="a results folder"),
    ),
    command(
        "compare-results",
        "compare two results trees (or digests of them) byte for byte; exit 1 if they differ",
        _cmd_compare_results,
        "",
        arg("before", help="a results folder or its digest-results TSV"),
        arg("after", help="a results folder or its digest-results TSV"),
    ),
    command(
        "check-config",
        "check a pipeline config as the workflow does before any job (one line naming the key at fault)",
        _cmd_check_config,
        "",
        arg("configs", nargs="+", help="config YAML files, merged in order (later ones win)"),
        arg(
            "--schema",
            help="also validate against this JSON schema (workflow/schemas/config.schema.yaml)",
        ),
        arg("--root", default=".", help="folder relative paths are resolved against (the workdir)"),
    ),
    command(
        "plan",
        "the plan of a config from nothing: jobs per rule, GPU jobs, windows, download size (make plan)",
        call(
            "intervene.plan:print_plan",
            configfiles="configfile",
            workdir="directory",
            snakefile="snakefile",
            profile="profile",
            out="out",
        ),
        "",
        arg("--configfile", nargs="+", help="config files (default: config/config.yaml)"),
        arg("--directory", help="the work folder holding config/ and the Snakefile (default: .)"),
        arg("--snakefile", help="default: DIRECTORY/Snakefile"),
        arg("--profile", help="a Snakemake profile (profiles/slurm): each rule's partition"),
        arg("--out", help="also write plan.txt and the graphs (rulegraph.*, dag.*: dot, svg, pdf) here"),
    ),
)
