"""``--settings JSON``: one argument carrying a config section stands for its flags; explicit flags
win, an unknown key or a value out of range is a one-line error naming the key."""

from __future__ import annotations

import json

import pytest

from intervene.cli import COMMANDS, build_parser
from intervene.settings import EvalConfig, resolve_config

EFFECT_FILES = [
    "--intervention-labels",
    "i.npz",
    "--control-labels",
    "c.npz",
    "--targets",
    "t.npz",
    "--out-json",
    "e.json",
]


def _parse(*argv: str):
    return vars(build_parser().parse_args(list(argv)))


def _error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(list(argv))
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _without_settings(ns: dict) -> dict:
    return {k: v for k, v in ns.items() if k not in ("settings", "func")}


def test_effect_settings_equal_their_flags_and_explicit_flags_win():
    section = {
        "name": "rm_occ_8",
        "strategy": "rm_occ",
        "swap_direction": True,
        "datasets": ["sciq", "openbookqa"],
        "bootstrap": {"samples": 300, "level": 0.9, "seed": 7},
    }
    by_settings = _parse("effect", "--settings", json.dumps(section), *EFFECT_FILES)
    by_flags = _parse(
        "effect",
        *("--name", "rm_occ_8", "--strategy", "rm_occ", "--swap-direction"),
        *("--datasets", "sciq,openbookqa", "--bootstrap", "300", "--level", "0.9", "--seed", "7"),
        *EFFECT_FILES,
    )
    assert _without_settings(by_settings) == _without_settings(by_flags)
    # an explicit flag overrides its key, before or after --settings
    over = _parse("effect", "--level", "0.8", "--settings", json.dumps(section), *EFFECT_FILES)
    assert over["level"] == 0.8 and over["samples"] == 300
    over = _parse("effect", f"--settings={json.dumps(section)}", "--name", "other", *EFFECT_FILES)
    assert over["name"] == "other" and over["strategy"] == "rm_occ"


def test_settings_refuse_unknown_keys_and_values_out_of_range(capsys):
    ok = {"name": "x", "strategy": "rm_occ"}
    err = _error(capsys, "effect", "--settings", json.dumps({**ok, "n_boot": 5}), *EFFECT_FILES)
    assert "--settings: n_boot: unknown key" in err
    err = _error(
        capsys, "effect", "--settings", json.dumps({**ok, "bootstrap": {"samples": 0}}), *EFFECT_FILES
    )
    assert "--settings: bootstrap.samples: 0 is not a positive integer" in err
    err = _error(
        capsys, "effect", "--settings", json.dumps({**ok, "bootstrap": {"level": 1.5}}), *EFFECT_FILES
    )
    assert "bootstrap.level" in err
    err = _error(capsys, "effect", "--settings", json.dumps({**ok, "swap_direction": "yes"}), *EFFECT_FILES)
    assert "swap_direction: 'yes' is not true or false" in err
    err = _error(capsys, "effect", "--settings", "[1, 2]", *EFFECT_FILES)
    assert "not a JSON object" in err
    err = _error(capsys, "effect", "--settings", "{bad", *EFFECT_FILES)
    assert "--settings: not JSON" in err
    err = _error(capsys, "effect", "--settings", "{}", "--settings", "{}", *EFFECT_FILES)
    assert "given 2 times" in err
    # a required setting still has to come from somewhere
    err = _error(capsys, "effect", "--settings", json.dumps({"name": "x"}), *EFFECT_FILES)
    assert "--strategy" in err


def test_the_whole_eval_section_stands_for_the_eval_flags():
    """A resolved ``eval`` section (with keys only other commands read: target_steps, steps ...)
    gives `intervene eval` the flags the rules used to write out."""
    config = {
        "data": {"train_config": "t.yaml", "tokenizer": "tok", "source": "local"},
        "train": {"backend": "builtin", "device": "cpu", "nproc": 1, "save_interval": 10, "original": True},
        "eval": {
            "tasks": ["pararel_p17", "sciq"],
            "sources": {"sciq": "data/sciq", "pararel": "data/pararel"},
            "row_tokens": 512,
            "target_steps": [10],
            "metric": {"sciq": "acc_raw"},
        },
    }
    section = resolve_config(config)["eval"]
    by_settings = _parse("eval", "--model", "m", "--settings", json.dumps(section), "--out", "o")
    by_flags = _parse(
        "eval",
        *("--model", "m", "--tasks", "pararel_p17,sciq", "--pararel", "data/pararel", "--sciq", "data/sciq"),
        *("--row-tokens", "512", "--device", "cpu", "--batch-tokens", "16384", "--out", "o"),
    )
    assert _without_settings(by_settings) == _without_settings(by_flags)
    labels = _parse("labels", "--evals", "0=a", "--settings", json.dumps(section), "--out", "l.npz")
    assert labels["tasks"] == "pararel_p17,sciq" and labels["metric"] == "sciq=acc_raw"
    # the default (the paper's metric per task) stays unset
    del section["metric"]
    assert (
        _parse("labels", "--evals", "0=a", "--settings", json.dumps(section), "--out", "l")["metric"] is None
    )
    assert EvalConfig.from_mapping(section, "eval").row_tokens == 512


def test_every_command_with_setting_flags_takes_settings():
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices).choices
    with_settings = [c.name for c in COMMANDS if any(a.setting for a in c.args)]
    assert len(with_settings) >= 15
    for c in COMMANDS:
        flags = {s for a in sub[c.name]._actions for s in a.option_strings}
        assert ("--settings" in flags) == (c.name in with_settings), c.name
