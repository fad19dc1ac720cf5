"""``python -m benchmarks``: run every benchmark and print the BENCH lines again at the end."""

from __future__ import annotations

import platform

from benchmarks import (
    bench_bm25,
    bench_data_order,
    bench_decode,
    bench_docinfo,
    bench_eval,
    bench_mapping,
    bench_matrices,
    bench_search,
)


def main() -> None:
    import os

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} python={platform.python_version()}"
    )
    lines = []
    for mod in (
        bench_docinfo,
        bench_decode,
        bench_data_order,
        bench_eval,
        bench_mapping,
        bench_search,
        bench_matrices,
        bench_bm25,
    ):
        print(f"== {mod.__name__.split('.')[-1]}")
        lines.append(mod.run())
    print("== summary")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
