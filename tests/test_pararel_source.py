"""`intervene pararel`: the relation datasets and term files split from a hub-schema ParaRel copy."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from intervene.evaluation.tasks import load_pararel
from intervene.layout import PARAREL_RELATIONS, term_file
from intervene.pararel_source import QUESTIONS, TEMPLATES, build_pararel, relation_id, search_terms
from intervene.search.stages import relation_pairs

HUB_SCHEMA = pa.schema(
    [
        ("relation", pa.string()),
        ("query", pa.string()),
        ("subject", pa.string()),
        ("object", pa.string()),
        ("template", pa.string()),
        ("template_index", pa.int64()),
        ("candidates", pa.list_(pa.string())),
    ]
)


def _row(relation: str, template: str, subject: str, obj: str, cands: list[str], ti: int = 0) -> dict:
    query = template.replace("[X]", subject).split("[Y]")[0].rstrip()
    return {
        "relation": relation,
        "query": query,
        "subject": subject,
        "object": obj,
        "template": template,
        "template_index": ti,
        "candidates": cands,
    }


def hub_rows() -> list[dict]:
    """Per relation three kept rows (one subject with padding, one repeated object, a non-ASCII
    name) interleaved with rows the split must drop: another template of the same relation, the
    same template under another relation (P17 and P276 share theirs), an unknown relation."""
    rows = []
    for k, (name, template) in enumerate(TEMPLATES.items()):
        rel = relation_id(name)
        cands = [f"Obj{rel}A", f"Obj{rel}B", f"Öbj{rel}C"]
        rows.append(_row(name, template, f"Zeta {rel}", cands[1], cands))
        rows.append(_row(name, template + " alt", f"Drop {rel}", cands[0], cands, ti=1))
        rows.append(_row("P999.jsonl", template, f"Unknown {rel}", cands[0], cands))
        rows.append(_row(name, template, f"  Alpha {rel} ", f" {cands[1]}", cands))
        rows.append(_row(name, template, f"Émile {rel}", cands[2], cands))
        if k % 2:
            rows.append(_row(name, "[X] is odd [Y] .", f"Drop2 {rel}", cands[0], cands, ti=2))
    return rows


@pytest.fixture
def hub_parquet(tmp_path: Path) -> Path:
    p = tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"
    p.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(hub_rows(), schema=HUB_SCHEMA), p)
    return p


def _tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_split_keeps_the_relation_and_template_rows_in_hub_order(hub_parquet, tmp_path):
    out = tmp_path / "out"
    summary = build_pararel(hub_parquet, out / "huggingface", out / "search_terms")
    assert list(summary) == list(PARAREL_RELATIONS)
    for rel in PARAREL_RELATIONS:
        dd = datasets.load_from_disk(str(out / "huggingface" / f"pararel_patterns_{rel}"))
        assert list(dd) == ["train"]
        ds = dd["train"]
        assert ds.column_names == [*HUB_SCHEMA.names, "id", "question"]
        assert ds["subject"] == [f"Zeta {rel}", f"  Alpha {rel} ", f"Émile {rel}"]
        assert ds["id"] == [0, 1, 2]
        assert set(ds["relation"]) == {f"P{rel[1:]}.jsonl"}
        assert set(ds["template"]) == {TEMPLATES[f"P{rel[1:]}.jsonl"]}
        assert ds["question"][0] == QUESTIONS[rel].replace("[X]", f"Zeta {rel}")
        assert summary[rel] == {"rows": 3, "terms": 5}  # 3 subjects, objects B and C


def test_term_files_are_the_sorted_set_of_stripped_subjects_and_objects(hub_parquet, tmp_path):
    build_pararel(hub_parquet, tmp_path / "d", tmp_path / "t", relations=["p17"])
    text = term_file(tmp_path / "t", "p17").read_text(encoding="utf-8")
    assert text == "Alpha p17\nObjp17B\nZeta p17\nÉmile p17\nÖbjp17C\n"
    assert search_terms(["b ", "a", "b"], [" a", "c"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="spans lines"):
        search_terms(["a\nb"], ["c"])


def test_outputs_read_by_the_evaluator_and_the_pair_matrix(hub_parquet, tmp_path):
    build_pararel(hub_parquet, tmp_path / "d", tmp_path / "t", relations=["p36", "p1412"])
    inst = load_pararel(tmp_path / "d", "p36")
    assert [i.native_id for i in inst] == [0, 1, 2]
    assert inst[0].context == "Question: The capital city of Zeta p36 is\nAnswer:"
    assert [i.gold for i in inst] == [1, 1, 2]
    terms = term_file(tmp_path / "t", "p1412").read_text(encoding="utf-8").splitlines()
    pairs = relation_pairs(tmp_path / "d", "p1412", terms)
    assert [(terms[s], terms[o]) for s, o in pairs] == [
        ("Zeta p1412", "Objp1412B"),
        ("Alpha p1412", "Objp1412B"),
        ("Émile p1412", "Öbjp1412C"),
    ]


def test_every_local_copy_format_gives_the_same_bytes(hub_parquet, tmp_path):
    table = pq.read_table(hub_parquet)
    ds = datasets.Dataset(table)
    disk = tmp_path / "disk"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(disk))
    jsonl = tmp_path / "hub.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in hub_rows()), encoding="utf-8")
    trees = []
    for i, src in enumerate([hub_parquet, hub_parquet.parent.parent, disk, jsonl, hub_parquet]):
        out = tmp_path / f"out{i}"
        build_pararel(src, out / "d", out / "t")
        trees.append(_tree(out))
    assert trees[0] and all(t == trees[0] for t in trees[1:])


def test_a_question_column_of_the_source_is_kept(tmp_path):
    rows = [{**r, "question": "Q?"} for r in hub_rows()]
    p = tmp_path / "hub.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    build_pararel(p, tmp_path / "d", tmp_path / "t", relations=["p17"])
    ds = datasets.load_from_disk(str(tmp_path / "d" / "pararel_patterns_p17"))["train"]
    assert ds["question"] == ["Q?"] * 3


def test_templates_and_questions_from_files(hub_parquet, tmp_path):
    tf = tmp_path / "templates.json"
    tf.write_text(json.dumps({"P17.jsonl": TEMPLATES["P17.jsonl"] + " alt"}))
    qf = tmp_path / "questions.json"
    qf.write_text(json.dumps({"p17": "Who is [X]?"}))
    build_pararel(hub_parquet, tmp_path / "d", tmp_path / "t", templates=tf, questions=qf, relations=["p17"])
    ds = datasets.load_from_disk(str(tmp_path / "d" / "pararel_patterns_p17"))["train"]
    assert ds["subject"] == ["Drop p17"]
    assert ds["question"] == ["Who is Drop p17?"]
    assert ds["template_index"] == [1]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda rows: [{k: v for k, v in r.items() if k != "template"} for r in rows],
            r"lacks column\(s\) \['template'\]",
        ),
        (
            lambda rows: [r for r in rows if r["relation"] != "P1376.jsonl"],
            "no rows of relation 'P1376.jsonl'",
        ),
    ],
)
def test_bad_sources_are_errors_naming_them(tmp_path, change, message):
    p = tmp_path / "hub.parquet"
    pq.write_table(pa.Table.from_pylist(change(hub_rows())), p)
    with pytest.raises(ValueError, match=message) as e:
        build_pararel(p, tmp_path / "d", tmp_path / "t")
    assert str(p) in str(e.value)


def test_unknown_paths_and_mappings_are_errors(hub_parquet, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        build_pararel(tmp_path / "nope", tmp_path / "d", tmp_path / "t")
    with pytest.raises(ValueError, match=r"lacks \['p27'\]"):
        build_pararel(
            hub_parquet,
            tmp_path / "d",
            tmp_path / "t",
            templates={"P17.jsonl": "x"},
            relations=["p17", "p27"],
        )
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(ValueError, match="bad.json"):
        build_pararel(hub_parquet, tmp_path / "d", tmp_path / "t", templates=bad)


def test_cli(hub_parquet, tmp_path):
    from intervene.cli import main

    rc = main(
        [
            "pararel",
            "--source",
            str(hub_parquet),
            "--data-dir",
            str(tmp_path / "d"),
            "--terms-dir",
            str(tmp_path / "t"),
        ]
    )
    assert rc in (0, None)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == sorted(
        f"pararel_patterns_{r}_train.txt" for r in PARAREL_RELATIONS
    )
    assert len(load_pararel(tmp_path / "d", "p1376")) == 3


def _check_7b(root: Path, **eval_over) -> None:
    """The 7B config's check in a folder without the paper's ParaRel copy."""
    import shutil

    import yaml

    from intervene.config_check import check_config

    from .conftest import REPO

    shutil.copytree(REPO / "config", root / "config")
    cfg = yaml.safe_load((REPO / "config" / "olmo2-7b.yaml").read_text())
    cfg["eval"].update(eval_over)
    check_config(cfg, schema=REPO / "workflow" / "schemas" / "config.schema.yaml", root=root)


def test_config_pararel_hub_means_rule_pararel_writes_the_folders(hub_parquet, tmp_path):
    from intervene.config_check import ConfigError

    with pytest.raises(
        ConfigError, match="eval.sources.pararel: resources/pararel/huggingface does not exist"
    ):
        _check_7b(tmp_path / "a")
    _check_7b(tmp_path / "b", pararel_hub=str(hub_parquet))
    _check_7b(tmp_path / "c", pararel_hub="coastalcph/pararel_patterns")
    with pytest.raises(ConfigError, match="eval.pararel_hub: .*nope/x/y does not exist"):
        _check_7b(tmp_path / "d", pararel_hub=str(tmp_path / "nope" / "x" / "y"))
    with pytest.raises(ConfigError, match=r"eval.sources.pararel: set it \(outside results/world\)"):
        _check_7b(tmp_path / "e", pararel_hub=str(hub_parquet), sources={"pararel": "results/world/eval"})
