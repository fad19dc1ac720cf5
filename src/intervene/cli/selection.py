"""Subcommands of interventions: choosing documents (selections, score mappings) and swapping them in."""

from __future__ import annotations

import argparse
import dataclasses
import json

from intervene.cli.common import (
    FIRST_LAST,
    GROUP_FILES,
    K_ALL,
    OUT,
    WINDOW_CHECK,
    _sources,
    _target_rows,
    _task_data,
    _window_text,
    log,
)
from intervene.cli_build import Command, arg, call, command, opt
from intervene.cli_types import nonneg_int
from intervene.settings import WINDOW_QUERIES, Bm25Config, DenseConfig, MapConfig, SelectConfig, SwapConfig


def _cmd_select(a: argparse.Namespace) -> None:
    from intervene.select.stages import select_documents

    r = select_documents(
        SelectConfig.from_namespace(a),
        learned_npz=a.learned,
        pair_doc=a.pair_doc,
        term_doc=a.term_doc or [],
        doc_info=a.doc_info,
        group_dirs=a.group_dirs,
        terms_dir=a.terms_dir,
        pararel_root=a.pararel,
        relations=a.relations.split(","),
        out=a.out,
    )
    log.info("select %s: %s", a.strategy, json.dumps(r))


def _cmd_bm25_window(a: argparse.Namespace) -> None:
    from intervene.search.stages import instance_queries, task_queries
    from intervene.select.stages import bm25_window

    if not a.tasks and not (a.pararel and a.relations):
        raise SystemExit("bm25-window: give --tasks (with the data flags) or --pararel and --relations")
    rows = _target_rows(a.instances, a.datasets) if a.instances else None
    if a.tasks:
        queries = task_queries(a.tasks.split(","), _sources(a), a.query, rows)
    else:
        queries = instance_queries(a.pararel, a.relations.split(","), a.query)
        if rows is not None:
            from intervene.inputs import check_rows

            check_rows(a.instances, "inst_idxs", rows, len(queries), "the relations' instances")
            queries = [queries[i] for i in rows.tolist()]
    r = bm25_window(
        a.group_dirs,
        a.doc_info,
        a.first,
        a.last,
        queries,
        a.out,
        method=a.method,
        tokenizer=a.tokenizer,
        k=a.k,
    )
    log.info("bm25 window: %s", json.dumps(r))


def _cmd_dense_window(a: argparse.Namespace) -> None:
    from intervene.search.dense import encode, load_encoder
    from intervene.search.stages import task_queries
    from intervene.select.stages import dense_window

    queries = task_queries(a.tasks.split(","), _sources(a), a.query, _target_rows(a.instances, a.datasets))
    tok, enc, pooling = load_encoder(a.question_model, a.kind, a.device)
    q = encode(tok, enc, queries, pooling=pooling, device=a.device)
    r = dense_window(
        a.doc_embeddings,
        a.group_dirs,
        a.doc_info,
        a.first,
        a.last,
        q,
        a.out,
        k=a.k,
        device=a.device,
    )
    log.info("dense window: %s", json.dumps(r))


def _cmd_map_docs(a: argparse.Namespace) -> None:
    from intervene.select.stages import map_documents

    r = map_documents(
        a.target_scores,
        a.source_scores,
        doc_info=a.doc_info,
        group_dirs=a.group_dirs,
        target_window=tuple(a.target_window),
        source_window=tuple(a.source_window),
        out=a.out,
        instances=a.instances,
        datasets=a.datasets.split(",") if a.datasets else None,
        learned=a.learned,
        pair_doc=a.pair_doc or (),
        relations=a.relations.split(",") if a.relations else (),
        **dataclasses.asdict(MapConfig.from_namespace(a)),
    )
    log.info("mapping: %s", json.dumps(r))


