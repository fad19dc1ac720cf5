"""What the rules pass to the ``intervene`` subcommands, and how their jobs are launched.

The workflow's input functions (``workflow/rules/common.smk``) only name files; the settings a job
runs with, its launch command and its Slurm resources are computed here from the resolved config
(:func:`intervene.settings.resolve_config`: every default filled, so nothing here writes one), where
they are unit-tested. Settings go to a subcommand as one ``--settings JSON`` argument
(:mod:`intervene.cli_build`). Cheap: no data read, fit to run while Snakemake builds the DAG.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from intervene import layout

#: The train config's default replay tolerance on GPUs (bf16): on CPU the replay is bit-identical.
GPU_REPLAY_ATOL = 1e-2


def settings_arg(section: Mapping[str, Any]) -> str:
    """A config section as the shell word ``--settings`` takes (keys sorted: a stable command)."""
    return shlex.quote(json.dumps(section, sort_keys=True))


def gpus_of(device: str) -> int:
    """GPUs a job on ``device`` holds (``resources: gpu``): one for CUDA, else none."""
    return 1 if device.startswith("cuda") else 0


# -- evaluation -----------------------------------------------------------------------------------


def eval_settings(config: Mapping) -> str:
    """``intervene eval`` / ``labels``: the whole ``eval`` section (each reads its keys)."""
    return settings_arg(config["eval"])


def eval_tasks(config: Mapping) -> str:
    """``--tasks`` of the commands that take no ``--settings`` (eval-plots, the window scorers)."""
    return ",".join(config["eval"]["tasks"]) if config.get("eval") else ""


def original_evals(config: Mapping, folders: list[str]) -> str:
    """``step=folder`` of every evaluated checkpoint of the original run (``labels --evals``)."""
    return " ".join(f"{s}={d}" for s, d in zip(layout.original_steps(config), folders, strict=True))


def rerun_label_args(config: Mapping, run: str, folders: list[str]) -> str:
    """``--run STEP=folder`` per run of a re-run, STEP being the checkpoint the runs end at."""
    last = layout.rerun_window(config, run)[1]
    return " ".join(f"--run {last}={d}" for d in folders)


# -- training -------------------------------------------------------------------------------------


def srun_launch(config: Mapping) -> bool:
    """Several nodes (or ``train.launcher: srun``): one torchrun per node under srun, in the job."""
    t = config["train"]
    return t["nodes"] > 1 or t["launcher"] == "srun"


def train_launcher(config: Mapping, node_script: str) -> str:
    """``intervene``; ``torchrun --standalone ...`` for several processes on one node; or, under
    Slurm, ``srun`` starting one torchrun per node (``node_script``: torchrun_node.sh) whose
    rendezvous is the allocation's first node."""
    n, nodes = config["train"]["nproc"], config["train"]["nodes"]
    if srun_launch(config):
        return f"srun --nodes={nodes} --ntasks-per-node=1 --ntasks={nodes} bash {node_script} {n}"
    if n == 1:
        return "intervene"
    return f"torchrun --standalone --nproc_per_node={n} -m intervene.cli"


def train_resources(config: Mapping) -> dict[str, Any]:
    """Slurm resources of a training job (ignored when running locally): GPUs per node, nodes, one
    task per process (``mpi: srun`` lets the job's shell call srun itself; ``tasks_per_gpu: 0``
    keeps the executor plugin from adding --ntasks-per-gpu)."""
    t = config["train"]
    n, nodes, cuda = t["nproc"], t["nodes"], t["device"] == "cuda"
    res: dict[str, Any] = {"gpu": n * nodes if cuda and nodes == 1 else 0}
    if cuda and nodes > 1:
        res["gres"] = f"gpu:{n}"  # per node
    if srun_launch(config):
        res.update(nodes=nodes, tasks=n * nodes, mpi="srun", tasks_per_gpu=0)
    return res


