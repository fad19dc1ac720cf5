"""Check `intervene pararel` against a copy of the paper's ``data/pararel`` folder.

The hub dataset is not reachable offline, so this rebuilds a hub-schema stand-in from the paper's
12 relation datasets (their ``id`` and ``question`` columns dropped; rows of the 12 relations
interleaved; each row also present with another template and under an unknown relation, so the
filter has rows to reject, including P17 and P276's shared template under the other relation's
name), runs :func:`intervene.pararel_source.build_pararel` on it and compares every column of every
row (values, column order and feature types) and every term file byte for byte.

    python benchmarks/pararel_source_check.py [PARAREL]   # default: $INTERVENE_PARAREL or resources/pararel
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from intervene.layout import PARAREL_RELATIONS, term_file
from intervene.pararel_source import build_pararel


def hub_standin(root: Path, out: Path) -> Path:
    """A parquet file in the hub schema holding the paper's rows and decoys."""
    tables = []
    for rel in PARAREL_RELATIONS:
        t = datasets.load_from_disk(str(root / "huggingface" / f"pararel_patterns_{rel}"))["train"]
        tables.append(t.data.table.drop_columns(["id", "question"]))
    rows: list[dict] = []
    longest = max(t.num_rows for t in tables)
    lists = [t.to_pylist() for t in tables]
    for i in range(longest):  # round robin over the relations: order within each kept
        for k, rs in enumerate(lists):
            if i < len(rs):
                r = rs[i]
                rows.append(r)
                other = lists[(k + 1) % len(lists)][0]
                rows.append({**r, "template": other["template"], "template_index": 99})
                rows.append({**r, "relation": "P999.jsonl"})
    path = out / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=tables[0].schema), path)
    return path


def main(root: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = hub_standin(root, tmp)
        summary = build_pararel(src, tmp / "huggingface", tmp / "search_terms")
        bad = 0
        for rel in PARAREL_RELATIONS:
            want = datasets.load_from_disk(str(root / "huggingface" / f"pararel_patterns_{rel}"))["train"]
            got = datasets.load_from_disk(str(tmp / "huggingface" / f"pararel_patterns_{rel}"))["train"]
            same_rows = want.to_list() == got.to_list()
            same_cols = want.column_names == got.column_names
            same_feat = want.features == got.features
            a = term_file(root / "search_terms", rel).read_bytes()
            b = term_file(tmp / "search_terms", rel).read_bytes()
            ok = same_rows and same_cols and same_feat and a == b
            bad += not ok
            print(
                f"{rel}: rows {got.num_rows}/{want.num_rows} values equal {same_rows}, columns {same_cols},"
                f" features {same_feat}; terms {summary[rel]['terms']} bytes equal {a == b}"
            )
        print("ALL EQUAL" if not bad else f"{bad} relation(s) differ")
        return 1 if bad else 0


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("INTERVENE_PARAREL", "resources/pararel")
    sys.exit(main(Path(arg)))
