"""The plan before a run (intervene.plan): GPUs of a job's resources, jobs per rule, windows of each
intervention, the download size, the rule graph with job counts; end to end through Snakemake's dry
run on the toy and the full-scale 1B configs; the README's committed picture is current."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from intervene import plan as P

from .conftest import REPO
from .test_fullscale import GPU_RULES


def test_job_gpus_reads_gpu_and_per_node_gres():
    assert P.job_gpus({"tmpdir": "/tmp"}) == (0, 1)
    assert P.job_gpus({"gpu": 1}) == (1, 1)
    assert P.job_gpus({"gpu": 0, "gres": "gpu:8", "nodes": 2, "tasks": 16}) == (16, 2)
    assert P.job_gpus({"gres": "gpu:a100:4"}) == (4, 1)
    with pytest.raises(P.PlanError, match="gres='disk:10'"):
        P.job_gpus({"gres": "disk:10"})


def test_rule_rows_count_jobs_in_the_given_order_with_partitions():
    jobs = [P.Job("b", 1), P.Job("a"), P.Job("b", 1), P.Job("c", 16, 2), P.Job("a", 0, 1, "cpu2")]
    rows = P.rule_rows(jobs, order=["c", "b"], partitions={"b": "gpu", "*": "cpu"}, local_rules={"a"})
    assert [r.rule for r in rows] == ["c", "b", "a"]  # listed order first, then by name
    c, b, a = rows
    assert (c.jobs, c.gpus_per_job, c.nodes, c.gpu_total, c.partition) == (1, (16,), 2, 16, "cpu")
    assert (b.jobs, b.gpus_per_job, b.gpu_total, b.partition) == (2, (1,), 2, "gpu")
    assert (a.jobs, a.gpus_per_job, a.gpu_total, a.partition, a.local) == (2, (), 0, "cpu2", True)


def test_profile_partitions_of_the_slurm_profile():
    parts = P.profile_partitions(REPO / "profiles" / "slurm")
    assert parts["*"] == "<cpu-partition>"
    for rule in ("pretrain_original", "pretrain_rerun", "evaluate", "evaluate_rerun", "encode_docs"):
        assert parts[rule] == "<gpu-partition>", rule
    assert P.profile_partitions(None) == {}
    with pytest.raises(P.PlanError, match="profile not found"):
        P.profile_partitions(REPO / "no-such-profile")


def _config(**interventions) -> dict:
    return {
        "data": {"train_config": "results/world/train_config.yaml", "source": "local"},
        "decode": {"batches_per_group": 100, "first_batch": 0, "last_batch": 350},
        "train": {"save_interval": 40, "original": True, "stop_at": 320},
        "interventions": interventions,
    }


def test_intervention_windows_follow_the_layout():
    cfg = _config(
        a={"strategy": "rm_coocc", "checkpoint": 200},
        b={"strategy": "rm_occ", "checkpoint": 320},  # two following windows, clipped at 350
        m={"strategy": "bm25_mapping", "checkpoint": 120, "datasets": ["sciq"]},
    )
    a, b, m = P.intervention_plans(cfg)
    assert (a.rewritten, a.reads, a.groups, a.control) == (
        (160, 200),
        (("following", (200, 240)),),
        ("002", "003"),  # batches 100-199, 200-299
        "control_160_200",
    )
    assert (b.rewritten, b.reads, b.groups) == ((280, 320), (("following", (320, 350)),), ("003", "004"))
    assert (m.rewritten, m.reads, m.groups, m.datasets) == (
        (80, 120),
        (("source", (120, 160)),),
        ("001", "002"),
        ("sciq",),
    )


def _url_config(tmp_path: Path, urls: list[str]) -> dict:
    (tmp_path / "cfg").mkdir(exist_ok=True)
    tc = {"data": {"paths": urls}, "model": {"max_sequence_length": 8}, "global_train_batch_size": 2}
    (tmp_path / "cfg" / "train.yaml").write_text(yaml.safe_dump(tc))
    return {
        "data": {
            "train_config": "cfg/train.yaml",
            "source": "url",
            "download": {"root": "resources/data", "num_shards": 2},
        }
    }


def test_download_size_is_unknown_until_the_manifests_say(tmp_path):
    urls = ["http://h.org/a.npy", "http://h.org/b.npy", "http://h.org/a.npy"]
    cfg = _url_config(tmp_path, urls)
    d = P.download_plan(cfg, tmp_path)
    assert (d.files, d.bytes) == (2, None) and "unknown until download" in d.note
    assert "2 files, size unknown until download" in P.format_plan(_plan(cfg, tmp_path))
    # a data-order manifest of other files (e.g. the toy world's) says nothing about these
    (tmp_path / "results" / "data").mkdir(parents=True)
    data_files = tmp_path / P.DATA_FILES
    data_files.write_text("index\tpath\tbytes\n0\tresults/world/data/part-000.npy\t99\n")
    assert P.download_plan(cfg, tmp_path).bytes is None
    # the download manifests, once all shards wrote theirs
    man = tmp_path / "resources" / "manifests"
    man.mkdir(parents=True)
    (man / "shard_0.tsv").write_text("url\tpath\tbytes\nhttp://h.org/a.npy\tx\t1500\n")
    assert P.download_plan(cfg, tmp_path).bytes is None  # shard 1 missing
    (man / "shard_1.tsv").write_text("url\tpath\tbytes\nhttp://h.org/b.npy\ty\t2500000\n")
    d = P.download_plan(cfg, tmp_path)
    assert (d.files, d.bytes) == (2, 2501500)
    assert "Download: 2 files, 2.5 MB (from the download manifests" in P.format_plan(_plan(cfg, tmp_path))
    # or the data order's manifest of the mirrored files
    for f in man.iterdir():
        f.unlink()
    data_files.write_text(
        "index\tpath\tbytes\n0\tresources/data/h.org/a.npy\t10\n1\tresources/data/h.org/b.npy\t20\n"
    )
    assert P.download_plan(cfg, tmp_path).bytes == 30
    world = P.download_plan(_config(), tmp_path)
    assert world.files == 0 and "toy world" in world.note


def _plan(cfg: dict, root: Path, jobs=()) -> P.Plan:
    cfg = {
        "decode": {"batches_per_group": 100, "first_batch": 0, "last_batch": 100},
        "train": {"save_interval": 10, "original": True, "stop_at": 20},
        **cfg,
    }
    return P.build_plan(cfg, jobs, root=root)


def test_format_plan_sums_gpu_jobs(tmp_path):
    jobs = [P.Job("train", 16, 2)] * 3 + [P.Job("eval", 1)] * 5 + [P.Job("prep")] * 7
    plan = _plan(_config(x={"strategy": "add_coocc", "checkpoint": 200}), tmp_path, jobs)
    plan.interventions = P.intervention_plans(_config(x={"strategy": "add_coocc", "checkpoint": 200}))
    text = P.format_plan(plan)
    assert text.startswith("Plan of config (to run): 15 jobs, 8 of them on GPUs")
    assert re.search(r"train\s+3\s+16 \(2 nodes\)\s+48\n", text)
    assert re.search(r"eval\s+5\s+1\s+5\n", text) and re.search(r"prep\s+7\s+-\s+-\n", text)
    assert "GPU jobs: 8 (eval 5, train 3); the largest ask 16 GPUs each (train); 53 GPUs" in text
    assert re.search(r"x\s+add_coocc\s+200\s+\[160, 200\)\s+following \[200, 240\)", text)
    assert "partition" not in text  # no profile, no partition column


DAG_DOT = """digraph snakemake_dag {
    graph[bgcolor=white, margin=0];
	0[label = "all", color = "0.00 0.6 0.85", style="rounded"];
	1[label = "decode\\ngroup: 001", color = "0.1 0.6 0.85", style="rounded"];
	2[label = "decode\\ngroup: 002", color = "0.1 0.6 0.85", style="rounded"];
	3[label = "data_order", color = "0.2 0.6 0.85", style="rounded"];
	3 -> 1
	3 -> 2
	1 -> 0
	2 -> 0
}
"""


def test_rule_edges_collapse_jobs_to_rules():
    counts, edges = P.rule_edges(DAG_DOT)
    assert counts == Counter({"decode": 2, "all": 1, "data_order": 1})
    assert edges == [("data_order", "decode"), ("decode", "all")]
    with pytest.raises(P.PlanError):
        P.rule_edges("digraph {}")


def test_plan_dot_labels_rules_with_jobs_and_gpus(tmp_path):
    jobs = [P.Job("data_order")] + [P.Job("decode")] * 2 + [P.Job("train", 8, 2)] + [P.Job("all")]
    plan = _plan(_config(), tmp_path, jobs)
    plan.edges = [("data_order", "decode"), ("decode", "train"), ("train", "all")]
    dot = P.plan_dot(plan)
    assert dot == P.plan_dot(plan)
    assert '[label="decode\\n2 jobs", color="grey30"]' in dot
    assert re.search(
        r'\[label="train\\n1 job x 8 GPUs\\non 2 nodes", color="#b35806", style="rounded,filled"', dot
    )
    assert "all" not in dot.split("label=", 2)[2]  # `all` and its edges left out
    assert len(re.findall(r"\d+ -> \d+;", dot)) == 2


def test_user_inputs_of_the_1b_config():
    cfg = yaml.safe_load((REPO / "config" / "olmo2-1b.yaml").read_text())
    dirs, files = P.user_inputs(cfg)
    assert dirs == ["resources/pararel/huggingface"]
    assert len(files) == 12 and files[0] == "resources/pararel/search_terms/pararel_patterns_p17_train.txt"
    toy = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert P.user_inputs(toy) == ([], [])


# -- through Snakemake ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_plan(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "toy"
    return P.make_plan(["config/config.yaml"], workdir=REPO, out=out), out


@pytest.fixture(scope="module")
def plan_1b():
    return P.make_plan(
        [REPO / "config" / "olmo2-1b.yaml"], workdir=REPO, profile=REPO / "profiles" / "slurm", formats=()
    )


def _stats(text: str) -> dict[str, int]:
    """Snakemake's own "Job stats" table of a dry run."""
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return {r: int(n) for r, n in (line.split() for line in table if line.strip())}


