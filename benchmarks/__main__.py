"""``python -m benchmarks``: run every benchmark and print all their BENCH lines again at the end."""

from __future__ import annotations

import contextlib
import io
import platform
import sys

from benchmarks import (
    bench_bm25,
    bench_data_order,
    bench_decode,
    bench_doc_info,
    bench_eval,
    bench_mapping,
    bench_matrices,
    bench_search,
)


class _Tee(io.TextIOBase):
    """Writes through to the real stdout and keeps every ``BENCH`` line printed."""

    def __init__(self, out):
        self.out, self.lines, self._part = out, [], ""

    def write(self, s: str) -> int:
        self.out.write(s)
        self._part += s
        *done, self._part = self._part.split("\n")
        self.lines += [ln for ln in done if ln.startswith("BENCH ")]
        return len(s)

    def flush(self) -> None:
        self.out.flush()


def main() -> None:
    import os

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} python={platform.python_version()}"
    )
    lines: list[str] = []
    for mod in (
        bench_doc_info,
        bench_decode,
        bench_data_order,
        bench_eval,
        bench_mapping,
        bench_search,
        bench_matrices,
        bench_bm25,
    ):
        print(f"== {mod.__name__.split('.')[-1]}")
        tee = _Tee(sys.stdout)
        with contextlib.redirect_stdout(tee):
            ret = mod.run()
        # every BENCH line the bench printed; a returned one it did not print is kept too
        # (run() may return one line, a list of them, or nothing)
        returned = [ret] if isinstance(ret, str) else list(ret or [])
        lines += tee.lines + [ln for ln in returned if ln not in tee.lines]
    print("== summary")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
