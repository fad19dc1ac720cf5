"""``python -m benchmarks.scale --pararel PATH [--batches 3 10 30] [--gbs 1024] [--seq-len 4096]``.

Generates OLMo-shaped data for each size (cached under ``--out``), runs every CPU stage through
Snakemake, prints a ``SCALE`` line per stage and size and the projections to one group of 1000
batches, and writes ``benchmarks/results/scale_<machine>.md``, ``scale.json`` and (``--write-fit``)
the resource fit the rules read.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from benchmarks.scale.data import olmo_data, token_pool
from benchmarks.scale.pipeline import interventions, run_size, source_tree
from benchmarks.scale.report import fit_stages, per_stage, scale_lines, write_outputs
from benchmarks.scale.text import ParaRelError, load_pararel
from benchmarks.scale.tokenizer import dolma2_folder


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    p.add_argument("--pararel", required=True, help="ParaRel folder with huggingface/ and search_terms/")
    p.add_argument("--batches", type=int, nargs="+", default=[3, 10, 30], help="sizes (batches per group)")
    p.add_argument("--gbs", type=int, default=1024, help="global batch size (sequences per batch)")
    p.add_argument("--seq-len", type=int, default=4096, help="tokens per sequence")
    p.add_argument("--out", default="benchmarks/out/scale", help="cache and scratch folder (gitignored)")
    p.add_argument(
        "--commit", help="measure this commit (git archive into the cache) instead of the checkout"
    )
    p.add_argument("--pool-docs", type=int, default=16000, help="documents generated and tokenized once")
    p.add_argument("--targets", type=int, default=100, help="synthetic instances learned per checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--machine", default=f"{platform.machine()}_{os.cpu_count()}core", help="results file label"
    )
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--write-fit", help="write the resource fit here (src/intervene/resources_fit.json)")
    p.add_argument("--keep", action="store_true", help="keep each size's pipeline outputs")
    a = p.parse_args(argv)
    sizes = sorted(set(a.batches))
    if len(sizes) < 2 or sizes[0] < 2:
        p.error("--batches: two or more sizes of at least 2 batches are needed for a growth fit")
    out = Path(a.out).resolve()
    cache = out / "cache"
    try:
        pararel = load_pararel(Path(a.pararel).resolve())
    except ParaRelError as e:
        print(f"error: PARAREL: {e}", file=sys.stderr)
        return 2
    source, label = source_tree(cache, a.commit)
    print(
        f"scale bench: {label}, sizes {sizes} of {a.gbs} x {a.seq_len}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    tokenizer = dolma2_folder(cache).resolve()
    pool = token_pool(cache, tokenizer, pararel, docs=a.pool_docs, seed=a.seed)
    runs: dict[int, list[dict]] = {}
    for n in sizes:
        cfg, _ = olmo_data(cache, pool, batches=n, gbs=a.gbs, seq_len=a.seq_len, seed=a.seed)
        run_dir = out / "runs" / f"{a.gbs}x{a.seq_len}-{n}"
        recs = run_size(
            run_dir, source, cfg.resolve(), tokenizer, Path(a.pararel).resolve(), batches=n, targets=a.targets
        )
        runs[n] = recs
        for name, s in per_stage({n: recs}, lambda m: interventions(m)[0]).items():
            print(
                f"SCALE stage={name} batches={n} cpu_s={s['cpu_s'][0]:.1f} rss_gb={s['rss_mb'][0] / 1024:.2f}"
            )
        if not a.keep:
            for sub in ("data", "search", "interventions"):
                shutil.rmtree(run_dir / "results" / sub, ignore_errors=True)
    stages = fit_stages(per_stage(runs, lambda m: interventions(m)[0]), a.gbs, a.seq_len)
    import numpy as np

    z = np.load(pool)
    lengths = np.diff(z["offsets"])
    meta = {
        "commit": label,
        "machine": a.machine,
        "machine_detail": f"{_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        "gbs": a.gbs,
        "seq_len": a.seq_len,
        "sizes": sizes,
        "targets_per_checkpoint": a.targets,
        "data": (
            f"the dolma2 tokenizer of ai2-olmo 0.6.0; a pool of {lengths.size} generated documents "
            f"({z['tokens'].size / 1e6:.1f}M tokens, median {int(np.median(lengths))}, mean {int(lengths.mean())}, "
            f"max {int(lengths.max())} tokens) sampled into the token files; the real ParaRel terms and instances"
        ),
        "command": (
            f'make bench-scale PARAREL=<ParaRel folder> SCALE_BATCHES="{" ".join(map(str, sizes))}" '
            f"SCALE_GBS={a.gbs} SCALE_L={a.seq_len}" + (f" SCALE_COMMIT={a.commit}" if a.commit else "")
        ),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_outputs(stages, meta, Path(a.results_dir), Path(a.write_fit) if a.write_fit else None)
    print("== projections to one group of 1000 batches (1B: 512 x 4096, 7B: 1024 x 4096)")
    for line in scale_lines(stages):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
