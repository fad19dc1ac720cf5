"""Selection strategies on crafted matrices, windows across groups, and the score-based mapping."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from intervene.select.mapping import map_by_scores, top_docs
from intervene.select.strategies import add_coocc, rm_coocc, rm_occ, with_cooccurrence
from intervene.select.windows import read_groups, window


def M(rows):
    return sp.csr_matrix(np.array(rows))


def test_rm_coocc_and_add_coocc_by_hand():
    # 4 instances x 5 documents in window c and in window c+K
    pair_c = M([[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    pair_n = M([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0]])
    i_c = with_cooccurrence(pair_c, np.array([0, 1, 2]))  # instance 2 never co-occurs in window c
    assert i_c.tolist() == [0, 1]
    j = np.array([2])
    r = rm_coocc(pair_c, pair_n, i_c, j)
    assert r["orig"].tolist() == [0, 1, 2]  # documents co-occurring for instances 0 or 1
    assert r["extra"].tolist() == [1, 3, 4]  # next-window documents clean for I_c and J
    assert r["orig_inst"].tolist() == [0, 1] and r["new"].size == 0
    a = add_coocc(pair_c, pair_n, np.array([3]))
    assert a["new"].tolist() == [3] and a["orig"].tolist() == [0, 1, 2, 3] and a["new_inst"].tolist() == [3]


def test_rm_occ_drops_the_most_frequent_and_uses_subject_or_object():
    # terms x documents: rows 0..5; instance k has subject row 2k, object row 2k+1
    term_c = M(
        [
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 1, 0],
        ]
    )
    term_n = M([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    subj, obj, insts = np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([10, 11, 12])
    r = rm_occ(term_c, term_n, subj, obj, insts, n_drop=1)  # instance 10 occurs in 4 documents: dropped
    assert r["orig_inst"].tolist() == [11, 12]
    assert r["orig"].tolist() == [4, 5]
    assert r["extra"].tolist() == [0, 2]  # next documents without terms 2, 3, 4, 5
    r2 = rm_occ(term_c, term_n, subj, obj, insts, n_drop=0)
    assert r2["orig"].tolist() == [0, 1, 2, 3, 4, 5]
    # ties go to the earlier instance, as repeated argmax on the shrinking list does
    tie = rm_occ(
        M([[1, 0], [0, 0], [0, 1], [0, 0]]),
        M([[0], [0], [0], [0]]),
        np.array([0, 2]),
        np.array([1, 3]),
        np.array([7, 8]),
        1,
    )
    assert tie["orig_inst"].tolist() == [8]


def _groups(tmp_path, batches: dict[str, range]) -> tuple[list, list]:
    """Decoded group folders holding (empty) ``{b}.npy`` files of ``batches``, and doc-info paths."""
    dirs = []
    for name, bs in batches.items():
        (tmp_path / "batches" / name).mkdir(parents=True)
        for b in bs:
            (tmp_path / "batches" / name / f"{b}.npy").touch()
        dirs.append(tmp_path / "batches" / name)
    return [tmp_path / f"{name}.npy" for name in batches], dirs


def test_window_spanning_two_groups(tmp_path):
    # group 001 = batches 0-3, group 002 = batches 4-7 (their files' names say so)
    np.save(
        tmp_path / "001.npy",
        np.array([[0, 0, 0, 9], [2, 0, 0, 4], [3, 0, 0, 0], [3, 1, 5, 7]], dtype=np.int64),
    )
    np.save(tmp_path / "002.npy", np.array([[0, 0, 0, 1], [1, 0, 0, 2]], dtype=np.int64))
    info, dirs = _groups(tmp_path, {"001": range(4), "002": range(4, 8)})
    groups = read_groups(info, dirs)
    w = window(groups, 3, 5)
    assert w.groups == ["001", "002"] and w.rows.tolist() == [2, 3, 4] and w.sizes.tolist() == [1, 3, 2]
    # a window inside the second group: its rows count from that group's first row
    assert window(groups, 5, 6).rows.tolist() == [1] and window(groups, 5, 6).groups == ["002"]
    # batches beyond the decoded groups given, a doc-info file not of its folder, folders out of order
    with pytest.raises(FileNotFoundError, match=r"window \[6, 9\): 1 of its batches are in none"):
        window(groups, 6, 9)
    with pytest.raises(ValueError, match="002.npy: not the doc info of decoded group folder"):
        read_groups(info[::-1], dirs)
    with pytest.raises(ValueError, match="not in batch order"):
        read_groups(info[::-1], dirs[::-1])
    # the doc info's batch column indexes the folder's batches: in a group holding 5-8 batch 5 is
    # its first, row 0
    (dirs[1] / "4.npy").rename(dirs[1] / "8.npy")
    assert window(read_groups(info, dirs), 5, 6).rows.tolist() == [0]


def reference_mapping(t, s, t_sizes, s_sizes, per_inst):
    """A straightforward transcription of the rule (no shuffling)."""
    t, s = t.toarray(), s.toarray()
    targets = set()
    for r in range(t.shape[0]):
        nz = [c for c in range(t.shape[1]) if t[r, c] != 0]
        nz.sort(key=lambda c: (-t[r, c], c))
        targets |= set(nz[:per_inst])
    counts = {d: int((t[:, d] != 0).sum()) for d in targets}
    used, out = set(), {}
    for d in sorted(targets, key=lambda d: (-counts[d], d)):
        sizes = sorted({int(x) for i, x in enumerate(s_sizes) if i not in used and x >= t_sizes[d]})
        cands = [i for i in range(len(s_sizes)) if i not in used and s_sizes[i] == sizes[0]]
        insts = [r for r in range(t.shape[0]) if t[r, d] != 0]
        means = [s[insts, c].mean() for c in cands]
        out[d] = cands[int(np.argmin(means))]
        used.add(out[d])
    return out


@pytest.mark.parametrize("shift", [0.0, -0.5])
def test_mapping_with_negative_scores_equals_reference(shift):
    """Dense-retrieval scores can be negative: the lowest mean may then be below the candidates
    without any score (0)."""
    rng = np.random.default_rng(5)
    t = sp.random(5, 30, density=0.3, random_state=3, format="csr")
    s = sp.random(5, 60, density=0.4, random_state=4, format="csr")
    s.data += shift
    t_sizes, s_sizes = rng.integers(1, 6, 30), rng.integers(1, 8, 60)
    keys, vals = map_by_scores(t, s, t_sizes, s_sizes, per_inst=3)
    assert dict(zip(keys.tolist(), vals.tolist(), strict=True)) == reference_mapping(
        t, s, t_sizes, s_sizes, 3
    )


def test_mapping_equals_reference_and_properties():
    rng = np.random.default_rng(0)
    t = sp.random(6, 40, density=0.3, random_state=1, format="csr")
    s = sp.random(6, 80, density=0.3, random_state=2, format="csr")
    t_sizes, s_sizes = rng.integers(1, 20, 40), rng.integers(1, 25, 80)
    keys, vals = map_by_scores(t, s, t_sizes, s_sizes, per_inst=4)
    ref = reference_mapping(t, s, t_sizes, s_sizes, 4)
    assert dict(zip(keys.tolist(), vals.tolist(), strict=True)) == ref
    assert len(set(vals.tolist())) == len(vals)  # no source used twice
    assert (s_sizes[vals] >= t_sizes[keys]).all()
    assert set(keys.tolist()) == set(top_docs(t, 4).tolist())
    a = map_by_scores(t, s, t_sizes, s_sizes, per_inst=4, shuffle_candidates=True, seed=3)
    b = map_by_scores(t, s, t_sizes, s_sizes, per_inst=4, shuffle_candidates=True, seed=3)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="no unused source document of >= 30 tokens"):
        map_by_scores(t, s, np.full(40, 30), s_sizes, per_inst=4)
