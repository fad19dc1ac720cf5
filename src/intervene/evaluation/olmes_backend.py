"""``eval.backend: olmes``: run a user-installed OLMES CLI the way the paper did and check its files.

OLMES is not on PyPI (git dependencies), so it is never a dependency here. The command follows the
paper's README: ``olmes --model <name> --model-args '{"model_path": DIR}' --task sciq:rc::xlarge
--limit 15000 --num-shots 0 --output-dir OUT`` (``--limit 15000`` exceeds both pooled sets, so OLMES
evaluates all 13,679 SciQ and 5,957 OpenBookQA docs in test/validation/train order). With several
tasks in one call OLMES names its files ``task-{i:03d}-{task_name}-predictions.jsonl`` in task order,
the same names ``intervene eval`` writes, so ``labels`` reads either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from intervene.atomic import atomic_path
from intervene.evaluation.run import predictions_file, read_predictions

#: Our task name -> OLMES task spec (the paper's variants).
OLMES_TASKS = {"sciq": "sciq:rc::xlarge", "openbookqa": "openbookqa:rc::xlarge"}


def olmes_task(task: str) -> str:
    if task in OLMES_TASKS:
        return OLMES_TASKS[task]
    if task.startswith("mmlu_"):
        return f"{task}:rc"
    raise ValueError(f"task {task!r} has no OLMES counterpart (sciq, openbookqa, mmlu_<subject>)")


def olmes_command(
    model_dir: str | os.PathLike,
    tasks: list[str],
    out_dir: str | os.PathLike,
    *,
    model_name: str = "olmo-2-1b-0425",
    limit: int = 15000,
    num_shots: int = 0,
    olmes: str = "olmes",
    extra: list[str] | None = None,
) -> list[str]:
    """The argv of one OLMES run over ``tasks`` for a local checkpoint."""
    return [
        olmes,
        "--model",
        model_name,
        "--model-args",
        json.dumps({"model_path": str(model_dir)}),
        "--task",
        *[olmes_task(t) for t in tasks],
        "--limit",
        str(limit),
        "--num-shots",
        str(num_shots),
        "--output-dir",
        str(out_dir),
        *(extra or []),
    ]


def run_olmes(
    model_dir: str | os.PathLike,
    tasks: list[str],
    out_dir: str | os.PathLike,
    *,
    metric: str = "acc_raw",
    **kw,
) -> dict:
    """Run OLMES into a temporary folder, check that every task's predictions file is there and
    readable, and move the folder into place. A missing CLI or a failed run is a clear error."""
    exe = kw.get("olmes", "olmes")
    if shutil.which(exe) is None:
        raise FileNotFoundError(
            f"{exe}: OLMES CLI not found on PATH (install allenai/olmes in the eval environment, "
            "or use eval.backend: builtin)"
        )
    with atomic_path(out_dir, is_dir=True) as tmp:
        cmd = olmes_command(model_dir, tasks, tmp, **kw)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"olmes failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-4000:]}")
        return check_olmes_output(tmp, tasks, metric)


def check_olmes_output(out_dir: str | os.PathLike, tasks: list[str], metric: str = "acc_raw") -> dict:
    """Instance counts per task from an OLMES output folder (errors name the missing file)."""
    counts = {}
    for i, t in enumerate(tasks):
        p = Path(out_dir) / predictions_file(i, t)
        counts[t] = int(read_predictions(p, metric).size)
    return counts
