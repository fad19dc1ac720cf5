"""CLI validation: every numeric flag has a range-checked type (fuzzed: the parser accepts exactly
the valid values, else exits 2 naming the flag); the input files swap, select and the window
scorers read are checked key by key, row by row, with one line naming the file and the key."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intervene.cli import build_parser, main
from intervene.cli_types import (
    INT64_MAX,
    batch_range,
    finite_float,
    nonneg_float,
    nonneg_int,
    open_unit_float,
    positive_int,
)
from intervene.inputs import InputError
from intervene.swap import swap_window

NUMERIC = {positive_int, nonneg_int, nonneg_float, open_unit_float, finite_float}


PARSER = build_parser()  # built once: parsing does not change it


def subparsers() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_numeric_flag_is_range_checked():
    """No flag left with a bare int or float type (those accept -5, 0, nan)."""
    bare = [
        (name, a.option_strings)
        for name, s in subparsers().items()
        for a in s._actions
        if a.type in (int, float)
    ]
    assert bare == []
    numeric = [(n, a.dest) for n, s in subparsers().items() for a in s._actions if a.type in NUMERIC]
    assert len(numeric) >= 50  # the 31 stages' counts, steps, seeds, windows and tolerances


# -- fuzz: each numeric flag of each stage, through build_parser().parse_args

#: values a stage needs besides the flag under test, chosen so that the cross-flag checks hold for
#: every valid value of it, except where ``CROSS`` says otherwise
OVERRIDES = {
    "decode": {"--group": "1"},
    "download": {"--num-shards": str(INT64_MAX)},
    "select": {"--checkpoint": "720720", "--interval": "1"},
    "batch-list": {"--first": "0", "--last": str(INT64_MAX)},
    "bm25-window": {"--first": "0", "--last": str(INT64_MAX)},
    "dense-window": {"--first": "0", "--last": str(INT64_MAX)},
    "top-docs": {"--first": "0", "--last": str(INT64_MAX)},
}
#: the cross-flag rules (cli_types.CheckedParser.require) a value must also meet
CROSS = {
    ("download", "--shard"): lambda v: v < INT64_MAX,
    ("select", "--interval"): lambda v: 720720 % v == 0,
    ("batch-list", "--first"): lambda v: v < INT64_MAX,
    ("bm25-window", "--first"): lambda v: v < INT64_MAX,
    ("dense-window", "--first"): lambda v: v < INT64_MAX,
    ("top-docs", "--first"): lambda v: v < INT64_MAX,
}


def base_argv(name: str, s: argparse.ArgumentParser, skip: str) -> list[str]:
    """The stage's required arguments with plain valid values (``skip``: the flag under test)."""
    argv, over = [name], OVERRIDES.get(name, {})
    for a in s._actions:
        if not a.option_strings:
            if a.nargs in ("+", "*") and a.dest != "help":
                argv.append("x")  # positional files
            continue
        flag = a.option_strings[-1]
        if flag == skip or not (a.required or flag in over):
            continue
        if flag in over:
            value = [over[flag]]
        elif a.choices:
            value = [a.choices[0]]
        elif a.type in NUMERIC:
            value = ["1"]
        else:
            value = ["x"]
        n = a.nargs if isinstance(a.nargs, int) else 1
        argv += [flag, *(value * n if n == 1 else ["0", "1"])]
    return argv


def valid(kind, text: str) -> bool:
    """The stated rule of each type, from the text as given."""
    try:
        v = int(text) if kind in (positive_int, nonneg_int) else float(text)
    except ValueError:
        return False
    if kind is positive_int:
        return 1 <= v <= INT64_MAX
    if kind is nonneg_int:
        return 0 <= v <= INT64_MAX
    if not math.isfinite(v):
        return False
    if kind is finite_float:
        return True
    return v >= 0 if kind is nonneg_float else 0 < v < 1


FLAGS = sorted(
    (name, a.option_strings[-1], a.type)
    for name, s in subparsers().items()
    for a in s._actions
    if a.type in NUMERIC and a.nargs is None
)
texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(-3, 3).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "nan", "-inf", "1e3", " 5", "+7", "0x10", "1_000", "-0", "5.0", "0.5", str(INT64_MAX)]
    ),
    st.just(str(INT64_MAX + 1)),
)


@settings(max_examples=1500, deadline=None)
@given(case=st.sampled_from(FLAGS), text=texts)
def test_fuzz_numeric_flags(case, text):
    name, flag, kind = case
    parser = PARSER
    s = subparsers()[name]
    argv = [*base_argv(name, s, flag), f"{flag}={text}"]
    ok = valid(kind, text)
    if ok and (name, flag) in CROSS:
        ok = CROSS[(name, flag)](int(text) if kind in (positive_int, nonneg_int) else float(text))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = parser.parse_args(argv)
        except SystemExit as e:
            assert e.code == 2
            assert not ok, f"{argv}: refused a valid value: {err.getvalue()}"
            assert flag in err.getvalue(), err.getvalue()  # the message names the flag
            return
    assert ok, f"{argv}: accepted"
    dest = next(a.dest for a in s._actions if flag in a.option_strings)
    assert getattr(ns, dest) == kind(text)


