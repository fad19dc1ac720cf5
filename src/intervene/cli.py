"""The ``intervene`` command line: one subcommand per pipeline stage.

Each subcommand is a thin wrapper over an importable function; the Snakemake rules call these
subcommands, so a stage runs the same by hand, in a rule, and under Slurm. The subcommands are the
table :data:`COMMANDS` (built by :mod:`intervene.cli_build`); flags that are stage settings take
their defaults, ranges and help from :mod:`intervene.settings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path

from intervene.cli_build import Arg, Command, arg, call, command, opt, parser_of
from intervene.cli_types import batch_range, below, nonneg_int, positive_int
from intervene.settings import (
    WINDOW_QUERIES,
    Bm25Config,
    BootstrapConfig,
    DataConfig,
    DecodeConfig,
    DenseConfig,
    DownloadConfig,
    EffectConfig,
    EvalConfig,
    MapConfig,
    MatchConfig,
    OlmesConfig,
    RelevanceConfig,
    ReplayCheckConfig,
    SelectConfig,
    SwapConfig,
    TopDocsConfig,
    TrainConfig,
)

log = logging.getLogger("intervene")


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


def _sources(a: argparse.Namespace) -> dict[str, str]:
    return {
        k: v
        for k, v in (("pararel", a.pararel), ("sciq", a.sciq), ("openbookqa", a.openbookqa), ("mmlu", a.mmlu))
        if v
    }


def _cmd_eval(a: argparse.Namespace) -> None:
    tasks = a.tasks.split(",")
    if a.backend == "olmes":
        from intervene.evaluation.olmes_backend import run_olmes

        extra = {"model_name": a.olmes_model_name, "limit": a.olmes_limit, "olmes": a.olmes_executable}
        log.info("olmes %s: %s", a.model, json.dumps(run_olmes(a.model, tasks, a.out, **extra)))
        return
    from intervene.evaluation.run import evaluate

    summary = evaluate(
        a.model,
        tasks,
        _sources(a),
        a.out,
        device=a.device,
        revision=a.revision,
        row_tokens=a.row_tokens,
        batch_tokens=a.batch_tokens,
    )
    log.info("eval %s: %s", a.model, json.dumps(summary["tasks"]))


def _step_dirs(items: list[str], flag: str) -> dict[int, str]:
    dirs = {}
    for item in items:
        step, sep, d = item.partition("=")
        if not sep or not step.isdigit():
            raise SystemExit(f"{flag}: {item!r} is not STEP=DIR")
        dirs[int(step)] = d
    return dirs


def _cmd_labels(a: argparse.Namespace) -> None:
    from intervene.evaluation.run import build_labels, build_run_labels

    tasks = a.tasks.split(",")
    if bool(a.evals) == bool(a.run):
        raise SystemExit("labels: give --evals (one run) or --run ... per run (repeated runs), not both")
    if a.evals:
        summary = build_labels(_step_dirs(a.evals, "--evals"), tasks, a.metric, a.out)
    else:
        summary = build_run_labels([_step_dirs(r, "--run") for r in a.run], tasks, a.metric, a.out)
    log.info("labels: %s", json.dumps(summary))


def _cmd_learned(a: argparse.Namespace) -> None:
    from intervene.evaluation.run import write_learned

    summary = write_learned(a.labels, a.out_json, a.out_npz)
    log.info("learned per step: %s", json.dumps(summary["learned_per_step"]))


def _cmd_eval_plots(a: argparse.Namespace) -> None:
    from intervene.evaluation.plots import majority_baselines, plot_accuracy, plot_learned

    plot_accuracy(a.labels, majority_baselines(a.eval_dir, a.tasks.split(",")), a.accuracy_png)
    plot_learned(a.learned_json, a.learned_png)


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


def _window_text(key: str):
    """A window setting ([start, end]) as its flag's argv words (``--settings``)."""
    flag = "--" + key.replace("_", "-")
    return lambda v: [flag, str(v[0]), str(v[1])]


def _target_rows(targets_npz: str, datasets: str | None):
    """The target instances (labels.npz rows) of a learned_step{N}.npz, only those of ``datasets``
    (comma-separated task families or dataset labels, e.g. ``sciq`` or ``mmlu``) when given, or an
    rm_coocc selection's doc_idxs.npz (:func:`intervene.select.stages.target_instances`)."""
    from intervene.select.stages import target_instances

    return target_instances(targets_npz, datasets.split(",") if datasets else None)


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


