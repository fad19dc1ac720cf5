"""What the GPU demo's results say, as Markdown: the headline with its CIs, how much the repeated runs
of each re-run differ (``experiment.order: given``: on a GPU only nondeterminism tells them apart),
the replay check, and the wall time per rule read from Snakemake's log.

    python3 -m benchmarks.gpu_demo_summary --results results --log SNAKEMAKE_LOG [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?(?:checkpoint|rule) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def rule_times(log: Path) -> tuple[dict[str, list[float]], float]:
    """Wall seconds of every finished job by rule, and the span from the first job's start to the
    last one's end. Snakemake stamps each job's start block and its 'Finished jobid' line (1 s)."""
    stamp = None
    started: dict[str, tuple[datetime, str]] = {}
    pending_rule = None
    times: dict[str, list[float]] = defaultdict(list)
    first = last = None
    for line in log.read_text(errors="replace").splitlines():
        if m := _STAMP.match(line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _START.match(line.strip()):
            pending_rule = m.group(1)
        elif (m := _JOBID.match(line)) and pending_rule and stamp is not None:
            started[m.group(1)] = (stamp, pending_rule)
            first = first or stamp
            pending_rule = None
        elif (m := _DONE.match(line.strip())) and stamp is not None:
            t0, rule = started.get(m.group(1), (None, m.group(2)))
            if t0 is not None:
                times[rule].append((stamp - t0).total_seconds())
            last = stamp
    span = (last - first).total_seconds() if first and last else float("nan")
    return dict(times), span


def _checkpoint(run: Path) -> Path | None:
    steps = sorted(run.glob("step*"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else -1)
    return steps[-1] if steps else None


def run_differences(results: Path) -> list[dict]:
    """Per re-run: accuracy of each run on all instances at the evaluated step, instances whose
    correctness differs between runs, and the largest weight / AdamW moment difference between the
    runs' final checkpoints (and against the original run's checkpoint at the same step)."""
    from intervene.train.replay import compare_checkpoints

    rows = []
    for labels in sorted((results / "eval" / "reruns").glob("*/labels.npz")):
        name = labels.parent.name
        d = np.load(labels)
        runs = sorted(k for k in d.files if re.fullmatch(r"run\d+", k))
        correct = {r: d[r][:, -1].astype(bool) for r in runs}
        row = {
            "rerun": name,
            "accuracy_per_run": [round(float(correct[r].mean()), 4) for r in runs],
            "instances": int(next(iter(correct.values())).size),
            "instances_differing_between_runs": int(
                np.any([correct[a] != correct[b] for a, b in itertools.combinations(runs, 2)], axis=0).sum()
            )
            if len(runs) > 1
            else 0,
        }
        ckpts = {r: _checkpoint(results / "reruns" / name / r) for r in runs}
        pairs = [(a, b) for a, b in itertools.combinations(runs, 2) if ckpts[a] and ckpts[b]]
        row["checkpoint_diff_between_runs"] = {
            f"{a}-{b}": _short(compare_checkpoints(ckpts[a], ckpts[b])) for a, b in pairs
        }
        if name.startswith("control_") and ckpts[runs[0]] is not None:
            orig = results / "train" / "original" / ckpts[runs[0]].name
            if orig.is_dir():
                row["checkpoint_diff_vs_original"] = {
                    r: _short(compare_checkpoints(orig, ckpts[r])) for r in runs if ckpts[r]
                }
        rows.append(row)
    return rows


def _short(c: dict) -> dict:
    return {
        "tensors": c["tensors"],
        "not_bit_identical": c["tensors_not_bit_identical"],
        "max_abs_diff": float(f"{c['max_abs_diff']:.3g}"),
    }


def summary(results: Path, log: Path | None) -> str:
    out = ["# GPU demo", ""]
    head = results / "report" / "headline.txt"
    out += ["## Headline", "", head.read_text().strip() if head.exists() else "(no headline)", ""]
    rc = results / "train" / "replay_check.json"
    if rc.exists():
        r = json.loads(rc.read_text())
        out += ["## Replay check", "", json.dumps({k: r.get(k) for k in sorted(r) if k != "reference"}), ""]
    out += ["## Repeated runs (order: given)", ""]
    out += ["| re-run | accuracy per run | instances differing | checkpoints between runs | vs original |"]
    out += ["|---|---|---|---|---|"]
    for row in run_differences(results):
        between = "; ".join(
            f"{k}: {v['not_bit_identical']}/{v['tensors']} differ, max {v['max_abs_diff']:g}"
            for k, v in row["checkpoint_diff_between_runs"].items()
        )
        vs = "; ".join(
            f"{k}: {v['not_bit_identical']}/{v['tensors']}, max {v['max_abs_diff']:g}"
            for k, v in row.get("checkpoint_diff_vs_original", {}).items()
        )
        out.append(
            f"| {row['rerun']} | {row['accuracy_per_run']} | {row['instances_differing_between_runs']}"
            f" of {row['instances']} | {between} | {vs} |"
        )
    out.append("")
    if log is not None and log.exists():
        times, span = rule_times(log)
        out += [f"## Wall time per rule (first job start to last job end: {span:.0f} s)", ""]
        out += ["| rule | jobs | sum s | max s |", "|---|---|---|---|"]
        for rule, ts in sorted(times.items(), key=lambda kv: -sum(kv[1])):
            out.append(f"| {rule} | {len(ts)} | {sum(ts):.0f} | {max(ts):.0f} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="results")
    ap.add_argument("--log")
    ap.add_argument("--out")
    a = ap.parse_args()
    text = summary(Path(a.results), Path(a.log) if a.log else None)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
