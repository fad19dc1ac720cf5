"""The toy world: reproducible, in OLMo's formats, with the structure the experiment relies on."""

from __future__ import annotations

import csv
import filecmp
import gzip

import numpy as np
import pytest
import yaml

from intervene.olmo import global_indices, load_train_config
from intervene.world.build import build_world
from intervene.world.relations import RELATION_IDS
from intervene.world.spec import WorldSpec

from .conftest import SMALL_WORLD

#: The real ParaRel data's evaluation template per relation (pararel_patterns_templates.json).
REAL_TEMPLATES = {
    "p17": "[X] is located in [Y] .",
    "p27": "[X] is a citizen of [Y].",
    "p36": "The capital city of [X] is [Y].",
    "p127": "[X] is owned by [Y] .",
    "p131": "[X] can be found in [Y] .",
    "p138": "[X] is named after [Y].",
    "p176": "[X] is a product of [Y].",
    "p178": "[X] is a product of [Y]",
    "p276": "[X] is located in [Y] .",
    "p495": "[X] was created in [Y].",
    "p1376": "[X] is the capital city of [Y].",
    "p1412": "[X] communicated in [Y] .",
}

PARAREL_FEATURES = [
    "relation",
    "query",
    "subject",
    "object",
    "template",
    "template_index",
    "candidates",
    "id",
    "question",
]


def _tree_equal(a, b) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_tree_equal(a / d, b / d) for d in cmp.common_dirs)


def test_world_is_byte_reproducible(small_world, tmp_path):
    build_world(tmp_path / "again", SMALL_WORLD)
    assert _tree_equal(small_world, tmp_path / "again")


def test_world_seed_changes_output(small_world, tmp_path):
    build_world(tmp_path / "other", {**SMALL_WORLD, "seed": 8})
    assert (small_world / "facts.tsv").read_bytes() != (tmp_path / "other" / "facts.tsv").read_bytes()


def test_unknown_world_parameter_is_rejected():
    with pytest.raises(ValueError, match="unknown world parameter"):
        WorldSpec.from_dict({"facts_per_relaton": 3})
    with pytest.raises(ValueError, match="unknown relation"):
        WorldSpec.from_dict({"relations": ["p999"]})


def test_tokenizer_loads_with_autotokenizer(small_world):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(small_world / "tokenizer"))
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert tok.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = load_train_config(small_world / "train_config.yaml")
    assert cfg.eos_token_id == tok.eos_token_id and cfg.pad_token_id == tok.pad_token_id
    text = "Über die Brücke ☕ <x>"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def _documents(world):
    with gzip.open(world / "documents.tsv.gz", "rt") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_token_files_are_raw_documents_ending_in_eos(small_world):
    cfg = load_train_config(small_world / "train_config.yaml")
    raw = yaml.safe_load((small_world / "train_config.yaml").read_text())
    assert raw["data"]["memmap_dtype"] == "uint32" and cfg.seq_len == SMALL_WORLD["seq_len"]
    docs = _documents(small_world)
    for rel_path in cfg.paths:
        path = small_world / rel_path
        tokens = np.fromfile(path, dtype=np.uint32)
        assert path.read_bytes()[:6] != b"\x93NUMPY"  # no .npy header despite the name
        mine = [d for d in docs if d["file"] == path.name]
        starts = [int(d["start"]) for d in mine]
        ends = [int(d["end"]) for d in mine]
        assert starts[0] == 0 and ends[-1] == tokens.size and starts[1:] == ends[:-1]
        assert (tokens[np.array(ends) - 1] == cfg.eos_token_id).all()
        # exactly one EOS per document: none inside any document
        assert int((tokens == cfg.eos_token_id).sum()) == len(mine)
        # trailing tokens beyond the last whole instance exist on some files and are < L
        assert tokens.size % cfg.seq_len < cfg.seq_len


