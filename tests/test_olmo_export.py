"""Our checkpoint exported as an OLMo unsharded checkpoint (intervene.train.olmo_export): read back
by our importer it is the same checkpoint bit for bit, and OLMo's own ``FullCheckpointer`` (ai2-olmo
0.6.0, under DDP and FSDP on CPU) restores from it a model that computes our logits and an
optimizer whose next AdamW step gives our next weights bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from intervene.train.checkpoint import save_checkpoint
from intervene.train.model import build_model
from intervene.train.olmo_export import export_olmo_checkpoint, hf_to_olmo
from intervene.train.olmo_import import import_olmo_checkpoint, olmo_to_hf
from intervene.train.optim import build_optimizer
from tests.test_olmo_differential import (
    as_raw,
    tiny_model_config,
    tiny_train_config,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:register_new_resolver:UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:torch.distributed"),
    pytest.mark.filterwarnings("ignore:When using ``NO_SHARD``:UserWarning"),
]

STEPS = 3


def _ours_checkpoint(tmp_path, n_kv_heads):
    """Our model after a few AdamW steps (norms moved off 1), saved by our trainer's saver."""
    cfg = tiny_train_config(tiny_model_config(n_kv_heads))
    cfg.max_grad_norm = 0.5
    raw = as_raw(cfg, tmp_path)
    torch.manual_seed(0)
    model = build_model(raw, seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    optim = build_optimizer(model, raw["optimizer"])
    for _ in range(STEPS):
        ids = torch.randint(0, cfg.model.vocab_size, (2, 16))
        logits = model(input_ids=ids).logits
        F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1)).backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
    state = {
        "global_step": STEPS,
        "global_train_tokens_seen": 32 * STEPS,
        "global_train_examples_seen_this_epoch": 2 * STEPS,
        "epoch": 0,
        "world_size": 1,
        "run_start_step": 0,
    }
    path = save_checkpoint(tmp_path / f"ours/step{STEPS}", model, optim, state, raw)
    return cfg, raw, model, optim, path


