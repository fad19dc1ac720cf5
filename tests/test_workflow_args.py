"""What the rules pass to the subcommands (intervene.workflow_args) and the default target's lists
(intervene.layout): pure functions of a resolved config, checked here instead of in a dry run."""

from __future__ import annotations

import copy
import json
import shlex

import pytest
import yaml

from intervene import layout
from intervene import workflow_args as wa
from intervene.cli import build_parser
from intervene.settings import resolve_config

from .conftest import REPO

SCRIPT = "wf/torchrun_node.sh"


def shipped(name: str = "config.yaml") -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def resolved(raw: dict) -> tuple[dict, frozenset[str]]:
    return resolve_config(raw), layout.given_sections(raw)


def parse(*words: str) -> dict:
    ns = vars(build_parser().parse_args(list(words)))
    ns.pop("func")
    ns.pop("settings", None)
    return ns


def settings_of(arg: str) -> dict:
    (text,) = shlex.split(arg)  # one shell word
    return json.loads(text)


def with_train(**over) -> dict:
    cfg = shipped()
    cfg["train"].update(over)
    return resolve_config(cfg)


# -- training launch and resources ----------------------------------------------------------------


def test_launcher_and_resources_follow_processes_and_nodes():
    one = with_train(nproc=1, device="cpu")
    assert wa.train_launcher(one, SCRIPT) == "intervene"
    assert wa.train_resources(one) == {"gpu": 0}
    four = with_train(nproc=4, device="cuda")
    assert wa.train_launcher(four, SCRIPT) == "torchrun --standalone --nproc_per_node=4 -m intervene.cli"
    assert wa.train_resources(four) == {"gpu": 4}
    nodes = with_train(nproc=8, device="cuda", nodes=2)
    assert wa.train_launcher(nodes, SCRIPT) == (
        f"srun --nodes=2 --ntasks-per-node=1 --ntasks=2 bash {SCRIPT} 8"
    )
    assert wa.train_resources(nodes) == {
        "gpu": 0,
        "gres": "gpu:8",
        "nodes": 2,
        "tasks": 16,
        "mpi": "srun",
        "tasks_per_gpu": 0,
    }
    srun = with_train(nproc=2, device="cuda", launcher="srun")
    assert wa.train_launcher(srun, SCRIPT).startswith("srun --nodes=1 ")
    assert wa.train_resources(srun)["gpu"] == 2 and wa.train_resources(srun)["tasks"] == 2


def test_order_seed_only_for_later_shuffled_runs():
    cfg = shipped()
    cfg["experiment"].update(order="shuffle", seed=5)
    c = resolve_config(cfg)
    assert [wa.order_seed(c, r) for r in (1, 2, 3)] == [None, 7, 8]
    cfg["experiment"]["order"] = "given"
    assert [wa.order_seed(resolve_config(cfg), r) for r in (1, 2, 3)] == [None, None, None]


def test_rerun_settings_start_at_the_window_and_end_at_its_checkpoint():
    cfg = shipped()
    cfg["experiment"].update(order="shuffle", seed=5)
    cfg["train"]["strategy"] = "fsdp"
    c = resolve_config(cfg)
    s = settings_of(wa.rerun_train_settings(c, "control_160_200", 2))
    assert s == {
        "load_path": "results/train/original/step160",
        "stop_after": 40,
        "save_interval": 40,
        "order_seed": 7,
        "strategy": "fsdp",
        "device": c["train"]["device"],
        "deterministic": False,
    }
    name = next(iter(c["interventions"]))
    first, last = layout.rerun_window(c, name)
    ns = parse("train", "--train-config", "t.yaml", "--out", "o", "--settings", json.dumps(s))
    assert (ns["load_path"], ns["stop_after"], ns["order_seed"], ns["strategy"]) == (
        "results/train/original/step160",
        40,
        7,
        "fsdp",
    )
    assert settings_of(wa.rerun_train_settings(c, name, 1))["stop_after"] == last - first