def test_corpus_is_laid_out_through_the_data_order(small_world):
    """A fact's documents are trained on only at or after its first-appearance step."""
    cfg = load_train_config(small_world / "train_config.yaml")
    counts = [np.fromfile(small_world / p, dtype=np.uint32).size // cfg.seq_len for p in cfg.paths]
    n = sum(counts)
    order = global_indices(n, cfg.seed, drop_last=cfg.drop_last)
    step_of_instance = np.empty(n, dtype=np.int64)
    step_of_instance[order] = np.arange(n) // cfg.global_batch_size
    first = {}
    with open(small_world / "facts.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            first[int(row["fact_id"])] = int(row["first_step"])
    starts = np.concatenate([[0], np.cumsum(counts)])
    names = [p.split("/")[-1] for p in cfg.paths]
    n_fact_docs = 0
    for d in _documents(small_world):
        if d["kind"] != "fact":
            continue
        slot = int(d["start"]) // cfg.seq_len
        k = names.index(d["file"])
        if slot >= counts[k]:
            continue  # in the ignored tail of the file
        step = step_of_instance[starts[k] + slot]
        assert step == int(d["step"]) >= first[int(d["fact_id"])]
        n_fact_docs += 1
    assert n_fact_docs > 100
    assert len(set(first.values())) > 5  # staggered first appearances


def test_edge_cases_present(small_world):
    docs = _documents(small_world)
    kinds = {d["kind"] for d in docs}
    assert {"fact", "subject", "object", "filler", "long", "eos"} <= kinds
    cfg = load_train_config(small_world / "train_config.yaml")
    long_docs = [d for d in docs if d["kind"] == "long"]
    assert max(int(d["end"]) - int(d["start"]) for d in long_docs) > 2 * cfg.seq_len


def test_eval_items_have_pararel_schema(small_world):
    import datasets

    for rid in RELATION_IDS:
        dd = datasets.load_from_disk(str(small_world / "eval" / f"pararel_patterns_{rid}"))
        ds = dd["train"]
        assert ds.column_names == PARAREL_FEATURES
        assert len(ds) == SMALL_WORLD["facts_per_relation"]
        cands = ds[0]["candidates"]
        assert len(cands) == SMALL_WORLD["candidates_per_relation"]
        for row in ds:
            assert row["candidates"] == cands  # one list per relation
            assert row["object"].strip() in row["candidates"]
            assert row["query"].startswith(row["subject"]) or row["subject"] in row["query"]
            assert row["template"].endswith(("[Y].", "[Y] .", "[Y]"))
            assert row["relation"] == f"P{rid[1:]}.jsonl"
        # the real ParaRel data's template and template_index column (SPEC section 4)
        expected_index = {"p27": 1, "p36": 1, "p131": 2, "p176": 6, "p178": 6, "p1376": 3, "p1412": 1}
        assert set(ds["template_index"]) == {expected_index.get(rid, 0)}
        assert set(ds["template"]) == {REAL_TEMPLATES[rid]}


def test_search_terms_are_sorted_subjects_and_objects(small_world):
    import datasets

    for rid in RELATION_IDS:
        ds = datasets.load_from_disk(str(small_world / "eval" / f"pararel_patterns_{rid}"))["train"]
        want = sorted({s.strip() for s in ds["subject"]} | {o.strip() for o in ds["object"]})
        got = (small_world / "search_terms" / f"pararel_patterns_{rid}_train.txt").read_text().splitlines()
        assert got == want


def test_non_ascii_and_split_eos_in_corpus(small_world):
    from intervene.tokenizer import load_tokenizer

    tok = load_tokenizer(small_world / "tokenizer")
    cfg = load_train_config(small_world / "train_config.yaml")
    n_literal = n_eos_tokens = 0
    non_ascii = False
    for p in cfg.paths:
        tokens = np.fromfile(small_world / p, dtype=np.uint32)
        text = tok.decode(tokens.tolist(), skip_special_tokens=False)
        non_ascii |= any(ord(c) > 127 for c in text)
        n_literal += text.count(tok.eos_token)
        n_eos_tokens += int((tokens == cfg.eos_token_id).sum())
    eos_docs = [d for d in _documents(small_world) if d["kind"] == "eos"]
    assert non_ascii
    assert eos_docs, "the world must contain documents with a literal EOS string"
    # every literal EOS string inside a document was tokenized as ordinary tokens
    assert n_literal == n_eos_tokens + len(eos_docs)


def test_some_fact_documents_are_qa_pages(small_world):
    """QA pages in the evaluation's cloze format are part of the fact documents (web text has them)."""
    from intervene.tokenizer import load_tokenizer

    tok = load_tokenizer(small_world / "tokenizer")
    facts = [d for d in _documents(small_world) if d["kind"] == "fact"][:200]
    texts = []
    for d in facts:
        toks = np.fromfile(small_world / "data" / d["file"], dtype=np.uint32)[
            int(d["start"]) : int(d["end"]) - 1
        ]
        texts.append(tok.decode(toks.tolist()))
    qa = [t for t in texts if t.startswith("Question: ") and "\nAnswer: " in t]
    assert 0.15 < len(qa) / len(texts) < 0.45  # qa_doc_frac 0.3
