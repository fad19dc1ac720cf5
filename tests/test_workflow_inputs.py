"""The rules' input and param functions (intervene.workflow_inputs.Inputs): the files a job waits for
and the words of its command, as pure functions of a resolved config and the wildcards, on the toy
config and the full-scale ones. References are written out from the config's numbers (batch b is in
group b // batches_per_group + 1), not taken from the layout functions the code calls."""

from __future__ import annotations

import copy
import json
import shlex
from types import SimpleNamespace

import pytest
import yaml
from snakemake.common import get_input_function_aux_params

from intervene import layout
from intervene.settings import resolve_config
from intervene.workflow_inputs import Inputs, group_files

from .conftest import REPO


def shipped(name: str = "config.yaml") -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def inputs(raw: dict) -> Inputs:
    raw = copy.deepcopy(raw)
    return Inputs(resolve_config(raw), layout.given_sections(raw), node_script="wf/torchrun_node.sh")


class Files(list):
    """A rule's input or output as Snakemake passes it: a list whose named entries are attributes."""

    def __init__(self, items=(), **named):
        super().__init__([*items, *named.values()])
        self.__dict__.update(named)


def wc(**kw) -> SimpleNamespace:
    return SimpleNamespace(**kw)


def groups(first: int, last: int, per_group: int) -> list[str]:
    """The group folders holding batches [first, last) (reference arithmetic)."""
    return [f"{g:03d}" for g in range(first // per_group + 1, (last - 1) // per_group + 2)]


@pytest.fixture(scope="module")
def toy() -> Inputs:
    return inputs(shipped())


def test_snakemake_passes_a_bound_method_its_arguments_by_name(toy):
    # Snakemake reads a function's signature to choose what to pass (wildcards first, then
    # input/output/attempt by name): a bound method's signature has no `self`
    cands = {"input": 1, "output": 2, "threads": 3, "attempt": 4}
    assert get_input_function_aux_params(toy.tokenizer, cands) == {"input": 1}
    assert get_input_function_aux_params(toy.padding_lists, cands) == {"input": 1, "output": 2}
    assert get_input_function_aux_params(toy.fitted("search", "mem_mb"), cands) == {"attempt": 4}
    assert get_input_function_aux_params(toy.select_inputs, cands) == {}
    assert get_input_function_aux_params(Inputs.output_dir, cands) == {"output": 2}


def test_select_inputs_span_the_window_and_the_following_ones(toy):
    # toy: K = 40, 100 batches per group; c = 200: window [160, 200), following [200, 280)
    for name, terms in (("rm_coocc_200", False), ("rm_occ_200", True), ("add_coocc_200", False)):
        got = toy.select_inputs(wc(name=name))
        span = groups(160, 280 if name == "rm_occ_200" else 240, 100)
        assert got["batches"] == [f"results/data/batches/{g}" for g in span]
        assert got["doc_info"] == [f"results/data/doc_info/{g}.npy" for g in span]
        assert got["pair_doc"] == [f"results/search/pair_doc/{g}" for g in groups(160, 240, 100)]
        assert got["term_doc"] == ([f"results/search/term_doc/{g}" for g in span] if terms else [])
    s = json.loads(shlex.split(toy.select_settings(wc(name="rm_occ_200")))[0])
    assert s == {"strategy": "rm_occ", "checkpoint": 200, "n_drop": 5, "interval": 40, "last_batch": 400}


def test_mapping_sides_windows_and_flags(toy):
    assert toy.side_inputs(wc(name="bm25_200", side="target"))["batches"] == ["results/data/batches/002"]
    assert toy.side_inputs(wc(name="bm25_200", side="source"))["doc_info"] == [
        "results/data/doc_info/003.npy"
    ]
    assert "docs" not in toy.side_inputs(wc(name="bm25_200", side="target"))
    assert toy.window_flags(wc(name="bm25_200", side="source")) == "--first 200 --last 240"
    assert toy.mapping_window("target")(wc(name="bm25_200")) == "160 200"
    assert toy.window_query(wc(name="bm25_200")) == "subject"
    assert toy.datasets_flag(wc(name="bm25_200")) == ""
    assert toy.learned_targets(wc(name="bm25_200")) == "results/eval/original/learned_step200.npz"
    # a default mapping: no co-occurrence inputs, no extra words
    assert set(toy.mapping_inputs(wc(name="bm25_200"))) == {"batches", "doc_info"}
    assert toy.mapping_count_flags(wc(name="bm25_200"), Files()) == ""
    s = json.loads(shlex.split(toy.intervention_settings("map_settings")(wc(name="bm25_200")))[0])
    assert s["per_inst"] == 10


def test_mapping_from_a_selection_with_cooccurrence_counts():
    raw = shipped()
    raw["interventions"]["bm25_200"].update(
        target_selection="rm_coocc_200", doc_counts="cooccurrence", source_window="previous"
    )
    w = inputs(raw)
    sel = "results/interventions/rm_coocc_200/doc_idxs.npz"
    assert w.learned_targets(wc(name="bm25_200")) == sel
    assert w.window_flags(wc(name="bm25_200", side="source")) == "--first 120 --last 160"
    got = w.mapping_inputs(wc(name="bm25_200"))
    assert got["pair_doc"] == ["results/search/pair_doc/002"] and got["instances"] == sel
    assert got["learned"] == "results/eval/original/learned.npz"
    flags = w.mapping_count_flags(wc(name="bm25_200"), Files(**got))
    assert flags.startswith(f" --instances {sel} ") and "--pair-doc results/search/pair_doc/002 " in flags
    assert flags.endswith("--relations " + ",".join(layout.pararel_relations(raw["eval"]["tasks"])))
    # the effect reads the selection's instances too; the swap reads the mapping
    assert w.effect_targets(wc(name="bm25_200")) == sel
    assert w.indices(wc(name="bm25_200")) == "results/interventions/bm25_200/mapping.npz"
    assert w.indices(wc(name="rm_occ_200")) == "results/interventions/rm_occ_200/doc_idxs.npz"


def test_padded_rerun_lists_the_batches_around_its_window():
    raw = shipped()
    raw["interventions"]["pad"] = {
        "strategy": "rm_coocc",
        "checkpoint": 200,
        "window": [160, 180],
        "start_checkpoint": 120,
        "eval_checkpoint": 240,
    }
    w = inputs(raw)
    assert w.padded_names == "pad" and "pad" not in w.unpadded_names.split("|")
    before = w.padding_groups("before")(wc(name="pad"))
    after = w.padding_groups("after")(wc(name="pad"))
    assert before == ["results/data/batches/002"]  # [120, 160)
    assert after == ["results/data/batches/002", "results/data/batches/003"]  # [180, 240)
    out = Files(["results/reruns/pad/data_list.txt"])
    lists = w.padding_lists(wc(name="pad"), Files(before=before, after=after), out)
    assert lists == (
        "intervene batch-list --group-dirs results/data/batches/002 --first 120 --last 160"
        " --out results/reruns/pad/data_list.txt.before &&"
        " intervene batch-list --group-dirs results/data/batches/002 results/data/batches/003"
        " --first 180 --last 240 --out results/reruns/pad/data_list.txt.after &&"
    )
    assert w.padding_parts(wc(name="pad"), out) == f"{out[0]}.before - {out[0]}.after"
    assert w.rerun_steps(wc(run="pad")) == 120
    # an unpadded intervention: nothing around it
    assert w.padding_lists(wc(name="rm_occ_200"), Files(before=[], after=[]), out) == ""
    assert w.padding_parts(wc(name="rm_occ_200"), out) == "-"


def test_reruns_controls_and_evaluations_on_the_toy_config(toy):
    assert toy.rerun_names.split("|")[:4] == ["rm_coocc_200", "rm_occ_200", "add_coocc_200", "bm25_200"]
    assert toy.control_groups(wc(first="160", last="200")) == ["results/data/batches/002"]
    assert toy.control_groups(wc(first="180", last="240")) == [
        "results/data/batches/002",
        "results/data/batches/003",
    ]
    assert toy.rerun_start(wc(run="rm_occ_200")) == "results/train/original/summary.json"
    assert toy.rerun_steps(wc(run="control_160_200")) == 40
    assert toy.rerun_evals(wc(run="bm25_200")) == [f"results/eval/reruns/bm25_200/run{r}" for r in (1, 2, 3)]
    model = toy.rerun_model(
        wc(run="control_160_200"), Files(["results/reruns/control_160_200/run2/summary.json"])
    )
    assert model == "results/reruns/control_160_200/run2/step200"
    assert toy.rerun_trained(wc(run="bm25_200", r="1")) == "results/reruns/bm25_200/run1/summary.json"
    assert toy.control_labels(wc(name="add_coocc_200")) == "results/eval/reruns/control_160_200/labels.npz"
    assert toy.original_run(wc(step="40")) == {"original": "results/train/original/summary.json"}
    assert toy.replay_report() == ["results/train/replay_check.json"]
    assert toy.replay_inputs() == ["results/data/batches/001"]  # steps 40..80 of the replay check
    assert not toy.protects_original()
    assert toy.data_inputs() == ["results/world/data"] and toy.tokenizer_input() == [
        "results/world/tokenizer"
    ]
    assert toy.tokenizer(wc(), Files(tokenizer="results/world/tokenizer")) == "results/world/tokenizer"
    assert toy.names_of("bm25_mapping") == "bm25_200" and toy.names_of("dense_mapping", none="x") == "x"


def test_resources_grow_with_the_batches_a_job_reads(toy):
    assert toy.job_batches("memmap", wc(name="rm_occ_200")) == 40
    assert toy.job_groups("search", wc(group="003")) == ["003"]
    assert toy.job_groups("bm25_window", wc(name="bm25_200", side="source")) == ["003"]
    assert toy.job_groups("mapping", wc(name="bm25_200")) == ["002", "003"]
    assert toy.job_groups("select", wc(name="rm_occ_200")) == ["002", "003"]
    one, two = (toy.job_batches("select", wc(name=n)) for n in ("rm_coocc_200", "rm_occ_200"))
    assert one == two == 200  # both groups fully decoded (0..400)
    assert toy.attempt_times(240)(wc(), attempt=3) == 720


def test_full_scale_configs_read_released_checkpoints():
    w = inputs(shipped("olmo2-7b.yaml"))
    # the 7B re-runs start from the released step 2000 (imported), 150 steps to step 2150
    assert w.rerun_start(wc(run="rm_coocc_2150")) == layout.original_checkpoint(2000)
    assert w.rerun_steps(wc(run="rm_coocc_2150")) == 150
    assert w.original_run(wc(step="2000")) == {}
    assert w.protects_original()
    assert w.data_inputs() == [] and w.replay_inputs() == [] and w.replay_report() == []
    assert w.checkpoint_url(wc(step="2000")) == w.released["checkpoint_url"].format(step="2000")
    one = inputs(shipped("olmo2-1b.yaml"))
    per_group = one.config["decode"]["batches_per_group"]
    for name, v in one.interventions.items():
        c, k = v["checkpoint"], one.config["train"]["save_interval"]
        if v["strategy"] in layout.SELECTION_STRATEGIES:
            pair = [f"results/search/pair_doc/{g}" for g in groups(c - k, c + k, per_group)]
            assert one.select_inputs(wc(name=name))["pair_doc"] == pair, name
        else:
            side = one.side_inputs(wc(name=name, side="target"))
            assert side["batches"] == [f"results/data/batches/{g}" for g in groups(c - k, c, per_group)]
            assert ("docs" in side) == (v["strategy"] == "dense_mapping")
    # the multi-node launcher and its resources
    assert "torchrun_node.sh" in one.train_launcher and one.train_resources["nodes"] == 2


def test_the_olmo_backend_reads_the_forks_runs():
    raw = shipped()
    raw["train"]["backend"] = "olmo"
    raw["train"]["olmo"] = {"repo": "fork", "tokenizer_json": "d.json", "checkpoints": "ck/step{step} x"}
    w = inputs(raw)
    assert w.olmo_backend and w.rerun_trained(wc(run="bm25_200", r="2")) == "results/olmo/bm25_200/run2/hf"
    assert (
        w.rerun_model(wc(run="bm25_200"), Files(["results/olmo/bm25_200/run2/hf"]))
        == "results/olmo/bm25_200/run2/hf"
    )
    assert w.olmo_start(wc(run="bm25_200")) == []
    assert w.olmo_load_path(wc(run="bm25_200"), Files(start=[])) == "'ck/step160 x'"
    assert w.olmo_memmap(wc(run="bm25_200")) == "results/interventions/bm25_200/memmap"
    assert w.olmo_memmap(wc(run="control_160_200")) == "results/olmo/control_160_200/memmap"
    assert w.olmo_max_duration_flag() == "" and w.olmo_base_config() == raw["data"]["train_config"]
    del raw["train"]["olmo"]["checkpoints"]
    raw["train"]["olmo"]["max_duration"] = "4e12T"
    w = inputs(raw)
    # the original run is trained here: the fork starts from its checkpoint exported to OLMo's format
    assert w.olmo_start(wc(run="control_160_200")) == ["results/olmo/checkpoints/step160-unsharded"]
    assert w.olmo_load_path(wc(run="x"), Files(start=["results/olmo/checkpoints/step160-unsharded"])) == (
        "results/olmo/checkpoints/step160-unsharded"
    )
    assert w.olmo_max_duration_flag() == "--max-duration 4e12T"


def test_helpers():
    assert group_files("a/{group}.npy", ["001", "003"]) == ["a/001.npy", "a/003.npy"]
    assert Inputs.inspect_steps(wc(steps="3-4")) == "--step 3 --to-step 4"
    assert Inputs.inspect_steps(wc(steps="200")) == "--step 200 --to-step 200"
    assert Inputs.group_number(wc(group="007")) == 7
    assert Inputs.replay_flag(wc(), Files(replay=["r.json"])) == "--replay r.json"
    assert Inputs.replay_flag(wc(), Files(replay=[])) == ""
    assert Inputs.terms_dir_of(wc(), Files(terms=["t/pararel_patterns_p17_train.txt"])) == "t"
