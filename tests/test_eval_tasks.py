"""SciQ / OpenBookQA / MMLU loaders on fixture datasets in the hub schemas, acc_uncond end to end,
the OLMES backend's command and files, the report's plots, and the tokenization claim."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from intervene.evaluation import rc_metrics
from intervene.evaluation.olmes_backend import check_olmes_output, olmes_command, run_olmes
from intervene.evaluation.run import build_labels, evaluate, load_model, write_learned
from intervene.evaluation.scoring import score_pairs
from intervene.evaluation.tasks import expand_tasks, load_task


def _sciq_rows(n, tag):
    return [
        {
            "question": f"What is {tag} {i}?",
            "distractor1": f"d1 {tag}{i}",
            "distractor2": "water",
            "distractor3": "énergie",
            "correct_answer": f"ans {tag}{i}",
            "support": "not used",
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def mcqa(tmp_path_factory) -> dict[str, Path]:
    """Tiny local copies in the hub schemas: SciQ (3 splits), OpenBookQA main, MMLU per subject."""
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("mcqa")
    DatasetDict(
        {s: Dataset.from_list(_sciq_rows(n, s)) for s, n in (("train", 3), ("validation", 2), ("test", 2))}
    ).save_to_disk(str(root / "sciq"))
    obqa = [
        {
            "id": f"7-{i}",
            "question_stem": f"Plants need {i}",
            "choices": {"text": ["sun", "rock", "glass", "wire"], "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4],
        }
        for i in range(5)
    ]
    DatasetDict(
        {
            "test": Dataset.from_list(obqa[:2]),
            "validation": Dataset.from_list(obqa[2:3]),
            "train": Dataset.from_list(obqa[3:]),
        }
    ).save_to_disk(str(root / "openbookqa"))
    mm = [
        {
            "question": f" What is {i}+1? ",
            "subject": "abstract_algebra",
            "choices": ["1", "2", "3", "4"],
            "answer": (i + 1) % 4,
        }
        for i in range(3)
    ]
    DatasetDict({"test": Dataset.from_list(mm), "dev": Dataset.from_list(mm[:1])}).save_to_disk(
        str(root / "mmlu" / "abstract_algebra")
    )
    return {"sciq": root / "sciq", "openbookqa": root / "openbookqa", "mmlu": root / "mmlu"}


def test_sciq_pools_test_validation_train_with_gold_3(mcqa):
    insts = load_task("sciq", {"sciq": str(mcqa["sciq"])})
    assert [i.doc_id for i in insts] == list(range(7))
    assert [i.native_id for i in insts] == [0, 1, 0, 1, 0, 1, 2]  # index within its own split
    assert insts[0].context == "Question: What is test 0?\nAnswer:"
    assert insts[2].context == "Question: What is validation 0?\nAnswer:"
    assert insts[0].choices == [" d1 test0", " water", " énergie", " ans test0"]
    assert {i.gold for i in insts} == {3} and {i.uncond_context for i in insts} == {"Answer:"}


def test_openbookqa_and_mmlu(mcqa):
    ob = load_task("openbookqa", {"openbookqa": str(mcqa["openbookqa"])})
    assert [i.native_id for i in ob] == ["7-0", "7-1", "7-2", "7-3", "7-4"]
    assert [i.gold for i in ob] == [0, 1, 2, 3, 0] and ob[0].choices == [" sun", " rock", " glass", " wire"]
    assert ob[0].context == "Question: Plants need 0\nAnswer:" and ob[0].uncond_context == "Answer:"
    mm = load_task("mmlu_abstract_algebra", {"mmlu": str(mcqa["mmlu"])})
    assert [i.gold for i in mm] == [1, 2, 3] and mm[0].uncond_context is None
    # the paper's olmo_eval mmlu_std prompt: subject line, blank line, question (stripped), no choices
    assert mm[0].context == (
        "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
        "Question: What is 0+1?\nAnswer:"
    )
    assert mm[0].choices == [" 1", " 2", " 3", " 4"]
    assert len(expand_tasks(["mmlu"])) == 57 and len(expand_tasks(["pararel", "sciq"])) == 13


def test_bad_sources_name_the_problem(mcqa, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_task("sciq", {"sciq": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError, match="unknown MMLU subject"):
        load_task("mmlu_cooking", {"mmlu": str(mcqa["mmlu"])})
    with pytest.raises(ValueError, match="unknown task"):
        load_task("hellaswag", {})
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list([{"question": "q"}])}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="lacks field"):
        load_task("sciq", {"sciq": str(tmp_path / "bad")})


def test_evaluate_mcqa_with_acc_uncond(mcqa, checkpoint, tmp_path):
    out = tmp_path / "ev"
    srcs = {k: str(v) for k, v in mcqa.items()}
    summary = evaluate(checkpoint, ["sciq", "openbookqa", "mmlu_abstract_algebra"], srcs, out)
    assert summary["tasks"]["sciq"]["num_instances"] == 7 and "acc_uncond" in summary["tasks"]["openbookqa"]
    assert "acc_uncond" not in summary["tasks"]["mmlu_abstract_algebra"]
    lines = [json.loads(x) for x in (out / "task-000-sciq-predictions.jsonl").read_text().splitlines()]
    tok, model = load_model(checkpoint)
    insts = load_task("sciq", srcs)
    for inst, line in zip(insts, lines, strict=True):
        mo = line["model_output"]
        # the unconditioned scores are the same continuations after "Answer:", scored pairwise
        enc = [tok(c, add_special_tokens=False).input_ids for c in inst.choices]
        ref = score_pairs(model, tok("Answer:", add_special_tokens=False).input_ids, enc)
        for o, r in zip(mo, ref, strict=True):
            assert o["sum_logits_uncond"] == pytest.approx(r.sum_logits, abs=1e-5)
        m = rc_metrics(
            [o["sum_logits"] for o in mo],
            [o["num_tokens"] for o in mo],
            [o["num_chars"] for o in mo],
            [len(c.encode()) for c in inst.choices],
            3,
            [o["sum_logits_uncond"] for o in mo],
        )
        assert m["acc_uncond"] == line["metrics"]["acc_uncond"] and line["label"] == 3
        assert mo[2]["num_chars"] == len(" énergie")
    assert list(sorted(p.name for p in out.iterdir()))[:2] == [
        "metrics.json",
        "task-000-sciq-metrics.json",
    ]
    build_labels({0: out, 5: out}, ["sciq", "openbookqa"], "acc_uncond", tmp_path / "x.npz")
    z = np.load(tmp_path / "x.npz")
    assert z["labels"].shape == (12, 2) and z["dataset_labels"].tolist() == ["sciq"] * 7 + ["openbookqa"] * 5
    # every line carries the uncond pair (null without an unconditioned prompt) and both hashes
    mm = [
        json.loads(x)
        for x in (out / "task-002-mmlu_abstract_algebra-predictions.jsonl").read_text().splitlines()
    ]
    assert mm[0]["metrics"]["acc_uncond"] is None and mm[0]["metrics"]["predicted_index_uncond"] is None
    assert list(mm[0]["metrics"])[:6] == [
        "predicted_index_raw",
        "predicted_index_per_token",
        "predicted_index_per_char",
        "predicted_index_per_byte",
        "predicted_index_uncond",
        "correct_choice",
    ]
    assert list(mm[0])[-2:] == ["task_hash", "model_hash"]
    assert mm[0]["model_hash"] == lines[0]["model_hash"] != mm[0]["task_hash"] != lines[0]["task_hash"]
    assert all(len(x["task_hash"]) == 32 for x in lines + mm)
    # per-task metrics: the paper's by default (sciq acc_per_char, openbookqa acc_uncond,
    # mmlu acc_per_char), so MMLU's null acc_uncond is never read
    build_labels({0: out}, ["sciq", "openbookqa", "mmlu_abstract_algebra"], None, tmp_path / "p.npz")
    zp = np.load(tmp_path / "p.npz")["labels"][:, 0]
    ob = [json.loads(x) for x in (out / "task-001-openbookqa-predictions.jsonl").read_text().splitlines()]
    assert zp.tolist() == (
        [x["metrics"]["acc_per_char"] for x in lines]
        + [x["metrics"]["acc_uncond"] for x in ob]
        + [x["metrics"]["acc_per_char"] for x in mm]
    )
    build_labels({0: out}, ["sciq", "openbookqa"], "sciq=acc_raw,acc_per_token", tmp_path / "q.npz")
    assert np.load(tmp_path / "q.npz")["labels"][:, 0].tolist() == (
        [x["metrics"]["acc_raw"] for x in lines] + [x["metrics"]["acc_per_token"] for x in ob]
    )
    # acc_uncond is null for MMLU: a clear error naming the file
    with pytest.raises(ValueError, match="task-002-mmlu_abstract_algebra-predictions.jsonl:1"):
        build_labels(
            {0: out}, ["sciq", "openbookqa", "mmlu_abstract_algebra"], "acc_uncond", tmp_path / "y.npz"
        )


def test_separate_tokenization_equals_olmes_whole_encoding(small_world):
    """OLMES's HF backend encodes context+continuation and cuts at len(context tokens); the SPEC
    tokenizes them separately. With a byte-level BPE whose pre-tokenizer starts a word at its space,
    the two agree: checked on every toy eval item."""
    from intervene.evaluation.tasks import PARAREL_RELATIONS, load_pararel
    from intervene.tokenizer import load_tokenizer

    tok = load_tokenizer(small_world / "tokenizer")
    n = 0
    for rel in PARAREL_RELATIONS:
        for inst in load_pararel(small_world / "eval", rel):
            ctx = tok(inst.context, add_special_tokens=False).input_ids
            for c in inst.choices:
                whole = tok(inst.context + c, add_special_tokens=False).input_ids
                assert whole[len(ctx) :] == tok(c, add_special_tokens=False).input_ids
                assert whole[: len(ctx)] == ctx
                n += 1
    assert n > 100


def _olmes_line(doc_id, acc):
    return json.dumps(
        {
            "doc_id": doc_id,
            "native_id": doc_id,
            "metrics": {"acc_raw": acc, "acc_uncond": acc},
            "model_output": [],
            "label": 3,
            "task_hash": "h",
            "model_hash": "m",
        }
    )


def test_olmes_command_and_fake_run(tmp_path, monkeypatch):
    cmd = olmes_command("/ck/step10", ["sciq", "openbookqa"], "/out")
    assert cmd[:5] == ["olmes", "--model", "olmo-2-1b-0425", "--model-args", '{"model_path": "/ck/step10"}']
    i = cmd.index("--task")
    assert cmd[i + 1 : i + 3] == ["sciq:rc::xlarge", "openbookqa:rc::xlarge"]
    assert cmd[cmd.index("--limit") + 1] == "15000" and cmd[cmd.index("--num-shots") + 1] == "0"
    assert olmes_command("m", ["mmlu_anatomy"], "o")[6] == "mmlu_anatomy:rc"
    with pytest.raises(ValueError, match="no OLMES counterpart"):
        olmes_command("m", ["pararel_p17"], "o")
    # a stand-in `olmes` that writes OLMES's files: the backend runs it and checks what it wrote
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "olmes"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, json, pathlib\n"
        "a = sys.argv; out = pathlib.Path(a[a.index('--output-dir') + 1]); out.mkdir(parents=True, exist_ok=True)\n"
        "tasks = a[a.index('--task') + 1 : a.index('--limit')]\n"
        "for i, t in enumerate(tasks):\n"
        "    name = t.split(':')[0]\n"
        f"    (out / f'task-{{i:03d}}-{{name}}-predictions.jsonl').write_text({_olmes_line(0, 1)!r} + '\\n' + {_olmes_line(1, 0)!r} + '\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    counts = run_olmes("/ck/step10", ["sciq", "openbookqa"], tmp_path / "o1")
    assert counts == {"sciq": 2, "openbookqa": 2}
    build_labels({10: tmp_path / "o1"}, ["sciq", "openbookqa"], "acc_uncond", tmp_path / "l.npz")
    assert np.load(tmp_path / "l.npz")["labels"][:, 0].tolist() == [1, 0, 1, 0]
    with pytest.raises(FileNotFoundError, match="task-000-openbookqa-predictions.jsonl"):
        check_olmes_output(tmp_path / "o1", ["openbookqa", "sciq"])
    with pytest.raises(FileNotFoundError, match="OLMES CLI not found"):
        run_olmes("/ck", ["sciq"], tmp_path / "o2", olmes="no-such-olmes-cli")
    assert not (tmp_path / "o2").exists()


def test_plots_are_written_and_stable(tmp_path):
    from intervene.evaluation.plots import majority_baselines, plot_accuracy, plot_learned

    ev = tmp_path / "ev"
    ev.mkdir()
    golds = {"pararel_p17": [0, 0, 1, 2], "pararel_p27": [1, 1, 1]}
    for ti, (t, g) in enumerate(golds.items()):
        (ev / f"task-{ti:03d}-{t}-predictions.jsonl").write_text(
            "".join(
                json.dumps({"doc_id": i, "metrics": {"acc_raw": 0}, "label": x}) + "\n"
                for i, x in enumerate(g)
            )
        )
    base = majority_baselines(ev, list(golds))
    assert base == {"p17": 0.5, "p27": 1.0}
    labels = np.array([[0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0, 1, 1], [0, 1, 1], [1, 0, 1]])
    np.savez(
        tmp_path / "labels.npz",
        steps=np.array([0, 10, 20]),
        dataset_labels=np.array(["p17"] * 4 + ["p27"] * 3),
        labels=labels,
    )
    write_learned(tmp_path / "labels.npz", tmp_path / "learned.json", tmp_path / "learned.npz")
    for k in (1, 2):
        plot_accuracy(tmp_path / "labels.npz", base, tmp_path / f"acc{k}.png")
        plot_learned(tmp_path / "learned.json", tmp_path / f"hist{k}.png")
    assert (tmp_path / "acc1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "acc1.png").read_bytes() == (tmp_path / "acc2.png").read_bytes()
    assert (tmp_path / "hist1.png").read_bytes() == (tmp_path / "hist2.png").read_bytes()


def test_retrieval_queries_of_mixed_tasks(mcqa, small_world):
    """Queries for rows of a labels.npz over ParaRel and MCQA tasks: ParaRel subjects, MCQA
    questions (with the gold answer for question_answer), only the requested rows, in their order."""
    from intervene.evaluation.tasks import dataset_labels_of
    from intervene.search.stages import instance_queries, mcqa_query, task_queries

    srcs = {"pararel": str(small_world / "eval"), "sciq": str(mcqa["sciq"])}
    tasks = ["pararel_p17", "sciq"]
    n17 = len(load_task("pararel_p17", srcs))
    sciq = load_task("sciq", srcs)
    rows = [n17 + 2, 0, n17]  # sciq's third, p17's first, sciq's first
    q = task_queries(tasks, srcs, "question", rows)
    assert q[0] == sciq[2].context.removeprefix("Question: ").removesuffix("\nAnswer:")
    assert q[1] == instance_queries(srcs["pararel"], ["p17"], "question")[0]
    qa = task_queries(["sciq"], srcs, "question_answer", [1])
    assert qa == [f"{mcqa_query(sciq[1], 'question')} {sciq[1].choices[3].strip()}"]
    assert (
        task_queries(tasks, srcs, "subject", [0]) == instance_queries(srcs["pararel"], ["p17"], "subject")[:1]
    )
    with pytest.raises(ValueError, match="MCQA query"):
        task_queries(tasks, srcs, "subject", [n17])  # a subject query for a SciQ row
    with pytest.raises(ValueError, match=r"\[0, "):
        task_queries(tasks, srcs, "question", [n17 + len(sciq)])
    assert dataset_labels_of(["mmlu", "sciq"])[-1] == "sciq" and len(dataset_labels_of(["mmlu"])) == 57


def test_mmlu_prompt_pins_the_papers_rendering():
    from intervene.evaluation.tasks import mmlu_prompt

    assert mmlu_prompt("high_school_us_history", "  Who wrote it? ") == (
        "The following are multiple choice questions (with answers) about high school us history.\n\n"
        "Question: Who wrote it?\nAnswer:"
    )


def test_olmes_hash_is_md5_of_sorted_json_without_nones():
    import hashlib

    from intervene.evaluation.run import config_hash, model_hash

    want = hashlib.md5(b'{"model": "m", "revision": "r"}').hexdigest()
    assert config_hash({"revision": "r", "model": "m", "x": None}) == want == model_hash("m", "r")
    assert model_hash("m", None) == hashlib.md5(b'{"model": "m"}').hexdigest()
