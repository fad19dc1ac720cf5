"""Evaluation: OLMES metrics by hand, the learned rule, fast scoring = pairwise, files and labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from intervene.evaluation import learned_checkpoint, rc_metrics
from intervene.evaluation.run import (
    build_labels,
    build_run_labels,
    evaluate,
    read_predictions,
    write_learned,
    write_learned_indices,
)
from intervene.evaluation.scoring import score_packed, score_pairs


def test_rc_metrics_by_hand():
    # choices " a", " bb", " ccc": sums -3, -4, -4.5; tokens 1, 2, 3; chars 2, 3, 4
    m = rc_metrics([-3.0, -4.0, -4.5], [1, 2, 3], [2, 3, 4], [2, 3, 4], gold=2)
    assert m["predicted_index_raw"] == 0  # -3 is the largest sum
    assert m["predicted_index_per_token"] == 2  # -3, -2, -1.5
    assert m["predicted_index_per_char"] == 2  # -1.5, -1.33, -1.125
    assert m["predicted_index_per_byte"] == 2
    assert (m["acc_raw"], m["acc_per_token"], m["acc_per_char"]) == (0, 1, 1)
    assert "acc_uncond" not in m and m["correct_choice"] == 2
    assert m["bits_per_byte_corr"] == pytest.approx(1.44269504089 * 4.5 / 4)


def test_rc_metrics_ties_bytes_and_uncond():
    tie = rc_metrics([-2.0, -2.0], [1, 1], [3, 3], [3, 3], gold=1)
    assert tie["predicted_index_raw"] == 0 and tie["acc_raw"] == 0  # ties go to the first choice
    # same chars, more bytes (non-ASCII) for the second: per-char and per-byte disagree
    m = rc_metrics([-2.0, -3.0], [1, 1], [2, 2], [2, 6], gold=0)
    assert m["predicted_index_per_char"] == 0 and m["predicted_index_per_byte"] == 1
    u = rc_metrics([-5.0, -6.0], [2, 2], [4, 4], [4, 4], gold=1, sum_logits_uncond=[-4.0, -8.0])
    assert u["predicted_index_uncond"] == 1 and u["acc_uncond"] == 1 and u["acc_raw"] == 0
    with pytest.raises(ValueError, match="gold"):
        rc_metrics([-1.0], [1], [1], [1], gold=3)


def test_learned_checkpoint_rule():
    labels = np.array(
        [
            [0, 0, 1, 1],  # learned at 2
            [1, 1, 1, 1],  # correct from the first: learned at 0
            [0, 1, 0, 1],  # flips: never "learned" by the rule
            [0, 0, 0, 0],  # never
            [0, 1, 1, 0],  # forgotten at the end
            [0, 0, 0, 1],  # learned at the last
        ]
    )
    assert learned_checkpoint(labels).tolist() == [2, 0, -1, -1, -1, 3]
    with pytest.raises(ValueError):
        learned_checkpoint(np.array([0, 1]))


def _tiny_model(vocab=97):
    from transformers import Olmo2Config, Olmo2ForCausalLM

    torch.manual_seed(0)
    cfg = Olmo2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    return Olmo2ForCausalLM(cfg).eval()


def _random_requests(seed: int, n: int, vocab: int = 97):
    import random

    rng = random.Random(seed)
    reqs = []
    for _ in range(n):
        ctx = [rng.randrange(vocab) for _ in range(rng.randint(1, 9))]
        conts = [[rng.randrange(vocab) for _ in range(rng.randint(1, 5))] for _ in range(rng.randint(1, 15))]
        reqs.append((ctx, conts))
    return reqs


@pytest.mark.parametrize("row_tokens,batch_tokens", [(2048, 16384), (16, 40), (4, 4)])
def test_packed_scoring_equals_pairwise(row_tokens, batch_tokens):
    """Packing (several instances per row, choices branching off a shared context, requests split
    across rows when they do not fit) gives the paper's per-pair log-likelihoods to 1e-5 (fp32)."""
    model = _tiny_model()
    reqs = _random_requests(0, 14)
    reqs.append(([5, 17, 3], [[7], [7], [8, 9, 10]]))  # duplicate choices; single- and multi-token
    fast = score_packed(model, reqs, row_tokens=row_tokens, batch_tokens=batch_tokens)
    for (ctx, conts), f in zip(reqs, fast, strict=True):
        slow = score_pairs(model, ctx, conts, batch_size=8)
        for a, b in zip(f, slow, strict=True):
            assert a.num_tokens == b.num_tokens
            assert a.sum_logits == pytest.approx(b.sum_logits, abs=1e-5)
            assert a.is_greedy == b.is_greedy
    # and against a log-softmax written out by hand for one choice
    ctx, conts = reqs[-1]
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([ctx + conts[2]])).logits[0], -1)
    hand = sum(float(full[len(ctx) - 1 + j, t]) for j, t in enumerate(conts[2]))
    assert fast[-1][2].sum_logits == pytest.approx(hand, abs=1e-5)
    assert fast[-1][0].sum_logits == fast[-1][1].sum_logits


