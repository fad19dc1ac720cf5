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
_LOG = re.compile(r"^\s+log: (\S+)")
_DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
#: the line every intervene command ends with when it used a GPU (intervene.cli.log_gpu_peak)
_PEAK = re.compile(r"peak GPU memory: ([\d.]+) GiB allocated, ([\d.]+) GiB reserved \(cuda:(\d+)\)")


def job_records(log: Path) -> list[dict]:
    """Every finished job of a Snakemake log: jobid, rule, its log file (or None), start and end.
    Snakemake stamps each job's start block and its 'Finished jobid' line (1 s resolution)."""
    stamp = None
    started: dict[str, dict] = {}
    pending: dict | None = None
    jobs = []
    for line in log.read_text(errors="replace").splitlines():
        if m := _STAMP.match(line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _START.match(line.strip()):
            pending = {"rule": m.group(1), "log": None, "start": stamp}
        elif pending is not None and (m := _LOG.match(line)):
            pending["log"] = m.group(1).rstrip(",")
        elif (m := _JOBID.match(line)) and pending is not None and stamp is not None:
            started[m.group(1)] = {**pending, "jobid": m.group(1)}
            pending = None
        elif (m := _DONE.match(line.strip())) and stamp is not None and m.group(1) in started:
            jobs.append({**started.pop(m.group(1)), "end": stamp})
    return jobs


def rule_times(jobs: list[dict]) -> tuple[dict[str, list[float]], float]:
    """Wall seconds of every finished job (:func:`job_records`) by rule, and the span from the first
    job's start to the last one's end."""
    times: dict[str, list[float]] = defaultdict(list)
    for j in jobs:
        times[j["rule"]].append((j["end"] - j["start"]).total_seconds())
    if not jobs:
        return {}, float("nan")
    span = (max(j["end"] for j in jobs) - min(j["start"] for j in jobs)).total_seconds()
    return dict(times), span


def gpu_peaks(jobs: list[dict], root: Path) -> list[dict]:
    """Per job that logged its peak GPU memory (one line per process): rule, start, end and the
    reserved GiB per device index."""
    out = []
    for j in jobs:
        f = root / j["log"] if j["log"] else None
        if f is None or not f.is_file():
            continue
        per_dev: dict[int, float] = defaultdict(float)
        for m in _PEAK.finditer(f.read_text(errors="replace")):
            per_dev[int(m.group(3))] += float(m.group(2))
        if per_dev:
            out.append({**j, "reserved_gib": dict(per_dev)})
    return out


def concurrent_peak(peaks: list[dict]) -> tuple[float, int | None, list[str]]:
    """The largest sum of reserved peaks over the jobs running at once on one device (an upper bound
    of what they held together: each job's peak need not coincide with the others'; CUDA contexts,
    about 0.5 GiB a process, are not counted), its device and those jobs' rules. Jobs that end in the
    second another starts count as overlapping (the log's stamps have 1 s resolution)."""
    best: tuple[float, int | None, list[str]] = (0.0, None, [])
    for j in peaks:
        for dev in j["reserved_gib"]:
            running = [k for k in peaks if dev in k["reserved_gib"] and k["start"] <= j["start"] <= k["end"]]
            total = sum(k["reserved_gib"][dev] for k in running)
            if total > best[0]:
                best = (total, dev, sorted(k["rule"] for k in running))
    return best


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
        jobs = job_records(log)
        times, span = rule_times(jobs)
        out += [f"## Wall time per rule (first job start to last job end: {span:.0f} s)", ""]
        out += ["| rule | jobs | sum s | max s |", "|---|---|---|---|"]
        for rule, ts in sorted(times.items(), key=lambda kv: -sum(kv[1])):
            out.append(f"| {rule} | {len(ts)} | {sum(ts):.0f} | {max(ts):.0f} |")
        out.append("")
        out += gpu_memory_section(gpu_peaks(jobs, Path(".")))
    return "\n".join(out)


def gpu_memory_section(peaks: list[dict]) -> list[str]:
    """Markdown: each GPU rule's largest per-job peak, and the largest sum over concurrent jobs."""
    if not peaks:
        return []
    out = ["## GPU memory (each job's peak, reserved by PyTorch, summed over its processes)", ""]
    out += ["| rule | jobs | max GiB |", "|---|---|---|"]
    by_rule: dict[str, list[float]] = defaultdict(list)
    for j in peaks:
        by_rule[j["rule"]].append(max(j["reserved_gib"].values()))
    for rule, v in sorted(by_rule.items(), key=lambda kv: -max(kv[1])):
        out.append(f"| {rule} | {len(v)} | {max(v):.1f} |")
    total, dev, rules = concurrent_peak(peaks)
    out += [
        "",
        f"Largest sum of the peaks of jobs running at once on cuda:{dev}: {total:.1f} GiB ({', '.join(rules)})",
        "",
    ]
    return out


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
