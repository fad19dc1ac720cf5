"""What several subcommand modules share: the logger, evaluation-data flags, window flags, and
small argument readers."""

from __future__ import annotations

import argparse
import logging

from intervene.cli_build import Arg, arg
from intervene.cli_types import below, nonneg_int, positive_int
from intervene.settings import EvalConfig

log = logging.getLogger("intervene")


def _sources(a: argparse.Namespace) -> dict[str, str]:
    return {
        k: v
        for k, v in (("pararel", a.pararel), ("sciq", a.sciq), ("openbookqa", a.openbookqa), ("mmlu", a.mmlu))
        if v
    }


def _step_dirs(items: list[str], flag: str) -> dict[int, str]:
    dirs = {}
    for item in items:
        step, sep, d = item.partition("=")
        if not sep or not step.isdigit():
            raise SystemExit(f"{flag}: {item!r} is not STEP=DIR")
        dirs[int(step)] = d
    return dirs


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


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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