@pytest.mark.parametrize(
    "row_tokens,batch_tokens,head_chunk", [(2048, 16384, 4096), (16, 40, 4096), (4, 4, 4096), (64, 256, 3)]
)
def test_packed_scoring_equals_the_per_target_head(row_tokens, batch_tokens, head_chunk):
    """The head once per distinct position (choices' first tokens share the context end's row) gives
    the scores of the previous per-target head (benchmarks/previous_scoring.py) on several packings
    and head chunks, and the head sees each distinct position exactly once."""
    from benchmarks.previous_scoring import previous_score_packed

    model = _tiny_model()
    reqs = _random_requests(5, 30)
    reqs.append(([5, 17, 3], [[7], [7], [8, 9, 10], [8, 9, 11]]))  # shared prefixes of choices
    rows_seen = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda mod, inp, out: rows_seen.append(inp[0].shape[0]))
    try:
        fast = score_packed(
            model, reqs, row_tokens=row_tokens, batch_tokens=batch_tokens, head_chunk=head_chunk
        )
    finally:
        hook.remove()
    old = previous_score_packed(
        model, reqs, row_tokens=row_tokens, batch_tokens=batch_tokens, head_chunk=head_chunk
    )
    for f, o in zip(fast, old, strict=True):
        for a, b in zip(f, o, strict=True):
            assert (a.num_tokens, a.is_greedy) == (b.num_tokens, b.is_greedy)
            assert a.sum_logits == pytest.approx(b.sum_logits, rel=1e-6, abs=1e-6)
    assert max(rows_seen) <= head_chunk
    # distinct positions: one per context copy (a segment) + one per non-final choice token
    segments = _count_segments(reqs, row_tokens)
    extra = sum(len(c) - 1 for _, conts in reqs for c in conts)
    assert sum(rows_seen) == segments + extra
    assert sum(rows_seen) < sum(len(c) for _, conts in reqs for c in conts)


def _count_segments(reqs, row_tokens: int) -> int:
    from intervene.evaluation.scoring import _segments

    return len(_segments(reqs, row_tokens))