@settings(max_examples=300, deadline=None)
@given(a=st.integers(-5, 50), b=st.integers(-5, 50), side=st.sampled_from(["target", "source"]))
def test_fuzz_map_docs_windows(a, b, side):
    other = "source" if side == "target" else "target"
    argv = ["map-docs", "--target-scores", "t", "--source-scores", "s", "--doc-info", "d/001.npy"]
    argv += [f"--{other}-window", "0", "1", f"--{side}-window", str(a), str(b)]
    argv += ["--group-dirs", "g/001", "--per-inst", "1", "--out", "o"]
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            ns = PARSER.parse_args(argv)
        except SystemExit as e:
            assert e.code == 2 and not (0 <= a < b)
            return
    assert 0 <= a < b and getattr(ns, f"{side}_window") == [a, b]


@given(a=st.integers(-5, 30), b=st.integers(-5, 30))
def test_batch_range(a, b):
    try:
        r = batch_range(f"{a}:{b}")
    except argparse.ArgumentTypeError:
        assert not (0 <= a < b)
    else:
        assert 0 <= a < b and r == range(a, b)


# -- the cases, end to end through main()


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def test_bm25_negative_k_exits_2(capsys):
    rc, err = run_main(
        ["bm25", "--group-dirs", "g", "--pararel", "p", "--relations", "p17", "--k", "-5", "--out", "o"],
        capsys,
    )
    assert rc == 2
    assert err.strip().splitlines()[-1] == (
        "intervene bm25: error: argument --k: -5 is not a non-negative integer (0 .. 2**63-1)"
    )


def test_select_checkpoint_not_a_multiple_exits_2(capsys):
    argv = ["select", "--strategy", "rm_occ", "--checkpoint", "290", "--interval", "40", "--learned", "l"]
    argv += ["--pair-doc", "s/pair_doc/001", "--term-doc", "s/term_doc/001", "--doc-info", "d/001.npy"]
    argv += ["--group-dirs", "g/001", "--terms-dir", "t", "--pararel", "p", "--relations", "p17"]
    argv += ["--out", "o"]
    rc, err = run_main(argv, capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == (
        "intervene select: error: --checkpoint must be a multiple of --interval (a checkpoint of the run),"
        " or give --window"
    )


@pytest.fixture()
def window(tmp_path):
    """One decoded group (4 batches of 2 sequences x 8 tokens, EOS = 0) and its doc info: three
    documents per batch, rows 3b .. 3b + 2 in batch b; the window [0, 2), the next [2, 4)."""
    root, info_dir = tmp_path / "batches", tmp_path / "doc_info"
    (root / "001").mkdir(parents=True)
    info_dir.mkdir()
    rows = []
    for b in range(4):
        batch = np.zeros((2, 8), dtype=np.uint32)
        batch[0, :3] = [10 * b + 1, 10 * b + 2, 10 * b + 3]
        batch[0, 4:8] = [10 * b + 5, 10 * b + 6, 10 * b + 7, 10 * b + 8]
        batch[1, :2] = [100 + b, 200 + b]
        np.save(root / "001" / f"{b}.npy", batch)
        rows += [[b, 0, 0, 2], [b, 0, 4, 7], [b, 1, 0, 1]]
    np.save(info_dir / "001.npy", np.array(rows))
    good = {
        "orig_idxs": np.array([0, 5]),
        "new_idxs": np.array([], dtype=np.int64),
        "extra_idxs": np.array([7, 8]),
        "orig_window": np.array([0, 2]),
        "new_window": np.array([2, 4]),
        "orig_groups": np.array(["001"]),
        "new_groups": np.array(["001"]),
    }
    return tmp_path, root, info_dir, good


def swap_with(window, **changes) -> str:
    tmp_path, root, info_dir, good = window
    arrays = {k: v for k, v in {**good, **changes}.items() if v is not None}
    np.savez(tmp_path / "idx.npz", **arrays)
    with pytest.raises(InputError) as e:
        swap_window(tmp_path / "idx.npz", [info_dir / "001.npy"], [root / "001"], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    return str(e.value).replace(str(tmp_path / "idx.npz"), "IDX")


def test_doc_indices_checked_row_by_row(window):
    tmp_path, root, info_dir, good = window
    np.savez(tmp_path / "idx.npz", **good)
    r = swap_window(tmp_path / "idx.npz", [info_dir / "001.npy"], [root / "001"], tmp_path / "out")
    assert r["pairs"] == 2
    # a negative row used to wrap around to the window's last documents
    assert swap_with(window, orig_idxs=np.array([0, -1])) == (
        "IDX: orig_idxs holds row -1, outside the 12 rows of orig_groups' doc info"
    )
    # a file lacking only new_idxs used to give a KeyError traceback
    assert swap_with(window, new_idxs=None) == (
        "IDX: lacks new_idxs (keys: extra_idxs, new_groups, new_window, orig_groups, orig_idxs, orig_window)"
    )
    # a row outside the window used to be skipped, then "No such file" on a temporary path
    assert swap_with(window, orig_idxs=np.array([0, 9])) == (
        "IDX: orig_idxs row 9 is a document of batch 3, outside orig_window [0, 2)"
    )
    assert swap_with(window, extra_idxs=np.array([1])) == (
        "IDX: extra_idxs row 1 is a document of batch 0, outside new_window [2, 4)"
    )
    assert swap_with(window, orig_idxs=np.array([0.0, 5.0])) == "IDX: orig_idxs holds float64 values, not int"
    assert swap_with(window, orig_idxs=np.array([5, 5])) == "IDX: orig_idxs lists row 5 more than once"
    assert swap_with(window, orig_groups=np.array(["002"])) == (
        "IDX: orig_groups ['002'] are not the groups of orig_window [0, 2) among the decoded groups given (['001'])"
    )
    assert swap_with(window, orig_window=np.array([2, 2])) == (
        "IDX: orig_window is [2, 2], not a window [first, last) of batches"
    )
    # a mapping (no extra_idxs) pairs one to one
    assert swap_with(window, extra_idxs=None, new_idxs=np.array([7])) == (
        "IDX: a mapping pairs orig_idxs (2) with new_idxs (1) one to one, and their lengths differ"
    )


def test_cli_reports_a_bad_input_file_in_one_line(window, caplog):
    tmp_path, root, info_dir, good = window
    np.savez(tmp_path / "idx.npz", **{k: v for k, v in good.items() if k != "new_idxs"})
    argv = ["swap", "--indices", str(tmp_path / "idx.npz"), "--doc-info", str(info_dir / "001.npy")]
    argv += ["--group-dirs", str(root / "001"), "--out-dir", str(tmp_path / "out")]
    with caplog.at_level(logging.ERROR, logger="intervene"):
        assert main(argv) == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'idx.npz'}: lacks new_idxs"
        " (keys: extra_idxs, new_groups, new_window, orig_groups, orig_idxs, orig_window)"
    ]


