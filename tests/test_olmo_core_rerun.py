"""Differential test: a built-in re-run from an imported OLMo-core checkpoint against OLMo-core's own
training (ai2-olmo-core 2.4.0's ``Trainer``/``TransformerTrainModule`` on CPU, gloo world of 1).

OLMo-core trains 4 steps (OLMo 2 shape scaled to 2 layers; AdamW with no-decay embeddings, z-loss
1e-5, clipping, cosine LR with warmup; 2 micro-batches per step), checkpointing every step and
recording its per-step losses and the batches its data loader fed. Its step-2 checkpoint is imported
(:func:`intervene.train.olmo_core_import.import_olmo_core_checkpoint`), steps 3-4's batches are written
as the decode stage writes them (from :mod:`intervene.olmo_core_order`'s order of the run's config)
and our trainer re-runs them (``load_path`` + ``data_list``). Per-step CE and z-losses, LR, and the
weights, AdamW moments and step counts at steps 3 and 4 must be OLMo-core's bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import olmo_core  # noqa: F401  (the dependency itself: a missing install fails here, never skips)
import pytest
import torch
import yaml

from intervene.data_order import build_data_order
from intervene.decode import decode_group
from intervene.train import trainer as trainer_mod
from intervene.train.checkpoint import load_model_weights, load_training_state
from intervene.train.model import build_model
from intervene.train.olmo_core_import import import_olmo_core_checkpoint
from intervene.train.optim import build_optimizer
from tests.test_olmo_core_import import GBS, L, _configs, fit

STEPS, FROM = 4, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory, gloo_group):
    """OLMo-core's own run: its save folder, per-step metrics and the input ids of every step."""
    from olmo_core.train import Duration
    from olmo_core.train.callbacks import Callback, CheckpointerCallback, ConfigSaverCallback

    root = tmp_path_factory.mktemp("olmo_core_run")
    model_c, dataset_c, loader_c, tm_c, trainer_c = _configs(root, 2)
    trainer_c = dataclasses.replace(trainer_c, max_duration=Duration.steps(STEPS))
    seen: dict = {"batches": {}, "metrics": {}}

    @dataclasses.dataclass
    class Recorder(Callback):
        def pre_step(self, batch):
            seen["batches"][self.step] = batch["input_ids"].clone()

        def log_metrics(self, step, metrics):
            seen["metrics"][step] = dict(metrics)

    trainer_c = (
        trainer_c.with_callback(
            "checkpointer",
            CheckpointerCallback(save_interval=1, ephemeral_save_interval=None, save_async=False),
        )
        .with_callback("config_saver", ConfigSaverCallback())
        .with_callback("recorder", Recorder())
    )
    fit(model_c, dataset_c, loader_c, tm_c, trainer_c)
    return root / "run", seen


def _ours(ckpt: Path):
    raw = yaml.safe_load((ckpt / "config.yaml").read_text())
    model = build_model(raw, seed=1)
    load_model_weights(ckpt, model)
    optim = build_optimizer(model, raw["optimizer"])
    return model, optim, load_training_state(ckpt, optim)


@pytest.fixture(scope="module")
def rerun(run, tmp_path_factory):
    """Our re-run of steps FROM+1..STEPS from OLMo-core's imported step FROM, over those steps'
    batches written by the decode stage; returns its folder and exact per-step metrics."""
    save, _ = run
    tmp = tmp_path_factory.mktemp("rerun")
    config = save / f"step{FROM}" / "config.json"
    ckpt = import_olmo_core_checkpoint(save / f"step{FROM}", tmp / f"imported{FROM}")
    order = tmp / "global_indices.npy"
    build_data_order(config, order, tmp / "data_files.tsv", loader="olmo_core")
    group = decode_group(config, order, None, tmp / "001", range(FROM, STEPS), write_text=False)
    data_list = tmp / "data_list.txt"
    data_list.write_text("".join(f"{group / f'{b}.npy'}\n" for b in range(FROM, STEPS)))
    logged: dict = {}
    log_step = trainer_mod._Run.log_step

    def record(self, lr, ce_sum, z_sum, grad_norm, rate):  # the exact values, not the rounded metrics
        logged[self.state["global_step"]] = (lr, float(ce_sum), float(z_sum), float(grad_norm))
        return log_step(self, lr, ce_sum, z_sum, grad_norm, rate)

    mp = pytest.MonkeyPatch()
    mp.setattr(trainer_mod._Run, "log_step", record)
    try:
        summary = trainer_mod.train(
            config, tmp / "out", load_path=str(ckpt), data_list=str(data_list), save_interval=1, device="cpu"
        )
    finally:
        mp.undo()
    return tmp, group, summary, logged


def test_batches_are_olmo_core_s(run, rerun):
    """The decoded batches of steps FROM+1..STEPS are what OLMo-core's data loader fed."""
    _, seen = run
    _, group, _, _ = rerun
    for b in range(FROM, STEPS):
        ours = np.load(group / f"{b}.npy")
        assert ours.shape == (GBS, L)
        assert np.array_equal(ours, seen["batches"][b + 1].numpy()), b