def _cmd_effect(a: argparse.Namespace) -> None:
    from intervene.effect.compute import write_effect
    from intervene.effect.plots import plot_effect
    from intervene.evaluation.tasks import dataset_labels_of

    datasets = dataset_labels_of(a.datasets.split(",")) if a.datasets else None
    settings = EffectConfig.from_namespace(a, datasets=datasets, bootstrap=BootstrapConfig.from_namespace(a))
    eff = write_effect(
        settings,
        a.intervention_labels,
        a.control_labels,
        a.targets,
        a.out_json,
        audit=a.audit,
        replay=a.replay,
    )
    if a.out_png:
        plot_effect(eff, a.out_png)
    t = eff["targeted"]
    log.info(
        "%s: targeted %d, accuracy %.3f vs control %.3f (change %+.3f)",
        a.name,
        t["n"],
        t["intervention"]["accuracy"],
        t["control"]["accuracy"],
        t["difference"]["value"],
    )


def _cmd_report(a: argparse.Namespace) -> None:
    from intervene.effect.plots import plot_effects
    from intervene.effect.summary import write_summary

    effects = [json.loads(Path(p).read_text()) for p in a.effects]
    plot_effects(effects, a.out_png)
    figures = {"effects": a.out_png}
    for spec in a.figure or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--figure: {spec!r} is not NAME=PNG")
        figures[name] = path
    write_summary(a.effects, figures, a.out_md, a.out_html, a.out_headline)
    sys.stdout.write(Path(a.out_headline).read_text())


def _cmd_check_config(a: argparse.Namespace) -> None:
    import yaml

    from intervene.config_check import check_config

    config: dict = {}
    for path in a.configs:  # merged in order, as Snakemake merges --configfile onto config.yaml
        config = _merged(config, yaml.safe_load(Path(path).read_text()) or {})
    check_config(config, schema=a.schema, root=a.root)
    log.info("config %s: ok", " + ".join(a.configs))


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _cmd_fetch_checkpoint(a: argparse.Namespace) -> None:
    from intervene.train.released import fetch_unsharded

    log.info("fetched %s -> %s", a.url, fetch_unsharded(a.url, a.out))


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


TERMS_DIR_HELP = "folder of pararel_patterns_{rel}_train.txt"


def _metric_text(metric: str | dict[str, str]) -> str:
    """``eval.metric`` (one metric, or task -> metric) as ``--metric`` takes it."""
    from intervene.evaluation.metric_spec import metric_cli_value

    return metric_cli_value(metric)


def _source_words(sources: dict[str, str]) -> list[str]:
    """``eval.sources`` as the flags :func:`_task_data` declares (``--pararel P --sciq S``)."""
    return [w for k, v in sorted(sources.items()) for w in (f"--{k}", v)]


def _task_data(
    pararel_help: str = "folder of pararel_patterns_{rel} datasets", *, sources_key: bool = False
) -> tuple[Arg, ...]:
    """The evaluation data flags that :func:`_sources` reads (``sources_key``: ``--settings``'s
    ``sources`` fills them)."""
    key = (EvalConfig, "sources") if sources_key else None
    return (
        arg("--pararel", help=pararel_help, key=key, to_text=_source_words),
        arg("--sciq", help="SciQ save_to_disk folder or hub id (default allenai/sciq)"),
        arg("--openbookqa", help="OpenBookQA (main) folder or hub id (default allenai/openbookqa)"),
        arg("--mmlu", help="folder of per-subject MMLU folders, or hub id (default cais/mmlu)"),
    )


WINDOW_CHECK = (below("first", "last"), "--first must be below --last (the window [first, last))")
OUT = arg("--out", required=True)
K_ALL = arg("--k", type=nonneg_int, help="keep the top k documents per instance (0 or absent: all)")
#: The decoded groups a window stage reads, as explicit inputs: their folders (the decode stage names
#: each batch file by its global number) and their doc-info files, paired in order.
GROUP_FILES = (
    arg(
        "--group-dirs",
        nargs="+",
        required=True,
        help="decoded group folders ({b}.npy, {b}.json.gz) holding the window(s), in batch order",
    ),
    arg("--doc-info", nargs="+", required=True, help="their doc-info files ({group}.npy), in the same order"),
)
#: A window of decoded batches [first, last) among GROUP_FILES.
FIRST_LAST = (
    arg("--first", type=nonneg_int, required=True),
    arg("--last", type=positive_int, required=True),
)


