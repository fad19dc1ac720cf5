"""The full-scale configs: OLMo's train YAML facts, the DAG a dry run builds (job counts: shards,
not per-term or per-file jobs), GPU resources on every GPU rule, and the DAG rendered by graphviz."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from .conftest import REPO

GPU_RULES = (
    "pretrain_original",
    "pretrain_rerun",
    "replay_check",
    "evaluate",
    "evaluate_rerun",
    "encode_docs",
    "encode_instances",
    "dense_window",
)


def test_olmo2_train_configs_hold_the_stage1_data_and_schedule():
    from intervene.olmo import load_train_config
    from intervene.train.optim import scheduled_lr

    for size, gbs, lr_step, lr in (("1b", 512, 3001, 3.001e-4), ("7b", 1024, 3000, 2.999995296279139e-4)):
        path = REPO / "config" / f"olmo2-{size}" / "train_config.yaml"
        spec = load_train_config(path)
        paths = spec.raw["data"]["paths"]
        assert len(paths) == 1122 and len(set(paths)) == 1117  # 5 DCLM files twice in a row, kept
        assert all(p.startswith("http://olmo-data.org/preprocessed/") for p in paths)
        assert spec.global_batch_size == gbs and spec.seq_len == 4096 and spec.seed == 6198
        assert str(spec.dtype) == "uint32"
        assert scheduled_lr(spec.raw, lr_step) == pytest.approx(lr, rel=1e-12)


def dry_run(workdir: Path, config: str, *args: str) -> subprocess.CompletedProcess:
    """`snakemake -n` on a full-scale config from a work folder holding the config files and the
    (empty) ParaRel folders and term files a user provides (the DAG checks that they exist)."""
    from intervene.evaluation.tasks import PARAREL_RELATIONS

    shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    for d in ("huggingface", "search_terms"):
        (workdir / "resources" / "pararel" / d).mkdir(parents=True, exist_ok=True)
    for rel in PARAREL_RELATIONS:
        (workdir / "resources" / "pararel" / "search_terms" / f"pararel_patterns_{rel}_train.txt").touch()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", f"config/{config}", "--replace-workflow-config", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def job_resources(out: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        r = re.search(r"resources: (.*)", block)
        if m:
            res = dict(kv.split("=", 1) for kv in r.group(1).split(", ")) if r else {}
            jobs.append((m.group(1), res))
    return jobs


@pytest.fixture(scope="module")
def olmo2_1b_dry_run(tmp_path_factory):
    r = dry_run(tmp_path_factory.mktemp("olmo2-1b"), "olmo2-1b.yaml", "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout + r.stderr


def test_olmo2_1b_dag_has_shard_sized_jobs(olmo2_1b_dry_run):
    counts = Counter(rule for rule, _ in job_resources(olmo2_1b_dry_run) if rule != "all")
    # 16 download shards for 1122 files; 4 groups of 1000 batches (1000-4999) decoded, located and
    # searched once each (all terms of all relations per pass); one original run, 20 checkpoints
    # evaluated (500..10000, the paper's); 14 interventions (9 ParaRel selections, 4 BM25 mappings: ParaRel, SciQ, OpenBookQA,
    # MMLU; a DPR mapping: SciQ) x 3 runs + 3 windows' controls x 3 runs re-run and evaluated
    assert counts["download"] == 16
    for rule in ("decode", "doc_info", "search", "term_doc", "pair_doc"):
        assert counts[rule] == 4, rule
    assert counts["pretrain_original"] == 1 and counts["evaluate"] == 20
    assert counts["select"] == 9 and counts["mapping"] == 5 and counts["bm25_window"] == 8
    assert counts["encode_docs"] == 2 and counts["dense_window"] == 2  # groups 003, 004; target, source
    assert counts["swap"] == counts["effect"] == 14
    assert counts["pretrain_rerun"] == counts["evaluate_rerun"] == 14 * 3 + 3 * 3
    # each mapping scores only its own task's instances, with a query that task has
    for name, ds, query in (("bm25_3000", "pararel", "subject"), ("bm25_mmlu_3000", "mmlu", "question")):
        assert re.search(
            rf"--datasets {ds} --query {query} --out results/interventions/{name}/", olmo2_1b_dry_run
        )
    assert counts["control_list"] == 3 and counts["report"] == 1
    # + the notebooks' figures (accuracy grid, learned-cooccurrence, 9 docs-per-instance)
    assert sum(counts.values()) == 274  # no per-term, per-file or per-batch jobs


def test_every_gpu_rule_carries_gpu_resources(olmo2_1b_dry_run):
    jobs = job_resources(olmo2_1b_dry_run)
    seen = set()
    for rule, res in jobs:
        if rule not in GPU_RULES:
            assert res.get("gpu", "0") == "0" and "gres" not in res, (rule, res)
            continue
        seen.add(rule)
        # 2 nodes x 8 GPUs: one torchrun per node under srun; the replay check runs as the original
        if rule.startswith("pretrain") or rule == "replay_check":
            assert res["gres"] == "gpu:8" and res["nodes"] == "2" and res["tasks"] == "16"
            assert res["mpi"] == "srun" and res["tasks_per_gpu"] == "0"
        else:
            assert int(res["gpu"]) >= 1, (rule, res)
    assert seen == set(GPU_RULES)
    # the multi-node launcher: srun starts torchrun_node.sh once per node
    assert re.search(
        r"srun --nodes=2 --ntasks-per-node=1 --ntasks=2 bash \S+torchrun_node.sh 8", olmo2_1b_dry_run
    )


@pytest.fixture(scope="module")
def dot():
    """graphviz's `dot`, installed from Debian when missing (as root)."""
    if shutil.which("dot") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("graphviz is not installed and cannot be (needs root and apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "graphviz"],
            check=True,
            env=env,
            capture_output=True,
        )
    return shutil.which("dot")


