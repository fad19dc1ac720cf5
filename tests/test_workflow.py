"""The Snakemake workflow on a small toy world: dry run, a real run up to doc info, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import REPO, SMALL_WORLD, save_tiny_encoders


def small_config(**data_over) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["world"] = {**cfg["world"], **SMALL_WORLD}
    cfg["decode"] = {"batches_per_group": 12, "first_batch": 0, "last_batch": 30}
    cfg["train"].update(save_interval=10, replay_check={"from_step": 10, "steps": 10})
    cfg["experiment"] = {
        **cfg["experiment"],
        "runs": 2,
        "bootstrap": {"samples": 200, "level": 0.9, "seed": 0},
    }
    cfg["eval"]["target_steps"] = [20]
    cfg["match"]["bm25"]["k"] = 50
    cfg["interventions"] = {n: {**v, "checkpoint": 20} for n, v in cfg["interventions"].items()}
    cfg["data"].update(data_over)
    return cfg


def _snakemake_cmd(workdir: Path, *args: str, cfg: dict | None = None) -> tuple[list[str], dict]:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg or small_config()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    return cmd, env


def snakemake(workdir: Path, *args: str, cfg: dict | None = None) -> subprocess.CompletedProcess:
    cmd, env = _snakemake_cmd(workdir, *args, cfg=cfg)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def test_dry_run_lists_the_stages(tmp_path):
    r = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for rule in ("world", "data_order", "decode", "doc_info", "pretrain_original", "replay_check", "all"):
        assert rule in out
    assert "download" not in out  # local data: nothing to download


def test_schema_rejects_bad_config(tmp_path):
    cfg = small_config()
    cfg["decode"]["batches_per_group"] = 0
    r = snakemake(tmp_path, "-n", cfg=cfg)
    assert r.returncode != 0 and "batches_per_group" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wf")
    r = snakemake(d, "--cores", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def test_run_builds_everything_up_to_doc_info(run_dir):
    res = run_dir / "results" / "data"
    assert (res / "global_indices.npy").exists() and (res / "data_files.tsv").exists()
    for g in ("001", "002", "003"):
        assert (res / "doc_info" / f"{g}.npy").exists()
    assert sorted(int(p.stem) for p in (res / "batches" / "003").glob("*.npy")) == list(range(24, 30))
    rows = np.load(res / "doc_info" / "002.npy")
    assert rows.shape[1] == 4 and set(rows[:, 0].tolist()) == set(range(12))
    for rule in ("world", "data_order", "decode/001", "doc_info/001", "train/original", "train/replay_check"):
        assert (run_dir / "logs" / f"{rule}.log").exists()


def test_run_trains_and_replays_exactly(run_dir):
    import json

    orig = run_dir / "results" / "train" / "original"
    assert json.loads((orig / "summary.json").read_text())["checkpoints"] == [0, 10, 20, 30]
    rc = json.loads((run_dir / "results" / "train" / "replay_check.json").read_text())
    assert rc["passed"] and rc["tensors_not_bit_identical"] == 0 and rc["reference"].endswith("step20")


def test_run_evaluates_checkpoints_and_finds_learned_instances(run_dir):
    import json

    ev = run_dir / "results" / "eval" / "original"
    z = np.load(ev / "labels.npz")
    assert z["steps"].tolist() == [0, 10, 20, 30]
    assert z["labels"].shape == (12 * SMALL_WORLD["facts_per_relation"], 4)
    assert list(dict.fromkeys(z["dataset_labels"].tolist()))[:3] == ["p17", "p27", "p36"]  # the paper's order
    s = json.loads((ev / "learned.json").read_text())
    assert sum(s["learned_per_step"].values()) + s["never_learned"] == z["labels"].shape[0]
    assert (ev / "step30" / "task-011-pararel_p1412-predictions.jsonl").exists()
    for png in ("accuracy.png", "learned_hist.png"):
        assert (ev / png).read_bytes()[:4] == b"\x89PNG"
    t = np.load(ev / "learned_step20.npz")
    assert t["inst_idxs"].size == s["learned_per_step"]["20"]


def test_run_matches_terms_and_instances(run_dir):
    import scipy.sparse as sp

    res = run_dir / "results"
    terms = (res / "search" / "terms.txt").read_text().splitlines()
    assert terms == sorted(set(terms))
    for g in ("001", "002", "003"):
        n_docs = len(np.load(res / "data" / "doc_info" / f"{g}.npy"))
        occ = np.load(res / "search" / "occurrences" / f"{g}.npz")
        assert int(occ["n_docs"]) == n_docs and occ["term"].max() < len(terms)
        rel_terms = (
            (res / "world" / "search_terms" / "pararel_patterns_p17_train.txt").read_text().splitlines()
        )
        td = sp.load_npz(res / "search" / "term_doc" / g / "p17.npz")
        assert td.shape == (len(rel_terms), n_docs)
        pd = sp.load_npz(res / "search" / "pair_doc" / g / "p17.npz")
        assert pd.shape == (SMALL_WORLD["facts_per_relation"], n_docs)
        assert pd.nnz <= td.nnz
    # the world writes facts into documents: some instance co-occurs somewhere
    assert sum(sp.load_npz(p).nnz for p in (res / "search" / "pair_doc").glob("*/*.npz")) > 0
    bm = sp.load_npz(res / "search" / "bm25" / "002.npz")
    assert bm.shape == (
        12 * SMALL_WORLD["facts_per_relation"],
        len(np.load(res / "data" / "doc_info" / "002.npy")),
    )
    assert bm.nnz > 0 and (bm.data > 0).all()


@pytest.fixture()
def tiny_dpr(run_dir, tmp_path) -> Path:
    """Tiny random DPR context (`ctx`) and question (`q`) encoders with the small world's tokenizer."""
    from transformers import DPRConfig, DPRContextEncoder, DPRQuestionEncoder

    save_tiny_encoders(
        run_dir / "results" / "world" / "tokenizer",
        tmp_path,
        {"ctx": (DPRContextEncoder, DPRConfig), "q": (DPRQuestionEncoder, DPRConfig)},
        layers=1,
    )
    return tmp_path


