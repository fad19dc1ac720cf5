"""Subcommands of looking at the data: a mapping's top documents and their relevance, what a step read."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from intervene.cli.common import FIRST_LAST, GROUP_FILES, OUT, _sources, _target_rows, _task_data, log
from intervene.cli_build import Command, arg, command, opt
from intervene.cli_types import below, nonneg_int, positive_int
from intervene.settings import DataConfig, RelevanceConfig, TopDocsConfig


def _cmd_top_docs(a: argparse.Namespace) -> None:
    from intervene.inspect_docs import export_top_docs

    r = export_top_docs(
        a.scores,
        a.out,
        group_dirs=a.group_dirs,
        doc_info=a.doc_info,
        first=a.first,
        last=a.last,
        tasks=a.tasks.split(","),
        sources=_sources(a),
        rows=_target_rows(a.instances, a.datasets) if a.instances else None,
        k=a.k,
        min_score=a.min_score,
    )
    log.info("top docs: %s", json.dumps(r))


def _cmd_check_relevance(a: argparse.Namespace) -> None:
    from intervene.relevance import check_relevance

    r = check_relevance(
        a.top_docs,
        a.out,
        a.summary,
        a.cache,
        RelevanceConfig.from_namespace(a),
        limit=a.limit,
        dry_run=a.dry_run,
    )
    log.info("relevance: %s", json.dumps(r))


def _cmd_inspect(a: argparse.Namespace) -> None:
    from intervene.inspect_steps import inspect_steps

    text = inspect_steps(
        a.train_config,
        a.step,
        a.to_step,
        order=a.order,
        manifest=a.manifest,
        world_size=a.world_size,
        tokenizer=a.tokenizer,
        out=a.out,
        fmt=a.format,
        preview_chars=200 if a.preview is None else a.preview or None,
        sidecars=not a.no_sidecars,
        sidecar_cache=a.sidecar_cache,
    )
    if a.out is None:
        sys.stdout.write(text)


def _cmd_inspect_document(a: argparse.Namespace) -> None:
    from intervene.inspect_steps import document_steps

    docs = document_steps(
        a.train_config,
        a.document,
        order=a.order,
        manifest=a.manifest,
        world_size=a.world_size,
        out=a.out,
        sidecar_cache=a.sidecar_cache,
    )
    if a.out is None:
        sys.stdout.write("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))


COMMANDS: tuple[Command, ...] = (
    command(
        "top-docs",
        "per instance its top-scoring documents of a window (text, score, location) as JSON lines",
        _cmd_top_docs,
        "top documents per instance | results/inspect/{name}/top_docs_{side}.jsonl | intervene.inspect_docs.export_top_docs",
        arg("--scores", required=True, help="(instances x window documents) scores, e.g. scores_target.npz"),
        *GROUP_FILES,
        *FIRST_LAST,
        arg("--tasks", required=True, help="comma-separated tasks whose instances are the rows"),
        *_task_data(),
        arg("--instances", help="learned_step{N}.npz: the rows are its instances (default: all)"),
        arg("--datasets", help="only its instances of these tasks (an MCQA mapping's, e.g. sciq)"),
        opt(TopDocsConfig, "k"),
        opt(TopDocsConfig, "min_score"),
        OUT,
        checks=((below("first", "last"), "--first must be below --last (the window [first, last))"),),
    ),
    command(
        "check-relevance",
        "ask an OpenAI-compatible chat model whether each top document answers its instance",
        _cmd_check_relevance,
        "relevance of the top documents (optional) | results/inspect/{name}/relevance_{side}.json | intervene.relevance.check_relevance",
        arg("--top-docs", required=True, help="a top-docs JSONL export"),
        arg("--out", required=True, help="per pair its parsed answer (JSONL)"),
        arg("--summary", required=True, help="per instance the counts (JSON)"),
        arg("--cache", required=True, help="answers so far (JSONL; a re-run asks only the rest)"),
        *(
            opt(RelevanceConfig, f.name, group="endpoint")
            for f in dataclasses.fields(RelevanceConfig)
            if f.name != "enabled"
        ),
        arg("--limit", type=positive_int, help="only the first N pairs (a trial)"),
        arg("--dry-run", action="store_true", help="only estimate the cost; send nothing"),
    ),
    command(
        "inspect",
        "what step N read: per instance its file, offset and documents (ids, token counts, text preview)",
        _cmd_inspect,
        "inspect a step | results/inspect/steps/step{N}.jsonl, results/inspect/steps/step{N}.html | intervene.inspect_steps.inspect_steps",
        arg("--train-config", required=True),
        arg("--order", help="global_indices.npy (default: build the order from the files, slow at scale)"),
        arg("--manifest", help="data-order manifest (checks the files did not change)"),
        opt(DataConfig, "world_size"),
        arg("--step", type=positive_int, required=True, help="optimizer step (1-based: batch step-1)"),
        arg("--to-step", type=positive_int, help="last step of a range (inclusive)"),
        arg("--tokenizer", required=True, help="HF tokenizer folder"),
        arg("--format", choices=("jsonl", "tsv", "html"), help="default: --out's suffix, else tsv"),
        arg("--preview", type=nonneg_int, help="characters of text per document (default 200; 0: all)"),
        arg("--no-sidecars", action="store_true", help="ignore .csv.gz side-cars (ids become FILE@START)"),
        arg("--sidecar-cache", help="folder caching side-cars as memory-mapped indexes (fast at scale)"),
        arg("--out", help="write here (atomically) instead of stdout"),
        checks=((lambda a: a.to_step is None or a.step <= a.to_step, "--to-step must not be before --step"),),
    ),
    command(
        "inspect-document",
        "which steps read a document (a side-car id, or FILE@TOKEN), and where in each batch",
        _cmd_inspect_document,
        "where a document was read | results/inspect/documents/{id}.jsonl | intervene.inspect_steps.document_steps",
        arg("--train-config", required=True),
        arg("--order", help="global_indices.npy (default: build the order from the files, slow at scale)"),
        arg("--manifest", help="data-order manifest (checks the files did not change)"),
        opt(DataConfig, "world_size"),
        arg(
            "--document",
            required=True,
            help="a side-car document id, or FILE@TOKEN: the document holding that token of a data file"
            " (FILE: a path as the train config lists it, or its 0-based index)",
        ),
        arg("--sidecar-cache", help="folder caching side-cars as memory-mapped indexes (fast at scale)"),
        arg("--out", help="JSON lines here (atomically) instead of stdout"),
    ),
)
