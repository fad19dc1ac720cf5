"""Peak GPU memory per job: every intervene command that used a GPU logs its peak
(intervene.cli.log_gpu_peak), and the GPU demo's summary adds up the peaks of jobs that ran at once
on one device (benchmarks/gpu_demo_summary.py), so a spike in the device's memory names its jobs."""

from __future__ import annotations

import logging
import sys
import types

from benchmarks.gpu_demo_summary import concurrent_peak, gpu_memory_section, gpu_peaks, job_records

_BLOCK = """[Sun Nov 29 16:{t} 2026]
localrule {rule}:
    input: a
    output: b
    log: {log}
    jobid: {jobid}
    resources: tmpdir=/tmp, gpu=1
Shell command: x
"""
_DONE = "[Sun Nov 29 16:{t} 2026]\nFinished jobid: {jobid} (Rule: {rule})\n1 of 4 steps done\n"


def _snakemake_log(tmp_path, jobs):
    """A Snakemake log with the given (rule, jobid, log, start, end) jobs, events in time order."""
    events = []
    for rule, jobid, log, start, end in jobs:
        events.append((start, 0, _BLOCK.format(t=start, rule=rule, log=log, jobid=jobid)))
        events.append((end, 1, _DONE.format(t=end, rule=rule, jobid=jobid)))
    f = tmp_path / "snakemake.log"
    f.write_text("Building DAG of jobs...\n" + "".join(e[2] for e in sorted(events)))
    return f


def _peak(gib: float, dev: int = 0) -> str:
    return f"2026-11-29 16:00:00 INFO intervene: peak GPU memory: 1.00 GiB allocated, {gib:.2f} GiB reserved (cuda:{dev})\n"


def test_concurrent_jobs_add_up_and_sequential_ones_do_not(tmp_path):
    (tmp_path / "logs").mkdir()
    logs = {
        "a": "INFO train\n" + _peak(20.0, 0) + _peak(21.0, 1),  # two processes, a GPU each
        "b": _peak(30.0),
        "c": _peak(40.0),
        "d": _peak(70.0),  # alone, after the others
        "e": "no GPU used\n",
    }
    for k, v in logs.items():
        (tmp_path / "logs" / f"{k}.log").write_text(v)
    jobs = job_records(
        _snakemake_log(
            tmp_path,
            [
                ("pretrain_original", "1", "logs/a.log", "00:00", "00:50"),
                ("evaluate", "2", "logs/b.log", "00:10", "00:30"),
                ("evaluate", "3", "logs/c.log", "00:20", "00:40"),
                ("evaluate", "4", "logs/d.log", "01:00", "01:20"),
                ("labels", "5", "logs/e.log", "01:00", "01:05"),
                ("world", "6", "logs/missing.log", "00:00", "00:01"),
            ],
        )
    )
    assert [j["rule"] for j in jobs] == [
        "world",
        "evaluate",
        "evaluate",
        "pretrain_original",
        "labels",
        "evaluate",
    ]
    peaks = gpu_peaks(jobs, tmp_path)
    assert {j["jobid"]: j["reserved_gib"] for j in peaks} == {
        "1": {0: 20.0, 1: 21.0},
        "2": {0: 30.0},
        "3": {0: 40.0},
        "4": {0: 70.0},
    }
    # on cuda:0 at 16:00:20: the original run (20), and evaluations b (30) and c (40) = 90 > d's 70
    total, dev, rules = concurrent_peak(peaks)
    assert (round(total, 6), dev, rules) == (90.0, 0, ["evaluate", "evaluate", "pretrain_original"])
    text = "\n".join(gpu_memory_section(peaks))
    assert "| evaluate | 3 | 70.0 |" in text and "| pretrain_original | 1 | 21.0 |" in text
    assert "on cuda:0: 90.0 GiB" in text
    assert gpu_memory_section([]) == []


def test_the_cli_logs_the_peak_only_when_cuda_was_used(monkeypatch, caplog):
    from intervene.cli import log_gpu_peak

    caplog.set_level(logging.INFO, logger="intervene")
    cuda = types.SimpleNamespace(
        is_initialized=lambda: False,
        current_device=lambda: 1,
        max_memory_allocated=lambda d: 3 * 2**30,
        max_memory_reserved=lambda d: 4.5 * 2**30,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    log_gpu_peak()
    assert "peak GPU memory" not in caplog.text
    cuda.is_initialized = lambda: True
    log_gpu_peak()
    assert "peak GPU memory: 3.00 GiB allocated, 4.50 GiB reserved (cuda:1)" in caplog.text
    monkeypatch.delitem(sys.modules, "torch")
    log_gpu_peak()  # torch never imported: nothing, no import
    assert "torch" not in sys.modules
