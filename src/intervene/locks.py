"""Recover a working directory from the Snakemake lock of a killed run, never from a live run's.

Snakemake locks its working directory (``.snakemake/locks/``) while it runs and removes the lock when
it ends; a hard kill (SIGKILL, a lost terminal, the OOM killer) leaves the lock behind and the next
run fails with a ``LockException``. ``python -m intervene.locks`` (run by ``make demo`` first)
unlocks with ``snakemake --unlock`` only when no process of the pipeline still works in the folder:
no ``snakemake``, and no job it started (``intervene``, ``torchrun``, their shells), which a killed
Snakemake leaves running. Only processes of this machine can be seen: a Snakemake running on another
host over a shared filesystem is not detected (``make demo`` is the local pipeline).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

#: Lock files of Snakemake's file persistence (snakemake/persistence/file.py): ``{n}.input.lock``
_LOCK_FILE = re.compile(r"^\d+\.(input|output)\.lock$")
_PROGRAMS = {"snakemake", "intervene", "torchrun"}
_MODULES = {"snakemake", "intervene.cli", "torch.distributed.run"}
_SHELLS = {"sh", "bash", "dash", "zsh"}
_IN_SHELL = re.compile(r"(^|[\s/;&|(])(snakemake|intervene|torchrun)(\s|$)")


class LockHeld(RuntimeError):
    """The lock belongs to a live run."""


def lock_files(workdir: str | os.PathLike = ".") -> list[Path]:
    d = Path(workdir) / ".snakemake" / "locks"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _LOCK_FILE.match(p.name))


def is_pipeline_command(cmdline: list[str]) -> bool:
    """A Snakemake process or a job of the pipeline, from its argv."""
    if not cmdline:
        return False
    head = [os.path.basename(a) for a in cmdline[:2]]
    if _PROGRAMS & set(head):
        return True
    if "-m" in cmdline[:3]:
        i = cmdline.index("-m")
        if i + 1 < len(cmdline) and cmdline[i + 1] in _MODULES:
            return True
    if head[0] in _SHELLS and "-c" in cmdline[1:3]:
        i = cmdline.index("-c")
        return i + 1 < len(cmdline) and bool(_IN_SHELL.search(cmdline[i + 1]))
    return False


def _directory_arg(cmdline: list[str]) -> str | None:
    """The ``--directory``/``-d`` a Snakemake was given, if any."""
    for i, a in enumerate(cmdline):
        if a in ("--directory", "-d") and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if a.startswith("--directory="):
            return a.split("=", 1)[1]
    return None


def pipeline_processes(workdir: str | os.PathLike = ".") -> list[tuple[int, str]]:
    """(pid, command) of the pipeline's processes working in ``workdir`` on this machine (its current
    directory, or a Snakemake's ``--directory``), not counting this process and its ancestors."""
    import psutil

    target = os.path.realpath(workdir)
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["pid"] in skip or not is_pipeline_command(cmd):
            continue
        try:
            cwd = p.cwd()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        dirs = {os.path.realpath(cwd)}
        if (d := _directory_arg(cmd)) is not None:
            dirs.add(os.path.realpath(os.path.join(cwd, d)))
        if target in dirs:
            found.append((p.info["pid"], " ".join(cmd)[:120]))
    return found


def recover_stale_lock(workdir: str | os.PathLike = ".", snakefile: str | os.PathLike | None = None) -> bool:
    """Unlock ``workdir`` when its lock is stale; True if it unlocked, False if it was not locked.

    Raises :class:`LockHeld` (naming the processes) when a pipeline process still works there.
    """
    locks = lock_files(workdir)
    if not locks:
        return False
    live = pipeline_processes(workdir)
    if live:
        procs = "; ".join(f"pid {pid}: {cmd}" for pid, cmd in live[:5])
        raise LockHeld(
            f"{os.path.abspath(workdir)}: locked by a running pipeline ({procs}); wait for it or stop it"
        )
    cmd = [sys.executable, "-m", "snakemake", "--unlock"]
    if snakefile is not None:
        cmd += ["--snakefile", str(snakefile)]
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0 or lock_files(workdir):
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"{os.path.abspath(workdir)}: snakemake --unlock failed: {tail[0]}")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m intervene.locks",
        description="remove a Snakemake lock left by a killed run (refuses while the pipeline runs)",
    )
    ap.add_argument("--directory", default=".", help="Snakemake working directory (default: .)")
    ap.add_argument("--snakefile", help="default: Snakemake's own search in the directory")
    a = ap.parse_args(argv)
    try:
        if recover_stale_lock(a.directory, a.snakefile):
            print(
                f"{a.directory}: removed the lock of a killed Snakemake run (no pipeline process runs there)"
            )
    except (LockHeld, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
