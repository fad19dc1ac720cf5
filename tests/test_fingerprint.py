"""Run fingerprints: a run folder resumes only from checkpoints of the same run; a changed order seed,
batch file, start checkpoint, config value or token file starts it fresh, equal to a clean run."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from intervene.train import fingerprint as fpm
from intervene.train.checkpoint import checkpoints
from intervene.train.fingerprint import (
    FINGERPRINT_FILE,
    config_section,
    differences,
    file_identity,
    read_fingerprint,
)
from intervene.train.trainer import train

STEPS = 2  # re-run steps, from the original run's step 2 (few: every step counts on a shared CPU)


def _bytes(ck: Path) -> bytes:
    return (ck / "model.safetensors").read_bytes() + (ck / "optim.pt").read_bytes()


@pytest.fixture(scope="module")
def original(small_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fp_orig") / "run"
    train(small_world / "train_config.yaml", out, stop_after=2, save_interval=2, device="cpu")
    return out


@pytest.fixture()
def batches(small_world, tmp_path) -> Path:
    """A re-run's data list: STEPS batch files of [global batch, seq len] tokens."""
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    gbs, L = raw["global_train_batch_size"], raw["model"]["max_sequence_length"]
    d = tmp_path / "batches"
    d.mkdir()
    rng = np.random.default_rng(0)
    for b in range(STEPS):
        np.save(d / f"{b}.npy", rng.integers(0, 600, size=(gbs, L), dtype=np.uint32))
    (d / "list.txt").write_text("".join(f"{b}.npy\n" for b in range(STEPS)))
    return d


def rerun(cfg, out, start, batches, **kw):
    kw.setdefault("stop_after", STEPS)
    kw.setdefault("save_interval", STEPS)
    return train(cfg, out, load_path=start, data_list=batches / "list.txt", device="cpu", **kw)


# --- the module's parts


def test_file_identity_hashes_contents_and_samples_large_files(tmp_path, monkeypatch):
    f = tmp_path / "a.bin"
    f.write_bytes(bytes(range(256)) * 64)
    a = file_identity(f, tmp_path / "run")
    assert a["path"] == "../a.bin" and a["bytes"] == 16384 and len(a["sha256"]) == 64
    f.write_bytes(bytes(reversed(range(256))) * 64)  # same size, other bytes
    assert file_identity(f, tmp_path / "run")["sha256"] != a["sha256"]
    # above the threshold: size + start, middle and end blocks
    monkeypatch.setattr(fpm, "FULL_HASH_MAX_BYTES", 1024)
    monkeypatch.setattr(fpm, "SAMPLE_BLOCK_BYTES", 256)
    s = file_identity(f, tmp_path)
    assert "sha256" not in s and len(s["sha256_sampled"]) == 64
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # in the end block
    f.write_bytes(bytes(data))
    assert file_identity(f, tmp_path)["sha256_sampled"] != s["sha256_sampled"]
    data[1000] ^= 1  # between sampled blocks: not seen (the documented limit of sampling)
    s2 = file_identity(f, tmp_path)
    f.write_bytes(bytes(data))
    assert file_identity(f, tmp_path)["sha256_sampled"] == s2["sha256_sampled"]


def test_differences_name_the_keys():
    a = {"order": {"order_seed": 1}, "data": [{"sha256": "x"}, {"sha256": "y"}], "format": 1}
    b = {"order": {"order_seed": 2}, "data": [{"sha256": "x"}, {"sha256": "z"}], "format": 1}
    assert differences(a, b) == ["data[1].sha256", "order.order_seed"]
    assert differences(a, a) == []
    assert differences(a, {**a, "data": [{"sha256": "x"}]}) == ["data (1 entries, were 2)"]
    assert differences(a, {**a, "init": {}}) == ["init"]


def test_config_section_keeps_what_a_step_computes():
    raw = {
        "run_name": "a",
        "save_interval_unsharded": 40,
        "stop_at": 400,
        "optimizer": {"learning_rate": 1e-3},
        "data": {"paths": ["x.npy"], "instance_filter": {"repetition_max_count": 32}},
    }
    assert config_section(raw) == {
        "optimizer": {"learning_rate": 1e-3},
        "data": {"instance_filter": {"repetition_max_count": 32}},
    }


# --- the trainer: same fingerprint resumes, any change starts fresh


