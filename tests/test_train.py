"""The trainer: OLMo's optimizer groups, LR, loss; exact resume; replay fidelity (1 and 2 processes)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from intervene.data_order import build_data_order
from intervene.decode import decode_group
from intervene.train.checkpoint import checkpoints
from intervene.train.loss import olmo_loss
from intervene.train.model import build_model
from intervene.train.optim import build_optimizer, param_groups, scheduled_lr
from intervene.train.replay import compare_checkpoints, replay_check, run_losses
from intervene.train.trainer import train

OLMO2_1B = {
    "model": {"max_sequence_length": 4096},
    "global_train_batch_size": 512,
    "optimizer": {"learning_rate": 4.0e-4},
    "scheduler": {
        "name": "cosine_with_warmup",
        "units": "tokens",
        "t_warmup": 8388608000,
        "t_max": 5e12,
        "alpha_f": 0.1,
        "warmup_min_lr": 0.0,  # as OLMo 2's configs; unset, OLMo warms up from 10 % of the LR
    },
}
OLMO2_7B = {**OLMO2_1B, "global_train_batch_size": 1024, "optimizer": {"learning_rate": 3.0e-4}}


def test_scheduled_lr_matches_olmo():
    assert scheduled_lr(OLMO2_1B, 3001) == 0.00030010000000000003  # 3.001e-4 in OLMo's float arithmetic
    assert scheduled_lr(OLMO2_7B, 3000) == pytest.approx(2.999995296279139e-4, rel=1e-13)
    # the token counter, not the step, drives it after a restore
    assert scheduled_lr(OLMO2_1B, 1, tokens_seen=3000 * 512 * 4096) == pytest.approx(3e-4)


def test_param_groups_exclude_only_the_embedding(small_world):
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    model = build_model(raw, seed=0)
    groups = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [names[id(p)] for p in groups[1]["params"]] == ["model.embed_tokens.weight"]
    decayed = {names[id(p)] for p in groups[0]["params"]}
    assert "lm_head.weight" in decayed and "model.norm.weight" in decayed  # decay_norm_and_bias: true
    assert len(decayed) + 1 == len(names)
    opt = build_optimizer(model, raw["optimizer"])
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-8


def test_causal_attention_is_bit_identical_to_sdpa_and_not_saved(small_world, tmp_path):
    """The trainer's maskless causal attention computes exactly what transformers' sdpa computes on
    CPU (so the switch changes no result), and checkpoints keep a plain config."""
    import json

    from transformers import Olmo2ForCausalLM

    from intervene.train.model import CAUSAL_SDPA, use_causal_attention

    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    model = build_model(raw, seed=0)
    x = torch.randint(0, model.config.vocab_size, (3, 48), generator=torch.Generator().manual_seed(0))
    ref = model(input_ids=x).logits
    assert use_causal_attention(model) and model.config._attn_implementation == CAUSAL_SDPA
    out = model(input_ids=x).logits
    assert torch.equal(out, ref)
    out.sum().backward()  # and it trains
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path / "ck")
    assert CAUSAL_SDPA not in json.dumps(json.loads((tmp_path / "ck" / "config.json").read_text()))
    assert Olmo2ForCausalLM.from_pretrained(tmp_path / "ck").config._attn_implementation == "sdpa"


def test_rotary_table_is_bit_identical_and_not_saved(small_world, tmp_path):
    """The compiled GPU trainer's rotary table (intervene.train.model.RotaryTable) gives exactly the
    logits and gradients of transformers' own rotary embedding, for any position ids and for float32
    and bfloat16 models, falls back to the module once the model is cast, and saves nothing."""
    from safetensors.torch import load_file

    from intervene.train.checkpoint import save_checkpoint
    from intervene.train.model import RotaryTable, use_causal_attention, use_rotary_table

    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        model = build_model(raw, seed=0).to(dtype)
        use_causal_attention(model)
        x = torch.randint(0, model.config.vocab_size, (3, 48), generator=g)
        pos = torch.randint(0, model.config.max_position_embeddings, (3, 48), generator=g)
        ref = model(input_ids=x).logits
        ref_pos = model(input_ids=x, position_ids=pos).logits
        ref.float().sum().backward()
        ref_grad = model.model.layers[0].self_attn.q_proj.weight.grad.clone()
        model.zero_grad(set_to_none=True)
        if dtype == torch.float32:
            save_checkpoint(tmp_path / "plain", model, build_optimizer(model, raw["optimizer"]), {}, raw)
        assert use_rotary_table(model) and isinstance(model.model.rotary_emb, RotaryTable)
        assert use_rotary_table(model) and not isinstance(model.model.rotary_emb.rotary, RotaryTable)
        out = model(input_ids=x).logits
        assert torch.equal(out, ref) and torch.equal(model(input_ids=x, position_ids=pos).logits, ref_pos)
        out.float().sum().backward()
        assert torch.equal(model.model.layers[0].self_attn.q_proj.weight.grad, ref_grad)
        if dtype == torch.float32:
            save_checkpoint(tmp_path / "table", model, build_optimizer(model, raw["optimizer"]), {}, raw)
            a = load_file(str(tmp_path / "plain" / "model.safetensors"))
            b = load_file(str(tmp_path / "table" / "model.safetensors"))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            model.to(torch.bfloat16)  # the float32 table is cast: the module computes instead
            plain = build_model(raw, seed=0).to(torch.bfloat16)
            use_causal_attention(plain)
            assert torch.equal(model(input_ids=x).logits, plain(input_ids=x).logits)


def test_olmo_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    ids = torch.tensor([[1, 4, 2], [0, 3, 3]])
    loss, ce, z = olmo_loss(logits, ids, batch_tokens=ids.numel())
    ce_hand = z_hand = 0.0
    for b in range(2):
        for t in range(2):  # the last position predicts nothing
            lse = math.log(sum(math.exp(float(x)) for x in logits[b, t]))
            ce_hand += lse - float(logits[b, t, ids[b, t + 1]])
            z_hand += 1e-4 * lse**2
    assert float(ce) == pytest.approx(ce_hand / 6, rel=1e-6)
    assert float(z) == pytest.approx(z_hand / 6, rel=1e-6)
    assert float(loss) == pytest.approx((ce_hand + z_hand) / 6, rel=1e-6)
    masked, _, zm = olmo_loss(logits, ids, 6, instance_mask=torch.tensor([True, False]))
    assert float(zm) < float(z) and float(masked) < float(loss)


@pytest.fixture(scope="module")
def original_run(small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("orig") / "run"
    train(small_world / "train_config.yaml", out, stop_after=8, save_interval=4, device="cpu")
    return out


def test_original_run_saves_checkpoints_and_learns(original_run):
    assert sorted(checkpoints(original_run)) == [0, 4, 8]
    ck = original_run / "step8"
    for f in ("config.json", "model.safetensors", "optim.pt", "train.pt", "tokenizer.json", "config.yaml"):
        assert (ck / f).exists(), f
    state = torch.load(ck / "train.pt", weights_only=False)
    assert state["global_step"] == 8 and state["global_train_tokens_seen"] == 8 * 8 * 64
    from transformers import AutoTokenizer, Olmo2ForCausalLM

    Olmo2ForCausalLM.from_pretrained(str(ck))  # loadable as a plain HF model
    AutoTokenizer.from_pretrained(str(ck))
    losses = run_losses(original_run)
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5


def test_resume_is_exact(small_world, original_run, tmp_path):
    out = tmp_path / "run"
    train(small_world / "train_config.yaml", out, stop_after=4, save_interval=4, device="cpu")
    train(small_world / "train_config.yaml", out, stop_after=8, save_interval=4, device="cpu")  # resumes at 4
    assert (out / "step8" / "model.safetensors").read_bytes() == (
        original_run / "step8" / "model.safetensors"
    ).read_bytes()
    assert compare_checkpoints(original_run / "step8", out / "step8")["passed"]
    assert (out / "metrics.jsonl").read_text() == (original_run / "metrics.jsonl").read_text()


def test_killed_run_resumes_to_identical_bytes(small_world, original_run, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "intervene.cli",
        "train",
        "--train-config",
        str(small_world / "train_config.yaml"),
        "--out",
        str(out),
        "--stop-after",
        "8",
        "--save-interval",
        "4",
        "--device",
        "cpu",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "step4").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    p.wait(60)
    assert not any(x.name.startswith(".step") for x in out.iterdir())  # no half-written checkpoint
    subprocess.run(cmd, check=True, capture_output=True)
    assert (out / "step8" / "model.safetensors").read_bytes() == (
        original_run / "step8" / "model.safetensors"
    ).read_bytes()


def _replay_inputs(small_world, tmp_path, world_size, first, last):
    d = tmp_path / "data"
    build_data_order(small_world / "train_config.yaml", d / "gi.npy", d / "files.tsv", world_size=world_size)
    decode_group(
        small_world / "train_config.yaml",
        d / "gi.npy",
        small_world / "tokenizer",
        d / "batches",
        range(first, last),
        world_size=world_size,
        write_text=False,
    )
    (d / "list.txt").write_text("".join(f"batches/{b}.npy\n" for b in range(first, last)))
    return d


def test_replay_of_unmodified_batches_is_bit_exact(small_world, original_run, tmp_path):
    d = _replay_inputs(small_world, tmp_path, 1, 4, 8)
    out = tmp_path / "replay"
    train(
        small_world / "train_config.yaml",
        out,
        load_path=original_run / "step4",
        data_list=d / "list.txt",
        device="cpu",
    )
    assert sorted(checkpoints(out)) == [8]
    res = compare_checkpoints(original_run / "step8", out / "step8", tmp_path / "r.json")
    assert res["passed"] and res["tensors_not_bit_identical"] == 0 and res["tensors"] > 20
    # and the check can fail: a replay over other batches differs
    (d / "other.txt").write_text("".join(f"batches/{b}.npy\n" for b in (5, 4, 6, 7)))
    train(
        small_world / "train_config.yaml",
        tmp_path / "bad",
        load_path=original_run / "step4",
        data_list=d / "other.txt",
        device="cpu",
    )
    assert not compare_checkpoints(original_run / "step8", tmp_path / "bad" / "step8")["passed"]


def _torchrun_train(train_config) -> list[str]:
    """`intervene train` on 2 CPU processes (gloo) under torchrun, micro-batches of 2."""
    torchrun = Path(sys.executable).parent / "torchrun"
    return [
        *(str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "intervene.cli", "train"),
        *("--train-config", str(train_config), "--device", "cpu", "--microbatch", "2"),
    ]


def test_replay_under_torchrun_two_processes(small_world, tmp_path):
    """Original run and replay both on 2 CPU processes (gloo): the replay is bit-exact."""
    base = _torchrun_train(small_world / "train_config.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    orig = tmp_path / "orig"
    r = subprocess.run(
        [*base, "--out", str(orig), "--stop-after", "6", "--save-interval", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(orig / "step6" / "train.pt", weights_only=False)["world_size"] == 2
    d = _replay_inputs(small_world, tmp_path, 2, 3, 6)
    r = subprocess.run(
        [
            *base,
            "--out",
            str(tmp_path / "replay"),
            "--load-path",
            str(orig / "step3"),
            "--data-list",
            str(d / "list.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert compare_checkpoints(orig / "step6", tmp_path / "replay" / "step6")["passed"]
    # the replay check as the workflow launches it for train.nproc 2: under torchrun, bit-exact,
    # rank 0 alone writes the report; the micro-batch is the original's (its fingerprint), not the config's
    check = [
        str(Path(sys.executable).parent / "torchrun"),
        *("--standalone", "--nproc_per_node=2", "-m", "intervene.cli", "replay-check"),
        *("--train-config", str(small_world / "train_config.yaml"), "--original", str(orig)),
        *("--from-step", "3", "--steps", "3", "--group-dirs", str(d / "batches"), "--device", "cpu"),
        *("--work", str(tmp_path / "check"), "--out", str(tmp_path / "check.json")),
    ]
    r = subprocess.run(check, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rc = json.loads((tmp_path / "check.json").read_text())
    assert rc["passed"] and rc["tensors_not_bit_identical"] == 0 and rc["atol"] == 0, rc
    # one process cannot replay a two-process run: refused, naming the launch that matches
    with pytest.raises(
        ValueError, match=r"trained on 2 process\(es\), the replay runs on 1.*nproc_per_node=2"
    ):
        replay_check(
            small_world / "train_config.yaml",
            orig,
            3,
            3,
            None,
            0,
            tmp_path / "one",
            tmp_path / "one.json",
            device="cpu",
            group_dirs=[d / "batches"],
        )
    assert not (tmp_path / "one.json").exists()
    # two processes compute the same step as one, up to float summation order
    single = tmp_path / "single"
    train(
        small_world / "train_config.yaml",
        single,
        stop_after=6,
        save_interval=3,
        device="cpu",
        order_path=d / "gi.npy",
    )
    # (Adam turns float-noise gradients of rare embedding rows into updates of up to lr: 1e-3 absolute)
    res = compare_checkpoints(orig / "step6", single / "step6", atol=1e-3)
    assert res["passed"] and res["max_abs_diff"] > 0, res

    assert run_losses(orig) == pytest.approx(run_losses(single), rel=1e-5)


def test_rerun_errors(small_world, original_run, tmp_path):
    (tmp_path / "list.txt").write_text("missing.npy\n")
    with pytest.raises(ValueError, match="load_path"):
        train(
            small_world / "train_config.yaml", tmp_path / "x", data_list=tmp_path / "list.txt", device="cpu"
        )
    from intervene.olmo import DataError

    with pytest.raises(DataError, match="missing.npy"):
        train(
            small_world / "train_config.yaml",
            tmp_path / "x",
            load_path=original_run / "step4",
            data_list=tmp_path / "list.txt",
            device="cpu",
        )
    with pytest.raises(ValueError, match="more batches"):
        train(small_world / "train_config.yaml", tmp_path / "y", stop_after=10_000, device="cpu")


def test_fused_loss_equals_plain_loss_and_gradients():
    from intervene.train.loss import fused_olmo_loss

    torch.manual_seed(1)
    h = torch.randn(3, 11, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(70, 16, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 70, (3, 11))
    loss, ce, z = olmo_loss(h @ w.t(), ids, ids.numel())
    loss.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    loss2, ce2, z2 = fused_olmo_loss(h, w, ids, ids.numel(), chunk=7)  # chunks not aligned to rows
    loss2.backward()
    assert float(loss2.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert float(z2.detach()) == pytest.approx(float(z.detach()), rel=1e-6)
    assert torch.allclose(h.grad, gh, atol=1e-6) and torch.allclose(w.grad, gw, atol=1e-6)


def test_shifted_head_equals_the_full_head(small_world):
    """The head applied to the first L - 1 positions only (OlmoObjective.shifted_head, for compiled
    GPU runs: no copy of the logits to drop the last position) gives OLMo's loss and gradients,
    with masked instances too."""
    from intervene.train.objective import OlmoObjective

    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    model = build_model(raw, seed=0)
    ids = torch.randint(0, model.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([True, False, True])
    out = {}
    for shifted in (False, True):
        objective = OlmoObjective(model, z_loss=True)
        objective.shifted_head = shifted
        loss, ce, z = objective(ids, ids.numel(), mask)
        loss.backward()
        out[shifted] = (loss.detach(), ce, z, [p.grad.clone() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
    (l0, ce0, z0, g0), (l1, ce1, z1, g1) = out[False], out[True]
    assert torch.equal(l0, l1) and torch.equal(ce0, ce1) and torch.equal(z0, z1) and float(z0) > 0
    assert all(torch.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(g0, g1, strict=True))
    assert any(float(g.abs().sum()) > 0 for g in g1)


def test_fused_loss_trains_like_the_plain_loss(small_world, original_run, tmp_path):
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    raw["fused_loss"] = True
    raw["data"]["paths"] = [str(small_world / p) for p in raw["data"]["paths"]]
    cfg = tmp_path / "fused.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    train(cfg, tmp_path / "run", stop_after=8, save_interval=4, device="cpu")

    assert run_losses(tmp_path / "run") == pytest.approx(run_losses(original_run), rel=1e-4)


def test_fsdp_trains_like_ddp_and_resumes_exactly(small_world, tmp_path):
    """FSDP2 (weights, gradients and AdamW state sharded) computes the same steps as the replicated
    trainer, in one process and in two under torchrun (gloo); its checkpoints have the unsharded
    layout (a DDP run resumes from them) and an FSDP run resumes from its own exactly."""
    cfg = small_world / "train_config.yaml"
    plain, sharded = tmp_path / "plain", tmp_path / "fsdp"
    train(cfg, plain, stop_after=6, save_interval=3, device="cpu")
    train(cfg, sharded, stop_after=6, save_interval=3, device="cpu", strategy="fsdp")
    res = compare_checkpoints(plain / "step6", sharded / "step6", atol=1e-6)
    assert res["passed"] and res["counters_equal"], res
    assert run_losses(sharded) == pytest.approx(run_losses(plain), rel=1e-6)
    # resume: from the FSDP step-3 checkpoint, FSDP to step 6 = the uninterrupted run, bit for bit
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    import shutil

    shutil.copytree(sharded / "step3", resumed / "step3")
    shutil.copy(sharded / "fingerprint.json", resumed)  # the same run: it resumes
    train(cfg, resumed, stop_after=6, save_interval=3, device="cpu", strategy="fsdp")
    res = compare_checkpoints(sharded / "step6", resumed / "step6")
    assert res["passed"] and res["tensors_not_bit_identical"] == 0, res
    # and the replicated trainer continues from the FSDP checkpoint to the same step 6 (a run of
    # its own from that checkpoint: another strategy is another run's fingerprint)
    cont = tmp_path / "cont"
    train(cfg, cont, load_path=sharded / "step3", stop_after=3, save_interval=3, device="cpu")
    assert compare_checkpoints(sharded / "step6", cont / "step6", atol=1e-6)["passed"]

    # two processes: FSDP vs DDP under torchrun, up to float summation order
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for strategy in ("ddp", "fsdp"):
        runs[strategy] = tmp_path / f"two_{strategy}"
        r = subprocess.run(
            [
                *_torchrun_train(cfg),
                *("--strategy", strategy, "--out", str(runs[strategy])),
                *("--stop-after", "6", "--save-interval", "3"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
    res = compare_checkpoints(runs["ddp"] / "step6", runs["fsdp"] / "step6", atol=1e-3)
    assert res["passed"], res
    assert run_losses(runs["fsdp"]) == pytest.approx(run_losses(runs["ddp"]), rel=1e-5)
