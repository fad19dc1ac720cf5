"""The deterministic training mode (``train.deterministic``): what it switches on and restores, that the
flag reaches the step and the fingerprint, and that a replay check of a deterministic run demands
bit-identity whatever tolerance it is given (on CPU here; the GPU figures: benchmarks/gpu_deterministic.py)."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from intervene.data_order import build_data_order
from intervene.decode import decode_group
from intervene.train import determinism, trainer
from intervene.train.determinism import CUBLAS_ENV, deterministic_mode
from intervene.train.fingerprint import read_fingerprint
from intervene.train.replay import compare_checkpoints, replay_check, replay_execution
from intervene.train.trainer import train

STEPS = 2  # from the original run's step 2 to step 4


def _flags() -> tuple:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.cudnn_sdp_enabled(),
    )


def test_mode_switches_on_and_restores(monkeypatch):
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    before = _flags()
    with deterministic_mode(False):
        assert _flags() == before and CUBLAS_ENV not in os.environ
    with deterministic_mode():
        assert _flags() == (True, False, True, False, False)
        assert os.environ[CUBLAS_ENV] == ":4096:8"
        inductor = determinism._inductor_config()
        assert inductor is None or inductor.deterministic is True
    assert _flags() == before
    with pytest.raises(RuntimeError), deterministic_mode():  # restored after an error too
        raise RuntimeError("step failed")
    assert _flags() == before


def test_mode_refuses_a_workspace_setting_that_is_not_reproducible(monkeypatch):
    monkeypatch.setenv(CUBLAS_ENV, ":0:0")
    with pytest.raises(ValueError, match=f"{CUBLAS_ENV}=:0:0"), deterministic_mode():
        pass
    monkeypatch.setenv(CUBLAS_ENV, ":16:8")  # the other reproducible value is kept
    with deterministic_mode():
        assert os.environ[CUBLAS_ENV] == ":16:8"


def test_mode_refuses_when_cuda_started_without_the_workspace_setting(monkeypatch):
    monkeypatch.delenv(CUBLAS_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="CUDA started before"), deterministic_mode():
        pass


@pytest.fixture(scope="module")
def runs(small_world, tmp_path_factory):
    """An original run of 4 steps in each mode (checkpoints at 2 and 4), and the decoded batches 2-3."""
    d = tmp_path_factory.mktemp("det")
    cfg = small_world / "train_config.yaml"
    seen = []
    step = trainer.optimizer_step

    def spy(*a, **kw):  # the mode is on while the step runs
        seen.append(torch.are_deterministic_algorithms_enabled())
        return step(*a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "optimizer_step", spy)
        train(cfg, d / "det", stop_after=4, save_interval=2, device="cpu", deterministic=True)
        det_seen = list(seen)
        seen.clear()
        train(cfg, d / "default", stop_after=4, save_interval=2, device="cpu")
    build_data_order(cfg, d / "gi.npy", d / "files.tsv")
    decode_group(cfg, d / "gi.npy", small_world / "tokenizer", d / "batches", range(2, 4), write_text=False)
    return {"dir": d, "cfg": cfg, "det_seen": det_seen, "default_seen": list(seen)}


def test_flag_reaches_the_step_the_fingerprint_and_the_summary(runs):
    assert runs["det_seen"] == [True] * 4 and runs["default_seen"] == [False] * 4
    assert not torch.are_deterministic_algorithms_enabled()  # the process's setting is back
    d = runs["dir"]
    assert read_fingerprint(d / "det")["execution"]["deterministic"] is True
    assert "deterministic" not in read_fingerprint(d / "default")["execution"]  # as before the mode
    # what a replay of each takes from its fingerprint
    assert (
        replay_execution(d / "det", 1)["deterministic"]
        and not replay_execution(d / "default", 1)["deterministic"]
    )
    assert '"deterministic": true' in (d / "det" / "summary.json").read_text()


def test_a_run_never_resumes_under_the_other_mode(runs, tmp_path, caplog):
    d = runs["dir"]
    out = tmp_path / "run"
    train(runs["cfg"], out, stop_after=2, save_interval=2, device="cpu")
    with caplog.at_level(logging.WARNING, logger="intervene.train"):
        train(runs["cfg"], out, stop_after=4, save_interval=2, device="cpu", deterministic=True)
    assert "execution.deterministic" in caplog.text and "starting fresh" in caplog.text
    assert (out / "step4" / "model.safetensors").read_bytes() == (
        d / "det" / "step4" / "model.safetensors"
    ).read_bytes()


def _nudged_copy(run, dest):
    """A copy of the run whose step-4 checkpoint has one weight moved by 1e-6 (counters kept)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(run, dest)
    f = dest / "step4" / "model.safetensors"
    tensors = load_file(str(f))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1e-6
    save_file(tensors, str(f), metadata={"format": "pt"})
    return dest


def _replay(runs, original, work):
    return replay_check(
        runs["cfg"], original, 2, STEPS, None, 0, work, work / "r.json",
        atol=0.5, device="cpu", group_dirs=[runs["dir"] / "batches"],
    )  # fmt: skip


def test_replay_check_of_a_deterministic_run_demands_bit_identity(runs, tmp_path):
    res = _replay(runs, runs["dir"] / "det", tmp_path / "work")
    assert res["deterministic"] is True and res["atol"] == 0.0
    assert res["passed"] and res["tensors_not_bit_identical"] == 0 and res["tensors"] > 20
    assert read_fingerprint(tmp_path / "work" / "run")["execution"]["deterministic"] is True
    # 1e-6 off in one weight: within the given 0.5, but a deterministic run must be equal
    res = _replay(runs, _nudged_copy(runs["dir"] / "det", tmp_path / "nudged"), tmp_path / "w2")
    assert not res["passed"] and res["tensors_not_bit_identical"] == 1 and 0 < res["max_abs_diff"] < 0.5


def test_replay_check_of_a_default_run_keeps_its_tolerance(runs, tmp_path):
    res = _replay(runs, _nudged_copy(runs["dir"] / "default", tmp_path / "nudged"), tmp_path / "work")
    assert res["deterministic"] is False and res["atol"] == 0.5
    assert res["passed"] and res["tensors_not_bit_identical"] == 1
    assert "deterministic" not in read_fingerprint(tmp_path / "work" / "run")["execution"]


def test_compare_checkpoints_ignores_the_tolerance_when_deterministic(runs, tmp_path):
    ref = runs["dir"] / "det" / "step4"
    nudged = _nudged_copy(runs["dir"] / "det", tmp_path / "nudged") / "step4"
    assert compare_checkpoints(ref, nudged, atol=0.5)["passed"]
    strict = compare_checkpoints(ref, nudged, atol=0.5, deterministic=True)
    assert strict["atol"] == 0.0 and not strict["passed"]
    assert compare_checkpoints(ref, ref, deterministic=True)["passed"]
