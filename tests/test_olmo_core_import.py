"""Differential tests: OLMo-core checkpoints (written by ai2-olmo-core 2.4.0's own ``Trainer`` and
``Checkpointer`` on CPU, gloo world of 1) imported by :mod:`intervene.train.olmo_core_import`.

The run: OLMo-core's OLMo 2 transformer (``reordered_norm`` blocks, QK-norm, RMSNorm eps 1e-6, RoPE
theta 500000; MHA and GQA) trained 3 steps by its ``TransformerTrainModule`` (AdamW with OLMo 2's
no-decay embeddings, z-loss, clipping, cosine LR) over a NumpyFSLDataset, checkpoints at steps 2 and 3.
The imported step 2 must compute OLMo-core's logits bit for bit, hold its AdamW moments and steps, and one more
AdamW step from the same gradients must give OLMo-core's weights bit for bit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import olmo_core  # noqa: F401  (the dependency itself: a missing install fails here, never skips)
import pytest
import torch
import torch.nn.functional as F
import yaml

from intervene.train.checkpoint import load_model_weights, load_training_state
from intervene.train.model import build_model
from intervene.train.olmo_core_import import import_olmo_core_checkpoint, olmo_core_to_hf
from intervene.train.optim import build_optimizer, scheduled_lr

L, VOCAB, GBS = 16, 100, 4


def _configs(root: Path, n_kv_heads):
    from olmo_core.data import NumpyDataLoaderConfig, NumpyFSLDatasetConfig, TokenizerConfig
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.optim import AdamWConfig, CosWithWarmup, OptimGroupOverride
    from olmo_core.train import Duration, TrainerConfig
    from olmo_core.train.train_module import TransformerTrainModuleConfig

    rng = np.random.default_rng(0)
    rng.integers(4, VOCAB, L * 40).astype(np.uint16).tofile(root / "part-0.npy")
    model = TransformerConfig.olmo2_30M(
        VOCAB, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, hidden_size_multiple_of=16
    )
    dataset = NumpyFSLDatasetConfig(
        paths=[str(root / "part-0.npy")],
        sequence_length=L,
        tokenizer=TokenizerConfig(vocab_size=VOCAB, eos_token_id=3, pad_token_id=1),
        work_dir=str(root / "work"),
    )
    loader = NumpyDataLoaderConfig(global_batch_size=GBS * L, seed=7, num_workers=0)
    train_module = TransformerTrainModuleConfig(
        rank_microbatch_size=2 * L,
        max_sequence_length=L,
        optim=AdamWConfig(
            lr=1e-3,
            weight_decay=0.1,
            group_overrides=[OptimGroupOverride(params=["embeddings.weight"], opts=dict(weight_decay=0.0))],
        ),
        scheduler=CosWithWarmup(warmup=2),
        max_grad_norm=1.0,
        z_loss_multiplier=1e-5,
    )
    trainer = TrainerConfig(
        save_folder=str(root / "run"),
        max_duration=Duration.steps(3),
        metrics_collect_interval=1,
        device="cpu",
    )
    return model, dataset, loader, train_module, trainer


@pytest.fixture(scope="module", params=[None, 2], ids=["mha", "gqa"])
def run(request, tmp_path_factory, gloo_group):
    """OLMo-core's own training run on CPU; returns its save folder."""
    from olmo_core.train.callbacks import CheckpointerCallback, ConfigSaverCallback

    root = tmp_path_factory.mktemp("olmo_core_run")
    model_c, dataset_c, loader_c, tm_c, trainer_c = _configs(root, request.param)
    trainer_c = trainer_c.with_callback(
        "checkpointer", CheckpointerCallback(save_interval=2, ephemeral_save_interval=None, save_async=False)
    ).with_callback("config_saver", ConfigSaverCallback())
    fit(model_c, dataset_c, loader_c, tm_c, trainer_c)
    return root / "run", model_c, tm_c


def fit(model_c, dataset_c, loader_c, tm_c, trainer_c) -> None:
    """Build OLMo-core's model, train module, loader and trainer from their configs and train, with
    the experiment's config handed to the config saver (as OLMo-core's scripts save config.json)."""
    from olmo_core.config import Config
    from olmo_core.nn.transformer import TransformerConfig
    from olmo_core.train import TrainerConfig

    @dataclass
    class Experiment(Config):
        model: TransformerConfig
        dataset: object
        data_loader: object
        train_module: object
        trainer: TrainerConfig

    torch.manual_seed(0)
    model = model_c.build(init_device="cpu")
    tm = tm_c.build(model, device=torch.device("cpu"))
    loader = loader_c.build(dataset_c.build(), dp_process_group=None)
    trainer = trainer_c.build(tm, loader)
    trainer.callbacks["config_saver"].config = Experiment(
        model_c, dataset_c, loader_c, tm_c, trainer_c
    ).as_config_dict()
    trainer.fit()


def _olmo_core_at(step_dir: Path, model_c, tm_c):
    """OLMo-core's model and AdamW restored from its checkpoint by its own loader."""
    from olmo_core.distributed.checkpoint import load_model_and_optim_state

    model = model_c.build(init_device="cpu")
    optim = tm_c.optim.build(model, strict=True)
    load_model_and_optim_state(step_dir / "model_and_optim", model, optim, flatten_optimizer_state=True)
    return model, optim