def test_dag_and_rulegraph_render(dot, tmp_path):
    for flag, fmt, magic in (("--rulegraph", "svg", b"<svg"), ("--dag", "png", b"\x89PNG")):
        r = dry_run(tmp_path, "olmo2-1b.yaml", flag)
        assert r.returncode == 0, r.stderr[-3000:]
        img = subprocess.run(
            [dot, f"-T{fmt}"], input=r.stdout.encode(), capture_output=True, check=True
        ).stdout
        assert magic in img[:1000]
    assert (
        b"pretrain_rerun"
        in subprocess.run(
            [dot, "-Tsvg"],
            input=dry_run(tmp_path, "olmo2-1b.yaml", "--rulegraph").stdout.encode(),
            capture_output=True,
        ).stdout
    )


def test_olmo2_1b_evaluates_to_step_10000_as_the_paper(olmo2_1b_dry_run):
    """The paper's 1B labels (labels_olmo2_1b_retr_step_500_to_10000): checkpoints 500, 1000, ...,
    10000 of a run trained to 10000; the interventions' windows stay [c - 500, c)."""
    steps = sorted(
        int(s) for s in re.findall(r"rule evaluate:\n(?:.*\n)*?\s+wildcards: step=(\d+)", olmo2_1b_dry_run)
    )
    assert steps == list(range(500, 10001, 500))
    assert re.search(r"train --train-config \S+ --order .*\"stop_after\": 10000", olmo2_1b_dry_run)
    for c in (2000, 3000, 3500):
        assert f"--data-list results/reruns/control_{c - 500}_{c}/data_list.txt" in olmo2_1b_dry_run
        assert f"results/reruns/rm_coocc_{c}/run1/step{c} " in olmo2_1b_dry_run  # evaluated at c