def _cmd_import_olmo_core(a: argparse.Namespace) -> None:
    from intervene.train.olmo_core_import import import_olmo_core_checkpoint

    out = import_olmo_core_checkpoint(
        a.checkpoint, a.out, a.train_config, skip_step_as_adamw=a.skip_step_as_adamw
    )
    log.info("imported %s -> %s", a.checkpoint, out)


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
            help=".../stepN-unsharded/ (config.yaml, model.pt, optim.pt, train.pt)",
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
        "eval",
        "evaluate a checkpoint on rc/cloze tasks (OLMES metrics and files)",
        _cmd_eval,
        "evaluate a checkpoint or a re-run | results/eval/original/step{N}, results/eval/reruns/{run}/run{r} | intervene.evaluation.run.evaluate",
        arg("--model", required=True, help="HF checkpoint folder (with tokenizer) or hub id"),
        arg("--revision", help="hub revision (e.g. stage1-step10000-tokens21B)"),
        arg(
            "--tasks",
            required=True,
            help="comma-separated: pararel_<rel>, pararel, sciq, openbookqa, mmlu_<subject>, mmlu",
            key=(EvalConfig, "tasks"),
            to_text=",".join,
        ),
        *_task_data(sources_key=True),
        arg("--out", required=True, help="output folder (predictions per task, metrics.json)"),
        opt(EvalConfig, "device"),
        opt(EvalConfig, "row_tokens"),
        opt(EvalConfig, "batch_tokens"),
        opt(EvalConfig, "backend"),
        opt(OlmesConfig, "model_name", "--olmes-model-name", dest="olmes_model_name"),
        opt(OlmesConfig, "limit", "--olmes-limit", dest="olmes_limit"),
        opt(OlmesConfig, "executable", "--olmes-executable", dest="olmes_executable"),
    ),
    command(
        "labels",
        "stack per-instance correctness over checkpoints (the paper's .npz)",
        _cmd_labels,
        "correctness labels (one run; repeated runs: --run ... --run ...) | results/eval/original/labels.npz, results/eval/reruns/{run}/labels.npz | intervene.evaluation.run.build_labels",
        arg("--evals", nargs="+", metavar="STEP=DIR", help="eval folder of each checkpoint"),
        arg(
            "--run",
            nargs="+",
            action="append",
            metavar="STEP=DIR",
            help="one run's eval folders; repeat per run -> run1..runN in the .npz",
        ),
        arg(
            "--tasks",
            required=True,
            help="the tasks of the eval folders, in their order",
            key=(EvalConfig, "tasks"),
            to_text=",".join,
        ),
        opt(EvalConfig, "metric", to_text=_metric_text),
        OUT,
    ),
    command(
        "learned",
        "instances learned at each checkpoint (and the histogram)",
        _cmd_learned,
        "learned instances | results/eval/original/learned.json | intervene.evaluation.run.write_learned",
        arg("--labels", required=True),
        arg("--out-json", required=True),
        arg("--out-npz", required=True),
    ),
    command(
        "learned-indices",
        "the instances learned at one checkpoint (target items)",
        call("intervene.evaluation.run:write_learned_indices", "learned", "step", "out", log_as="targets"),
        "target items of a checkpoint | results/eval/original/learned_step{N}.npz | intervene.evaluation.run.write_learned_indices",
        arg("--learned", required=True, help="learned.npz"),
        arg("--step", type=nonneg_int, required=True),
        OUT,
    ),
    command(
        "eval-plots",
        "accuracy over checkpoints and learned histogram (PNG)",
        _cmd_eval_plots,
        "report figures | results/eval/original/accuracy.png | intervene.evaluation.plots.plot_accuracy",
        arg("--labels", required=True),
        arg("--learned-json", required=True),
        arg("--eval-dir", required=True, help="one checkpoint's eval folder (for gold labels)"),
        arg("--tasks", required=True),
        arg("--accuracy-png", required=True),
        arg("--learned-png", required=True),
    ),
    command(
        "accuracy-grid",
        "accuracy over checkpoints, one panel per dataset (the notebooks' per-relation grid, PNG)",
        call("intervene.notebook_figures:plot_panel_grid", "labels", "eval_dir", "tasks", "out"),
        "notebook figures | results/eval/original/accuracy_grid.png | intervene.notebook_figures.plot_panel_grid",
        arg("--labels", required=True, help="labels.npz"),
        arg("--eval-dir", required=True, help="one checkpoint's eval folder (for gold labels)"),
        arg("--tasks", required=True, help="comma-separated task names"),
        OUT,
    ),
    command(
        "learned-cooccurrence",
        "learned-checkpoint histogram, instances co-occurring in the window before overlaid (PNG)",
        call(
            "intervene.notebook_figures:write_learned_cooccurrence",
            *("learned", "pair_doc", "doc_info", "group_dirs", "relations", "out"),
            log_as="learned",
        ),
        "notebook figures | results/eval/original/learned_cooccurrence.png | intervene.notebook_figures.write_learned_cooccurrence",
        arg("--learned", required=True, help="learned.npz"),
        arg("--pair-doc", nargs="+", required=True, help="the groups' pair-matrix folders"),
        *GROUP_FILES,
        arg("--relations", required=True, help="comma-separated, in the labels' order"),
        OUT,
    ),
    command(
        "docs-per-instance",
        "per target instance of a selection, its documents removed or added (PNG + TSV)",
        call(
            "intervene.notebook_figures:write_docs_per_instance",
            *("doc_idxs", "learned", "matrices", "relations", "out", "out_tsv"),
            audit="audit",
            terms_dir="terms_dir",
            pararel_root="pararel",
            name="name",
            log_as="documents",
        ),
        "notebook figures | results/report/{name}/docs_per_instance.png | intervene.notebook_figures.write_docs_per_instance",
        arg("--doc-idxs", required=True, help="a selection's doc_idxs.npz"),
        arg("--learned", required=True, help="learned.npz (the instances' rows)"),
        arg("--matrices", nargs="+", required=True, help="the groups' pair (rm_occ: term) matrix folders"),
        arg("--relations", required=True, help="comma-separated, in the labels' order"),
        arg("--audit", help="the swap's audit.json: count only the documents it replaced or inserted"),
        arg("--terms-dir", help="rm_occ: the relations' term files"),
        arg("--pararel", help="rm_occ: the ParaRel data folder"),
        arg("--name", help="the intervention's name (the title)"),
        OUT,
        arg("--out-tsv", required=True),
    ),
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
        "effect",
        "an intervention's effect: re-runs vs. controls, bootstrap CIs",
        _cmd_effect,
        "effect of an intervention | results/report/{name}/effect.json | intervene.effect.compute.write_effect",
        opt(EffectConfig, "name"),
        opt(EffectConfig, "strategy"),
        arg("--intervention-labels", required=True, help="labels.npz (run1..runN) of its re-runs"),
        arg("--control-labels", required=True, help="labels.npz (run1..runN) of the control re-runs"),
        arg(
            "--targets",
            required=True,
            help="doc_idxs.npz of the selection, or learned_step{N}.npz (mappings)",
        ),
        arg("--audit", help="the swap's audit.json"),
        arg("--replay", help="replay_check.json"),
        opt(EffectConfig, "swap_direction"),
        arg(
            "--datasets",
            help="targets only of these dataset labels (an MCQA mapping's task, e.g. sciq)",
            key=(EffectConfig, "datasets"),
            to_text=",".join,
        ),
        opt(BootstrapConfig, "samples", "--bootstrap"),
        opt(BootstrapConfig, "level"),
        opt(BootstrapConfig, "seed"),
        arg("--out-json", required=True),
        arg("--out-png"),
    ),
    command(
        "report",
        "the effect report (markdown, HTML, figure, headline) of all interventions",
        _cmd_report,
        "report | results/report/summary.html | intervene.effect.summary.write_summary",
        arg("--effects", nargs="+", required=True, help="effect.json files"),
        arg("--figure", action="append", help="NAME=PNG: an intervention's figure to include"),
        arg("--out-md", required=True),
        arg("--out-html", required=True),
        arg("--out-png", required=True, help="the forest plot of all effects"),
        arg("--out-headline", required=True),
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
    command(
        "olmo-config",
        "write the OLMo (paper's fork) config of a re-run",
        _cmd_olmo_config,
        "OLMo-repo re-run (+ the OLMo checkout) | results/olmo/{run}/hf | intervene.train.olmo_backend.write_rerun_config",
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
        "top-docs",
        "per instance its top-scoring documents of a window (text, score, location) as JSON lines",
        _cmd_top_docs,
        "top documents per instance | results/inspect/{name}/top_docs_{side}.jsonl | intervene.inspect_docs.export_top_docs",
        arg("--scores", required=True, help="(instances x window documents) scores, e.g. scores_target.npz"),
        arg(
            "--group-dirs",
            nargs="+",
            required=True,
            help="decoded group folders holding the window, in order",
        ),
        arg("--doc-info", nargs="+", required=True, help="their doc-info files (002.npy for folder 002)"),
        arg("--first", type=nonneg_int, required=True),
        arg("--last", type=positive_int, required=True),
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
        "export-olmo",
        "export our checkpoint as an OLMo unsharded checkpoint (model, optimizer, counters)",
        _cmd_export_olmo,
        "a start checkpoint for the OLMo fork (train.backend: olmo) | stepN-unsharded/ | intervene.train.olmo_export.export_olmo_checkpoint",
        arg("--checkpoint", required=True, help="our checkpoint (e.g. results/train/original/step{N})"),
        arg("--out", required=True, help="the OLMo folder to write; its name ends in -unsharded"),
        arg("--train-config", help="train YAML (default: the checkpoint's config.yaml)"),
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


def build_parser() -> argparse.ArgumentParser:
    return parser_of(COMMANDS, prog="intervene", description=__doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SIGTERM (Snakemake stopping, Slurm cancelling) unwinds like Ctrl-C: temporary outputs are removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        args.func(args)
    except Exception as e:
        # bad input (our errors name the file and the problem): one clear line, no traceback
        if isinstance(e, (ValueError, OSError)) or type(e).__module__.startswith("intervene"):
            log.error("%s", e)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
