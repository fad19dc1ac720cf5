"""Subcommands of search: term occurrences, term/pair matrices, BM25 and dense scores."""

from __future__ import annotations

import argparse
import json

from intervene.cli.common import K_ALL, OUT, TERMS_DIR_HELP, log
from intervene.cli_build import Command, arg, call, command, opt
from intervene.cli_types import positive_int
from intervene.settings import Bm25Config, DenseConfig, MatchConfig


def _cmd_term_vocab(a: argparse.Namespace) -> None:
    from intervene.search.stages import write_term_vocab

    log.info("%d terms -> %s", write_term_vocab(a.terms_dir, a.relations.split(","), a.out), a.out)


def _cmd_search(a: argparse.Namespace) -> None:
    from intervene.search.stages import run_search

    r = run_search(a.group_dir, a.doc_info, a.terms, a.out, mode=a.mode, wimbd_dir=a.wimbd_json_dir)
    log.info("search %s: %s", a.group_dir, json.dumps(r))


def _cmd_matrices(a: argparse.Namespace) -> None:
    from intervene.search.stages import write_matrices

    kind = a.func_kind
    r = write_matrices(
        a.occurrences,
        a.terms,
        a.terms_dir,
        a.relations.split(","),
        a.out_dir,
        kind=kind,
        pararel_root=a.pararel,
    )
    log.info("%s: %s", kind, json.dumps(r))


def _cmd_bm25(a: argparse.Namespace) -> None:
    from intervene.search.stages import pararel_queries, run_bm25

    queries = pararel_queries(a.pararel, a.relations.split(","), with_answer=a.query == "subject_object")
    r = run_bm25(a.group_dirs, queries, a.out, k=a.k, method=a.method, tokenizer=a.tokenizer)
    log.info("bm25: %s", json.dumps(r))


def _cmd_encode(a: argparse.Namespace) -> None:
    from intervene.search.corpus import group_text_stream
    from intervene.search.stages import instance_queries, run_encode

    if bool(a.group_dir) == bool(a.pararel):
        raise SystemExit("encode: give --group-dir (documents) or --pararel (instances)")
    if a.group_dir:  # streamed: one batch file's texts in memory at a time
        n, texts = group_text_stream(a.group_dir)
    else:
        texts = instance_queries(a.pararel, a.relations.split(","), a.query)
        n = len(texts)
    r = run_encode(
        a.model, a.kind, texts, a.out, n=n, device=a.device, batch_tokens=a.batch_tokens, compile=a.compile
    )
    log.info("encode: %s", json.dumps(r))


COMMANDS: tuple[Command, ...] = (
    command(
        "term-vocab",
        "the union of the relations' search terms (one per line)",
        _cmd_term_vocab,
        "search terms | results/search/terms.txt | intervene.search.stages.write_term_vocab",
        arg("--terms-dir", required=True, help=TERMS_DIR_HELP),
        arg("--relations", required=True),
        OUT,
    ),
    command(
        "search",
        "all terms over one decoded batch group, in one pass",
        _cmd_search,
        "term search | results/search/occurrences/{group}.npz | intervene.search.stages.run_search",
        arg("--group-dir", required=True),
        arg("--doc-info", required=True, help="the group's doc info (rows = documents)"),
        arg("--terms", required=True, help="term list, one per line"),
        opt(MatchConfig, "mode"),
        arg("--wimbd-json-dir", help="also write WIMBD's --with-locations --json per term"),
        arg("--out", required=True, help="occurrences .npz"),
    ),
    *(
        command(
            kind.replace("_", "-"),
            f"{kind} matrices of one group, per relation",
            _cmd_matrices,
            f"{kind} matrices | results/search/{kind}/{{group}} | intervene.search.stages.write_matrices",
            arg("--occurrences", required=True),
            arg("--terms", required=True, help="the term list the search used"),
            arg("--terms-dir", required=True, help=TERMS_DIR_HELP),
            arg("--relations", required=True),
            arg(
                "--pararel",
                help="folder of pararel_patterns_{rel} datasets (pair-doc)",
                required=kind == "pair_doc",
            ),
            arg("--out-dir", required=True),
            defaults={"func_kind": kind},
        )
        for kind in ("term_doc", "pair_doc")
    ),
    command(
        "bm25",
        "BM25 scores of ParaRel instances against a window's documents",
        _cmd_bm25,
        "BM25 scores of a group | results/search/bm25/{group}.npz | intervene.search.stages.run_bm25",
        arg("--group-dirs", nargs="+", required=True, help="decoded groups of the window, in order"),
        arg("--pararel", required=True),
        arg("--relations", required=True),
        opt(Bm25Config, "query"),
        opt(Bm25Config, "method"),
        opt(Bm25Config, "tokenizer"),
        K_ALL,
        OUT,
    ),
    command(
        "encode",
        "dense embeddings of a group's documents or of the instances",
        _cmd_encode,
        "dense embeddings | results/search/dense/docs/{group}.npy, results/search/dense/instances.npy | intervene.search.stages.run_encode",
        arg("--model", required=True, help="encoder folder (or hub id)"),
        arg("--kind", required=True, choices=["dpr_ctx", "dpr_question", "mean"]),
        arg("--group-dir", help="decoded batch group (documents, doc-info order)"),
        arg("--pararel", help="folder of pararel_patterns_{rel} datasets (instances)"),
        arg("--relations"),
        opt(DenseConfig, "query"),
        opt(DenseConfig, "device"),
        opt(DenseConfig, "batch_tokens"),
        arg("--compile", action="store_true", help="torch.compile the encoder (GPU, large shards)"),
        arg("--out", required=True, help=".npy, float32 [texts, dim]"),
    ),
    command(
        "similarity",
        "top-k dot-product scores, streamed over document shards",
        call(
            "intervene.search.stages:run_similarity",
            "queries",
            "docs",
            "out",
            k="k",
            device="device",
            log_as="similarity",
        ),
        "dense similarity | results/search/dense/similarity.npz | intervene.search.stages.run_similarity",
        arg("--queries", required=True, help="instance embeddings .npy"),
        arg("--docs", nargs="+", required=True, help="document embeddings .npy, in order"),
        arg("--k", type=positive_int, required=True),
        opt(DenseConfig, "device"),
        OUT,
    ),
)