def _ours_at(ckpt: Path):
    raw = yaml.safe_load((ckpt / "config.yaml").read_text())
    model = build_model(raw, seed=1)
    load_model_weights(ckpt, model)
    optim = build_optimizer(model, raw["optimizer"])
    state = load_training_state(ckpt, optim)
    return raw, model, optim, state


def test_import_equals_olmo_core(run, tmp_path):
    save, model_c, tm_c = run
    ckpt = import_olmo_core_checkpoint(save / "step2", tmp_path / "step2")
    raw, ours, our_opt, state = _ours_at(ckpt)
    theirs, their_opt = _olmo_core_at(save / "step2", model_c, tm_c)
    for p in list(theirs.parameters()):
        assert p.abs().sum() > 0
    # counters as OLMo-core's trainer saved them
    tr = torch.load(save / "step2" / "train" / "rank0.pt", weights_only=False)
    assert state["global_step"] == tr["global_step"] == 2
    assert state["global_train_tokens_seen"] == tr["global_train_tokens_seen"] == 2 * GBS * L
    assert state["global_train_examples_seen_this_epoch"] == 2 * GBS and state["epoch"] == 1

    ids = torch.randint(0, VOCAB, (3, L), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref, got = theirs(ids), ours(ids).logits
    assert torch.equal(got, ref), (got - ref).abs().max()  # bit for bit on CPU, fp32

    # the same gradients (OLMo-core's model's CE) and LR on both: AdamW from the imported state
    loss = F.cross_entropy(theirs(ids)[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    loss.backward()
    ours_p = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        ours_p[olmo_core_to_hf(name)].grad = p.grad.clone()
    for opt in (their_opt, our_opt):
        for g in opt.param_groups:
            g["lr"] = 7e-4
    their_opt.step()
    our_opt.step()
    for name, p in theirs.named_parameters():
        q = ours_p[olmo_core_to_hf(name)]
        assert torch.equal(q, p), name
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(our_opt.state[q][k], their_opt.state[p][k]), (name, k)
    assert our_opt.state[ours_p["lm_head.weight"]]["step"] == 4  # OLMo-core: 3 updates by step 2

    # the schedule our trainer would use is OLMo-core's CosWithWarmup (steps -> tokens)
    from olmo_core.optim import CosWithWarmup

    sch = CosWithWarmup(warmup=2)
    for s in range(0, 4):
        assert scheduled_lr(raw, s) == pytest.approx(sch.get_lr(1e-3, s, 3), rel=1e-12, abs=0)


def _copy(save: Path, tmp: Path) -> Path:
    dst = tmp / "step2"
    shutil.copytree(save / "step2", dst)
    return dst


def _edit_config(step: Path, fn) -> None:
    cfg = json.loads((step / "config.json").read_text())
    fn(cfg)
    (step / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda c: c["model"]["block"]["attention"].update(sliding_window={"pattern": [4096, -1]}),
            "sliding_window is set (OLMo 3)",
        ),
        (lambda c: c["model"]["block"].update(name="default"), "only OLMo 2's 'reordered_norm'"),
        (
            lambda c: c["train_module"]["optim"].update(_CLASS_="olmo_core.optim.adamw.SkipStepAdamWConfig"),
            "--skip-step-as-adamw",
        ),
        (lambda c: c["train_module"]["optim"].update(weight_decay=0.2), "differs from the config's"),
        (lambda c: c["model"].update(d_model=32), "the config's model wants"),
        (lambda c: c["model"].update(n_layers=3), "does not fit the config"),
    ],
)
def test_refusals(run, tmp_path, edit, message):
    step = _copy(run[0], tmp_path)
    _edit_config(step, edit)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_olmo_core_checkpoint(step, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_files(run, tmp_path):
    step = _copy(run[0], tmp_path)
    (step / "train" / "rank0.pt").unlink()
    with pytest.raises(FileNotFoundError, match="rank0.pt: missing"):
        import_olmo_core_checkpoint(step, tmp_path / "out")


def test_cli_without_olmo_core(run, tmp_path):
    """The CLI reads OLMo-core's DCP metadata without ai2-olmo-core importable, and writes what the
    function writes; a bad folder is one line and exit 1."""
    save = run[0]
    ref = import_olmo_core_checkpoint(save / "step2", tmp_path / "ref")
    code = (
        "import sys; sys.modules['olmo_core'] = None; from intervene.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "cli"
    args = ["import-olmo-core", "--checkpoint", str(save / "step2"), "--out", str(out)]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in ("model.safetensors", "config.yaml", "train.pt"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
    a, b = torch.load(out / "optim.pt"), torch.load(ref / "optim.pt")
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])
    bad = [
        sys.executable,
        "-c",
        code,
        "import-olmo-core",
        "--checkpoint",
        str(tmp_path),
        "--out",
        str(out) + "x",
    ]
    r = subprocess.run(bad, capture_output=True, text=True)
    assert r.returncode == 1 and "not an OLMo-core checkpoint folder" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "ERROR" in ln]) == 1