def test_dense_rules_with_tiny_dpr_encoders(run_dir, tiny_dpr):
    import scipy.sparse as sp

    tmp_path = tiny_dpr
    cfg = small_config()
    cfg["match"]["dense"] = {
        "ctx_model": str(tmp_path / "ctx"),
        "question_model": str(tmp_path / "q"),
        "groups": ["002"],
        "k": 7,
        "query": "question",
    }
    r = snakemake(run_dir, "--cores", "2", "results/search/dense/similarity.npz", cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    m = sp.load_npz(run_dir / "results" / "search" / "dense" / "similarity.npz")
    n_docs = len(np.load(run_dir / "results" / "data" / "doc_info" / "002.npy"))
    assert m.shape == (12 * SMALL_WORLD["facts_per_relation"], n_docs)
    assert (np.diff(m.indptr) == 7).all()


def test_run_selects_documents_for_the_interventions(run_dir):
    res = run_dir / "results"
    info = np.concatenate([np.load(res / "data" / "doc_info" / f"{g}.npy") for g in ("001", "002")])
    first_batch = np.concatenate(
        [
            np.load(res / "data" / "doc_info" / "001.npy")[:, 0],
            np.load(res / "data" / "doc_info" / "002.npy")[:, 0] + 12,
        ]
    )
    learned = np.load(res / "eval" / "original" / "learned.npz")["learned_step"]
    for name in ("rm_coocc_200", "rm_occ_200", "add_coocc_200"):
        z = np.load(res / "interventions" / name / "doc_idxs.npz")
        assert z["orig_window"].tolist() == [10, 20] and z["orig_groups"].tolist() == ["001", "002"]
        # window(20) = batches 10..19, which span groups 001 (0-11) and 002 (12-23)
        assert ((first_batch[z["orig_idxs"]] >= 10) & (first_batch[z["orig_idxs"]] < 20)).all()
        assert set(learned[z["orig_inst_idxs"]].tolist()) <= {20}
        assert set(learned[z["new_inst_idxs"]].tolist()) <= {30}
    m = np.load(res / "interventions" / "bm25_200" / "mapping.npz")
    sizes_t = info[m["orig_idxs"], 3] - info[m["orig_idxs"], 2] + 1
    # the source window [20, 30) spans groups 002 (12-23) and 003 (24-35): rows of their concatenation
    src = np.concatenate([np.load(res / "data" / "doc_info" / f"{g}.npy") for g in ("002", "003")])
    sizes_s = src[m["new_idxs"], 3] - src[m["new_idxs"], 2] + 1
    assert (sizes_s >= sizes_t).all() and len(set(m["new_idxs"].tolist())) == m["new_idxs"].size
    # the swap wrote every batch of window(20) = 10..19, shapes kept, untouched batches unchanged
    import json

    for name in ("rm_coocc_200", "rm_occ_200", "add_coocc_200", "bm25_200"):
        out = res / "interventions" / name / "batches"
        audit = json.loads((out / "audit.json").read_text())
        assert (out / "data_list.txt").read_text().split() == [f"{b}.npy" for b in range(10, 20)]
        assert audit["replaced"] + audit["skipped"] == audit["pairs"]
        dc = audit["decoded_check"]  # decoded: removed texts gone, inserted texts there
        assert not dc["problems"] and dc["removed_absent"] == dc["inserted_present"] == audit["pairs"]
        for b in range(10, 20):
            orig = np.load(res / "data" / "batches" / f"{1 + b // 12:03d}" / f"{b}.npy")
            new = np.load(out / f"{b}.npy")
            assert new.shape == orig.shape and new.dtype == orig.dtype
            if audit["per_batch"][str(b)]["replaced"] == 0:
                assert (new == orig).all()


def test_decoded_check_catches_a_bad_swap(run_dir, tmp_path):
    import shutil

    from intervene.swap import check_swap

    res = run_dir / "results"
    out = tmp_path / "batches"
    shutil.copytree(res / "interventions" / "rm_coocc_200" / "batches", out)
    changed = [
        b
        for b in range(10, 20)
        if (
            np.load(out / f"{b}.npy") != np.load(res / "data" / "batches" / f"{1 + b // 12:03d}" / f"{b}.npy")
        ).any()
    ]
    assert changed
    b = changed[0]  # put the original batch back: its removed documents are there again
    shutil.copy(res / "data" / "batches" / f"{1 + b // 12:03d}" / f"{b}.npy", out / f"{b}.npy")
    r = check_swap(
        out,
        res / "interventions" / "rm_coocc_200" / "doc_idxs.npz",
        [res / "data" / "doc_info" / f"{g}.npy" for g in ("001", "002", "003")],
        [res / "data" / "batches" / g for g in ("001", "002", "003")],
        res / "world" / "tokenizer",
    )
    assert r["problems"] > 0


def test_intervention_reruns_controls_and_memmaps(run_dir):
    """An intervention's re-runs train from checkpoint c - K over its rewritten batches; the control
    of that window re-reads it unmodified, and its run 1 (in order) reproduces the original
    checkpoint on CPU while run 2 reads a permutation; the memmaps hold the batches' tokens."""
    import json

    r = snakemake(run_dir, "--cores", "2", "results/interventions/rm_coocc_200/memmap")
    assert r.returncode == 0, r.stderr[-3000:]
    res = run_dir / "results"
    s = json.loads((res / "reruns" / "rm_coocc_200" / "run1" / "summary.json").read_text())
    assert s["final_step"] == 20 and s["checkpoints"] == [20] and s["order_seed"] is None
    s2 = json.loads((res / "reruns" / "rm_coocc_200" / "run2" / "summary.json").read_text())
    assert s2["order_seed"] == 2
    lines = (res / "reruns" / "rm_coocc_200" / "data_list.txt").read_text().split()
    assert lines == [f"../../interventions/rm_coocc_200/batches/{b}.npy" for b in range(10, 20)]
    from intervene.train.replay import compare_checkpoints

    control = res / "reruns" / "control_10_20"
    lines = (control / "data_list.txt").read_text().split()
    assert lines == [f"../../data/batches/{1 + b // 12:03d}/{b}.npy" for b in range(10, 20)]
    orig = res / "train" / "original" / "step20"
    assert compare_checkpoints(orig, control / "run1" / "step20")["passed"]
    assert not compare_checkpoints(orig, control / "run2" / "step20")["passed"]  # another order
    mm = res / "interventions" / "rm_coocc_200" / "memmap"
    for b in (10, 19):
        batch = np.load(res / "interventions" / "rm_coocc_200" / "batches" / f"{b}.npy")
        assert (np.fromfile(mm / f"{b}.npy", dtype=np.uint32).reshape(batch.shape) == batch).all()


def test_effect_report(run_dir):
    """Every re-run is evaluated; the effect of each intervention is computed from those labels
    against the shared control, and the report documents them all."""
    import json

    from intervene.effect import compute_effect, targeted_instances
    from intervene.effect.compute import run_matrix
    from intervene.settings import BootstrapConfig

    res = run_dir / "results"
    rep = res / "report"
    names = ["rm_coocc_200", "rm_occ_200", "add_coocc_200", "bm25_200"]
    z = np.load(res / "eval" / "reruns" / "control_10_20" / "labels.npz")
    assert sorted(z.files) == ["dataset_labels", "metric", "run1", "run2", "steps"] and z[
        "steps"
    ].tolist() == [20]
    assert set(z["metric"].tolist()) == {"acc_per_token"}  # the config's one metric, per instance
    # control run 1 = the original run's checkpoint 20: the same correctness
    orig = np.load(res / "eval" / "original" / "labels.npz")
    assert (z["run1"][:, 0] == orig["labels"][:, orig["steps"].tolist().index(20)]).all()
    for name in names:
        e = json.loads((rep / name / "effect.json").read_text())
        _, inter, _ = run_matrix(res / "eval" / "reruns" / name / "labels.npz")
        _, ctrl, _ = run_matrix(res / "eval" / "reruns" / "control_10_20" / "labels.npz")
        tfile = (
            res / "eval" / "original" / "learned_step20.npz"
            if name == "bm25_200"
            else res / "interventions" / name / "doc_idxs.npz"
        )
        ref = compute_effect(
            inter, ctrl, targeted_instances(tfile), bootstrap=BootstrapConfig(200, level=0.9, seed=0)
        )
        assert e["targeted"] == json.loads(json.dumps(ref["targeted"]))
        assert e["runs"] == {"intervention": 2, "control": 2} and e["step"] == 20
        assert e["swap"]["decoded_check"]["problems"] == 0 and e["replay_fidelity"]["passed"]
        assert (rep / name / "effect.png").read_bytes()[:4] == b"\x89PNG"
    head = (rep / "headline.txt").read_text().splitlines()
    configured = yaml.safe_load((run_dir / "config" / "config.yaml").read_text())["interventions"]
    assert [h.split(" ")[0] for h in head] == list(configured)  # in the config's order
    md = (rep / "summary.md").read_text()
    assert all(f"| {n} |" in md for n in names) and "## Swap audit" in md
    assert (rep / "summary.html").read_text().count("data:image/png;base64,") == 1 + len(names)
    # Snakemake's own report gathers the report() outputs with their captions
    r = snakemake(run_dir, "--report", str(run_dir / "snakemake_report.html"))
    assert r.returncode == 0, r.stderr[-3000:]
    page = (run_dir / "snakemake_report.html").read_text()
    assert "effects.png" in page and "summary.html" in page


def test_cli_and_rule_give_identical_bytes(run_dir, tmp_path):
    """The same stage run by hand through the CLI reproduces the rule's output byte for byte."""
    res = run_dir / "results"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "intervene.cli",
            "doc-info",
            "--group-dir",
            str(res / "data" / "batches" / "002"),
            "--tokenizer",
            str(res / "world" / "tokenizer"),
            "--out",
            str(tmp_path / "002.npy"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "002.npy").read_bytes() == (res / "data" / "doc_info" / "002.npy").read_bytes()


def _terminate_when(workdir: Path, condition, what: str) -> None:
    """Start the pipeline and, as soon as ``condition()`` holds, SIGTERM its whole process group
    (Snakemake and the jobs it runs: a terminal hang-up, a cluster's kill); wait until all are gone."""
    cmd, env = _snakemake_cmd(workdir, "--cores", "2")
    with open(workdir / f"killed_during_{what}.log", "w") as out:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 900
    try:
        while not condition():
            assert p.poll() is None, f"the pipeline ended before {what}"
            assert time.monotonic() < deadline, f"no {what} within 900 s"
            time.sleep(0.005)
        os.killpg(p.pid, signal.SIGTERM)
        assert p.wait(timeout=300) != 0
        while time.monotonic() < deadline:  # the jobs unwind (temporary outputs removed), then exit
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def test_killed_pipeline_resumes_to_identical_bytes(run_dir, tmp_path):
    """Kill the whole pipeline during the original run's training, then during a swap; each time
    nothing half-written is left, and the rerun resumes (training from its last checkpoint) and
    ends with the same bytes as the uninterrupted run: every stage, the re-runs and the report."""
    d2 = tmp_path / "second"
    res2 = d2 / "results"
    orig = res2 / "train" / "original"

    def training() -> bool:
        return (orig / "step10").is_dir() and not (orig / "summary.json").exists()

    def swapping() -> bool:
        return any(res2.glob("interventions/*/.batches.tmp-*"))

    _terminate_when(d2, training, "training")
    assert not (orig / "summary.json").exists() and (orig / "step10").is_dir()
    assert not list(res2.rglob("*.tmp-*")), "a killed job left temporary output behind"
    _terminate_when(d2, swapping, "a swap")
    assert not list(res2.rglob("*.tmp-*")), "a killed job left temporary output behind"
    swapped = [p.parent.name for p in res2.glob("interventions/*/batches/audit.json")]
    assert len(swapped) < 4  # at least the swap that was running is not there
    r = snakemake(d2, "--cores", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (
        "starting from results/train/original/step10" in (d2 / "logs" / "train" / "original.log").read_text()
    )

    def outputs(root: Path) -> list[Path]:
        skip = {"benchmarks", "dense", "memmap"}  # timings; and what other tests added to run_dir
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and not skip & set(p.parts))

    a, b = run_dir / "results", res2
    files = outputs(a)
    assert files == outputs(b)
    assert any(f.name == "model.safetensors" for f in files) and len(files) > 100
    assert Path("report/summary.html") in files and Path("reruns/control_10_20/run2/step20/optim.pt") in files
    for f in files:
        assert (b / f).read_bytes() == (a / f).read_bytes(), f


@pytest.fixture()
def http_server(small_world):
    """Serve the small world's folder on 127.0.0.1 (HEAD and GET, as a plain static server)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(small_world))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_url_source_downloads_then_runs(small_world, small_data, http_server, tmp_path):
    """data.source: url -> sharded download, localized config, same data order as local files."""
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    raw["data"]["paths"] = [f"{http_server}/{p}" for p in raw["data"]["paths"]]
    url_cfg = tmp_path / "olmo_urls.yaml"
    url_cfg.write_text(yaml.safe_dump(raw))
    cfg = small_config(
        train_config=str(url_cfg),
        tokenizer=str(small_world / "tokenizer"),
        source="url",
        download={"root": "resources/data", "num_shards": 2, "workers": 2},
    )
    cfg["train"]["original"] = False  # real data: the original run's checkpoints are released ones
    cfg["match"]["terms_dir"] = str(small_world / "search_terms")  # the user's term files and items
    cfg["eval"]["sources"]["pararel"] = str(small_world / "eval")
    wd = tmp_path / "wd"
    r = snakemake(wd, "--cores", "2", cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    host = http_server.split("//")[1]
    for p in ("data/part-000.npy", "data/part-002.npy"):
        assert (wd / "resources" / "data" / host / p).read_bytes() == (small_world / p).read_bytes()
    assert sorted(p.name for p in (wd / "resources" / "manifests").iterdir()) == [
        "shard_0.tsv",
        "shard_1.tsv",
    ]
    got = (wd / "results" / "data" / "global_indices.npy").read_bytes()
    assert got == small_data["order"].read_bytes()
    assert (wd / "results" / "data" / "doc_info" / "003.npy").exists()
    assert not (wd / "results" / "world").exists()  # no toy world was generated in URL mode
    assert (wd / "results" / "search" / "pair_doc" / "003" / "p17.npz").exists()


def test_selection_ignores_other_tasks_rows(run_dir, tmp_path):
    """With SciQ rows before the ParaRel block in the labels (an evaluation of both), a selection
    picks the same documents and reports the same instances, shifted to their labels.npz rows."""
    from intervene.select.stages import select_documents
    from intervene.settings import SelectConfig

    res = run_dir / "results"
    z = dict(np.load(res / "eval" / "original" / "learned.npz"))
    extra = 3
    z["dataset_labels"] = np.concatenate([np.full(extra, "sciq"), z["dataset_labels"].astype(str)])
    z["learned_step"] = np.concatenate([np.full(extra, 20), z["learned_step"]])  # "learned" SciQ rows
    z["learned_index"] = np.concatenate([np.full(extra, 2), z["learned_index"]])
    np.savez(tmp_path / "learned.npz", **z)
    rels = [f"p{r}" for r in (17, 27, 36, 127, 131, 138, 176, 178, 276, 495, 1376, 1412)]
    groups = ["001", "002", "003"]  # window(20) = [10, 20) and the following [20, 30), 12 per group
    for strategy in ("rm_coocc", "rm_occ", "add_coocc"):
        select_documents(
            SelectConfig(strategy, 20, interval=10, last_batch=30),
            learned_npz=tmp_path / "learned.npz",
            pair_doc=[res / "search" / "pair_doc" / g for g in groups],
            term_doc=[res / "search" / "term_doc" / g for g in groups],
            doc_info=[res / "data" / "doc_info" / f"{g}.npy" for g in groups],
            group_dirs=[res / "data" / "batches" / g for g in groups],
            terms_dir=res / "world" / "search_terms",
            pararel_root=res / "world" / "eval",
            relations=rels,
            out=tmp_path / f"{strategy}.npz",
        )
        name = {"rm_coocc": "rm_coocc_200", "rm_occ": "rm_occ_200", "add_coocc": "add_coocc_200"}[strategy]
        ref = np.load(res / "interventions" / name / "doc_idxs.npz")
        got = np.load(tmp_path / f"{strategy}.npz")
        for key in ("orig_idxs", "new_idxs", "extra_idxs"):
            assert (got[key] == ref[key]).all(), (strategy, key)
        for key in ("orig_inst_idxs", "new_inst_idxs"):
            assert (got[key] == ref[key] + extra).all(), (strategy, key)


def test_dense_mapping_intervention(run_dir, tiny_dpr):
    """A DPR-score mapping (strategy dense_mapping) runs end to end to its effect; its window scores
    are the top-k dot products of the targets' question embeddings with the window's documents."""
    import json

    import scipy.sparse as sp

    from intervene.search.dense import encode, load_encoder
    from intervene.search.stages import task_queries
    from intervene.select.windows import read_groups, window

    res = run_dir / "results"
    tmp_path = tiny_dpr
    cfg = small_config()
    cfg["match"]["dense"] = {
        "ctx_model": str(tmp_path / "ctx"),
        "question_model": str(tmp_path / "q"),
        "k": 5,
    }
    cfg["interventions"]["dpr_200"] = {
        "strategy": "dense_mapping",
        "checkpoint": 20,
        "per_inst": 2,
        "query": "question",
    }
    r = snakemake(run_dir, "--cores", "2", "results/report/dpr_200/effect.json", cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    e = json.loads((res / "report" / "dpr_200" / "effect.json").read_text())
    targets = np.load(res / "eval" / "original" / "learned_step20.npz")["inst_idxs"]
    assert e["targeted"]["n"] == len(targets) and e["swap"]["decoded_check"]["problems"] == 0
    # the target window's scores against a brute-force reference
    groups = read_groups(
        [res / "data" / "doc_info" / f"{g}.npy" for g in ("001", "002")],
        [res / "data" / "batches" / g for g in ("001", "002")],
    )
    w = window(groups, 10, 20)
    docs = np.concatenate([np.load(res / "search" / "dense" / "docs" / f"{g}.npy") for g in w.groups])[w.rows]
    tok, enc, pooling = load_encoder(tmp_path / "q", "dpr_question")
    tasks = cfg["eval"]["tasks"]
    q = encode(
        tok,
        enc,
        task_queries(tasks, {"pararel": str(res / "world" / "eval")}, "question", targets),
        pooling=pooling,
    )
    full = q @ docs.T
    got = sp.load_npz(res / "interventions" / "dpr_200" / "scores_target.npz").tocsr()
    assert got.shape == full.shape and (np.diff(got.indptr) == 5).all()
    for i in range(full.shape[0]):
        top = np.sort(full[i])[::-1][:5]
        assert np.allclose(np.sort(got[i].data)[::-1], top, rtol=1e-5, atol=1e-6)
    m = np.load(res / "interventions" / "dpr_200" / "mapping.npz")
    assert m["orig_idxs"].size > 0 and m["orig_idxs"].size == m["new_idxs"].size