def test_original_run_settings_leave_stop_after_to_the_train_config():
    c = resolve_config(shipped())
    assert c["train"]["stop_at"] is None
    ns = parse(
        "train",
        "--train-config",
        "t",
        "--out",
        "o",
        "--settings",
        settings_of_word(wa.original_train_settings(c)),
    )
    assert ns["stop_after"] is None and ns["save_interval"] == c["train"]["save_interval"]
    assert ns["strategy"] == "ddp"
    c = with_train(stop_at=120)
    assert settings_of(wa.original_train_settings(c))["stop_after"] == 120


def settings_of_word(arg: str) -> str:
    (text,) = shlex.split(arg)
    return text


def test_replay_settings_are_bit_exact_on_cpu_only():
    cfg = shipped()
    cfg["train"]["replay_check"] = {"from_step": 40, "steps": 20}
    c = resolve_config(cfg)
    assert settings_of(wa.replay_settings(c)) == {"from_step": 40, "steps": 20, "atol": 0.0}
    assert wa.replay_groups(c) == layout.groups_of(c, 40, 60)
    cfg["train"]["device"] = "cuda"
    assert settings_of(wa.replay_settings(resolve_config(cfg)))["atol"] == wa.GPU_REPLAY_ATOL
    cfg["train"]["replay_check"] = None
    assert wa.replay_groups(resolve_config(cfg)) == []


def test_deterministic_training_reaches_every_train_job_and_makes_the_replay_exact():
    cfg = shipped()
    cfg["train"].update(device="cuda", deterministic=True, replay_check={"from_step": 40, "steps": 20})
    c = resolve_config(cfg)
    assert settings_of(wa.replay_settings(c))["atol"] == 0.0  # on GPU too
    name = next(iter(c["interventions"]))
    for arg in (wa.original_train_settings(c), wa.rerun_train_settings(c, name, 1)):
        ns = parse("train", "--train-config", "t.yaml", "--out", "o", "--settings", settings_of_word(arg))
        assert ns["deterministic"] is True
    cfg["train"]["deterministic"] = False
    c = resolve_config(cfg)
    ns = parse(
        "train",
        "--train-config",
        "t",
        "--out",
        "o",
        "--settings",
        settings_of_word(wa.original_train_settings(c)),
    )
    assert ns["deterministic"] is False
    assert settings_of(wa.replay_settings(c))["atol"] == wa.GPU_REPLAY_ATOL


# -- evaluation and effects -----------------------------------------------------------------------


def test_eval_settings_give_the_commands_the_configured_flags():
    cfg = shipped()
    cfg["eval"].update(sources={"pararel": "p", "sciq": "s"}, row_tokens=512, metric={"sciq": "acc_raw"})
    c = resolve_config(cfg)
    word = settings_of_word(wa.eval_settings(c))
    ns = parse("eval", "--model", "m", "--settings", word, "--out", "o")
    assert ns["tasks"] == ",".join(cfg["eval"]["tasks"]) == wa.eval_tasks(c)
    assert (ns["pararel"], ns["sciq"], ns["row_tokens"], ns["batch_tokens"]) == ("p", "s", 512, 16384)
    assert parse("labels", "--evals", "0=a", "--settings", word, "--out", "l")["metric"] == "sciq=acc_raw"
    assert wa.source_flags(c) == ["--pararel p", "--sciq s"]
    no_eval = {k: v for k, v in cfg.items() if k != "eval"}
    assert wa.source_flags(resolve_config(no_eval)) == [] and wa.eval_tasks(resolve_config(no_eval)) == ""


def test_label_arguments_pair_steps_and_folders():
    c = resolve_config(shipped())
    steps = layout.original_steps(c)
    folders = [f"e/step{s}" for s in steps]
    assert wa.original_evals(c, folders).split() == [f"{s}=e/step{s}" for s in steps]
    with pytest.raises(ValueError):
        wa.original_evals(c, folders[:-1])  # a missing folder is no shorter list of labels
    assert wa.rerun_label_args(c, "control_160_200", ["a", "b"]) == "--run 200=a --run 200=b"


