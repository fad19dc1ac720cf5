"""The ``intervene`` command line: one subcommand per pipeline stage.

Each subcommand is a thin wrapper over an importable function; the Snakemake rules call these
subcommands, so a stage runs the same by hand, in a rule, and under Slurm.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from intervene.cli_types import (
    CheckedParser,
    batch_range,
    below,
    nonneg_float,
    nonneg_int,
    open_unit_float,
    positive_int,
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


def _cmd_localize(a: argparse.Namespace) -> None:
    from intervene.download import localize_train_config

    localize_train_config(a.train_config, a.root, a.out)


def _cmd_data_order(a: argparse.Namespace) -> None:
    from intervene.data_order import build_data_order

    order = build_data_order(a.train_config, a.out, a.manifest, world_size=a.world_size)
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

    summary = train(
        a.train_config,
        a.out,
        load_path=a.load_path,
        data_list=a.data_list,
        order_path=a.order,
        manifest=a.manifest,
        stop_after=a.stop_after,
        save_interval=a.save_interval,
        seed=a.seed,
        order_seed=a.order_seed,
        strategy=a.strategy,
        device=a.device,
        microbatch=a.microbatch,
        tokenizer_dir=a.tokenizer,
    )
    log.info("train: %s", json.dumps(summary))


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
        save_interval=a.save_interval,
    )
    log.info("OLMo re-run config -> %s", a.out)


def _cmd_batch_list(a: argparse.Namespace) -> None:
    from intervene.olmo import write_path_list
    from intervene.train.replay import decoded_batch_files

    files = decoded_batch_files(a.batches_root, a.first, a.last, a.batches_per_group)
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


def _cmd_learned_indices(a: argparse.Namespace) -> None:
    from intervene.evaluation.run import write_learned_indices

    log.info("targets: %s", json.dumps(write_learned_indices(a.learned, a.step, a.out)))


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


def _cmd_similarity(a: argparse.Namespace) -> None:
    from intervene.search.stages import run_similarity

    log.info("similarity: %s", json.dumps(run_similarity(a.queries, a.docs, a.out, k=a.k, device=a.device)))


def _cmd_select(a: argparse.Namespace) -> None:
    from intervene.select.stages import select_documents

    r = select_documents(
        a.strategy,
        a.checkpoint,
        learned_npz=a.learned,
        search_dir=a.search_dir,
        doc_info_dir=a.doc_info_dir,
        terms_dir=a.terms_dir,
        pararel_root=a.pararel,
        relations=a.relations.split(","),
        interval=a.interval,
        batches_per_group=a.batches_per_group,
        out=a.out,
        n_drop=a.n_drop,
        last_batch=a.last_batch,
    )
    log.info("select %s: %s", a.strategy, json.dumps(r))


def _target_rows(learned_step_npz: str, datasets: str | None):
    """The target instances (labels.npz rows) of a learned_step{N}.npz, only those of ``datasets``
    (comma-separated task families or dataset labels, e.g. ``sciq`` or ``mmlu``) when given."""
    import numpy as np

    from intervene.evaluation.tasks import dataset_labels_of
    from intervene.inputs import check_rows, load_npz

    z = load_npz(learned_step_npz, {"inst_idxs": "int", "dataset_labels": "str"})
    n = len(z["dataset_labels"])
    if len(z["inst_idxs"]) != n:
        raise ValueError(f"{learned_step_npz}: inst_idxs and dataset_labels differ in length")
    rows = check_rows(learned_step_npz, "inst_idxs", z["inst_idxs"], None)  # the upper bound: task_queries
    if datasets:
        rows = rows[np.isin(z["dataset_labels"].astype(str), dataset_labels_of(datasets.split(",")))]
    return rows


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
        a.batches_root,
        a.doc_info_dir,
        a.first,
        a.last,
        a.batches_per_group,
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
        a.doc_info_dir,
        a.first,
        a.last,
        a.batches_per_group,
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
        doc_info_dir=a.doc_info_dir,
        target_window=tuple(a.target_window),
        source_window=tuple(a.source_window),
        batches_per_group=a.batches_per_group,
        per_inst=a.per_inst,
        out=a.out,
        shuffle_candidates=a.shuffle_candidates,
        swap_direction=a.swap_direction,
        seed=a.seed,
    )
    log.info("mapping: %s", json.dumps(r))


def _cmd_swap(a: argparse.Namespace) -> None:
    from intervene.swap import swap_window

    r = swap_window(
        a.indices,
        a.doc_info_dir,
        a.batches_root,
        a.batches_per_group,
        a.out_dir,
        pair_by_new_first=a.pair_by_new_first,
        skip_extra=a.skip_extra,
        seed=a.seed,
        tokenizer_dir=a.tokenizer,
    )
    log.info("swap: %s", json.dumps(r))


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


def _cmd_memmap(a: argparse.Namespace) -> None:
    from intervene.swap import write_memmaps

    log.info("memmap: %s", json.dumps(write_memmaps(a.batches_dir, a.out_dir)))


def _cmd_effect(a: argparse.Namespace) -> None:
    from intervene.effect.compute import write_effect
    from intervene.effect.plots import plot_effect
    from intervene.evaluation.tasks import dataset_labels_of

    eff = write_effect(
        a.name,
        a.strategy,
        a.intervention_labels,
        a.control_labels,
        a.targets,
        a.out_json,
        audit=a.audit,
        replay=a.replay,
        swap_direction=a.swap_direction,
        datasets=dataset_labels_of(a.datasets.split(",")) if a.datasets else None,
        n_boot=a.bootstrap,
        seed=a.seed,
        level=a.level,
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


def _add_task_data(
    s: argparse.ArgumentParser, pararel_help: str = "folder of pararel_patterns_{rel} datasets"
) -> None:
    """The evaluation data flags that :func:`_sources` reads."""
    s.add_argument("--pararel", help=pararel_help)
    s.add_argument("--sciq", help="SciQ save_to_disk folder or hub id (default allenai/sciq)")
    s.add_argument("--openbookqa", help="OpenBookQA (main) folder or hub id (default allenai/openbookqa)")
    s.add_argument("--mmlu", help="folder of per-subject MMLU folders, or hub id (default cais/mmlu)")


def _add_window(s: argparse.ArgumentParser) -> None:
    """A window of decoded batches [first, last) and the doc info that locates its documents."""
    s.add_argument("--doc-info-dir", required=True)
    s.add_argument("--first", type=nonneg_int, required=True)
    s.add_argument("--last", type=positive_int, required=True)
    s.add_argument("--batches-per-group", type=positive_int, required=True)
    s.require(below("first", "last"), "--first must be below --last (the window [first, last))")


def build_parser() -> argparse.ArgumentParser:
    p = CheckedParser(prog="intervene", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="STAGE")

    s = sub.add_parser("world", help="generate the built-in toy world (corpus, tokenizer, eval items)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--config", help="pipeline config YAML whose `world:` section to use")
    s.add_argument("--spec-json", help="world parameters as a JSON object (overrides --config)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one world parameter")
    s.set_defaults(func=_cmd_world)

    s = sub.add_parser("download", help="download a train config's data files (one shard of them)")
    s.add_argument("--train-config", required=True, help="OLMo train YAML whose data.paths are URLs")
    s.add_argument("--root", required=True, help="local mirror root (files go to ROOT/<host>/<path>)")
    s.add_argument("--shard", type=nonneg_int, default=0)
    s.add_argument("--num-shards", type=positive_int, default=1)
    s.add_argument("--workers", type=positive_int, default=4, help="parallel downloads within the shard")
    s.add_argument("--manifest", help="write url/path/bytes TSV of this shard here")
    s.add_argument("--out-config", help="also write the train config with local paths here")
    s.add_argument("--quiet", action="store_true")
    s.require(lambda a: a.shard < a.num_shards, "--shard must be below --num-shards (shards are 0-based)")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("localize", help="rewrite a train config's URL paths to the local mirror")
    s.add_argument("--train-config", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_localize)

    s = sub.add_parser("data-order", help="build OLMo's global_indices.npy from the files' sizes")
    s.add_argument("--train-config", required=True)
    s.add_argument("--out", required=True, help="global_indices.npy (raw uint32)")
    s.add_argument("--manifest", required=True, help="TSV of the files and sizes the order was built for")
    s.add_argument(
        "--world-size", type=positive_int, default=1, help="world size of the original run (drop_last)"
    )
    s.set_defaults(func=_cmd_data_order)

    s = sub.add_parser("decode", help="write one batch group as token arrays and text")
    s.add_argument("--train-config", required=True)
    s.add_argument("--order", required=True, help="global_indices.npy")
    s.add_argument("--manifest", help="data-order manifest (checks the files did not change)")
    s.add_argument("--tokenizer", required=True, help="HF tokenizer folder")
    s.add_argument("--out", required=True, help="group folder to write")
    s.add_argument("--group", type=positive_int, help="1-based group number (folder 001 is group 1)")
    s.add_argument("--batches-per-group", type=positive_int, default=1000)
    s.add_argument(
        "--first-batch", type=nonneg_int, default=0, help="window start (batches before it are skipped)"
    )
    s.add_argument("--last-batch", type=positive_int, help="window end, exclusive")
    s.add_argument("--batches", type=batch_range, help="explicit range START:END instead of --group")
    s.add_argument("--world-size", type=positive_int, default=1)
    s.add_argument("--tokens-only", action="store_true")
    s.add_argument("--text-only", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.require(below("first_batch", "last_batch"), "--first-batch must be below --last-batch")
    s.require(lambda a: a.batches is not None or a.group is not None, "give --group or --batches")
    s.set_defaults(func=_cmd_decode)

    s = sub.add_parser("doc-info", help="locate every document of a decoded batch group")
    s.add_argument("--group-dir", required=True, help="folder of {b}.npy token batches")
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--out", required=True, help="doc info .npy (int64 [n, 4])")
    s.add_argument("--check-text", action="store_true", help="verify rows line up with {b}.json.gz lines")
    s.set_defaults(func=_cmd_doc_info)
    s = sub.add_parser(
        "train", help="pretrain (original run or re-run); launch with torchrun for several processes"
    )
    s.add_argument("--train-config", required=True, help="OLMo train YAML")
    s.add_argument(
        "--out",
        required=True,
        help="run folder (step{N}/ checkpoints, metrics.jsonl, fingerprint.json); resumes only a run of the"
        " same fingerprint, else starts fresh",
    )
    s.add_argument("--load-path", help="checkpoint to start from (model, optimizer, step and token counters)")
    s.add_argument("--data-list", help="re-run: file listing batch files read in order from instance 0")
    s.add_argument("--order", help="global_indices.npy of the original run (else computed from the config)")
    s.add_argument("--manifest", help="data-order manifest (data_files.tsv): token files must keep its sizes")
    s.add_argument("--stop-after", type=positive_int, help="steps to train from the start checkpoint")
    s.add_argument("--save-interval", type=positive_int, help="checkpoint every N steps (default: config)")
    s.add_argument("--seed", type=nonneg_int, help="initialisation seed (default: the config's seed)")
    s.add_argument(
        "--order-seed",
        type=nonneg_int,
        help="re-runs: read the data list's instances in this seed's permutation (repeated runs)",
    )
    s.add_argument(
        "--strategy",
        default="ddp",
        choices=["ddp", "fsdp"],
        help="several processes: replicated weights (ddp) or FSDP2-sharded weights and optimizer state",
    )
    s.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    s.add_argument(
        "--microbatch", type=positive_int, help="micro-batch size (default: device_train_microbatch_size)"
    )
    s.add_argument("--tokenizer", help="tokenizer folder copied into checkpoints (default: the config's)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("replay-check", help="re-run the unmodified batches and compare with the original run")
    s.add_argument("--out", required=True, help="JSON report")
    s.add_argument(
        "--atol",
        type=nonneg_float,
        default=0.0,
        help="0 = bit-identical (CPU); bf16 on GPU needs a tolerance",
    )
    g = s.add_argument_group("replay and compare")
    g.add_argument("--train-config")
    g.add_argument("--original", help="the original run's folder (step{N}/ checkpoints)")
    g.add_argument("--from-step", type=nonneg_int)
    g.add_argument("--steps", type=positive_int)
    g.add_argument("--batches-root", help="decoded batch groups (results/data/batches)")
    g.add_argument("--batches-per-group", type=positive_int, default=1000)
    g.add_argument("--work", help="folder for the replay run")
    g.add_argument("--device", choices=["cpu", "cuda"])
    g = s.add_argument_group("or only compare two checkpoints")
    g.add_argument("--reference", help="original run's checkpoint step{c+k}")
    g.add_argument("--replay", help="replay's checkpoint step{c+k}")
    s.set_defaults(func=_cmd_replay_check)

    s = sub.add_parser("fetch-checkpoint", help="download a released OLMo unsharded checkpoint folder")
    s.add_argument(
        "--url", required=True, help=".../stepN-unsharded/ (config.yaml, model.pt, optim.pt, train.pt)"
    )
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_fetch_checkpoint)

    s = sub.add_parser("import-olmo", help="import an OLMo unsharded checkpoint (model, optimizer, counters)")
    s.add_argument("--olmo-dir", required=True, help="stepN-unsharded/ with model.pt, optim.pt, train.pt")
    s.add_argument("--out", required=True, help="our checkpoint folder (e.g. RUN/stepN)")
    s.add_argument(
        "--train-config", help="train YAML for the model shape (default: the checkpoint's config.yaml)"
    )
    s.set_defaults(func=_cmd_import_olmo)
    s = sub.add_parser("eval", help="evaluate a checkpoint on rc/cloze tasks (OLMES metrics and files)")
    s.add_argument("--model", required=True, help="HF checkpoint folder (with tokenizer) or hub id")
    s.add_argument("--revision", help="hub revision (e.g. stage1-step10000-tokens21B)")
    s.add_argument(
        "--tasks",
        required=True,
        help="comma-separated: pararel_<rel>, pararel, sciq, openbookqa, mmlu_<subject>, mmlu",
    )
    _add_task_data(s)
    s.add_argument("--out", required=True, help="output folder (predictions per task, metrics.json)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    s.add_argument("--row-tokens", type=positive_int, default=2048, help="packed row length")
    s.add_argument("--batch-tokens", type=positive_int, default=16384, help="rows x length per forward pass")
    s.add_argument("--backend", default="builtin", choices=["builtin", "olmes"])
    s.add_argument("--olmes-model-name", default="olmo-2-1b-0425")
    s.add_argument("--olmes-limit", type=positive_int, default=15000)
    s.add_argument("--olmes-executable", default="olmes")
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser("labels", help="stack per-instance correctness over checkpoints (the paper's .npz)")
    s.add_argument("--evals", nargs="+", metavar="STEP=DIR", help="eval folder of each checkpoint")
    s.add_argument(
        "--run",
        nargs="+",
        action="append",
        metavar="STEP=DIR",
        help="one run's eval folders; repeat per run -> run1..runN in the .npz",
    )
    s.add_argument("--tasks", required=True, help="the tasks of the eval folders, in their order")
    s.add_argument("--metric", default="acc_per_token")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_labels)

    s = sub.add_parser("learned", help="instances learned at each checkpoint (and the histogram)")
    s.add_argument("--labels", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-npz", required=True)
    s.set_defaults(func=_cmd_learned)

    s = sub.add_parser("learned-indices", help="the instances learned at one checkpoint (target items)")
    s.add_argument("--learned", required=True, help="learned.npz")
    s.add_argument("--step", type=nonneg_int, required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_learned_indices)

    s = sub.add_parser("eval-plots", help="accuracy over checkpoints and learned histogram (PNG)")
    s.add_argument("--labels", required=True)
    s.add_argument("--learned-json", required=True)
    s.add_argument("--eval-dir", required=True, help="one checkpoint's eval folder (for gold labels)")
    s.add_argument("--tasks", required=True)
    s.add_argument("--accuracy-png", required=True)
    s.add_argument("--learned-png", required=True)
    s.set_defaults(func=_cmd_eval_plots)

    s = sub.add_parser("term-vocab", help="the union of the relations' search terms (one per line)")
    s.add_argument("--terms-dir", required=True, help="folder of pararel_patterns_{rel}_train.txt")
    s.add_argument("--relations", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_term_vocab)

    s = sub.add_parser("search", help="all terms over one decoded batch group, in one pass")
    s.add_argument("--group-dir", required=True)
    s.add_argument("--doc-info", required=True, help="the group's doc info (rows = documents)")
    s.add_argument("--terms", required=True, help="term list, one per line")
    s.add_argument("--mode", default="literal", choices=["literal", "wimbd"])
    s.add_argument("--wimbd-json-dir", help="also write WIMBD's --with-locations --json per term")
    s.add_argument("--out", required=True, help="occurrences .npz")
    s.set_defaults(func=_cmd_search)

    for kind in ("term_doc", "pair_doc"):
        s = sub.add_parser(kind.replace("_", "-"), help=f"{kind} matrices of one group, per relation")
        s.add_argument("--occurrences", required=True)
        s.add_argument("--terms", required=True, help="the term list the search used")
        s.add_argument("--terms-dir", required=True, help="folder of pararel_patterns_{rel}_train.txt")
        s.add_argument("--relations", required=True)
        s.add_argument(
            "--pararel",
            help="folder of pararel_patterns_{rel} datasets (pair-doc)",
            required=kind == "pair_doc",
        )
        s.add_argument("--out-dir", required=True)
        s.set_defaults(func=_cmd_matrices, func_kind=kind)

    s = sub.add_parser("bm25", help="BM25 scores of ParaRel instances against a window's documents")
    s.add_argument("--group-dirs", nargs="+", required=True, help="decoded groups of the window, in order")
    s.add_argument("--pararel", required=True)
    s.add_argument("--relations", required=True)
    s.add_argument("--query", default="subject", choices=["subject", "subject_object"])
    s.add_argument("--method", default="okapi", choices=["okapi", "lucene", "robertson", "atire"])
    s.add_argument("--tokenizer", default="bm25s_en", choices=["bm25s_en", "whitespace"])
    s.add_argument("--k", type=nonneg_int, help="keep the top k documents per instance (0 or absent: all)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_bm25)

    s = sub.add_parser("encode", help="dense embeddings of a group's documents or of the instances")
    s.add_argument("--model", required=True, help="encoder folder (or hub id)")
    s.add_argument("--kind", required=True, choices=["dpr_ctx", "dpr_question", "mean"])
    s.add_argument("--group-dir", help="decoded batch group (documents, doc-info order)")
    s.add_argument("--pararel", help="folder of pararel_patterns_{rel} datasets (instances)")
    s.add_argument("--relations")
    s.add_argument("--query", default="question", choices=["question", "subject", "subject_object"])
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch-tokens", type=positive_int, default=262144, help="padded tokens per forward pass")
    s.add_argument("--compile", action="store_true", help="torch.compile the encoder (GPU, large shards)")
    s.add_argument("--out", required=True, help=".npy, float32 [texts, dim]")
    s.set_defaults(func=_cmd_encode)

    s = sub.add_parser("similarity", help="top-k dot-product scores, streamed over document shards")
    s.add_argument("--queries", required=True, help="instance embeddings .npy")
    s.add_argument("--docs", nargs="+", required=True, help="document embeddings .npy, in order")
    s.add_argument("--k", type=positive_int, required=True)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_similarity)

    s = sub.add_parser("select", help="documents to swap for an intervention (the paper's doc-indices npz)")
    s.add_argument("--strategy", required=True, choices=["rm_coocc", "rm_occ", "add_coocc"])
    s.add_argument(
        "--checkpoint", type=positive_int, required=True, help="c: targets are the instances learned at c"
    )
    s.add_argument("--interval", type=positive_int, required=True, help="K: window(c) = batches [c-K, c)")
    s.add_argument("--learned", required=True, help="learned.npz")
    s.add_argument("--search-dir", required=True, help="folder with term_doc/ and pair_doc/ per group")
    s.add_argument("--doc-info-dir", required=True)
    s.add_argument("--terms-dir", required=True)
    s.add_argument("--pararel", required=True)
    s.add_argument("--relations", required=True)
    s.add_argument("--batches-per-group", type=positive_int, required=True)
    s.add_argument(
        "--n-drop", type=nonneg_int, default=5, help="rm_occ: instances with most occurrences dropped"
    )
    s.add_argument(
        "--last-batch", type=positive_int, help="end of the decoded batches (clips the following windows)"
    )
    s.add_argument("--out", required=True)
    s.require(
        lambda a: a.checkpoint % a.interval == 0,
        "--checkpoint must be a multiple of --interval (a checkpoint of the run)",
    )
    s.set_defaults(func=_cmd_select)

    s = sub.add_parser("bm25-window", help="BM25 scores of (some) instances against a window's documents")
    s.add_argument("--batches-root", required=True)
    _add_window(s)
    s.add_argument("--tasks", help="evaluation tasks (the rows of labels.npz); data from the flags below")
    _add_task_data(s, pararel_help="ParaRel folder (alone: with --relations instead of --tasks)")
    s.add_argument("--relations")
    s.add_argument("--instances", help="learned_step{N}.npz: score only its inst_idxs (in that order)")
    s.add_argument("--datasets", help="with --instances: keep only these dataset labels (e.g. sciq)")
    s.add_argument(
        "--query",
        default="subject",
        choices=["question", "subject", "subject_object", "question_answer"],
        help="ParaRel: subject, subject_object, question; MCQA: question, question_answer",
    )
    s.add_argument("--method", default="okapi", choices=["okapi", "lucene", "robertson", "atire"])
    s.add_argument("--tokenizer", default="bm25s_en", choices=["bm25s_en", "whitespace"])
    s.add_argument("--k", type=nonneg_int, help="keep the top k documents per instance (0 or absent: all)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_bm25_window)

    s = sub.add_parser(
        "dense-window", help="dense (DPR) scores of target instances against a window's documents"
    )
    s.add_argument("--doc-embeddings", nargs="+", required=True, help="per-group document embeddings (.npy)")
    _add_window(s)
    s.add_argument("--question-model", required=True, help="DPR question encoder (or a mean-pooling encoder)")
    s.add_argument("--kind", default="dpr_question", choices=["dpr_question", "mean"])
    s.add_argument("--tasks", required=True, help="evaluation tasks (the rows of labels.npz)")
    _add_task_data(s)
    s.add_argument("--instances", required=True, help="learned_step{N}.npz: the targets")
    s.add_argument("--datasets", help="keep only targets of these dataset labels (e.g. sciq)")
    s.add_argument(
        "--query", default="question", choices=["question", "subject", "subject_object", "question_answer"]
    )
    s.add_argument("--k", type=positive_int, default=10000)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_dense_window)

    s = sub.add_parser("map-docs", help="target -> source document mapping from scores (MCQA interventions)")
    s.add_argument("--target-scores", required=True, help="instances x target-window documents (.npz)")
    s.add_argument("--source-scores", required=True, help="instances x source-window documents (.npz)")
    s.add_argument("--doc-info-dir", required=True)
    s.add_argument("--target-window", type=nonneg_int, nargs=2, required=True, metavar=("FIRST", "LAST"))
    s.add_argument("--source-window", type=nonneg_int, nargs=2, required=True, metavar=("FIRST", "LAST"))
    s.add_argument("--batches-per-group", type=positive_int, required=True)
    s.add_argument("--per-inst", type=positive_int, required=True, help="top documents per target instance")
    s.add_argument("--shuffle-candidates", action="store_true")
    s.add_argument("--swap-direction", action="store_true")
    s.add_argument("--seed", type=nonneg_int, default=42)
    s.add_argument("--out", required=True)
    for side in ("target", "source"):
        s.require(
            lambda a, side=side: getattr(a, f"{side}_window")[0] < getattr(a, f"{side}_window")[1],
            f"--{side}-window FIRST LAST: FIRST must be below LAST",
        )
    s.set_defaults(func=_cmd_map_docs)

    s = sub.add_parser("swap", help="rewrite a window's batches: replace the selected documents")
    s.add_argument("--indices", required=True, help="doc_idxs.npz (select) or mapping.npz (mapping)")
    s.add_argument("--doc-info-dir", required=True)
    s.add_argument("--batches-root", required=True, help="decoded groups with {b}.npy token batches")
    s.add_argument("--batches-per-group", type=positive_int, required=True)
    s.add_argument("--pair-by-new-first", action="store_true", help="additions: largest new documents first")
    s.add_argument("--skip-extra", action="store_true", help="no extra documents for unpaired originals")
    s.add_argument("--seed", type=nonneg_int, default=0, help="tie-breaking among equal sizes")
    s.add_argument(
        "--tokenizer", help="decode the result and check it (no removed text left, inserted there)"
    )
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_cmd_swap)

    s = sub.add_parser(
        "verify", help="check folders against their manifest.tsv (sizes and hashes) and token files' sizes"
    )
    s.add_argument("folders", nargs="*", help="decoded groups, swap or memmap output folders")
    s.add_argument("--sizes-only", action="store_true", help="skip the hashes (one stat per file)")
    s.add_argument("--data-files", help="data-order manifest (data_files.tsv): check the token files' sizes")
    s.set_defaults(func=_cmd_verify)

    s = sub.add_parser(
        "digest-results", help="size and sha256 of every compared file of a results tree (TSV)"
    )
    s.add_argument("root", help="a results folder")
    s.set_defaults(func=_cmd_digest_results)

    s = sub.add_parser(
        "compare-results",
        help="compare two results trees (or digests of them) byte for byte; exit 1 if they differ",
    )
    s.add_argument("before", help="a results folder or its digest-results TSV")
    s.add_argument("after", help="a results folder or its digest-results TSV")
    s.set_defaults(func=_cmd_compare_results)

    s = sub.add_parser("memmap", help="rewritten batches as OLMo raw uint32 memmaps, with their path list")
    s.add_argument("--batches-dir", required=True, help="a swap's output folder (with data_list.txt)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=_cmd_memmap)

    s = sub.add_parser(
        "batch-list", help="list decoded batches [first, last) in order (a control re-run's data)"
    )
    s.add_argument("--batches-root", required=True, help="decoded batch groups (results/data/batches)")
    s.add_argument("--first", type=nonneg_int, required=True)
    s.add_argument("--last", type=positive_int, required=True)
    s.add_argument("--batches-per-group", type=positive_int, default=1000)
    s.add_argument("--out", required=True)
    s.require(below("first", "last"), "--first must be below --last (batches [first, last))")
    s.set_defaults(func=_cmd_batch_list)

    s = sub.add_parser("effect", help="an intervention's effect: re-runs vs. controls, bootstrap CIs")
    s.add_argument("--name", required=True, help="the intervention's name")
    s.add_argument("--strategy", required=True)
    s.add_argument("--intervention-labels", required=True, help="labels.npz (run1..runN) of its re-runs")
    s.add_argument("--control-labels", required=True, help="labels.npz (run1..runN) of the control re-runs")
    s.add_argument(
        "--targets", required=True, help="doc_idxs.npz of the selection, or learned_step{N}.npz (mappings)"
    )
    s.add_argument("--audit", help="the swap's audit.json")
    s.add_argument("--replay", help="replay_check.json")
    s.add_argument("--swap-direction", action="store_true", help="a mapping that promotes its targets")
    s.add_argument(
        "--datasets", help="targets only of these dataset labels (an MCQA mapping's task, e.g. sciq)"
    )
    s.add_argument("--bootstrap", type=positive_int, default=2000, help="bootstrap samples")
    s.add_argument("--level", type=open_unit_float, default=0.95, help="confidence level")
    s.add_argument("--seed", type=nonneg_int, default=0)
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-png")
    s.set_defaults(func=_cmd_effect)

    s = sub.add_parser(
        "report", help="the effect report (markdown, HTML, figure, headline) of all interventions"
    )
    s.add_argument("--effects", nargs="+", required=True, help="effect.json files")
    s.add_argument("--figure", action="append", help="NAME=PNG: an intervention's figure to include")
    s.add_argument("--out-md", required=True)
    s.add_argument("--out-html", required=True)
    s.add_argument("--out-png", required=True, help="the forest plot of all effects")
    s.add_argument("--out-headline", required=True)
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser(
        "check-config",
        help="check a pipeline config as the workflow does before any job (one line naming the key at fault)",
    )
    s.add_argument("configs", nargs="+", help="config YAML files, merged in order (later ones win)")
    s.add_argument(
        "--schema", help="also validate against this JSON schema (workflow/schemas/config.schema.yaml)"
    )
    s.add_argument("--root", default=".", help="folder relative paths are resolved against (the workdir)")
    s.set_defaults(func=_cmd_check_config)

    s = sub.add_parser("olmo-config", help="write the OLMo (paper's fork) config of a re-run")
    s.add_argument(
        "--base-config", required=True, help="the original run's OLMo config (e.g. OLMo2-1B-stage1.yaml)"
    )
    s.add_argument("--data-list", required=True, help="file listing the modified memmaps in order")
    s.add_argument("--run-name", required=True)
    s.add_argument("--load-path", required=True, help="OLMo checkpoint to start from (stepN-unsharded)")
    s.add_argument("--stop-after", type=positive_int, required=True, help="steps to re-run")
    s.add_argument("--save-folder", required=True)
    s.add_argument("--max-duration", help="override: tokens ('4e12T') or steps of the original run")
    s.add_argument("--save-interval", type=positive_int)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_cmd_olmo_config)
    return p


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
