"""The settings classes are the one source of defaults: the JSON schema's defaults and keys, and the
CLI's flag defaults, must equal theirs; config sections are read strictly (unknown keys, values out
of range: one line naming the key)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from intervene.settings import (
    SECTIONS,
    BootstrapConfig,
    EvalConfig,
    InterventionConfig,
    Settings,
    SettingsError,
    default_of,
    resolve_config,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def _schema_sections():
    """(key path, schema object, settings class) for every config section the classes describe."""
    out = []

    def walk(path: str, node: dict, cls: type) -> None:
        out.append((path, node, cls))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for k, sub in node.get("properties", {}).items():
            f = fields.get(k)
            if f is not None and f.metadata.get("section") and sub.get("type") == "object":
                walk(f"{path}.{k}", sub, f.metadata["section"])

    for name, cls in SECTIONS.items():
        walk(name, SCHEMA["properties"][name], cls)
    walk(
        "interventions.NAME",
        SCHEMA["properties"]["interventions"]["additionalProperties"],
        InterventionConfig,
    )
    return out


SECTION_CASES = _schema_sections()


@pytest.mark.parametrize("path,node,cls", SECTION_CASES, ids=[c[0] for c in SECTION_CASES])
def test_schema_keys_and_defaults_equal_the_settings(path, node, cls):
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("cli_only")}
    props = node.get("properties", {})
    assert set(props) <= set(fields), f"{path}: schema keys without a settings field"
    if node.get("additionalProperties") is False:
        assert set(fields) <= set(props), f"{path}: settings fields the schema refuses"
    for k, spec in props.items():
        if "default" in spec:
            assert spec["default"] == default_of(fields[k]), f"{path}.{k}"
        if "enum" in spec and fields[k].metadata.get("choices"):
            assert set(spec["enum"]) <= set(fields[k].metadata["choices"]), f"{path}.{k}"
    required = {k for k, f in fields.items() if default_of(f) is dataclasses.MISSING}
    assert required <= set(node.get("required", [])), f"{path}: required here, optional in the schema"


def test_every_section_is_covered():
    covered = {c[0].split(".")[0] for c in SECTION_CASES}
    assert covered == set(SCHEMA["properties"]) - {"world"}  # world: intervene.world.spec.WorldSpec


def test_from_mapping_refuses_unknown_keys_and_bad_values():
    with pytest.raises(SettingsError, match=r"^eval\.row_tokenz: unknown key"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "row_tokenz": 10}, "eval")
    with pytest.raises(SettingsError, match=r"^eval\.row_tokens: 0 is not a positive integer"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "row_tokens": 0}, "eval")
    with pytest.raises(SettingsError, match=r"^eval\.row_tokens: 2048\.0 is not an integer"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "row_tokens": 2048.0}, "eval")
    with pytest.raises(SettingsError, match=r"^eval\.tasks: required"):
        EvalConfig.from_mapping({}, "eval")
    with pytest.raises(SettingsError, match=r"^eval\.olmes\.limitt: unknown key"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "olmes": {"limitt": 3}}, "eval")
    with pytest.raises(SettingsError, match=r"^experiment\.bootstrap\.level: 1\.0 is not strictly"):
        SECTIONS["experiment"].from_mapping({"bootstrap": {"level": 1.0}}, "experiment")
    with pytest.raises(SettingsError, match=r"^x\.swap_direction: 'yes' is not true or false"):
        InterventionConfig.from_mapping({"strategy": "rm_occ", "checkpoint": 4, "swap_direction": "yes"}, "x")
    with pytest.raises(SettingsError, match=r"^x\.strategy: 'rm' is not one of"):
        InterventionConfig.from_mapping({"strategy": "rm", "checkpoint": 4}, "x")
    # a CLI-only setting is no config key
    with pytest.raises(SettingsError, match=r"^match\.dense\.batch_tokens: unknown key"):
        SECTIONS["match"].from_mapping({"dense": {"batch_tokens": 4}}, "match")


def test_resolve_config_fills_defaults_and_keeps_what_is_set():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    r = resolve_config(config)
    assert r["eval"]["row_tokens"] == EvalConfig.row_tokens == 2048
    assert r["experiment"]["bootstrap"] == {
        **BootstrapConfig().to_dict(),
        **config["experiment"]["bootstrap"],
    }
    assert r["train"]["nodes"] == 1 and r["train"]["strategy"] == "ddp"
    assert r["train"]["replay_check"] == config["train"]["replay_check"]
    assert r["world"] == config["world"]  # WorldSpec's, untouched
    for name, v in config["interventions"].items():
        assert {k: r["interventions"][name][k] for k in v} == v
    add = r["interventions"]["add_coocc_200"]
    assert add["pair_by_new_first"] and add["skip_extra"]
    assert r["interventions"]["rm_coocc_200"]["pair_by_new_first"] is False
    assert r["interventions"]["bm25_200"]["query"] == config["interventions"]["bm25_200"].get(
        "query", "subject"
    )
    assert r["match"]["dense"]["compile"] is False and r["match"]["dense"]["question_model"] is None
    # optional sections stay absent: their presence switches stages on
    bare = {k: config[k] for k in ("data", "decode", "train")}
    assert set(resolve_config(bare)) == {"data", "decode", "train", "experiment"}
    assert resolve_config(bare)["train"]["released"] is None
    assert config == yaml.safe_load((ROOT / "config/config.yaml").read_text())  # not modified


@pytest.mark.parametrize("name", ["config.yaml", "olmo2-1b.yaml", "olmo2-7b.yaml"])
def test_shipped_configs_resolve(name):
    r = resolve_config(yaml.safe_load((ROOT / "config" / name).read_text()))
    assert r["decode"]["batches_per_group"] >= 1


def test_intervention_seeds_keep_their_two_defaults():
    """map-docs shuffles with 42, the swap breaks ties with 0 unless ``seed`` is set (then both)."""
    m = InterventionConfig(strategy="bm25_mapping", checkpoint=4)
    assert (m.map_settings.seed, m.swap_settings.seed) == (42, 0)
    m = dataclasses.replace(m, seed=7)
    assert (m.map_settings.seed, m.swap_settings.seed) == (7, 7)


def test_every_settings_class_has_documented_fields():
    import intervene.settings as s

    classes = [
        c for c in vars(s).values() if isinstance(c, type) and issubclass(c, Settings) and c is not Settings
    ]
    assert len(classes) >= 15
    for c in classes:
        for f in dataclasses.fields(c):
            assert f.metadata.get("help") or f.metadata.get("section"), f"{c.__name__}.{f.name}"


# -- the CLI is built from the settings


def _cli_args():
    from intervene.cli import COMMANDS

    return [(c.name, a) for c in COMMANDS for a in c.args]


def test_every_cli_default_is_its_settings_default():
    """A flag bound to a settings field has the field's default (and range check); a flag with a
    default that is no setting is one of the few listed here."""
    from intervene.cli import build_parser

    parser_defaults = {}
    for name, sub in next(
        a for a in build_parser()._actions if hasattr(a, "choices") and a.choices
    ).choices.items():
        for action in sub._actions:
            parser_defaults[name, action.option_strings[0] if action.option_strings else action.dest] = action
    bound = 0
    for name, a in _cli_args():
        action = parser_defaults[name, a.flags[0]]
        if a.setting is None:
            if action.default not in (None, False) and not action.required:
                assert (name, a.flags[0]) in {("check-config", "--root"), ("dense-window", "--kind")}, (
                    f"intervene {name} {a.flags[0]}: a default outside intervene.settings"
                )
            continue
        cls, field = a.setting
        f = {x.name: x for x in dataclasses.fields(cls)}[field]
        want = default_of(f)
        if action.required:
            assert want is dataclasses.MISSING or a.options.get("required"), (name, a.flags)
        else:
            assert action.default == (False if want is None and action.nargs == 0 else want), (name, a.flags)
        assert action.type is f.metadata.get("check"), (name, a.flags)
        bound += 1
    assert bound >= 50


def test_readme_holds_the_three_ways_table():
    """The README's "Using it three ways" table is rendered from intervene.cli.COMMANDS
    (``python -c 'from intervene.cli import COMMANDS; from intervene.cli_build import
    three_ways_table; print(three_ways_table(COMMANDS))'``)."""
    from intervene.cli import COMMANDS
    from intervene.cli_build import three_ways_table

    table = three_ways_table(COMMANDS)
    assert table.count("\n") >= 30
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Using it three ways", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert "\n".join(rows) + "\n" == table


def test_eval_metric_per_task_is_checked_by_key():
    from intervene.settings import EvalConfig, SettingsError

    assert EvalConfig.from_mapping({"tasks": ["sciq"], "metric": {"sciq": "acc_raw"}}, "eval").metric == {
        "sciq": "acc_raw"
    }
    assert EvalConfig.from_mapping({"tasks": ["sciq"]}, "eval").metric is None  # the paper's per task
    with pytest.raises(SettingsError, match=r"^eval\.metric\.hellaswag: unknown task key"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "metric": {"hellaswag": "acc_raw"}}, "eval")
    with pytest.raises(SettingsError, match=r"^eval\.metric\.sciq: 'acc' is not one of"):
        EvalConfig.from_mapping({"tasks": ["sciq"], "metric": "sciq=acc"}, "eval")


@pytest.mark.parametrize(
    "window, message",
    [
        ([-1, 5], "interventions.x.window[0]: -1 is not a non-negative integer"),
        ([3, "a"], "interventions.x.window[1]: 'a' is not an integer"),
    ],
)
def test_a_window_bound_is_range_checked_and_named(window, message):
    """A window [start, end) in the config goes through the same check as each of the flag's two
    values, and the error names the bound."""
    from intervene.settings import InterventionConfig, SettingsError

    with pytest.raises(SettingsError, match=re.escape(message)):
        InterventionConfig.from_mapping(
            {"strategy": "rm_coocc", "checkpoint": 200, "window": window}, "interventions.x"
        )
    ok = InterventionConfig.from_mapping(
        {"strategy": "rm_coocc", "checkpoint": 200, "window": [2, 9]}, "interventions.x"
    )
    assert ok.window == [2, 9]