COMMANDS: tuple[Command, ...] = (
    command(
        "select",
        "documents to swap for an intervention (the paper's doc-indices npz)",
        _cmd_select,
        "selection (rm_coocc, rm_occ, add_coocc) | results/interventions/{name}/doc_idxs.npz | intervene.select.stages.select_documents",
        opt(SelectConfig, "strategy"),
        opt(SelectConfig, "checkpoint"),
        opt(SelectConfig, "interval"),
        arg("--learned", required=True, help="learned.npz"),
        arg("--pair-doc", nargs="+", required=True, help="the groups' pair_doc matrix folders"),
        arg("--term-doc", nargs="*", help="rm_occ: the groups' term_doc matrix folders"),
        *GROUP_FILES,
        arg("--terms-dir", required=True),
        arg("--pararel", required=True),
        arg("--relations", required=True),
        opt(SelectConfig, "n_drop"),
        opt(SelectConfig, "last_batch"),
        *(
            opt(SelectConfig, w, nargs=2, metavar=("START", "END"), to_text=_window_text(w))
            for w in ("window", "extras_window")
        ),
        OUT,
        checks=(
            (
                lambda a: a.window is not None or a.checkpoint % a.interval == 0,
                "--checkpoint must be a multiple of --interval (a checkpoint of the run), or give --window",
            ),
            *(
                (
                    lambda a, w=w: getattr(a, w) is None or getattr(a, w)[0] < getattr(a, w)[1],
                    f"--{w.replace('_', '-')} START END: START must be below END",
                )
                for w in ("window", "extras_window")
            ),
        ),
    ),
    command(
        "bm25-window",
        "BM25 scores of (some) instances against a window's documents",
        _cmd_bm25_window,
        "window scores of a BM25 mapping | results/interventions/{name}/scores_{side}.npz | intervene.select.stages.bm25_window",
        *GROUP_FILES,
        *FIRST_LAST,
        arg("--tasks", help="evaluation tasks (the rows of labels.npz); data from the flags below"),
        *_task_data("ParaRel folder (alone: with --relations instead of --tasks)"),
        arg("--relations"),
        arg(
            "--instances",
            help="learned_step{N}.npz (its inst_idxs) or an rm_coocc doc_idxs.npz (its orig_inst_idxs):"
            " score only those, in that order",
        ),
        arg("--datasets", help="with --instances: keep only these dataset labels (e.g. sciq)"),
        opt(
            Bm25Config,
            "query",
            choices=list(WINDOW_QUERIES),
            help="ParaRel: subject, subject_object, question; MCQA: question, question_answer",
        ),
        opt(Bm25Config, "method"),
        opt(Bm25Config, "tokenizer"),
        K_ALL,
        OUT,
        checks=(WINDOW_CHECK,),
    ),
    command(
        "dense-window",
        "dense (DPR) scores of target instances against a window's documents",
        _cmd_dense_window,
        "window scores of a dense mapping | results/interventions/{name}/scores_{side}.npz | intervene.select.stages.dense_window",
        arg("--doc-embeddings", nargs="+", required=True, help="per-group document embeddings (.npy)"),
        *GROUP_FILES,
        *FIRST_LAST,
        arg("--question-model", required=True, help="DPR question encoder (or a mean-pooling encoder)"),
        arg("--kind", default="dpr_question", choices=["dpr_question", "mean"]),
        arg("--tasks", required=True, help="evaluation tasks (the rows of labels.npz)"),
        *_task_data(),
        arg(
            "--instances",
            required=True,
            help="learned_step{N}.npz or an rm_coocc doc_idxs.npz: the targets",
        ),
        arg("--datasets", help="keep only targets of these dataset labels (e.g. sciq)"),
        opt(DenseConfig, "query", choices=list(WINDOW_QUERIES)),
        opt(DenseConfig, "k"),
        opt(DenseConfig, "device"),
        OUT,
        checks=(WINDOW_CHECK,),
    ),
    command(
        "map-docs",
        "target -> source document mapping from scores (MCQA interventions)",
        _cmd_map_docs,
        "mapping (bm25_mapping, dense_mapping) | results/interventions/{name}/mapping.npz | intervene.select.stages.map_documents",
        arg("--target-scores", required=True, help="instances x target-window documents (.npz)"),
        arg("--source-scores", required=True, help="instances x source-window documents (.npz)"),
        *GROUP_FILES,
        arg("--target-window", type=nonneg_int, nargs=2, required=True, metavar=("FIRST", "LAST")),
        arg("--source-window", type=nonneg_int, nargs=2, required=True, metavar=("FIRST", "LAST")),
        opt(MapConfig, "per_inst", required=True),
        opt(MapConfig, "shuffle_candidates"),
        opt(MapConfig, "swap_direction"),
        opt(MapConfig, "seed"),
        opt(MapConfig, "doc_counts"),
        opt(MapConfig, "match_total"),
        opt(MapConfig, "offset_shift"),
        arg(
            "--instances",
            help="cooccurrence: the targets file the scores were computed for (learned_step{N}.npz or an rm_coocc doc_idxs.npz)",
        ),
        arg("--datasets", help="cooccurrence: as given to the window scorer with --instances"),
        arg("--learned", help="cooccurrence: learned.npz (its dataset labels place the ParaRel rows)"),
        arg("--pair-doc", nargs="+", help="cooccurrence: the target window's groups' pair_doc folders"),
        arg("--relations", help="cooccurrence: the ParaRel relations, comma-separated, in config order"),
        OUT,
        checks=tuple(
            (
                lambda a, side=side: getattr(a, f"{side}_window")[0] < getattr(a, f"{side}_window")[1],
                f"--{side}-window FIRST LAST: FIRST must be below LAST",
            )
            for side in ("target", "source")
        )
        + (
            (
                lambda a: (
                    a.doc_counts != "cooccurrence"
                    or bool(a.instances and a.learned and a.pair_doc and a.relations)
                ),
                "--doc-counts cooccurrence: give --instances, --learned, --pair-doc and --relations",
            ),
        ),
    ),
    command(
        "swap",
        "rewrite a window's batches: replace the selected documents",
        call(
            "intervene.swap:swap_window",
            "indices",
            "doc_info",
            "group_dirs",
            "out_dir",
            settings=SwapConfig,
            tokenizer_dir="tokenizer",
            log_as="swap",
        ),
        "swap (rewrite the window's batches) | results/interventions/{name}/batches | intervene.swap.swap_window",
        arg("--indices", required=True, help="doc_idxs.npz (select) or mapping.npz (mapping)"),
        *GROUP_FILES,
        opt(SwapConfig, "pair_by_new_first"),
        opt(SwapConfig, "skip_extra"),
        opt(SwapConfig, "seed"),
        arg("--tokenizer", help="decode the result and check it (no removed text left, inserted there)"),
        arg("--out-dir", required=True),
    ),
)