def test_rerun_resumes_only_with_the_same_fingerprint(small_world, original, batches, tmp_path, caplog):
    cfg = small_world / "train_config.yaml"
    clean = tmp_path / "clean"
    rerun(cfg, clean, original / "step2", batches, save_interval=1)
    fp = read_fingerprint(clean)
    assert fp["order"] == {"order_seed": None} and fp["init"]["checkpoint"]["path"].endswith("step2")
    assert [d["path"] for d in fp["data"]] == [f"../batches/{b}.npy" for b in range(STEPS)]
    # interrupted after step 3, run again: resumes from step 3 to the same bytes
    out = tmp_path / "resumed"
    rerun(cfg, out, original / "step2", batches, stop_after=1, save_interval=1)
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        rerun(cfg, out, original / "step2", batches, save_interval=1)
    assert f"starting from {out / 'step3'}" in caplog.text and "another configuration" not in caplog.text
    assert _bytes(out / "step4") == _bytes(clean / "step4")
    assert (out / "metrics.jsonl").read_text() == (clean / "metrics.jsonl").read_text()
    assert (out / FINGERPRINT_FILE).read_bytes() != b"" and read_fingerprint(out) == read_fingerprint(clean)


def test_changed_order_seed_starts_fresh(small_world, original, batches, tmp_path, caplog):
    cfg = small_world / "train_config.yaml"
    out = tmp_path / "run"
    rerun(cfg, out, original / "step2", batches, order_seed=1)
    first = _bytes(out / "step4")
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        s = rerun(cfg, out, original / "step2", batches, order_seed=2)
    assert "order.order_seed" in caplog.text and "starting fresh" in caplog.text
    rerun(cfg, tmp_path / "clean", original / "step2", batches, order_seed=2)
    assert s["order_seed"] == 2 and s["checkpoints"] == [4]
    assert _bytes(out / "step4") == _bytes(tmp_path / "clean" / "step4") != first
    assert (out / "metrics.jsonl").read_text() == (tmp_path / "clean" / "metrics.jsonl").read_text()


def test_rewritten_batch_file_starts_fresh(small_world, original, batches, tmp_path, caplog):
    cfg = small_world / "train_config.yaml"
    out = tmp_path / "run"
    rerun(cfg, out, original / "step2", batches)
    first = _bytes(out / "step4")
    a = np.load(batches / "1.npy")
    np.save(batches / "1.npy", (a + 1) % 600)  # same name and size, other tokens
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        rerun(cfg, out, original / "step2", batches)
    assert "data[1].sha256" in caplog.text
    rerun(cfg, tmp_path / "clean", original / "step2", batches)
    assert _bytes(out / "step4") == _bytes(tmp_path / "clean" / "step4") != first


def test_changed_start_checkpoint_starts_fresh(small_world, original, batches, tmp_path, caplog):
    cfg = small_world / "train_config.yaml"
    start = tmp_path / "start"
    shutil.copytree(original / "step2", start)
    out = tmp_path / "run"
    rerun(cfg, out, start, batches)
    first = _bytes(out / "step4")
    other = tmp_path / "other"  # another run's step 2 (another initialisation), at the same path
    train(cfg, other, stop_after=2, save_interval=2, seed=1, device="cpu")
    shutil.rmtree(start)
    shutil.copytree(other / "step2", start)
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        rerun(cfg, out, start, batches)
    assert "init.checkpoint.files.model.safetensors.sha256" in caplog.text
    rerun(cfg, tmp_path / "clean", start, batches)
    assert _bytes(out / "step4") == _bytes(tmp_path / "clean" / "step4") != first


