"""Doc info: the paper's rows, generalised so that rows always line up with the decoded text lines."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervene.decode import split_documents
from intervene.doc_info import batch_doc_info, doc_info
from intervene.tokenizer import load_tokenizer, split_eos_pattern


@pytest.fixture(scope="module")
def tk(small_world):
    tok = load_tokenizer(small_world / "tokenizer")
    pat = split_eos_pattern(tok)
    vocab = tok.get_vocab()
    letters = sorted(i for t, i in vocab.items() if re.fullmatch(r"[a-z]{1,4}", t))
    bare = tok.backend_tokenizer
    bare.encode_special_tokens = True
    split = bare.encode(tok.eos_token, add_special_tokens=False).ids
    bare.encode_special_tokens = False
    return {"tok": tok, "pat": pat, "E": tok.eos_token_id, "letters": letters, "split": split}


def rows_of(tk, batch, b=0):
    return batch_doc_info(np.asarray(batch, dtype=np.uint32), b, tk["pat"], tk["tok"]).tolist()


def text_lines(tk, batch):
    decoded = tk["tok"].batch_decode(np.asarray(batch).tolist(), skip_special_tokens=False)
    return split_documents(decoded, tk["tok"].eos_token)


def test_split_eos_pattern_of_toy_tokenizer(tk):
    pat = tk["pat"]
    assert pat.eos_text == "<|endoftext|>"
    assert len(pat.core) >= 1 and pat.before + len(pat.core) + pat.after == len(tk["split"])
    assert "endoftext" in tk["tok"].decode(list(pat.core))


def test_paper_cases(tk):
    E, (x, y) = tk["E"], tk["letters"][:2]
    L = 6
    # documents, an EOS at the very end of the batch -> the paper's (b, last, L, L) row
    batch = [[x, x, E, y, y, y], [x, E, x, x, x, E]]
    assert rows_of(tk, batch, 3) == [[3, 0, 0, 1], [3, 0, 3, 5], [3, 1, 0, 0], [3, 1, 2, 4], [3, 1, L, L]]
    # batch starts with EOS -> (b, 0, 0, 0); EOS EOS inside a sequence is skipped
    batch = [[E, x, x, E, E, y], [x, x, x, x, x, x]]
    assert rows_of(tk, batch) == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 5, 5], [0, 1, 0, 5]]
    # sequence ends with EOS and the next starts with EOS -> (b, s, L, L) between them
    batch = [[x, x, x, x, x, E], [E, y, y, y, y, y]]
    assert rows_of(tk, batch) == [[0, 0, 0, 4], [0, 0, L, L], [0, 1, 1, 5]]
    for batch in (
        [[x, x, E, y, y, y], [x, E, x, x, x, E]],
        [[E, x, x, E, E, y], [x] * 6],
        [[x] * 5 + [E], [E] + [y] * 5],
    ):
        assert len(rows_of(tk, batch)) == len(text_lines(tk, batch))


def test_beyond_the_paper_runs_across_sequences(tk):
    """Two EOS ending a sequence: the paper's script loses the empty line the text gets here."""
    E, x = tk["E"], tk["letters"][0]
    batch = [[x, x, x, x, E, E], [x, x, x, x, x, x]]
    assert text_lines(tk, batch) == ["".join(tk["tok"].decode([x]) * 4), "", tk["tok"].decode([x]) * 6]
    assert rows_of(tk, batch) == [[0, 0, 0, 3], [0, 0, 6, 6], [0, 1, 0, 5]]


def test_three_eos_in_a_row_is_an_error(tk):
    E, x = tk["E"], tk["letters"][0]
    with pytest.raises(ValueError, match="three or more EOS"):
        rows_of(tk, [[x, E, E, E, x, x]], b=4)


def test_split_eos_counts_as_eos(tk):
    x = tk["letters"][0]
    s = tk["split"]
    seq = [x, x, *s, x, x, x]
    rows = rows_of(tk, [seq])
    assert rows == [[0, 0, 0, 1], [0, 0, 2 + len(s), len(seq) - 1]]
    assert len(text_lines(tk, [seq])) == 2


