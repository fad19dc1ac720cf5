"""The pipeline through a real Slurm: Debian's Slurm started on this machine (tests/slurm/up.sh),
the project's profile (profiles/slurm) with test overrides, and a slice of the toy pipeline that
includes training under srun + torchrun (two processes). Jobs must go through sbatch to the intended
partitions, and the outputs must equal a local run's.

Needs root (it installs Debian packages and starts munged, slurmctld, slurmd); skipped otherwise,
and where /etc/slurm belongs to another Slurm. Every daemon it started is stopped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO
from .test_workflow import _snakemake_cmd, small_config

SLURM_DIR = REPO / "tests" / "slurm"
TARGETS = [
    "results/train/original/summary.json",
    "results/eval/original/labels.npz",
    "results/data/doc_info/002.npy",
]
# GPU rules mapped onto the fake GPUs of the `gpu` partition; everything else on `cpu`
GPU_RULES = ("pretrain_original", "evaluate")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("starting Slurm needs root (Debian packages, munged, slurmctld, slurmd)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("no Slurm and no apt-get to install it")
    state = tmp_path_factory.mktemp("slurm-state")
    env = {**os.environ, "SLURM_ROOT": str(state)}
    r = subprocess.run(
        ["bash", str(SLURM_DIR / "up.sh")], env=env, capture_output=True, text=True, timeout=900
    )
    if r.returncode == 3:
        pytest.skip(r.stderr.strip())
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield state
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "down.sh")], env=env, capture_output=True, timeout=300)


def slurm_config() -> dict:
    cfg = small_config()
    cfg["train"].update(nproc=2, launcher="srun")  # one torchrun (2 processes) started by srun
    return cfg


def test_pipeline_through_slurm_equals_local_run(slurm, tmp_path):
    cfg = slurm_config()
    local = tmp_path / "local"
    cmd, env = _snakemake_cmd(
        local, "--cores", "2", *TARGETS, cfg={**cfg, "train": {**cfg["train"], "launcher": "torchrun"}}
    )
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]

    remote = tmp_path / "slurm"
    overrides = [
        "--profile",
        str(REPO / "profiles" / "slurm"),
        # no slurmdbd here: poll with squeue (the plugin's sacct default would never see the jobs)
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--jobs",
        "3",
        "--latency-wait",
        "5",
        "--retries",
        "0",
        "--default-resources",
        "slurm_partition=cpu",
        "runtime=30",
        "mem_mb=1500",
        "cpus_per_task=1",
        "--set-resources",
        *[
            f"{rule}:{k}={v}"
            for rule in GPU_RULES
            for k, v in (("slurm_partition", "gpu"), ("gpu", 1), ("mem_mb", 3000))
        ],
        "pretrain_original:cpus_per_gpu=2",
        "evaluate:cpus_per_gpu=1",
    ]
    cmd, env = _snakemake_cmd(remote, *TARGETS, *overrides, cfg=cfg)  # targets before the nargs=+ flags
    # SIGINT, not SIGTERM, stops Snakemake's Slurm executor if it ever hangs
    r = subprocess.run(
        ["timeout", "-s", "INT", "-k", "30", "1500", *cmd], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]

    # every non-local job went through sbatch: its Slurm log, named by job id, under logs/slurm/rule_<name>/
    jobs = {}
    for log in (remote / "logs" / "slurm").rglob("*.log"):
        rule = next(p for p in log.relative_to(remote / "logs" / "slurm").parts if p.startswith("rule_"))
        jobs[int(log.stem)] = rule.removeprefix("rule_")
    rules = set(jobs.values())
    assert {"world", "data_order", "decode", "doc_info", "pretrain_original", "evaluate"} <= rules, rules
    # the partition each job was allocated, from the controller's log
    ctld = (slurm / "log" / "slurmctld.log").read_text()
    # (the main scheduler logs "Allocate JobId=N ... Partition=P", the backfill one "Started JobId=N in P")
    alloc = {int(j): p for j, p in re.findall(r"Allocate JobId=(\d+) .*?Partition=(\S+)", ctld)}
    alloc |= {int(j): p for j, p in re.findall(r"Started JobId=(\d+) in (\S+) on", ctld)}
    for job, rule in jobs.items():
        assert alloc.get(job) == ("gpu" if rule in GPU_RULES else "cpu"), (job, rule, alloc.get(job))
    import json

    summary = json.loads((remote / "results" / "train" / "original" / "summary.json").read_text())
    assert summary["world_size"] == 2  # two processes under torchrun

    def outputs(root: Path) -> list[Path]:
        return sorted(
            p.relative_to(root) for p in root.rglob("*") if p.is_file() and "benchmarks" not in p.parts
        )

    a, b = local / "results", remote / "results"
    assert outputs(a) == outputs(b)
    for f in outputs(a):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
