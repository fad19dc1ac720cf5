"""``python -m benchmarks.scale.refit scale.json``: the fits, projections, SCALE lines, markdown and
(``--write-fit``) resource fit again from a run's measurements, without running the pipeline (after
a change to the fit, or to publish a run made elsewhere)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.scale.report import fit_stages, scale_lines, write_outputs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale.refit", description=__doc__.splitlines()[0])
    p.add_argument("scale_json", help="a scale.json the benchmark wrote")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--write-fit", help="write the resource fit here (src/intervene/resources_fit.json)")
    a = p.parse_args(argv)
    d = json.loads(Path(a.scale_json).read_text())
    meta = d["meta"]
    raw = {
        name: {k: v for k, v in s.items() if k not in ("fit", "projection")}
        for name, s in d["stages"].items()
    }
    stages = fit_stages(raw, meta["gbs"], meta["seq_len"])
    write_outputs(stages, meta, Path(a.results_dir), Path(a.write_fit) if a.write_fit else None)
    for line in scale_lines(stages):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