def test_packed_scoring_with_eager_attention_and_bad_requests():
    from transformers import Olmo2Config, Olmo2ForCausalLM

    torch.manual_seed(1)
    cfg = Olmo2Config(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    model = Olmo2ForCausalLM(cfg).eval()
    model.config._attn_implementation = "eager"
    reqs = _random_requests(3, 5)
    for (ctx, conts), f in zip(reqs, score_packed(model, reqs, row_tokens=12), strict=True):
        for a, b in zip(f, score_pairs(model, ctx, conts), strict=True):
            assert a.sum_logits == pytest.approx(b.sum_logits, abs=1e-5)
    with pytest.raises(ValueError, match="request 1: empty context"):
        score_packed(model, [([1], [[2]]), ([], [[2]])])
    with pytest.raises(ValueError, match="request 0"):
        score_packed(model, [([1], [[2], []])])


def test_evaluate_writes_olmes_predictions(small_world, checkpoint, tmp_path):
    import datasets

    out = tmp_path / "eval"
    summary = evaluate(checkpoint, ["pararel_p17", "pararel_p1412"], {"pararel": small_world / "eval"}, out)
    assert set(summary["tasks"]) == {"pararel_p17", "pararel_p1412"}
    ds = datasets.load_from_disk(str(small_world / "eval" / "pararel_patterns_p1412"))["train"]
    lines = [
        json.loads(x) for x in (out / "task-001-pararel_p1412-predictions.jsonl").read_text().splitlines()
    ]
    assert [x["doc_id"] for x in lines] == list(range(len(ds)))
    for row, line in zip(ds, lines, strict=True):
        assert (
            line["label"]
            == row["candidates"].index(row["object"].strip())
            == line["metrics"]["correct_choice"]
        )
        assert len(line["model_output"]) == len(row["candidates"])
        assert {"sum_logits", "num_tokens", "num_tokens_all", "is_greedy", "num_chars"} <= set(
            line["model_output"][0]
        )
        assert line["model_output"][0]["num_chars"] == len(" " + row["candidates"][0])
        for k in ("acc_raw", "acc_per_token", "acc_per_char", "acc_per_byte", "predicted_index_raw"):
            assert k in line["metrics"]
    m = json.loads((out / "metrics.json").read_text())
    assert (
        lines[0]["metrics"]["acc_uncond"] is None and "sum_logits_uncond" not in lines[0]["model_output"][0]
    )
    assert "acc_uncond" not in m["tasks"]["pararel_p1412"]
    assert m["tasks"]["pararel_p1412"]["acc_raw"] == pytest.approx(
        np.mean([x["metrics"]["acc_raw"] for x in lines])
    )


def test_labels_and_learned(small_world, checkpoint, tmp_path):
    e0 = tmp_path / "e0"
    evaluate(checkpoint, ["pararel_p17"], {"pararel": small_world / "eval"}, e0)
    # a second "checkpoint": the same predictions with the first two instances made correct
    e1 = tmp_path / "e1"
    e1.mkdir()
    lines = [json.loads(x) for x in (e0 / "task-000-pararel_p17-predictions.jsonl").read_text().splitlines()]
    for x in lines[:2]:
        x["metrics"]["acc_per_token"] = 1
    (e1 / "task-000-pararel_p17-predictions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    build_labels({0: e0, 100: e1}, ["pararel_p17"], "acc_per_token", tmp_path / "labels.npz")
    z = np.load(tmp_path / "labels.npz")
    assert z["steps"].tolist() == [0, 100] and z["labels"].shape == (len(lines), 2)
    assert set(z["dataset_labels"].tolist()) == {"p17"}
    assert z["metric"].tolist() == ["acc_per_token"] * len(lines)
    s = write_learned(tmp_path / "labels.npz", tmp_path / "learned.json", tmp_path / "learned.npz")
    assert s["metric_per_dataset"] == {"p17": "acc_per_token"}
    first_wrong = [i for i in range(2) if z["labels"][i, 0] == 0]
    assert s["learned_per_step"][100] == len(first_wrong)
    t = write_learned_indices(tmp_path / "learned.npz", 100, tmp_path / "targets.npz")
    zt = np.load(tmp_path / "targets.npz")
    assert t["instances"] == len(first_wrong) and zt["inst_idxs"].tolist() == first_wrong
    assert zt["local_idxs"].tolist() == first_wrong and set(zt["dataset_labels"].tolist()) <= {"p17"}
    with pytest.raises(ValueError, match="step 50"):
        write_learned_indices(tmp_path / "learned.npz", 50, tmp_path / "t50.npz")
    # an instance count that differs between checkpoints is an error naming the folder
    (e1 / "task-000-pararel_p17-predictions.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines[:-1])
    )
    with pytest.raises(ValueError, match="e1"):
        build_labels({0: e0, 100: e1}, ["pararel_p17"], "acc_per_token", tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
    # repeated runs: run1..runN, the same instances and checkpoints required
    r = build_run_labels([{0: e0}, {0: e0}], ["pararel_p17"], "acc_per_token", tmp_path / "runs.npz")
    zr = np.load(tmp_path / "runs.npz")
    assert r["runs"] == 2 and sorted(zr.files) == ["dataset_labels", "metric", "run1", "run2", "steps"]
    assert zr["metric"].tolist() == ["acc_per_token"] * len(lines)
    assert (zr["run1"] == z["labels"][:, :1]).all() and (zr["run2"] == zr["run1"]).all()
    with pytest.raises(ValueError, match="run 2"):
        build_run_labels([{0: e0}, {100: e0}], ["pararel_p17"], "acc_per_token", tmp_path / "r2.npz")
    with pytest.raises(ValueError, match="e1"):
        build_run_labels([{0: e0}, {0: e1}], ["pararel_p17"], "acc_per_token", tmp_path / "r3.npz")


def test_read_paper_olmo_eval_format(tmp_path):
    obj = {
        "task": "pararel_patterns_std_p17_temp0",
        "instance_predictions": [
            {
                "instance": {"instance_idx": i},
                "prediction": {"metrics": {"acc_raw": v, "acc_per_token": 1 - v}},
            }
            for i, v in enumerate([1, 0, 1])
        ],
    }
    p = tmp_path / "predictions.jsonl"
    p.write_text(json.dumps(obj))
    assert read_predictions(p, "acc_raw").tolist() == [1, 0, 1]
    q = tmp_path / "olmes.jsonl"
    q.write_text('{"doc_id": 0, "metrics": {"acc_raw": 1}}\n{"doc_id": 1, "metrics": {"acc_raw": 0}}\n')
    assert read_predictions(q, "acc_raw").tolist() == [1, 0]
    with pytest.raises(ValueError, match="olmes.jsonl:1"):
        read_predictions(q, "acc_uncond")


def test_metric_spec_per_task_defaults_and_errors():
    from intervene.evaluation.metric_spec import metric_cli_value, metric_for, parse_metric

    paper = parse_metric(None)
    assert [metric_for(t, paper) for t in ("pararel_p17", "mmlu_anatomy", "sciq", "openbookqa")] == [
        "acc_raw",
        "acc_per_char",
        "acc_per_char",
        "acc_uncond",
    ]
    one = parse_metric("acc_per_token")
    assert {metric_for(t, one) for t in ("pararel_p17", "sciq", "openbookqa")} == {"acc_per_token"}
    mixed = parse_metric("sciq=acc_raw,pararel_p17=acc_per_byte,pararel=acc_per_token")
    assert metric_for("pararel_p17", mixed) == "acc_per_byte"
    assert metric_for("pararel_p27", mixed) == "acc_per_token"
    assert metric_for("sciq", mixed) == "acc_raw" and metric_for("openbookqa", mixed) == "acc_uncond"
    assert parse_metric({"mmlu": "acc_raw"}) == {"mmlu": "acc_raw"}
    assert metric_cli_value({"sciq": "acc_raw", "mmlu": "acc_per_char"}) == "sciq=acc_raw,mmlu=acc_per_char"
    assert metric_cli_value("acc_raw") == "acc_raw" and metric_cli_value(None) == ""
    with pytest.raises(ValueError, match=r"^eval\.metric\.hellaswag: unknown task key"):
        parse_metric({"hellaswag": "acc_raw"})
    with pytest.raises(ValueError, match=r"^eval\.metric\.mmlu_cooking: unknown task key"):
        parse_metric("mmlu_cooking=acc_raw")
    with pytest.raises(ValueError, match=r"^eval\.metric\.sciq: 'acc' is not one of"):
        parse_metric("sciq=acc")
    with pytest.raises(ValueError, match=r"^eval\.metric: 'accuracy' is not one of"):
        parse_metric("accuracy")