def test_changed_config_value_starts_fresh_but_not_a_save_setting(
    small_world, original, batches, tmp_path, caplog
):
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    out = tmp_path / "run"
    rerun(small_world / "train_config.yaml", out, original / "step2", batches)
    first = _bytes(out / "step4")
    # where/how often to save: the same run, resumed (nothing left to train)
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({**raw, "run_name": "renamed", "save_interval_unsharded": 3}))
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        rerun(same, out, original / "step2", batches)
    assert f"starting from {out / 'step4'}" in caplog.text and _bytes(out / "step4") == first
    lr = tmp_path / "lr.yaml"
    lr.write_text(yaml.safe_dump({**raw, "optimizer": {**raw["optimizer"], "learning_rate": 0.01}}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        rerun(lr, out, original / "step2", batches)
    assert "config.optimizer.learning_rate" in caplog.text
    rerun(lr, tmp_path / "clean", original / "step2", batches)
    assert _bytes(out / "step4") == _bytes(tmp_path / "clean" / "step4") != first


def test_original_run_over_rewritten_token_file_starts_fresh(small_world, tmp_path, caplog):
    """The world regenerated (another `world.seed`): the original run retrains instead of keeping
    the old weights."""
    world = tmp_path / "world"
    shutil.copytree(small_world, world)
    cfg = world / "train_config.yaml"
    out = tmp_path / "run"
    train(cfg, out, stop_after=2, save_interval=1, device="cpu")
    first = _bytes(out / "step2")
    raw = yaml.safe_load(cfg.read_text())
    tok = world / raw["data"]["paths"][0]
    dtype = raw["data"].get("memmap_dtype", "uint16")
    a = np.fromfile(tok, dtype=dtype)
    np.roll(a, 64).tofile(tok)  # same size, other instances
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        train(cfg, out, stop_after=2, save_interval=1, device="cpu")
    assert "data[0].sha256" in caplog.text and "step0, step1, step2, metrics.jsonl" in caplog.text
    train(cfg, tmp_path / "clean", stop_after=2, save_interval=1, device="cpu")
    assert sorted(checkpoints(out)) == [0, 1, 2]
    assert _bytes(out / "step2") == _bytes(tmp_path / "clean" / "step2") != first


def test_folder_without_fingerprint_starts_fresh(small_world, original, tmp_path, caplog):
    """Checkpoints of unknown origin (an older version's, or copied in) are not resumed from."""
    cfg = small_world / "train_config.yaml"
    other = tmp_path / "other"
    train(cfg, other, stop_after=1, save_interval=1, seed=1, device="cpu")
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(other / "step1", out / "step1")
    with caplog.at_level(logging.INFO, logger="intervene.train"):
        train(cfg, out, stop_after=2, save_interval=1, device="cpu")
    assert "no fingerprint.json" in caplog.text
    assert _bytes(out / "step2") == _bytes(original / "step2")
    assert json.loads((out / "summary.json").read_text())["checkpoints"] == [0, 1, 2]


def test_workflow_retrains_a_rerun_after_the_seed_changes(tmp_path):
    """The pipeline end to end: change `experiment.seed` and run again; the re-run's checkpoint is
    retrained under the new order seed (it used to keep the old weights under the new summary)."""
    from .test_workflow import small_config, snakemake

    cfg = small_config()
    target = "results/reruns/control_10_20/run2/summary.json"
    r = snakemake(tmp_path, "--cores", "2", target, cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    run2 = tmp_path / "results" / "reruns" / "control_10_20" / "run2"
    assert json.loads((run2 / "summary.json").read_text())["order_seed"] == 2
    before = _bytes(run2 / "step20")
    cfg["experiment"]["seed"] = 5
    # debris of killed jobs, swept when the workflow starts: a dead writer's of this host, an old one
    # of another host; a live writer's (this test's) stays
    from intervene.atomic import _host, _tmp_sibling

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    debris = [
        tmp_path / "results" / "interventions" / "x" / f".batches.tmp-{int(dead.stdout)}@{_host()}-0123abcd",
        tmp_path / "results" / "data" / ".global_indices.npy.tmp-1@elsewhere-0123abcd",
    ]
    for d in debris:
        d.mkdir(parents=True)
        os.utime(d, (time.time() - 3600,) * 2)
    live = _tmp_sibling(tmp_path / "results" / "data" / "data_files.tsv")
    live.write_text("")
    r = snakemake(tmp_path, "--cores", "2", target, cfg=cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not any(d.exists() for d in debris) and live.exists()
    assert json.loads((run2 / "summary.json").read_text())["order_seed"] == 7
    assert "order.order_seed" in (tmp_path / "logs" / "reruns" / "control_10_20" / "run2.log").read_text()
    res = tmp_path / "results"
    clean = tmp_path / "clean"
    train(
        res / "world" / "train_config.yaml",
        clean,
        load_path=res / "train" / "original" / "step10",
        data_list=res / "reruns" / "control_10_20" / "data_list.txt",
        stop_after=10,
        save_interval=10,
        order_seed=7,
        device="cpu",
    )
    assert _bytes(run2 / "step20") == _bytes(clean / "step20") != before