def test_toy_plan_matches_the_dry_run(toy_plan, tmp_path):
    plan, out = toy_plan
    counts = {r.rule: r.jobs for r in plan.rows}
    # an independent dry run of the same config from nothing: Snakemake's job stats table
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    P.scratch_workdir(REPO, [REPO / "config" / "config.yaml"], cfg, tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    stats = _stats(r.stdout + r.stderr)
    assert counts == {k: v for k, v in stats.items() if k != "total"} and plan.total_jobs == stats["total"]
    assert not any(row.gpus_per_job for row in plan.rows)  # the toy world trains on CPU
    assert [v.name for v in plan.interventions] == list(cfg["interventions"])
    # the dry run itself printed the summary (stderr), with the same table
    assert "Plan of config/config.yaml (to run): " in r.stderr
    assert re.search(rf"\n  pretrain_rerun\s+{counts['pretrain_rerun']}\s+-\s+-\n", r.stderr)
    assert (out / "plan.txt").read_text() == P.format_plan(plan)
    assert (out / "rulegraph.dot").read_text() == P.plan_dot(plan)
    assert {e for e in plan.edges} >= {("pretrain_rerun", "evaluate_rerun"), ("swap", "intervention_list")}


def test_failed_dry_run_prints_no_plan(tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["interventions"]["rm_coocc_200"]["checkpoint"] = 7  # no checkpoint there: refused
    bad.write_text(yaml.safe_dump(cfg))
    P.scratch_workdir(REPO, [bad], cfg, tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--configfile", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Plan of" not in r.stdout + r.stderr
    with pytest.raises(P.PlanError, match="failed"):
        P.make_plan([bad], workdir=REPO, formats=())


def test_1b_plan_gpu_jobs_and_partitions(plan_1b):
    rows = {r.rule: r for r in plan_1b.rows}
    # 20 checkpoints evaluated (500..10000, the paper's) and the notebooks' figures
    assert plan_1b.total_jobs == 275 and rows["download"].jobs == 16
    gpu = {r.rule for r in plan_1b.rows if r.gpus_per_job}
    assert gpu == set(GPU_RULES)
    rerun = rows["pretrain_rerun"]
    assert (rerun.jobs, rerun.gpus_per_job, rerun.nodes) == (14 * 3 + 3 * 3, (16,), 2)
    assert all(rows[r].partition == "<gpu-partition>" for r in gpu)
    assert rows["labels"].local and rows["decode"].partition == "<cpu-partition>"
    windows = {v.name: (v.rewritten, v.reads[0][1]) for v in plan_1b.interventions}
    assert windows["rm_occ_3500"] == ((3000, 3500), (3500, 4500))
    assert windows["bm25_3000"] == ((2500, 3000), (3000, 3500))
    text = P.format_plan(plan_1b)
    assert "Download: 1117 files, size unknown until download" in text
    assert "Checkpoints of the original run (every K = 500 steps): 500, 1000, ..., 10000" in text


def test_readme_picture_of_the_1b_plan_is_current(plan_1b):
    """docs/plan/ holds what `make docs-plan` writes: the dot text is deterministic (the SVG depends
    on graphviz's version), so the text is compared; regenerate with `make docs-plan`."""
    docs = REPO / "docs" / "plan"
    assert (docs / "olmo2-1b-rulegraph.dot").read_text() == P.plan_dot(plan_1b), "run make docs-plan"
    assert (docs / "olmo2-1b-rulegraph.svg").read_bytes()[:200].lstrip().startswith((b"<?xml", b"<svg"))

    def stable(text: str) -> str:  # the download line reads the checkout's manifests, if any
        return re.sub(r"\nDownload: [^\n]*", "", text)

    assert stable((docs / "olmo2-1b-plan.txt").read_text()) == stable(P.format_plan(plan_1b))


def test_graphs_render(toy_plan):
    _, out = toy_plan
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (make setup installs it where it can)")
    for name in ("rulegraph", "dag"):
        assert (out / f"{name}.svg").read_bytes().find(b"<svg") >= 0
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    assert b"pretrain_rerun" in (out / "rulegraph.svg").read_bytes()
