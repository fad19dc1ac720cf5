"""Subcommands of evaluation: checkpoints' answers, correctness labels, learned instances."""

from __future__ import annotations

import argparse
import json

from intervene.cli.common import OUT, _metric_text, _sources, _step_dirs, _task_data, log
from intervene.cli_build import Command, arg, call, command, opt
from intervene.cli_types import nonneg_int
from intervene.settings import EvalConfig, OlmesConfig


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


COMMANDS: tuple[Command, ...] = (
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
)
