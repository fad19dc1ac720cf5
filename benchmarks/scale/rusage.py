"""``python rusage.py LOG PROGRAM ARGS...``: run PROGRAM, then append its exact resource use to LOG.

The bench puts an ``intervene`` shim on the jobs' PATH that runs the real CLI through this file, so
every stage Snakemake starts is measured by the kernel's own accounting (``wait4``'s rusage: user +
system CPU of all its threads, the peak resident set), not by sampling: Snakemake's ``benchmark:``
samples every 30 s after the first 30 and can miss a short peak. Kept free of imports beyond the
standard library (it runs once per job).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def main() -> int:
    log, argv = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    # Snakemake stops jobs with SIGTERM/SIGINT: pass them on, the CLI unwinds its temporary outputs
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status, ru = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    rc = os.waitstatus_to_exitcode(status)
    rec = {
        "argv": argv,
        "cwd": os.getcwd(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "max_rss_mb": round(ru.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "rc": rc,
    }
    with open(log, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