def test_rerun_equals_olmo_core(run, rerun):
    from olmo_core.optim import CosWithWarmup

    save, seen = run
    tmp, _, summary, logged = rerun
    assert summary["final_step"] == STEPS
    assert sorted(logged) == list(range(FROM + 1, STEPS + 1))
    for step in range(FROM + 1, STEPS + 1):
        m = seen["metrics"][step]
        lr, ce, z, grad_norm = logged[step]
        # OLMo-core's metrics are its float32 tensors' values: compared exactly
        assert ce == m["train/CE loss"], (step, ce, m["train/CE loss"])
        assert z == m["train/Z loss"], (step, z, m["train/Z loss"])
        assert grad_norm == m["optim/total grad norm"], (step, grad_norm, m["optim/total grad norm"])
        # the LR: its scheduler's value exactly (its metric holds it as float32)
        assert lr == CosWithWarmup(warmup=2).get_lr(1e-3, step, STEPS), step
        assert np.float32(lr) == m["optim/LR (group 0)"] == m["optim/LR (group 1)"], step
        rec = json.loads((tmp / "out" / "metrics.jsonl").read_text().splitlines()[step - FROM - 1])
        assert rec["step"] == step and rec["ce_loss"] == round(ce, 6)

        # weights, moments, step counts and counters: OLMo-core's checkpoint of that step, imported
        theirs = import_olmo_core_checkpoint(save / f"step{step}", tmp / f"theirs{step}")
        t_model, t_opt, t_state = _ours(theirs)
        o_model, o_opt, o_state = _ours(tmp / "out" / f"step{step}")
        t_p, o_p = dict(t_model.named_parameters()), dict(o_model.named_parameters())
        for name, p in t_p.items():
            assert torch.equal(o_p[name], p), (step, name, (o_p[name] - p).abs().max())
            for k in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(o_opt.state[o_p[name]][k], t_opt.state[p][k]), (step, name, k)
        for k in ("global_step", "global_train_tokens_seen", "global_train_examples_seen_this_epoch"):
            assert o_state[k] == t_state[k], (step, k)
        # AdamW's count is one ahead of the step: OLMo-core's step-0 checkpoint initialised its
        # state with a zero-gradient, zero-LR step (torch's get_optimizer_state_dict)
        assert t_opt.state[t_p["lm_head.weight"]]["step"] == step + 1


def test_step0_adamw_count(run, tmp_path):
    """Why AdamW's step count runs one ahead of OLMo-core's global step: its step-0 checkpoint holds
    step 1 with zero moments and the initial weights."""
    save, _ = run
    model, opt, state = _ours(import_olmo_core_checkpoint(save / "step0", tmp_path / "step0"))
    assert state["global_step"] == 0
    for p in model.parameters():
        st = opt.state[p]
        assert st["step"] == 1 and not st["exp_avg"].any() and not st["exp_avg_sq"].any()


def test_training_an_olmo_core_run_is_refused(run, tmp_path):
    save, _ = run
    with pytest.raises(ValueError, match="only re-runs such runs from a checkpoint imported"):
        trainer_mod.train(save / "step2" / "config.json", tmp_path / "out", device="cpu")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["train_module"]["optim"].update(lr=2e-3), "optimizer translates to"),
        (lambda c: c["train_module"].update(z_loss_multiplier=1e-4), "auxiliary_loss_multiplier translates"),
        (lambda c: c["dataset"].update(generate_doc_lengths=True), "intra-document attention masking"),
    ],
)
def test_rerun_refusals(run, rerun, tmp_path, edit, message):
    """A re-run's OLMo-core config must translate to the imported checkpoint's; what the model does
    not compute is refused."""
    save, _ = run
    tmp = rerun[0]
    cfg = json.loads((save / f"step{FROM}" / "config.json").read_text())
    edit(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        trainer_mod.train(
            tmp_path / "config.json",
            tmp_path / "out",
            load_path=str(tmp / f"imported{FROM}"),
            data_list=str(tmp / "data_list.txt"),
            device="cpu",
        )


def test_rerun_needs_an_imported_checkpoint(run, rerun, tmp_path):
    save, _ = run
    tmp = rerun[0]
    ckpt = tmp_path / "plain"
    ckpt.mkdir()
    raw = yaml.safe_load((tmp / f"imported{FROM}" / "config.yaml").read_text())
    del raw["olmo_core"]
    (ckpt / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="not a checkpoint of an OLMo-core run"):
        trainer_mod.train(
            save / f"step{FROM}" / "config.json",
            tmp_path / "out",
            load_path=str(ckpt),
            data_list=str(tmp / "data_list.txt"),
            device="cpu",
        )


def test_lr_in_steps_is_olmo_core_s(run):
    """A steps-unit schedule gives CosWithWarmup.get_lr's LR exactly, also where a step's tokens are
    no power of two (the token-unit translation then rounds differently at some steps)."""
    from olmo_core.optim import CosWithWarmup

    from intervene.olmo import lr_at
    from intervene.train.olmo_core_import import olmo_style_config
    from intervene.train.optim import scheduled_lr

    save, _ = run
    cfg = json.loads((save / f"step{FROM}" / "config.json").read_text())
    cfg["data_loader"]["global_batch_size"] = 3 * L
    cfg["train_module"]["scheduler"].update(warmup=7, t_max=101)
    raw = olmo_style_config(cfg)
    sch = CosWithWarmup(warmup=7, t_max=101)
    tokens = [lr_at(s, lr0=1e-3, warmup_tokens=7 * 3 * L, t_max_tokens=101 * 3 * L, alpha_f=0.1,
                    tokens_per_step=3 * L, warmup_min_lr=0.0) for s in range(0, 104)]  # fmt: skip
    theirs = [sch.get_lr(1e-3, s, 101) for s in range(0, 104)]
    assert [scheduled_lr(raw, s, s * 3 * L) for s in range(0, 104)] == theirs
    assert tokens != theirs  # what the step units avoid