def original_train_settings(config: Mapping) -> str:
    """``intervene train`` settings of the original run (stop_at None: the train config's end)."""
    t = config["train"]
    return settings_arg(
        {
            "save_interval": t["save_interval"],
            "device": t["device"],
            "strategy": t["strategy"],
            "stop_after": t["stop_at"],
            "deterministic": t["deterministic"],
        }
    )


def order_seed(config: Mapping, r: int) -> int | None:
    """Run 1 reads the window's batches in order (on CPU a control's run 1 reproduces the original
    checkpoint bit for bit); with ``experiment.order: shuffle``, run r > 1 reads them in the
    permutation of seed + r, the same for an intervention and its control (paired runs)."""
    e = config["experiment"]
    return e["seed"] + r if e["order"] == "shuffle" and r > 1 else None


def rerun_train_settings(config: Mapping, run: str, r: int) -> str:
    """``intervene train`` settings of run ``r`` of a re-run: from the original run's checkpoint at
    its window's start, one checkpoint at the window's end."""
    first, last = layout.rerun_window(config, run)
    t = config["train"]
    return settings_arg(
        {
            "load_path": layout.original_checkpoint(first),
            "stop_after": last - first,
            "save_interval": last - first,
            "order_seed": order_seed(config, r),
            "strategy": t["strategy"],
            "device": t["device"],
            "deterministic": t["deterministic"],
        }
    )


def replay_settings(config: Mapping) -> str:
    """``intervene replay-check`` settings: the replayed steps; bit-identical on CPU and with
    ``train.deterministic``, else a bf16 tolerance on GPUs."""
    rc = config["train"]["replay_check"]
    exact = config["train"]["device"] == "cpu" or config["train"]["deterministic"]
    atol = 0.0 if exact else GPU_REPLAY_ATOL
    return settings_arg({"from_step": rc["from_step"], "steps": rc["steps"], "atol": atol})


def replay_groups(config: Mapping) -> list[str]:
    """The decoded group folders the replay check reads (none without a replay check)."""
    rc = config["train"]["replay_check"]
    if not rc:
        return []
    return layout.groups_of(config, rc["from_step"], rc["from_step"] + rc["steps"])


# -- effects --------------------------------------------------------------------------------------


def effect_settings(config: Mapping, name: str) -> str:
    """``intervene effect`` settings of intervention ``name``: its strategy and direction, the
    tasks its targets are limited to, the experiment's bootstrap."""
    v = layout.intervention(config, name)
    return settings_arg(
        {
            "name": name,
            "strategy": v["strategy"],
            "swap_direction": v["swap_direction"],
            "datasets": v["datasets"] or None,
            "bootstrap": config["experiment"]["bootstrap"],
        }
    )


def figure_args(config: Mapping, figures: list[str]) -> str:
    """``--figure name=path`` per intervention, in config order (``intervene report``)."""
    return " ".join(
        f"--figure {n}={p}" for n, p in zip(config.get("interventions") or {}, figures, strict=True)
    )


# -- data -----------------------------------------------------------------------------------------


def decode_settings(config: Mapping) -> str:
    """``intervene decode``: the ``decode`` section (groups of batches_per_group, the window)."""
    return settings_arg(config["decode"])


def download_settings(config: Mapping) -> str:
    """``intervene download``: the ``data.download`` section (mirror root, shards, workers)."""
    return settings_arg(config["data"]["download"])


def world_spec(config: Mapping) -> str:
    """The ``world`` section as ``intervene world --spec-json`` takes it (WorldSpec's defaults)."""
    return shlex.quote(json.dumps(config.get("world", {})))


def source_flags(config: Mapping) -> list[str]:
    """The evaluation data flags (``--pararel PATH``, ``--sciq ...``) as the window scorers take
    them (``intervene eval`` reads them from ``--settings``)."""
    sources = config["eval"]["sources"] if config.get("eval") else {}
    return [f"--{k} {v}" for k, v in sorted(sources.items())]
