"""Recovery after a hard kill: temporaries of killed writers are removed by the next writer of the same
target (never a live writer's), and a Snakemake lock is removed only when no pipeline process runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from intervene.atomic import (
    _host,
    _tmp_sibling,
    is_stale,
    remove_stale_temporaries,
    write_text,
)
from intervene.locks import (
    LockHeld,
    is_pipeline_command,
    lock_files,
    pipeline_processes,
    recover_stale_lock,
)

#: A writer that stops inside atomic_path (its temporary written, not renamed) and waits to be killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from intervene.atomic import atomic_path
    with atomic_path(sys.argv[1], is_dir=sys.argv[2] == "dir") as tmp:
        (tmp / "part" if sys.argv[2] == "dir" else tmp).write_text("half")
        print(tmp, flush=True)
        time.sleep(300)
    """
)


def start_writer(target: Path, kind: str) -> tuple[subprocess.Popen, Path]:
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(target), kind], stdout=subprocess.PIPE, text=True)
    tmp = Path(p.stdout.readline().strip())
    assert tmp.exists() and tmp.name.startswith(f".{target.name}.tmp-{p.pid}@")
    return p, tmp


def kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait(30)


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_killed_writers_temporary_goes_with_the_next_write(tmp_path, kind):
    target = tmp_path / "out" / "x.json"
    p, tmp = start_writer(target, kind)
    kill(p)
    assert tmp.exists() and not target.exists()  # SIGKILL: nothing unwinds
    other = tmp_path / "out" / ".y.json.tmp-1@host-0123abcd"  # another target's: not ours to judge
    other.write_text("")
    write_text(target, "done")
    assert target.read_text() == "done" and not tmp.exists() and other.exists()


def test_a_live_writers_temporary_stays(tmp_path):
    target = tmp_path / "x.json"
    p, tmp = start_writer(target, "file")
    try:
        assert not is_stale(tmp)
        write_text(target, "done")
        assert tmp.exists() and tmp.read_text() == "half"
        assert remove_stale_temporaries(tmp_path) == [] and tmp.exists()
    finally:
        kill(p)
    assert is_stale(tmp)
    assert remove_stale_temporaries(tmp_path) == [tmp] and not tmp.exists()


def test_staleness_by_pid_reuse_and_by_age(tmp_path):
    # this host, pid alive but started after the temporary was written: the pid was reused
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        tmp = tmp_path / f".a.npz.tmp-{p.pid}@{_host()}-0123abcd"
        tmp.write_text("")
        assert not is_stale(tmp)
        old = time.time() - 3600
        os.utime(tmp, (old, old))
        assert is_stale(tmp)
    finally:
        kill(p)
    # another host (or an older version's name without one): stale when older than this process
    for name in (".b.npz.tmp-12345@elsewhere-0123abcd", ".b.npz.tmp-12345-0123abcd"):
        t = tmp_path / name
        t.write_text("")
        assert not is_stale(t)
        os.utime(t, (old, old))
        assert is_stale(t)
    # our own temporaries, and names that are not temporaries, never
    mine = _tmp_sibling(tmp_path / "c.npz")
    mine.write_text("")
    os.utime(mine, (old, old))
    assert not is_stale(mine)
    plain = tmp_path / "c.tmp-1-notours"
    plain.write_text("")
    assert not is_stale(plain)


def test_sweep_walks_a_tree(tmp_path):
    deep = tmp_path / "a" / "b"
    p, tmp = start_writer(deep / "batches", "dir")
    kill(p)
    keep = tmp_path / "a" / "batches.tmp-x"
    keep.write_text("")
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert not tmp.exists() and keep.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


# --- Snakemake's lock

#: its job takes a minute while the file `slow` exists
SNAKEFILE = 'rule all:\n    output: "x"\n    shell: "if [ -e slow ]; then sleep 60; fi; touch x"\n'


def test_pipeline_commands_are_recognised():
    assert is_pipeline_command(["/v/bin/python", "/v/bin/snakemake", "--cores", "2"])
    assert is_pipeline_command(["python", "-m", "snakemake", "-s", "Snakefile"])
    assert is_pipeline_command(["/v/bin/python", "/v/bin/intervene", "train"])
    assert is_pipeline_command(["/bin/bash", "-c", "set -euo pipefail;  intervene train --out x > log"])
    assert is_pipeline_command(["python", "-m", "intervene.cli", "train"])
    assert not is_pipeline_command(["/bin/bash", "-c", "sleep 60; touch x"])
    assert not is_pipeline_command(["python", "-m", "pytest", "tests/test_intervene.py"])
    assert not is_pipeline_command([])


def test_lock_recovery_refuses_while_snakemake_runs_and_unlocks_after(tmp_path):
    """The real failure: a SIGKILLed Snakemake leaves its lock and the next run fails; with a live
    one, recovery refuses; with only the dead one's lock, it unlocks and the next run proceeds."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "slow").write_text("")
    assert recover_stale_lock(tmp_path) is False  # never locked: nothing to do
    smk = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not lock_files(tmp_path) and time.time() < deadline:
            time.sleep(0.2)
        assert lock_files(tmp_path), "snakemake did not lock its directory"
        assert smk.pid in [pid for pid, _ in pipeline_processes(tmp_path)]
        with pytest.raises(LockHeld, match=f"pid {smk.pid}"):
            recover_stale_lock(tmp_path)
    finally:
        jobs = psutil.Process(smk.pid).children(recursive=True)
        os.kill(smk.pid, signal.SIGKILL)
        smk.wait(30)
        for j in jobs:  # a SIGKILLed Snakemake leaves its jobs running: end them here
            j.kill()
    assert lock_files(tmp_path)  # the debris: the next run fails
    (tmp_path / "slow").unlink()
    run = [sys.executable, "-m", "snakemake", "--cores", "1"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "LockException" in r.stdout + r.stderr
    assert recover_stale_lock(tmp_path) is True and not lock_files(tmp_path)
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "x").exists(), r.stderr[-2000:]


def test_lock_recovery_refuses_while_a_job_of_a_killed_snakemake_runs(tmp_path):
    """A killed Snakemake's job may still be writing: a stand-in `intervene` process in the folder."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(tmp_path / "x") + "\n")
    job = tmp_path / "bin" / "intervene"
    job.parent.mkdir()
    job.write_text("import time\ntime.sleep(300)\n")
    p = subprocess.Popen([sys.executable, str(job), "train"], cwd=tmp_path)
    try:
        time.sleep(0.5)
        with pytest.raises(LockHeld, match=f"pid {p.pid}"):
            recover_stale_lock(tmp_path)
        # elsewhere it does not count
        other = tmp_path / "other"
        other.mkdir()
        assert pipeline_processes(other) == []
    finally:
        kill(p)
    assert recover_stale_lock(tmp_path) is True and not lock_files(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "intervene.locks", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout == ""  # nothing left to recover
