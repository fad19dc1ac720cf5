"""``python rusage.py LOG PROGRAM ARGS...``: run PROGRAM, then append its resource use to LOG.

The bench puts an ``intervene`` shim on the jobs' PATH that runs the real CLI through this file, so
every stage Snakemake starts is measured by the kernel's own accounting (``wait4``'s rusage: user +
system CPU of all its threads, the peak resident set), not by Snakemake's ``benchmark:``, which
samples every 30 s after the first 30 and can miss a short peak.

The peak resident set counts the pages of memory-mapped files a stage reads (token files,
occurrences, batches): decode at 30 batches of 1024 x 4096 peaks at 1.07 GB, of which 0.56 GB are
the mapped token files and 0.5 GB its own (anonymous) memory. Mapped file pages are clean and the
kernel reclaims them under a job's memory limit, so what a job needs is its anonymous memory; the
kernel keeps no peak of it, so it is sampled here (``RssAnon`` every 20 ms: a buffer large enough to
matter takes longer than that to fill). Standard library only (it runs once per job).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def _anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    log, argv = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    # Snakemake stops jobs with SIGTERM/SIGINT: pass them on, the CLI unwinds its temporary outputs
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _anon_kb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    done.set()
    sampler.join()
    rc = os.waitstatus_to_exitcode(status)
    rec = {
        "argv": argv,
        "cwd": os.getcwd(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "max_rss_mb": round(ru.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "peak_anon_mb": round(peak[0] / 1024, 1),
        "rc": rc,
    }
    with open(log, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
