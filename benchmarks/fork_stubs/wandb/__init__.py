"""A stand-in for ``wandb`` on a machine without it, for benchmarks/fork_vs_ours.py only.

The OLMo fork imports wandb at the top of ``olmo/train.py`` and ``scripts/train.py`` but only calls
it when the config has a ``wandb:`` section (``wandb.init``) and then while ``wandb.run`` is set
(``wandb.log``, ``wandb.finish``). This module records those calls: ``init`` opens
``$WANDB_STUB_LOG`` (default ``{dir}/metrics.jsonl``) and ``log`` appends one JSON line per call
with the step and every metric at full float precision (the fork's console log rounds the loss to
three decimals). Nothing in the fork's training depends on it.
"""

from __future__ import annotations

import json
import os

run = None


class _Run:
    def __init__(self, path: str, name: str | None):
        self.path, self.name = path, name
        self.fh = open(path, "a")  # noqa: SIM115  (closed by finish)


def init(dir=None, name=None, **_):  # noqa: A002  (wandb's own argument name)
    global run
    path = os.environ.get("WANDB_STUB_LOG") or os.path.join(dir or ".", "metrics.jsonl")
    run = _Run(path, name)
    return run


def log(metrics: dict, step: int | None = None, **_) -> None:
    if run is None:
        return
    rec = {"step": step}
    for k, v in metrics.items():
        try:
            rec[k] = float(v)
        except (TypeError, ValueError):
            rec[k] = str(v)
    run.fh.write(json.dumps(rec) + "\n")
    run.fh.flush()


def finish(exit_code: int = 0, quiet: bool = True, **_) -> None:
    global run
    if run is not None:
        run.fh.close()
    run = None