def test_select_refuses_a_checkpoint_that_was_not_evaluated(tmp_path):
    from intervene.select.stages import select_documents
    from intervene.settings import SelectConfig

    np.savez(
        tmp_path / "learned.npz",
        steps=np.array([0, 40, 80]),
        dataset_labels=np.array(["p17"] * 3),
        learned_index=np.array([0, 1, 2]),
        learned_step=np.array([0, 40, 80]),
    )
    kw = dict(pair_doc=["s"], term_doc=["t"], doc_info=["d/001.npy"], group_dirs=["g/001"])
    kw.update(terms_dir="t", pararel_root="p", relations=["p17"])
    with pytest.raises(
        ValueError,
        match=r"checkpoint 120 \(the next window's; checkpoint 80, window \[40, 80\), next window \[80, 120\)\) is not an evaluated step",
    ):
        select_documents(SelectConfig("rm_coocc", 80, interval=40), learned_npz=tmp_path / "learned.npz",
                         out=tmp_path / "o.npz", **kw)  # fmt: skip
    np.savez(tmp_path / "bad.npz", steps=np.array([0, 40]), dataset_labels=np.array(["p17"]))
    with pytest.raises(InputError, match=r"bad\.npz: lacks learned_step"):
        select_documents(SelectConfig("rm_occ", 40, interval=40), learned_npz=tmp_path / "bad.npz",
                         out=tmp_path / "o.npz", **kw)  # fmt: skip


def test_window_scorers_refuse_negative_target_rows(tmp_path):
    from intervene.cli import _target_rows

    np.savez(tmp_path / "t.npz", inst_idxs=np.array([3, -2]), dataset_labels=np.array(["p17", "p17"]))
    with pytest.raises(InputError, match=r"t\.npz: inst_idxs holds row -2, negative"):
        _target_rows(str(tmp_path / "t.npz"), None)
    np.savez(tmp_path / "u.npz", inst_idxs=np.array([3]))
    with pytest.raises(InputError, match=r"u\.npz: lacks dataset_labels"):
        _target_rows(str(tmp_path / "u.npz"), None)
