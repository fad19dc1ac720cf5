"""Importing an OLMo unsharded checkpoint (names, fused q/k/v and up/gate, AdamW moments, counters)."""

from __future__ import annotations

import pytest
import torch
import yaml

from intervene.train.checkpoint import load_model_weights, load_training_state
from intervene.train.model import build_model
from intervene.train.olmo_import import import_olmo_checkpoint
from intervene.train.optim import build_optimizer


def _to_olmo(sd: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Test oracle: HF names -> OLMo names, written out by hand from OLMo's converter's facts."""
    out = {
        "transformer.wte.weight": sd["model.embed_tokens.weight"],
        "transformer.ln_f.weight": sd["model.norm.weight"],
        "transformer.ff_out.weight": sd["lm_head.weight"],
    }
    for i in range(n_layers):
        p = f"model.layers.{i}."
        b = f"transformer.blocks.{i}."
        out[b + "att_proj.weight"] = torch.cat(
            [
                sd[p + "self_attn.q_proj.weight"],
                sd[p + "self_attn.k_proj.weight"],
                sd[p + "self_attn.v_proj.weight"],
            ]
        )
        out[b + "ff_proj.weight"] = torch.cat([sd[p + "mlp.up_proj.weight"], sd[p + "mlp.gate_proj.weight"]])
        out[b + "attn_out.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[b + "ff_out.weight"] = sd[p + "mlp.down_proj.weight"]
        out[b + "q_norm.weight"] = sd[p + "self_attn.q_norm.weight"]
        out[b + "k_norm.weight"] = sd[p + "self_attn.k_norm.weight"]
        out[b + "attn_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
        out[b + "ff_norm.weight"] = sd[p + "post_feedforward_layernorm.weight"]
    return out


@pytest.fixture()
def olmo_checkpoint(small_world, tmp_path):
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    model = build_model(raw, seed=3)
    opt = build_optimizer(model, raw["optimizer"])
    ids = torch.randint(0, 500, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    n_layers = raw["model"]["n_layers"]
    olmo_w = _to_olmo(model.state_dict(), n_layers)
    names = {id(p): n for n, p in model.named_parameters()}
    st = opt.state_dict()["state"]
    moments = {}
    for i, p in enumerate(p for g in opt.param_groups for p in g["params"]):
        moments[names[id(p)]] = st[i]
    olmo_m = {k: _to_olmo({n: m[k] for n, m in moments.items()}, n_layers) for k in ("exp_avg", "exp_avg_sq")}
    decay = sorted(n for n in olmo_w if n != "transformer.wte.weight")
    no_decay = ["transformer.wte.weight"]
    state, pid = {}, 0
    groups = []
    for group_names, wd in ((decay, 0.1), (no_decay, 0.0)):
        ids_ = []
        for n in group_names:
            state[pid] = {
                "step": torch.tensor(1.0),
                "exp_avg": olmo_m["exp_avg"][n],
                "exp_avg_sq": olmo_m["exp_avg_sq"][n],
            }
            ids_.append(pid)
            pid += 1
        groups.append({"params": ids_, "param_names": group_names, "weight_decay": wd, "lr": 4e-4})
    d = tmp_path / "step1000-unsharded"
    d.mkdir()
    torch.save(olmo_w, d / "model.pt")
    torch.save({"state": state, "param_groups": groups}, d / "optim.pt")
    torch.save(
        {
            "global_step": 1000,
            "global_train_tokens_seen": 1000 * 512,
            "global_train_examples_seen_this_epoch": 8000,
            "epoch": 0,
            "world_size": 4,
        },
        d / "train.pt",
    )
    (d / "config.yaml").write_text(yaml.safe_dump(raw))
    return d, model, opt, raw


def test_import_reproduces_weights_moments_and_counters(olmo_checkpoint, tmp_path):
    src, model, opt, raw = olmo_checkpoint
    out = import_olmo_checkpoint(src, tmp_path / "step1000")
    fresh = build_model(raw, seed=99)
    load_model_weights(out, fresh)
    for (n, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    ids = torch.randint(0, 500, (1, 12))
    assert torch.equal(model(input_ids=ids).logits, fresh(input_ids=ids).logits)
    opt2 = build_optimizer(fresh, raw["optimizer"])
    state = load_training_state(out, opt2)
    assert (
        state["global_step"] == 1000
        and state["run_start_step"] == 1000
        and state["global_train_tokens_seen"] == 512000
    )
    a, b = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert a.keys() == b.keys()
    for k in a:
        for m in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a[k][m], b[k][m])


def test_up_gate_order_and_errors(olmo_checkpoint, tmp_path):
    from intervene.train.olmo_import import olmo_to_hf

    t = torch.arange(8.0).reshape(4, 2)
    parts = olmo_to_hf("transformer.blocks.3.ff_proj.weight", t, 2, 2)
    assert torch.equal(parts["model.layers.3.mlp.up_proj.weight"], t[:2])  # first half is "up"
    assert torch.equal(parts["model.layers.3.mlp.gate_proj.weight"], t[2:])
    with pytest.raises(KeyError, match="unknown OLMo parameter"):
        olmo_to_hf("transformer.something", t, 2, 2)
    src = olmo_checkpoint[0]
    (src / "optim.pt").unlink()
    with pytest.raises(FileNotFoundError, match="optim.pt"):
        import_olmo_checkpoint(src, tmp_path / "x")


def test_fetch_unsharded_downloads_the_folder(tmp_path):
    """A released checkpoint folder is fetched file by file over HTTP and appears only when complete."""
    import functools
    import http.server
    import threading

    from intervene.train.released import UNSHARDED_FILES, fetch_unsharded

    src = tmp_path / "srv" / "step7-unsharded"
    src.mkdir(parents=True)
    for i, name in enumerate(UNSHARDED_FILES):
        (src / name).write_bytes(bytes([i]) * (1000 + i))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/step7-unsharded/"
        out = fetch_unsharded(url, tmp_path / "ckpt")
        for name in UNSHARDED_FILES:
            assert (out / name).read_bytes() == (src / name).read_bytes()
        (src / "optim.pt").unlink()  # a missing file: an error, and no folder that looks done
        import pytest

        with pytest.raises(Exception, match="optim.pt"):
            fetch_unsharded(url, tmp_path / "ckpt2")
        assert not (tmp_path / "ckpt2").exists()
    finally:
        srv.shutdown()
        srv.server_close()
