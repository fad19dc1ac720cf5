"""Swap: pairing rules against brute force, replacement invariants (hypothesis), a window end to end."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from intervene.swap import apply_replacements, pair_new_first, pair_orig_first, swap_window

sizes_st = st.lists(st.integers(1, 12), max_size=15)


@settings(max_examples=200, deadline=None)
@given(orig=sizes_st, new=sizes_st, extra=sizes_st, skip=st.booleans())
def test_orig_first_pairs_smallest_fitting_without_reuse(orig, new, extra, skip):
    o, n, x = np.array(orig, int), np.array(new, int), np.array(extra, int)
    pairs, left = pair_orig_first(o, n, x, seed=None, skip_extra=skip)
    used = [(k, j) for _, k, j in pairs]
    assert len(used) == len(set(used))  # no replacement used twice
    assert sorted([p[0] for p in pairs] + left) == list(range(len(o)))  # every original accounted for
    for oi, k, j in pairs:
        assert (n if k == "new" else x)[j] >= o[oi]
    if skip:
        assert all(k == "new" for _, k, _ in pairs)
    # brute force: originals ascending (stable), each takes the smallest unused new >= it (two-pointer)
    ref_new, free, pos = [], sorted(range(len(n)), key=lambda j: (n[j], j)), 0
    for oi in sorted(range(len(o)), key=lambda i: (o[i], i)):
        while pos < len(free) and n[free[pos]] < o[oi]:
            pos += 1
        if pos < len(free):
            ref_new.append((oi, free[pos]))
            pos += 1
    assert [(a, j) for a, k, j in pairs if k == "new"] == ref_new


@settings(max_examples=200, deadline=None)
@given(orig=sizes_st, new=sizes_st)
def test_new_first_replaces_largest_fitting(orig, new):
    o, n = np.array(orig, int), np.array(new, int)
    pairs = pair_new_first(o, n, seed=None)
    assert len({p[0] for p in pairs}) == len(pairs) and len({p[2] for p in pairs}) == len(pairs)
    for oi, _, j in pairs:
        assert o[oi] <= n[j]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_replacements_keep_untouched_tokens_in_order(data):
    L = data.draw(st.integers(4, 24))
    row = np.arange(1000, 1000 + L, dtype=np.uint32)  # distinct tokens: positions are traceable
    # non-overlapping spans in one sequence
    cuts = sorted(data.draw(st.sets(st.integers(0, L - 1), max_size=6)))
    spans = [(cuts[i], cuts[i + 1] - 1) for i in range(0, len(cuts) - 1, 2) if cuts[i] <= cuts[i + 1] - 1]
    reps = []
    for s, e in spans:
        n_new = data.draw(st.integers(0, 2 * (e - s + 1)))
        reps.append((0, s, e, np.full(n_new, 7, dtype=np.uint32)))
    out, stats = apply_replacements(row[None, :], reps)
    assert out.shape == (1, L)
    applied = [(s, e, t) for _, s, e, t in reps if len(t) >= e - s + 1]
    expect, cur = [], 0
    for s, e, t in applied:
        expect += row[cur:s].tolist() + t.tolist()
        cur = e + 1
    expect += row[cur:].tolist()
    assert out[0].tolist() == expect[:L]
    assert stats["truncated"] == max(0, len(expect) - L)
    assert stats["skipped"] == len(reps) - len(applied)
    # tokens before the first replacement are untouched
    if applied:
        assert out[0, : applied[0][0]].tolist() == row[: applied[0][0]].tolist()


def test_swap_window_writes_every_batch_and_audits(tmp_path):
    # one group (4 batches of 2 sequences x 8 tokens); window [0, 2), next window [2, 4); EOS = 0
    L = 8
    root, info_dir = tmp_path / "batches", tmp_path / "doc_info"
    (root / "001").mkdir(parents=True)
    info_dir.mkdir()
    rows = []
    for b in range(4):
        batch = np.zeros((2, L), dtype=np.uint32)
        batch[0, :3] = [10 * b + 1, 10 * b + 2, 10 * b + 3]  # doc (b, 0, 0, 2), then EOS
        batch[0, 4:8] = [10 * b + 5, 10 * b + 6, 10 * b + 7, 10 * b + 8]  # doc (b, 0, 4, 7)
        batch[1, :2] = [100 + b, 200 + b]  # doc (b, 1, 0, 1)
        np.save(root / "001" / f"{b}.npy", batch)
        rows += [[b, 0, 0, 2], [b, 0, 4, 7], [b, 1, 0, 1]]
    np.save(info_dir / "001.npy", np.array(rows))
    # remove docs 0 (size 3) and 5 (size 2) of the window; replacements from the next window
    np.savez(
        tmp_path / "idx.npz",
        orig_idxs=np.array([0, 5]),
        new_idxs=np.array([], dtype=np.int64),
        extra_idxs=np.array([7, 8]),  # (2, 0, 4, 7) size 4 and (2, 1, 0, 1) size 2
        orig_window=np.array([0, 2]),
        orig_groups=np.array(["001"]),
        new_groups=np.array(["001"]),
    )
    r = swap_window(tmp_path / "idx.npz", [info_dir / "001.npy"], [root / "001"], tmp_path / "out", seed=0)
    assert r["pairs"] == 2 and r["replaced"] == 2 and r["truncated"] == 1
    b0, b1 = np.load(tmp_path / "out" / "0.npy"), np.load(tmp_path / "out" / "1.npy")
    # doc 0 (size 3) took the size-4 extra: everything after it shifted right by one, the last token fell off
    assert b0[0].tolist() == [25, 26, 27, 28, 0, 5, 6, 7]
    assert b0[1].tolist() == np.load(root / "001" / "0.npy")[1].tolist()  # untouched sequence
    # doc 5 = (1, 1, 0, 1) size 2 took the size-2 extra (2, 1, 0, 1)
    assert b1[1].tolist()[:2] == [102, 202]
    assert (tmp_path / "out" / "data_list.txt").read_text().split() == ["0.npy", "1.npy"]
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["pairs_orig_new_rows"] == [[0, 7], [5, 8]]


def test_placed_starts_follow_the_shifts_and_find_pushed_out_inserts():
    """A long replacement early in a sequence pushes a later one out whole (found at scale: a
    3,934-token document replaced by a 4,096-token one left no room for the sequence's last
    replacement); placed_starts says where each lands, as apply_replacements writes it."""
    from intervene.swap import apply_replacements, placed_starts

    L = 12
    row = np.arange(100, 100 + L, dtype=np.uint32)[None, :]
    reps = [
        (0, 8, 10, np.full(3, 7, np.uint32)),
        (0, 0, 4, np.full(9, 5, np.uint32)),
    ]  # input order: later first
    items = [(start, end, len(toks)) for _, start, end, toks in reps]
    assert placed_starts(items) == [12, 0]  # 8 + shift 4: at L, pushed out
    out, stats = apply_replacements(row, reps)
    assert out[0].tolist() == [5] * 9 + [105, 106, 107] and 7 not in out[0]
    assert stats["replaced"] == 2 and stats["truncated"] == 4  # 16 tokens cut back to 12
    assert placed_starts([(0, 4, 3), (6, 7, 2)]) == [-1, 6]  # a shorter one is skipped, no shift