def test_core_without_the_whole_string_is_not_eos(tk):
    x = tk["letters"][0]
    core = list(tk["pat"].core)
    seq = [x, *core, x, x]
    assert rows_of(tk, [seq]) == [[0, 0, 0, len(seq) - 1]]
    # a split EOS cut by the sequence boundary is not whole in either sequence's text either
    s = tk["split"]
    batch = [[x, x, x, *s[:2]], [*s[2:], x, x, x, x, x][:5]]
    batch = [row + [x] * (5 - len(row)) for row in batch]
    assert len(rows_of(tk, batch)) == len(text_lines(tk, batch))


def test_doc_info_api_numbers_batches_in_order(tk, small_world):
    E, x = tk["E"], tk["letters"][0]
    b0 = np.array([[x, E, x, x]], dtype=np.uint32)
    b1 = np.array([[x, x, x, x]], dtype=np.uint32)
    rows = doc_info([b0, b1], small_world / "tokenizer")
    assert rows.dtype == np.int64 and rows.shape == (3, 4)
    assert rows.tolist() == [[0, 0, 0, 0], [0, 0, 2, 3], [1, 0, 0, 3]]


def _longest_unit_chain(seq: list[int], eos: int, split: list[int]) -> int:
    """Longest run of adjacent EOS units (an EOS token or a whole split-EOS string) in a sequence."""
    best = run = 0
    i = 0
    while i < len(seq):
        if seq[i] == eos:
            run, i = run + 1, i + 1
        elif seq[i : i + len(split)] == split:
            run, i = run + 1, i + len(split)
        else:
            run, i = 0, i + 1
        best = max(best, run)
    return best


@st.composite
def batches(draw, letters, E, split):
    S = draw(st.integers(1, 4))
    L = draw(st.one_of(st.integers(6, 20), st.integers(60, 140)))  # the scan's tail and block paths
    seqs = []
    for _ in range(S):
        seq: list[int] = []
        while len(seq) < L:
            kind = draw(st.sampled_from(["tok", "tok", "tok", "eos", "split"]))
            if kind == "tok":
                seq.append(draw(st.sampled_from(letters)))
            elif kind == "eos":
                seq.append(E)
            elif len(seq) + len(split) <= L:
                seq.extend(split)
        seqs.append(seq[:L])
    return seqs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rows_cover_tokens_and_line_up_with_text(tk, data):
    batch = data.draw(batches(tk["letters"][:6], tk["E"], tk["split"]))
    arr = np.asarray(batch, dtype=np.uint32)
    S, L = arr.shape
    k = len(tk["split"])
    has_triple = any(_longest_unit_chain(seq, tk["E"], tk["split"]) >= 3 for seq in batch)
    try:
        rows = rows_of(tk, arr)
    except ValueError as e:
        assert "three or more EOS" in str(e) and has_triple
        return
    assert not has_triple
    lines = text_lines(tk, arr)
    assert len(rows) == len(lines)
    covered = np.zeros((S, L), dtype=int)
    for (b, s, a, e), line in zip(rows, lines, strict=True):
        assert b == 0
        if a == L or (s == 0 and a == 0 and e == 0 and line == ""):
            assert line == ""  # an empty-document row stands for an empty line
            continue
        covered[s, a : e + 1] += 1
        assert tk["tok"].decode(arr[s, a : e + 1].tolist()) == line
    # every token is in exactly one document, except EOS tokens and split-EOS windows (in none)
    eos_mask = arr == tk["E"]
    for s in range(S):
        for i in range(L - k + 1):
            if arr[s, i : i + k].tolist() == tk["split"]:
                eos_mask[s, i : i + k] = True
    assert (covered[~eos_mask] == 1).all()
    assert (covered[eos_mask] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scan_kernel_matches_numpy(seed):
    """The block-vectorised scan finds exactly what a plain comparison finds, at every alignment."""
    from intervene._docinfo import scan_batch

    rng = np.random.default_rng(seed)
    S, L = 7, 64 * 5 + 13
    batch = rng.integers(0, 50, size=(S, L)).astype(np.uint32)
    batch[rng.random((S, L)) < 0.002 * (seed + 1)] = 999  # sparse "EOS", sometimes none in a block
    batch[:, -1] = 999 if seed == 1 else batch[:, -1]
    eos, cand = scan_batch(batch, np.uint32(999), np.uint32(7), capacity=2)  # forces growth
    np.testing.assert_array_equal(eos, np.flatnonzero(batch.reshape(-1) == 999))
    np.testing.assert_array_equal(cand, np.flatnonzero(batch.reshape(-1) == 7))