def test_effect_settings_equal_the_flags_the_rule_wrote():
    cfg = shipped()
    name = next(n for n, v in cfg["interventions"].items() if v["strategy"] == "bm25_mapping")
    cfg["interventions"][name].update(swap_direction=True, datasets=["sciq"])
    cfg["experiment"]["bootstrap"] = {"samples": 300}
    c = resolve_config(cfg)
    files = ["--intervention-labels", "i", "--control-labels", "c", "--targets", "t", "--out-json", "o"]
    ns = parse("effect", "--settings", settings_of_word(wa.effect_settings(c, name)), *files)
    flags = parse(
        "effect",
        *("--name", name, "--strategy", "bm25_mapping", "--swap-direction", "--datasets", "sciq"),
        *("--bootstrap", "300", "--level", "0.95", "--seed", "0"),
        *files,
    )
    assert ns == flags
    plain = next(n for n, v in cfg["interventions"].items() if v["strategy"] == "rm_coocc")
    s = settings_of(wa.effect_settings(c, plain))
    assert s["datasets"] is None and s["swap_direction"] is False


def test_figure_arguments_follow_the_config_order():
    c = resolve_config(shipped())
    names = list(c["interventions"])
    figs = [f"f/{n}.png" for n in names]
    assert wa.figure_args(c, figs) == " ".join(f"--figure {n}=f/{n}.png" for n in names)


def test_data_settings_parse_as_their_commands():
    cfg = shipped()
    c = resolve_config(cfg)
    ns = parse(
        "decode", "--train-config", "t", "--order", "o", "--tokenizer", "k", "--out", "g", "--group", "1",
        "--settings", settings_of_word(wa.decode_settings(c)),
    )  # fmt: skip
    d = cfg["decode"]
    assert (ns["batches_per_group"], ns["first_batch"], ns["last_batch"]) == (
        d["batches_per_group"],
        d.get("first_batch", 0),
        d["last_batch"],
    )
    cfg["data"]["download"] = {"root": "mirror", "num_shards": 4}
    c = resolve_config(cfg)
    ns = parse(
        "download",
        "--train-config",
        "t",
        "--shard",
        "3",
        "--settings",
        settings_of_word(wa.download_settings(c)),
    )
    assert (ns["root"], ns["num_shards"], ns["workers"], ns["shard"]) == ("mirror", 4, 4, 3)
    assert json.loads(shlex.split(wa.world_spec(c))[0]) == cfg["world"]


# -- the default target's lists -------------------------------------------------------------------


def test_targets_of_the_shipped_config():
    c, given = resolved(shipped())
    ev = layout.eval_targets(c, given)
    assert "results/eval/original/learned.json" in ev
    assert [t for t in ev if "learned_step" in t] == [
        f"results/eval/original/learned_step{s}.npz" for s in c["eval"]["target_steps"]
    ]
    groups = layout.decoded_groups(c)
    assert layout.doc_info_targets(c) == [f"results/data/doc_info/{g}.npy" for g in groups]
    m = layout.match_targets(c, given)
    assert m[: 2 * len(groups)] == [
        f"results/search/{k}/{g}" for k in ("term_doc", "pair_doc") for g in groups
    ]
    assert layout.intervention_targets(c, given) == [
        f"results/interventions/{n}/batches" for n in c["interventions"]
    ]
    assert layout.experiment_targets(c, given)[0] == "results/report/summary.md"
    assert layout.train_targets(c) == ["results/train/original/summary.json"] + (
        ["results/train/replay_check.json"] if c["train"]["replay_check"] else []
    )


def test_optional_stages_switch_on_by_their_sections_presence():
    raw = shipped()
    for absent in ("experiment", "match", "eval"):
        cfg = copy.deepcopy(raw)
        del cfg[absent]
        c, given = resolved(cfg)
        assert absent in c or absent == "match" or absent == "eval"  # experiment is filled in ...
        assert layout.experiment_targets(c, given) == []  # ... but was not asked for
    cfg = copy.deepcopy(raw)
    cfg["match"] = {}  # an empty section is no stage
    c, given = resolved(cfg)
    assert (
        "match" in c and layout.match_targets(c, given) == [] and layout.intervention_targets(c, given) == []
    )
    cfg = copy.deepcopy(raw)
    cfg["train"]["original"] = False
    c, given = resolved(cfg)
    assert layout.train_targets(c) == [] and layout.eval_targets(c, given) == []
    assert layout.terms_dir(resolve_config({k: v for k, v in raw.items() if k != "match"})) == (
        "results/world/search_terms"
    )
