"""intervene.layout: batch groups, windows of interventions, re-run names, the relation list."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from intervene import layout as L

from .conftest import REPO


def cfg(per=10, first=0, last=40, K=10, **interventions) -> dict:
    return {
        "decode": {"batches_per_group": per, "first_batch": first, "last_batch": last},
        "train": {"save_interval": K, "original": True},
        "data": {"train_config": "results/world/train_config.yaml", "source": "local"},
        "interventions": interventions,
    }


def test_group_names_are_one_based_folders():
    assert [L.group_name(g) for g in (0, 1, 12, 998)] == ["001", "002", "013", "999"]
    assert L.group_name(1000) == "1001"  # past 999 the name grows (sorted by number, not by text)
    assert [L.group_index(n) for n in ("001", "013", 2)] == [0, 12, 1]
    with pytest.raises(ValueError, match="negative"):
        L.group_name(-1)
    with pytest.raises(ValueError, match="1-based"):
        L.group_index("000")


def test_group_of_a_batch_and_batches_of_a_group():
    assert [L.group_of(b, 10) for b in (0, 9, 10, 19, 20)] == [0, 0, 1, 1, 2]
    assert list(L.group_batches(1, 10)) == list(range(10, 20))
    assert list(L.group_batches(1, 10, first=15, last=18)) == [15, 16, 17]
    assert list(L.group_batches(0, 10, first=15)) == []  # clipped away entirely
    assert list(L.group_batches(2, 10, last=25)) == [20, 21, 22, 23, 24]  # last group partial


@pytest.mark.parametrize(
    "first, last, per, want",
    [
        (0, 10, 10, ["001"]),  # exactly one group
        (10, 20, 10, ["002"]),
        (5, 15, 10, ["001", "002"]),  # crosses a group boundary
        (9, 21, 10, ["001", "002", "003"]),  # spans three groups
        (19, 20, 10, ["002"]),  # last batch of a group
        (20, 21, 10, ["003"]),  # first batch of a group
        (7, 7, 10, []),  # empty window
        (0, 3, 1, ["001", "002", "003"]),  # one batch per group
    ],
)
def test_window_groups(first, last, per, want):
    assert L.window_group_names(first, last, per) == want
    # agrees with the batches each group holds
    held = [g for g in range(0, 10) if set(L.group_batches(g, per)) & set(range(first, last))]
    assert [L.group_name(g) for g in held] == want


def test_batch_and_doc_info_files():
    assert L.batch_file("r/batches", 25, 12) == Path("r/batches/003/25.npy")
    assert L.batch_files("b", 9, 12, 10) == [Path("b/001/9.npy"), Path("b/002/10.npy"), Path("b/002/11.npy")]
    assert L.doc_info_file("r/doc_info", "002") == Path("r/doc_info/002.npy")
    assert L.term_file("t", "p17") == Path("t/pararel_patterns_p17_train.txt")


def test_decoded_groups_with_a_partial_last_group():
    c = cfg(per=12, first=0, last=30)
    assert L.decoded_groups(c) == ["001", "002", "003"]
    assert [L.decoded_batch_count(c, g) for g in ("001", "002", "003")] == [12, 12, 6]
    c = cfg(per=10, first=15, last=31)
    assert L.decoded_groups(c) == ["002", "003", "004"]
    assert [L.decoded_batch_count(c, g) for g in ("001", "002", "003", "004")] == [0, 5, 10, 1]


def test_windows_of_an_intervention():
    assert L.target_window(200, 40) == (160, 200)
    assert L.next_window(200, 40) == (200, 240)
    for s in ("rm_coocc", "add_coocc", "bm25_mapping"):
        assert L.following_window(s, 200, 40) == (200, 240)
        assert L.following_window(s, 200, 40, last_batch=400) == (200, 240)
    assert L.following_window("rm_occ", 200, 40) == (200, 280)  # two windows ahead
    assert L.following_window("rm_occ", 200, 40, last_batch=260) == (200, 260)  # clipped to the decoded
    assert L.selection_span("rm_occ", 200, 40, 400) == (160, 280)
    assert L.selection_span("rm_coocc", 200, 40, 400) == (160, 240)


def test_intervention_groups_cross_group_boundaries():
    c = cfg(
        per=12,
        last=30,
        K=10,
        a={"strategy": "rm_coocc", "checkpoint": 20},  # [10, 30): groups 001 (10, 11), 002, 003
        b={"strategy": "rm_occ", "checkpoint": 20},  # [10, 40) clipped to 30: the same groups
        m={"strategy": "bm25_mapping", "checkpoint": 10},  # target [0, 10), source [10, 20)
    )
    assert L.intervention_groups(c, "a") == ["001", "002", "003"]
    assert L.intervention_groups(c, "b") == ["001", "002", "003"]
    assert L.mapping_window(c, "m", "target") == (0, 10)
    assert L.mapping_window(c, "m", "source") == (10, 20)
    assert L.side_groups(c, "m", ["target"]) == ["001"]
    assert L.side_groups(c, "m", ["source"]) == ["001", "002"]
    assert L.side_groups(c, "m", ["target", "source"]) == ["001", "002"]  # each group once
    with pytest.raises(ValueError, match="side"):
        L.mapping_window(c, "m", "other")
    assert L.strategy_names(c, L.SELECTION_STRATEGIES) == ["a", "b"]
    assert L.strategy_names(c, ["bm25_mapping"]) == ["m"]


def test_control_run_names():
    c = cfg(x={"strategy": "rm_coocc", "checkpoint": 20})
    assert L.control_name(10, 20) == "control_10_20"
    assert L.parse_control("control_10_20") == (10, 20)
    for other in ("x", "control_10", "control_a_b", "control_10_20_x", "my_control_10_20"):
        assert L.parse_control(other) is None
    assert L.control_of(c, "x") == "control_10_20"
    assert L.rerun_window(c, "x") == (10, 20)
    assert L.rerun_window(c, "control_30_40") == (30, 40)
    with pytest.raises(ValueError, match="neither an intervention nor control_FIRST_LAST"):
        L.rerun_window(c, "y")
    import re

    pat = re.compile(L.rerun_name_pattern(cfg(**{"a.b": {"strategy": "rm_occ", "checkpoint": 10}})))
    assert pat.fullmatch("a.b") and pat.fullmatch("control_0_10")
    assert not pat.fullmatch("axb") and not pat.fullmatch("control_x_10")


def test_pararel_relations_of_the_tasks():
    assert L.pararel_relations(["pararel", "sciq"]) == list(L.PARAREL_RELATIONS)
    assert L.pararel_relations(["pararel_p36", "sciq", "pararel_p17"]) == ["p36", "p17"]
    assert L.pararel_relations(["sciq", "mmlu"]) == []


def test_relation_list_has_one_source():
    """The toy world's relations, the evaluation's and the schema's enum are the layout's list."""
    from intervene.evaluation.tasks import PARAREL_RELATIONS as eval_rels
    from intervene.world.relations import RELATION_IDS

    assert len(L.PARAREL_RELATIONS) == 12 == len(set(L.PARAREL_RELATIONS))
    assert eval_rels is L.PARAREL_RELATIONS
    assert RELATION_IDS == L.PARAREL_RELATIONS
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    enum = schema["properties"]["world"]["properties"]["relations"]["items"]["enum"]
    assert tuple(enum) == L.PARAREL_RELATIONS


def test_config_readings():
    c = cfg(K=10)
    assert L.uses_world(c) and L.train_config_path(c) == "results/world/train_config.yaml"
    url = {**c, "data": {"train_config": "config/x.yaml", "source": "url"}}
    assert not L.uses_world(url) and L.train_config_path(url) == L.LOCAL_TRAIN_CONFIG
    assert L.original_steps({**c, "world": {"num_steps": 30}}) == [0, 10, 20, 30]
    assert L.original_steps({**c, "train": {**c["train"], "stop_at": 25}}) == [0, 10, 20]
    assert L.original_steps({**c, "eval": {"steps": [5, 7]}}) == [5, 7]
    assert L.original_steps(c) == list(range(0, 401, 10))  # the toy world's default num_steps
    assert L.eval_model(c, 20) == "results/train/original/step20"
    assert L.data_shape({**c, "world": {"global_batch_size": 4, "seq_len": 64}}) == (4, 64)


def test_released_eval_model_reads_the_train_config():
    c = {
        "train": {"original": False, "released": {"hub_model": "allenai/OLMo-2-0425-1B"}},
        "data": {"train_config": str(REPO / "config" / "olmo2-1b" / "train_config.yaml"), "source": "url"},
    }
    # OLMo 2 1B: 512 x 4096 tokens per step; step 1000 -> 2.097e9 tokens -> 3B (rounded up)
    assert L.eval_model(c, 1000) == "allenai/OLMo-2-0425-1B --revision stage1-step1000-tokens3B"
    assert L.data_shape(c) == (512, 4096)


def test_batch_files_from_group_folders_equal_the_root_and_grouping(tmp_path):
    """A stage given the group folders (its inputs) finds the same files as one given the root and
    batches_per_group, across group boundaries and a partial last group; missing batches refused."""
    from intervene.train.replay import decoded_batch_files, group_batch_files

    per, last = 4, 10  # groups 001 (0-3), 002 (4-7), 003 (8-9: partial)
    for b in range(last):
        d = tmp_path / L.group_name(L.group_of(b, per))
        d.mkdir(exist_ok=True)
        (d / f"{b}.npy").write_bytes(b"")
        (d / f"{b}.json.gz").write_bytes(b"")
    dirs = [tmp_path / g for g in ("001", "002", "003")]
    for first, end in ((0, 10), (3, 9), (4, 8), (9, 10)):
        assert group_batch_files(dirs, first, end) == decoded_batch_files(tmp_path, first, end, per)
        groups = L.window_group_names(first, end, per)
        assert group_batch_files([tmp_path / g for g in groups], first, end) == L.batch_files(
            tmp_path, first, end, per
        )
    with pytest.raises(FileNotFoundError, match=r"decoded batch 4\.npy missing \(4 of the 5"):
        group_batch_files(dirs[:1], 3, 8)
    with pytest.raises(FileNotFoundError, match="group folder not found"):
        group_batch_files([tmp_path / "004"], 12, 13)


def test_explicit_windows_and_checkpoints():
    """window / start_checkpoint / eval_checkpoint / extras_window (the paper's 7B: [2000, 2150),
    from 2000, evaluated at 2150, extras [2150, 3000)); absent keys give today's K-step windows."""
    c = {
        "train": {"save_interval": 1000},
        "decode": {"batches_per_group": 1000, "last_batch": 5000},
        "interventions": {
            "p": {
                "strategy": "rm_coocc",
                "checkpoint": 2150,
                "window": [2000, 2150],
                "extras_window": [2150, 3000],
            },
            "o": {"strategy": "rm_occ", "checkpoint": 3000},
            "m": {"strategy": "bm25_mapping", "checkpoint": 3000, "source_window": "previous"},
            "q": {
                "strategy": "rm_coocc",
                "checkpoint": 3000,
                "start_checkpoint": 1000,
                "eval_checkpoint": 4000,
            },
        },
    }
    assert L.intervention_window(c, "p") == (2000, 2150)
    assert L.extras_window(c, "p") == L.mapping_window(c, "p", "source") == (2150, 3000)
    assert L.next_checkpoint_window(c, "p") == (2150, 3000)
    assert L.rerun_window(c, "p") == (2000, 2150) and L.control_of(c, "p") == "control_2000_2150"
    assert L.intervention_groups(c, "p") == ["003"]
    # defaults: window(c), rm_occ's two following windows, J at c + K
    assert L.intervention_window(c, "o") == (2000, 3000) and L.extras_window(c, "o") == (3000, 5000)
    assert L.next_checkpoint_window(c, "o") == (3000, 4000)
    assert L.intervention_groups(c, "o") == ["003", "004", "005"]
    # a mapping's source before its target: groups still in batch order
    assert L.mapping_window(c, "m", "source") == (1000, 2000)
    assert L.side_groups(c, "m", ["target", "source"]) == ["002", "003"]
    # re-runs from an earlier checkpoint, evaluated later: unmodified batches around the window
    assert L.rerun_window(c, "q") == (1000, 4000) and L.control_of(c, "q") == "control_1000_4000"
    assert L.rerun_padding(c, "q") == ((1000, 2000), (3000, 4000))
    assert L.padded_names(c) == ["q"]
    assert L.adjacent_window((2000, 2150), "previous") == (1850, 2000)
    with pytest.raises(ValueError):
        L.adjacent_window((0, 1), "later")
