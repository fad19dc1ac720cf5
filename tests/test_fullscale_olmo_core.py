"""The OLMo 2 32B config (a run trained with OLMo-core): its run config's facts, its schedule against
ai2-olmo-core 2.4.0's own scheduler and trainer arithmetic, and the DAG a dry run builds (OLMo-core data
order, released OLMo-core checkpoints imported by ``intervene import-olmo-core``, evaluations at the
hub's revisions)."""

from __future__ import annotations

import json
import re
from collections import Counter
from types import SimpleNamespace

import olmo_core  # noqa: F401  (the dependency itself: a missing install fails here, never skips)
import pytest
import yaml

from .conftest import REPO

CONFIG = REPO / "config" / "olmo2-32b" / "train_config.yaml"


def _run_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_olmo2_32b_run_config_holds_the_official_scripts_data_and_model():
    """OLMo-2-0325-32B-train.py's facts, and dataset.paths = the OLMoE-mix-0824 file (kept beside the
    config) with {TOKENIZER} = allenai/dolma2-tokenizer under the data root, in the mix's order."""
    from intervene.olmo import load_train_config

    spec = load_train_config(CONFIG)
    assert spec.loader == "olmo_core" and spec.seq_len == 4096 and spec.max_target_seq_len == 8192
    assert spec.global_batch_size == 2048 and spec.seed == 34521 and spec.epoch == 1
    assert str(spec.dtype) == "uint32" and spec.eos_token_id == 100257 and not spec.generate_doc_lengths
    mix = [
        line.split(",", 1)[1].replace("{TOKENIZER}", "allenai/dolma2-tokenizer")
        for line in (CONFIG.parent / "OLMoE-mix-0824.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert list(spec.paths) == ["http://olmo-data.org/" + p for p in mix] and len(mix) == 1122
    cfg = _run_config()
    m, a = cfg["model"], cfg["model"]["block"]["attention"]
    assert (m["d_model"], m["n_layers"], m["vocab_size"]) == (5120, 64, 100352)
    assert (a["n_heads"], a["n_kv_heads"], cfg["model"]["block"]["feed_forward"]["hidden_size"]) == (
        40,
        8,
        27648,
    )
    assert cfg["trainer"]["max_duration"] == {
        "value": 6_500_000_000_000,
        "unit": "tokens",
        "_CLASS_": "olmo_core.train.common.Duration",
    }


def test_olmo2_32b_config_is_what_olmo_core_builds():
    """The run config's model, data loader, optimizer and schedule are those ai2-olmo-core 2.4.0 builds
    from the official script's arguments (its dataset's mix replaced by the written-out paths)."""
    from olmo_core.data import NumpyDataLoaderConfig, TokenizerConfig
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.optim import CosWithWarmup, OptimGroupOverride, SkipStepAdamWConfig

    cfg = _run_config()
    tok = TokenizerConfig.dolma2()
    assert cfg["model"] == TransformerConfig.olmo2_32B(vocab_size=tok.padded_vocab_size()).as_config_dict()
    assert {k: v for k, v in cfg["dataset"]["tokenizer"].items()} == tok.as_config_dict()
    loader = NumpyDataLoaderConfig(global_batch_size=2048 * 4096, seed=34521, num_workers=4)
    assert cfg["data_loader"] == loader.as_config_dict()
    optim = SkipStepAdamWConfig(
        lr=6e-4,
        weight_decay=0.1,
        betas=(0.9, 0.95),
        group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
        compile=True,
        foreach=False,
    )
    assert cfg["train_module"]["optim"] == json.loads(json.dumps(optim.as_config_dict()))
    assert cfg["train_module"]["scheduler"] == CosWithWarmup(warmup=2000).as_config_dict()


def _their_lr(sch, lr0: float, step: int, gbs_tokens: int, duration) -> float:
    """OLMo-core's LR at ``step``: ``Scheduler.set_lr``'s ``get_lr(initial_lr, global_step,
    trainer.max_steps)`` with ``max_steps`` from its own ``Trainer._get_max_steps`` (constant batch)."""
    from olmo_core.train import Trainer

    state = SimpleNamespace(
        global_step=step, global_train_tokens_seen=step * gbs_tokens, tokens_per_batch=gbs_tokens
    )
    return float(sch.get_lr(lr0, step, Trainer._get_max_steps(state, duration)))


@pytest.mark.parametrize("gbs_tokens, tokens", [(2048 * 4096, int(6.5e12)), (48 * 3, 48 * 3 * 50 + 7)])
def test_steps_schedule_with_a_token_duration_is_olmo_cores(gbs_tokens, tokens):
    """A steps-unit CosWithWarmup with the run's length in tokens (OLMo 2 32B's: warmup 2000 steps,
    6.5e12 tokens): the translated schedule's LR equals OLMo-core's at every checked step, the end
    included (t_max = ceil(tokens / batch): 774861 steps for the 32B run)."""
    from olmo_core.optim import CosWithWarmup
    from olmo_core.train import Duration

    from intervene.train.olmo_core_import import olmo_style_config
    from intervene.train.optim import scheduled_lr

    cfg = _run_config()
    seq = 4096 if gbs_tokens % 4096 == 0 else 48
    warmup = 2000 if seq == 4096 else 7
    cfg["dataset"]["sequence_length"] = cfg["train_module"]["max_sequence_length"] = seq
    cfg["train_module"].pop("rank_microbatch_size")
    cfg["data_loader"]["global_batch_size"] = gbs_tokens
    cfg["train_module"]["scheduler"] = {"units": "steps", "warmup_steps": warmup, "_CLASS_": "CosWithWarmup"}
    cfg["trainer"]["max_duration"] = {"value": tokens, "unit": "tokens"}
    raw = olmo_style_config(cfg, "cfg", skip_step_as_adamw=True)
    t_max = -(-tokens // gbs_tokens)
    assert raw["scheduler"]["t_max"] == t_max * gbs_tokens
    sch, dur = CosWithWarmup(warmup=warmup), Duration.tokens(tokens)
    steps = {0, 1, warmup - 1, warmup, warmup + 1, t_max // 2, t_max - 2, t_max - 1, t_max, t_max + 1}
    steps |= set(range(0, t_max + 3, max(1, t_max // 97)))
    for step in sorted(steps):
        assert scheduled_lr(raw, step) == _their_lr(sch, 6e-4, step, gbs_tokens, dur), step
    if seq == 4096:
        assert t_max == 774861
    # a batch-size schedule would change the length in steps: refused
    cfg["trainer"]["callbacks"] = {"batch_size_scheduler": {"_CLASS_": "x.BatchSizeSchedulerCallback"}}
    with pytest.raises(ValueError, match="batch-size schedule"):
        olmo_style_config(cfg, "cfg", skip_step_as_adamw=True)


def test_tokens_schedule_with_a_steps_duration_is_olmo_cores():
    """The other mixed case: a tokens-unit schedule with the run's length in steps (``_get_max_tokens``
    = max_steps x batch)."""
    from olmo_core.optim import CosWithWarmup, SchedulerUnits
    from olmo_core.train import Duration, Trainer

    from intervene.train.olmo_core_import import olmo_style_config
    from intervene.train.optim import scheduled_lr

    cfg = _run_config()
    gbs = cfg["data_loader"]["global_batch_size"]
    cfg["train_module"]["scheduler"] = {"units": "tokens", "warmup": 3 * gbs + 5, "_CLASS_": "CosWithWarmup"}
    cfg["trainer"]["max_duration"] = {"value": 40, "unit": "steps"}
    raw = olmo_style_config(cfg, "cfg", skip_step_as_adamw=True)
    sch = CosWithWarmup(warmup=3 * gbs + 5, units=SchedulerUnits.tokens)
    for step in range(42):
        state = SimpleNamespace(global_step=step, global_train_tokens_seen=step * gbs, tokens_per_batch=gbs)
        state._get_max_steps = lambda d, s=state: Trainer._get_max_steps(s, d)
        theirs = float(sch.get_lr(6e-4, step * gbs, Trainer._get_max_tokens(state, Duration.steps(40))))
        assert scheduled_lr(raw, step) == pytest.approx(theirs, rel=1e-12, abs=1e-18), step


def test_olmo2_32b_plans_olmo_core_checkpoints(tmp_path):
    """The DAG from nothing: OLMo-core's data order of the localized run config, the windows'
    groups decoded, the start checkpoint (released step 1000) fetched as an OLMo-core folder and
    imported by import-olmo-core (SkipStepAdamW as AdamW), re-runs with the run config from it,
    evaluations at the hub's revisions, effects."""
    import sys

    from .test_fullscale import dry_run, job_resources

    r = dry_run(tmp_path, "olmo2-32b.yaml", "-n", "-p")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    counts = Counter(rule for rule, _ in job_resources(out) if rule != "all")
    assert counts["download"] == 16 and counts["localize"] == counts["data_order"] == 1
    assert re.search(r"intervene data-order --train-config \S+ .*--loader olmo_core", out)
    assert counts["decode"] == counts["doc_info"] == counts["search"] == 2  # groups 002, 003
    assert "pretrain_original" not in counts and counts["evaluate"] == 30
    assert "--model allenai/OLMo-2-0325-32B --revision stage1-step2000-tokens17B" in out
    assert counts["fetch_released"] == counts["import_released"] == 1  # step 1000 only
    assert (
        "intervene fetch-checkpoint --url https://olmo-checkpoints.org/ai2-llm/peteish32/step1000/"
        " --format olmo_core --out resources/checkpoints/step1000-olmo_core" in out
    )
    assert (
        "intervene import-olmo-core --checkpoint resources/checkpoints/step1000-olmo_core --out"
        " results/train/original/step1000 --train-config config/olmo2-32b/train_config.yaml"
        " --skip-step-as-adamw" in out
    )
    assert "import-olmo " not in out
    assert counts["pretrain_rerun"] == counts["evaluate_rerun"] == 4 * 3 + 1 * 3
    reruns = re.findall(
        r"train --train-config (\S+) --data-list results/reruns/(\S+)/data_list.txt --settings '([^']+)'", out
    )
    assert len(reruns) == 15 and {cfg for cfg, _, _ in reruns} == {"results/data/train_config.local.yaml"}
    for _, _, settings in reruns:
        s = json.loads(settings)
        assert (s["load_path"], s["stop_after"], s["strategy"]) == (
            "results/train/original/step1000",
            1000,
            "fsdp",
        )
    assert re.search(r"srun --nodes=8 .*torchrun_node.sh 8 train ", out)
    evaluated = set(re.findall(r"intervene eval --model results/reruns/(\S+)/run\d/step(\d+) ", out))
    assert {step for _, step in evaluated} == {"2000"} and len(evaluated) == 5
    assert counts["effect"] == 4 and "control_1000_2000/labels.npz" in out
    # `intervene plan` on the same config
    import subprocess

    plan = subprocess.run(
        [sys.executable, "-m", "intervene.cli", "plan", "--configfile", "config/olmo2-32b.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "control_1000_2000" in plan.stdout and "1000, 2000, ..., 30000" in plan.stdout


def test_olmo_core_released_checkpoints_from_a_local_path(tmp_path):
    """A local path template: read in place by import-olmo-core (no fetch job)."""
    cfg = yaml.safe_load((REPO / "config" / "olmo2-32b.yaml").read_text())
    cfg["train"]["released"]["checkpoint_url"] = "/data/olmo2-32b/step{step}"
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump(cfg))
    import os

    from .test_fullscale import dry_run, job_resources

    # dry_run names config/<config> relative to the repository
    r = dry_run(
        tmp_path / "w", os.path.relpath(local, REPO / "config"), "-n", "-p", "results/train/original/step1000"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    counts = Counter(rule for rule, _ in job_resources(out))
    assert counts == Counter({"import_released": 1})
    assert (
        "intervene import-olmo-core --checkpoint /data/olmo2-32b/step1000 --out results/train/original/step1000"
        in out
    )


def test_fetch_olmo_core_downloads_the_files_its_metadata_names(tmp_path):
    """``intervene fetch-checkpoint --format olmo_core``: .metadata first, then every .distcp file it
    names and train/rank0.pt, from a local HTTP server; a folder without train/rank0.pt fails and
    leaves no output."""
    import functools
    import http.server
    import threading

    import torch
    import torch.distributed.checkpoint as dcp

    from intervene.cli import main

    src = tmp_path / "step7"
    dcp.save(
        {"w": torch.arange(6.0)},
        storage_writer=dcp.FileSystemWriter(str(src / "model_and_optim")),
        no_dist=True,
    )
    (src / "train").mkdir()
    torch.save({"global_step": 7}, src / "train" / "rank0.pt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/step7/"
        out = tmp_path / "fetched"
        assert main(["fetch-checkpoint", "--url", url, "--format", "olmo_core", "--out", str(out)]) in (
            0,
            None,
        )
        want = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
        assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == want
        assert any(p.suffix == ".distcp" for p in want)
        for p in want:
            assert (out / p).read_bytes() == (src / p).read_bytes()
        (src / "train" / "rank0.pt").unlink()
        assert (
            main(["fetch-checkpoint", "--url", url, "--format", "olmo_core", "--out", str(tmp_path / "bad")])
            == 1
        )
        assert not (tmp_path / "bad").exists()
    finally:
        server.shutdown()


def test_config_check_refuses_what_an_olmo_core_run_cannot_do(tmp_path):
    """An OLMo-core run is not trained here and the OLMo fork cannot start from its checkpoints;
    skip_step_as_adamw belongs to OLMo-core runs only. One line naming the key each."""
    import copy

    from .test_config_check import check, refused, user_terms

    user_terms(tmp_path)
    shipped = (REPO / "config" / "olmo2-32b.yaml", REPO / "config" / "olmo2-7b.yaml")
    base = yaml.safe_load(shipped[0].read_text())
    for c in ("olmo2-32b", "olmo2-7b"):
        (tmp_path / "config" / c).mkdir(parents=True)
        (tmp_path / "config" / c / "train_config.yaml").write_text(
            (REPO / "config" / c / "train_config.yaml").read_text()
        )
    check(copy.deepcopy(base), tmp_path)  # the shipped config passes
    cfg = copy.deepcopy(base)
    cfg["train"].update(original=True, stop_at=3000)
    cfg["train"].pop("released")
    assert refused(cfg, tmp_path).startswith("train.original: an OLMo-core run")
    cfg = copy.deepcopy(base)
    cfg["train"]["backend"] = "olmo"
    assert refused(cfg, tmp_path).startswith("train.backend: the OLMo fork cannot start from OLMo-core")
    seven = yaml.safe_load(shipped[1].read_text())
    check(copy.deepcopy(seven), tmp_path)
    seven["train"]["released"]["skip_step_as_adamw"] = True
    assert refused(seven, tmp_path).startswith("train.released.skip_step_as_adamw: only for OLMo-core runs")