def test_olmo2_7b_plans_released_checkpoints(tmp_path):
    """7B: the released checkpoints are the original run: evaluated at their HF revisions, and the
    windows' start checkpoints fetched unsharded and imported for the re-runs. The paper's windows:
    [2000, 2150) rewritten, re-runs from step 2000 for 150 steps evaluated at 2150, extras from
    [2150, 3000) (J learned at 3000)."""
    r = dry_run(tmp_path, "olmo2-7b.yaml", "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    counts = Counter(rule for rule, _ in job_resources(out) if rule != "all")
    # the paper's: every 1000 to 30000, and 2150
    assert "pretrain_original" not in counts and counts["evaluate"] == 31
    assert "--model allenai/OLMo-2-1124-7B --revision stage1-step2150-tokens10B" in out
    assert counts["fetch_released"] == counts["import_released"] == 1  # step 2000 only
    assert "https://olmo-checkpoints.org/ai2-llm/peteish7/step2000-unsharded/" in out
    # 4 interventions on one window, one control: 3 runs each, all 150 steps from step 2000
    assert counts["pretrain_rerun"] == counts["evaluate_rerun"] == 4 * 3 + 1 * 3
    reruns = re.findall(r"--data-list results/reruns/(\S+)/data_list.txt --settings '([^']+)'", out)
    assert len(reruns) == 15 and {run for run, _ in reruns} == {
        "rm_coocc_2150",
        "rm_occ_2150",
        "add_coocc_2150",
        "bm25_2150",
        "control_2000_2150",
    }
    for _, settings in reruns:
        s = json.loads(settings)
        assert (s["load_path"], s["stop_after"], s["save_interval"]) == (
            "results/train/original/step2000",
            150,
            150,
        )
    evaluated = set(re.findall(r"intervene eval --model results/reruns/(\S+)/run\d/step(\d+) ", out))
    assert {step for _, step in evaluated} == {"2150"} and len(evaluated) == 5
    # selections: the window and the extras window, J learned at 3000; the rewritten window's list
    for name in ("rm_coocc_2150", "rm_occ_2150", "add_coocc_2150"):
        s = json.loads(
            re.search(rf"intervene select --settings '([^']+)'.*--out results/interventions/{name}/", out)[1]
        )
        assert (s["window"], s["extras_window"], s["checkpoint"]) == ([2000, 2150], [2150, 3000], 2150)
    assert "--target-window 2000 2150 --source-window 2150 3000" in out
    assert "--first 2150 --last 3000" in out and "--first 2000 --last 2150" in out  # bm25 windows
    assert (
        counts["control_list"] == 1
        and "--first 2000 --last 2150 --out results/reruns/control_2000_2150" in out
    )
    assert "effect.json" in out and "control_2000_2150/labels.npz" in out
    # 7B re-runs shard weights and optimizer state (FSDP2), one torchrun per node on 4 nodes
    assert re.search(r"srun --nodes=4 .*torchrun_node.sh 8 train .*--settings .*\"strategy\": \"fsdp\"", out)


def test_hf_revision_names():
    from intervene.train.released import hf_revision

    assert hf_revision(10000, 512, 4096) == "stage1-step10000-tokens21B"  # OLMo 2 1B, as released
    assert hf_revision(3000, 1024, 4096) == "stage1-step3000-tokens13B"
    assert hf_revision(1000, 1024, 4096) == "stage1-step1000-tokens5B"


def test_conda_envs_are_valid_and_match_the_package():
    """`--sdm conda` envs: valid YAML, the package env installs this repository (so its pins are
    pyproject.toml's) on a Python pyproject admits, the OLMo env keeps the backend's numpy<2, and every
    rule's `conda:` names an env that exists."""
    import tomllib
    import yaml
    from packaging.specifiers import SpecifierSet

    envs = REPO / "workflow" / "envs"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    spec = yaml.safe_load((envs / "intervene.yaml").read_text())
    deps = spec["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert python.split("=")[1] + ".0" in SpecifierSet(project["requires-python"])
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    editable = next(p for p in pip if p.startswith("-e "))
    assert (envs / editable[3:]).resolve() == REPO.resolve() and project["name"] == "intervene"
    olmo = yaml.safe_load((envs / "olmo.yaml").read_text())
    olmo_pip = next(d["pip"] for d in olmo["dependencies"] if isinstance(d, dict))
    assert "numpy<2" in olmo_pip
    rules_dir = REPO / "workflow" / "rules"
    named = set()
    for smk in rules_dir.glob("*.smk"):
        named |= set(re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()))
    assert named == {"../envs/intervene.yaml", "../envs/olmo.yaml"}
    for env in named:
        assert (rules_dir / env).is_file()