def test_hf_to_olmo_inverts_olmo_to_hf():
    d, d_kv = 8, 4
    olmo = {
        "transformer.wte.weight": torch.randn(10, d),
        "transformer.ln_f.weight": torch.randn(d),
        "transformer.ff_out.weight": torch.randn(10, d),
        "transformer.blocks.0.att_proj.weight": torch.randn(d + 2 * d_kv, d),
        "transformer.blocks.0.ff_proj.weight": torch.randn(12, d),
        "transformer.blocks.0.ff_out.weight": torch.randn(d, 6),
        "transformer.blocks.0.attn_out.weight": torch.randn(d, d),
        "transformer.blocks.0.q_norm.weight": torch.randn(d),
        "transformer.blocks.0.k_norm.weight": torch.randn(d_kv),
        "transformer.blocks.0.attn_norm.weight": torch.randn(d),
        "transformer.blocks.0.ff_norm.weight": torch.randn(d),
    }
    hf = {}
    for k, v in olmo.items():
        hf.update(olmo_to_hf(k, v, d, d_kv))
    back = hf_to_olmo(hf)
    assert sorted(back) == sorted(olmo)
    for k, v in olmo.items():
        assert torch.equal(back[k], v), k
    del hf["model.layers.0.mlp.gate_proj.weight"]
    with pytest.raises(KeyError, match="ff_proj"):
        hf_to_olmo(hf)


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_export_import_round_trip(tmp_path, n_kv_heads):
    _, raw, model, optim, ours = _ours_checkpoint(tmp_path, n_kv_heads)
    olmo_dir = export_olmo_checkpoint(ours, tmp_path / f"step{STEPS}-unsharded")
    assert sorted(p.name for p in olmo_dir.iterdir()) == ["config.yaml", "model.pt", "optim.pt", "train.pt"]
    assert yaml.safe_load((olmo_dir / "config.yaml").read_text()) == raw
    back = import_olmo_checkpoint(olmo_dir, tmp_path / "back")
    a, b = load_file(str(ours / "model.safetensors")), load_file(str(back / "model.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa = torch.load(ours / "optim.pt", weights_only=True)
    ob = torch.load(back / "optim.pt", weights_only=True)
    assert sorted(oa["state"]) == sorted(ob["state"]) and len(oa["state"]) == len(list(model.parameters()))
    for i, st in oa["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(st[key], ob["state"][i][key]), (i, key)
    ta, tb = (
        torch.load(ours / "train.pt", weights_only=False),
        torch.load(back / "train.pt", weights_only=False),
    )
    # the importer starts a new run at the checkpoint's step (run_start_step), the counters are kept
    assert tb.pop("run_start_step") == STEPS and ta.pop("run_start_step") == 0
    assert ta == tb


def test_export_refuses_bad_targets(tmp_path):
    _, _, _, _, ours = _ours_checkpoint(tmp_path, None)
    with pytest.raises(ValueError, match="-unsharded"):
        export_olmo_checkpoint(ours, tmp_path / "step3")
    (ours / "optim.pt").unlink()
    with pytest.raises(FileNotFoundError, match="optim.pt"):
        export_olmo_checkpoint(ours, tmp_path / "step3-unsharded")


@pytest.mark.parametrize("n_kv_heads", [None, 2])
@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_olmo_restores_export(tmp_path, gloo_group, wrapper, n_kv_heads):
    """OLMo's ``FullCheckpointer.restore_checkpoint`` (what the fork runs for ``load_path``) on the
    export: same logits, OLMo's fields in the groups (clipping, decoupled decay), and one more AdamW
    step from the same gradients gives the same weights on both sides, bit for bit."""
    from olmo.checkpoint import FullCheckpointer
    from olmo.model import OLMo
    from olmo.optim import build_optimizer as olmo_build_optimizer
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.nn.parallel import DistributedDataParallel as DDP

    cfg, raw, model, optim, ours = _ours_checkpoint(tmp_path, n_kv_heads)
    olmo_dir = export_olmo_checkpoint(ours, tmp_path / f"step{STEPS}-unsharded")
    cfg.save_folder = str(tmp_path / "run")
    torch.manual_seed(1)
    olmo_model = OLMo(cfg.model)  # its own initialisation: everything must come from the checkpoint
    dist_model = (
        FSDP(olmo_model, use_orig_params=True, device_id=torch.device("cpu"))
        if wrapper == "fsdp"
        else DDP(olmo_model)
    )
    olmo_optim = olmo_build_optimizer(cfg, dist_model)
    trainer_state = FullCheckpointer(cfg).restore_checkpoint(olmo_dir, dist_model, olmo_optim)
    assert trainer_state["global_step"] == STEPS and trainer_state["global_train_tokens_seen"] == 32 * STEPS
    assert trainer_state["checkpoints"] == [] and trainer_state["unsharded_checkpoints"] == []
    for g in olmo_optim.param_groups:
        assert g["max_grad_norm"] == 0.5 and g["decoupled_weight_decay"] is True

    ids = torch.randint(0, cfg.model.vocab_size, (3, 16))
    with torch.no_grad():
        torch.testing.assert_close(dist_model(ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)

    logits = dist_model(ids).logits
    F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1)).backward()
    d = cfg.model.d_model
    d_kv = d // cfg.model.n_heads * (n_kv_heads or cfg.model.n_heads)
    params = dict(model.named_parameters())
    for name, p in olmo_model.named_parameters():
        for hf_name, g in olmo_to_hf(name, p.grad, d, d_kv).items():
            params[hf_name].grad = g.clone()
    olmo_optim.step()
    optim.step()
    n = 0
    for name, p in olmo_model.named_parameters():
        for hf_name, w in olmo_to_hf(name, p.detach(), d, d_kv).items():
            assert torch.equal(params[hf_name].detach(), w), hf_name
            n += 1
    assert n == len(params)


def test_export_cli(tmp_path, caplog):
    from intervene.cli import main

    _, _, _, _, ours = _ours_checkpoint(tmp_path, None)
    out = tmp_path / f"step{STEPS}-unsharded"
    assert main(["export-olmo", "--checkpoint", str(ours), "--out", str(out)]) == 0
    assert torch.load(out / "train.pt", weights_only=False)["global_step"] == STEPS
    assert main(["export-olmo", "--checkpoint", str(ours), "--out", str(tmp_path / "plain")]) == 1
    assert "ends in -unsharded" in caplog.text and not (tmp_path / "plain").exists()
