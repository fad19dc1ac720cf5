"""The ``intervene`` command line: one subcommand per pipeline stage.

Each subcommand is a thin wrapper over an importable function; the Snakemake rules call these
subcommands, so a stage runs the same by hand, in a rule, and under Slurm. The subcommands are the
table :data:`COMMANDS` (built by :mod:`intervene.cli_build`); flags that are stage settings take
their defaults, ranges and help from :mod:`intervene.settings`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from intervene.cli import data, effects, evaluation, inspection, search, selection, tools, training
from intervene.cli.common import _target_rows, log
from intervene.cli_build import Command, parser_of

__all__ = ["COMMANDS", "_target_rows", "build_parser", "main"]

_AREAS = (data, training, evaluation, search, selection, effects, inspection, tools)
_BY_NAME = {c.name: c for m in _AREAS for c in m.COMMANDS}
#: The subcommands in the order of ``intervene --help`` and of the README's three-ways table (the
#: order they were added in; the area modules each hold a part).
ORDER = (
    "world",
    "download",
    "localize",
    "pararel",
    "data-order",
    "decode",
    "doc-info",
    "train",
    "replay-check",
    "fetch-checkpoint",
    "import-olmo",
    "eval",
    "labels",
    "learned",
    "learned-indices",
    "eval-plots",
    "accuracy-grid",
    "learned-cooccurrence",
    "docs-per-instance",
    "term-vocab",
    "search",
    "term-doc",
    "pair-doc",
    "bm25",
    "encode",
    "similarity",
    "select",
    "bm25-window",
    "dense-window",
    "map-docs",
    "swap",
    "verify",
    "digest-results",
    "compare-results",
    "memmap",
    "batch-list",
    "effect",
    "report",
    "check-config",
    "plan",
    "olmo-config",
    "top-docs",
    "check-relevance",
    "export-olmo",
    "inspect",
    "inspect-document",
    "import-olmo-core",
)
if set(ORDER) != set(_BY_NAME) or len(ORDER) != len(_BY_NAME):
    raise ImportError(
        f"intervene.cli.ORDER does not list the area modules' commands: {set(ORDER) ^ set(_BY_NAME)}"
    )
COMMANDS: tuple[Command, ...] = tuple(_BY_NAME[n] for n in ORDER)


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
    finally:
        log_gpu_peak()
    return 0


def log_gpu_peak() -> None:
    """The process's peak GPU memory, when it used a GPU (torch imported and CUDA started): every GPU
    job's log then says what it held, and benchmarks/gpu_demo_summary.py adds the peaks of the jobs
    that ran at once on one GPU. Nothing on CPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    dev = torch.cuda.current_device()
    log.info(
        "peak GPU memory: %.2f GiB allocated, %.2f GiB reserved (cuda:%d)",
        torch.cuda.max_memory_allocated(dev) / 2**30,
        torch.cuda.max_memory_reserved(dev) / 2**30,
        dev,
    )
