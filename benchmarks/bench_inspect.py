"""``intervene inspect`` at the OLMo 2 7B shape: one step (1024 x 4096 uint32 tokens) of a run whose
order holds ~950M instances over 1122 token files, and "which steps read this document" over that
order.

The layout is sparse: every token file and ``global_indices.npy`` has its real size (15.6 TB and
3.8 GB apparent), but only the step's slice of the order and the step's instances (with a margin, so
that the EOS scans before and after a document stop) hold data, filled with documents of the scale
benchmark's dolma2 token pool when it is cached (``benchmarks/out/scale/cache/pool-*.npz``), else
random tokens. Disk used: ~100 MB, plus the side-car indexes of the side-car case. Each measurement
runs in its own process (time and peak RSS of that process).

    python -m benchmarks.bench_inspect [--instances 950000000] [--files 1122] [--sidecar-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / "out" / "scale" / "cache"
EOS, L, GBS, STEP = 100257, 4096, 1024, 3001
MARGIN = 8192  # tokens of data before and after each instance of the step


def _docs(rng, pool: tuple[np.ndarray, np.ndarray] | None, n: int) -> np.ndarray:
    """``n`` tokens of documents each ending in EOS (pool documents, else random token runs)."""
    out, size = [], 0
    while size < n:
        if pool is not None:
            toks, off = pool
            i = int(rng.integers(off.size - 1))
            d = toks[off[i] : off[i + 1]]
        else:
            d = rng.integers(300, 90000, int(rng.lognormal(6, 1)) + 1).astype(np.uint32)
        out += [d, np.array([EOS], np.uint32)]
        size += d.size + 1
    return np.concatenate(out)[:n]


def build(root: Path, n_inst: int, n_files: int, pool_path: Path | None, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pool = None
    if pool_path is not None:
        z = np.load(pool_path)
        pool = (z["tokens"], z["offsets"])
    w = 0.5 + rng.random(n_files)  # unequal files, like real shards
    counts = np.floor(w / w.sum() * n_inst).astype(np.int64)
    counts[-1] += n_inst - counts.sum()
    starts = np.concatenate([[0], np.cumsum(counts)])
    data = root / "data"
    data.mkdir(parents=True)
    paths = []
    for k, c in enumerate(counts):
        p = data / f"part-{k:04d}.npy"
        with open(p, "wb") as fh:
            fh.truncate(int(c) * L * 4 + 4 * 123)  # sparse; a few trailing tokens no instance holds
        paths.append(str(p))
    cfg = {
        "seed": 6198,
        "global_train_batch_size": GBS,
        "model": {"max_sequence_length": L, "eos_token_id": EOS, "pad_token_id": 100277},
        "data": {"paths": paths, "memmap_dtype": "uint32", "drop_last": False},
    }
    (root / "train_config.yaml").write_text(yaml.safe_dump(cfg))
    # the step's instances: distinct, not instance 0 (the sparse order's holes read as 0)
    inst: set[int] = set()
    while len(inst) < GBS:
        inst.update(int(x) for x in rng.integers(1, n_inst, GBS - len(inst)))
    idx = np.array(sorted(inst), dtype=np.uint32)
    rng.shuffle(idx)
    order = root / "global_indices.npy"
    with open(order, "wb") as fh:
        fh.truncate(n_inst * 4)
    mm = np.memmap(order, dtype=np.uint32, mode="r+")
    mm[(STEP - 1) * GBS : STEP * GBS] = idx
    mm.flush()
    del mm
    for g in idx.tolist():
        k = int(np.searchsorted(starts, g, side="right") - 1)
        j = g - int(starts[k])
        lo, hi = max(0, j * L - MARGIN), min(int(counts[k]) * L, (j + 1) * L + MARGIN)
        f = np.memmap(paths[k], dtype=np.uint32, mode="r+")
        f[lo:hi] = _docs(rng, pool, hi - lo)
        f[lo], f[hi - 1] = EOS, EOS  # the scans for a document's ends stop inside the margin
        f.flush()
        del f
    return {"paths": paths, "counts": counts.tolist(), "instances": idx.tolist()}


def write_sidecar_index(root: Path, paths: list[str], touched: set[int], rows: int, cache: Path) -> None:
    """Side-car indexes (as ``--sidecar-cache`` keeps them) for the files the step touches: ``rows``
    documents each, spread evenly over the file, plus the documents around the step's instances
    taken from the tokens (EOS to EOS), and a ``.csv.gz`` of the same rows beside the file."""
    import gzip

    from intervene.inspect_steps import cached_sidecar, sidecar_path

    for k in sorted(touched):
        f = np.memmap(paths[k], dtype=np.uint32, mode="r")
        n = f.size
        after_eos, regions = _data_regions(f)
        even = np.linspace(0, n, rows + 1, dtype=np.int64)
        for lo, hi in regions:  # no even cut inside a written region: its documents end at EOS
            even = even[(even <= lo) | (even >= hi)]
        cuts = np.unique(np.concatenate([even, after_eos, [n]]))
        s, e = cuts[:-1], cuts[1:]
        text = "".join(
            f"{a},{b},doc-{k}-{i},s3://bucket/src-{k}.json.gz,{i}\n"
            for i, (a, b) in enumerate(zip(s, e, strict=True))
        )
        sidecar_path(paths[k]).write_bytes(gzip.compress(text.encode(), 1))
        cached_sidecar(sidecar_path(paths[k]), cache)


def _data_regions(f: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Offsets just after each EOS in the file's written regions, and the regions (token ranges;
    holes skipped by SEEK_DATA/SEEK_HOLE)."""
    import os

    out, regions = [], []
    fd = os.open(f.filename, os.O_RDONLY)
    try:
        pos, size = 0, os.fstat(fd).st_size
        while pos < size:
            try:
                a = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            b = os.lseek(fd, a, os.SEEK_HOLE)
            lo, hi = a // 4, b // 4
            regions.append((lo, hi))
            out.append(lo + np.flatnonzero(np.asarray(f[lo:hi]) == EOS) + 1)
            pos = b
    finally:
        os.close(fd)
    return (np.concatenate(out) if out else np.zeros(0, np.int64)), regions


def measure(kind: str, root: Path, tokenizer: Path, extra: list[str]) -> dict:
    """Run one measurement in a child process; its wall time and peak RSS."""
    code = (
        "import json,resource,sys,time\n"
        "t=time.perf_counter()\n"
        "from intervene.cli import main\n"
        f"rc=main({[kind, '--train-config', str(root / 'train_config.yaml'), '--order', str(root / 'global_indices.npy'), *extra]!r})\n"
        "print(json.dumps({'rc':rc,'s':time.perf_counter()-t,"
        "'rss_mb':resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}),file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("{")]
    if p.returncode or not line:
        raise RuntimeError(f"{kind} failed: {p.stderr[-2000:]}")
    r = json.loads(line[-1])
    r["log"] = [ln for ln in p.stderr.splitlines() if "intervene.inspect_steps" in ln]
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=950_000_000)
    ap.add_argument("--files", type=int, default=1122)
    ap.add_argument("--sidecar-rows", type=int, default=20_000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    pools = sorted(CACHE.glob("pool-*.npz"))
    tok = CACHE / "dolma2"
    if not (tok / "tokenizer_config.json").exists():
        from benchmarks.scale.tokenizer import dolma2_folder

        tok = dolma2_folder(CACHE)
    root = Path(tempfile.mkdtemp(prefix="bench-inspect-"))
    try:
        t = time.perf_counter()
        info = build(root, a.instances, a.files, pools[-1] if pools else None)
        print(
            f"layout: {a.instances:,} instances, {a.files} files, step {STEP}; built in {time.perf_counter() - t:.0f} s"
        )
        print(f"  tokens from {'the dolma2 pool ' + pools[-1].name if pools else 'random token runs'}")
        out = root / "out"
        out.mkdir()
        r0 = measure("inspect", root, tok, ["--tokenizer", str(tok), "--step", str(STEP), "--out", str(out / "a.jsonl"), "--no-sidecars"])  # fmt: skip
        recs = [json.loads(x) for x in (out / "a.jsonl").read_text().splitlines()]
        n_docs = sum(len(r["documents"]) for r in recs)
        print(f"one step, no side-cars (the downloaded OLMo 2 data): {r0['s']:.2f} s, peak RSS {r0['rss_mb']:.0f} MB; "
              f"{len(recs)} instances, {n_docs} documents")  # fmt: skip
        for ln in r0["log"]:
            print("   ", ln.split(": ", 1)[-1])
        r1 = measure("inspect", root, tok, ["--tokenizer", str(tok), "--step", str(STEP), "--out", str(out / "a.html")])  # fmt: skip
        print(f"  same step as HTML: {r1['s']:.2f} s, peak RSS {r1['rss_mb']:.0f} MB")
        # the inverse: a document of the step's instance in the middle of the batch
        d = recs[GBS // 2]["documents"][0]
        query = f"{recs[GBS // 2]['file_index']}@{d['doc_start']}"
        r2 = measure("inspect-document", root, tok, ["--document", query, "--out", str(out / "doc.jsonl")])
        (doc,) = [json.loads(x) for x in (out / "doc.jsonl").read_text().splitlines()]
        assert STEP in doc["steps"], doc
        print(f"which steps read {query} ({doc['doc_tokens']} tokens): steps {doc['steps']} in {r2['s']:.2f} s, "
              f"peak RSS {r2['rss_mb']:.0f} MB")  # fmt: skip
        for ln in r2["log"]:
            print("   ", ln.split(": ", 1)[-1])
        # side-cars: indexes of the touched files (built outside the timing), then a step with them
        touched = {r["file_index"] for r in recs}
        cache = root / "sidecar_index"
        t = time.perf_counter()
        write_sidecar_index(root, info["paths"], touched, a.sidecar_rows, cache)
        print(f"side-cars for the {len(touched)} touched files (>= {a.sidecar_rows:,} rows each): "
              f"written and indexed in {time.perf_counter() - t:.0f} s")  # fmt: skip
        r3 = measure("inspect", root, tok, ["--tokenizer", str(tok), "--step", str(STEP), "--out", str(out / "b.jsonl"), "--sidecar-cache", str(cache)])  # fmt: skip
        recs_b = [json.loads(x) for x in (out / "b.jsonl").read_text().splitlines()]
        same = all(
            (x["doc_start"], x["doc_end"]) == (y["doc_start"], y["doc_end"])
            for p, q in zip(recs, recs_b, strict=True) for x, y in zip(p["documents"], q["documents"], strict=True)
        )  # fmt: skip
        print(f"one step with side-car indexes: {r3['s']:.2f} s, peak RSS {r3['rss_mb']:.0f} MB; "
              f"spans equal to the EOS scan's: {same}")  # fmt: skip
        # parsing a side-car the first time (what an index saves), rows per second
        from intervene.inspect_steps import read_sidecar, sidecar_path

        k = sorted(touched)[0]
        t = time.perf_counter()
        sc = read_sidecar(sidecar_path(info["paths"][k]))
        dt = time.perf_counter() - t
        print(
            f"parsing one .csv.gz side-car: {sc.starts.size:,} rows in {dt:.2f} s ({sc.starts.size / dt / 1e6:.2f} M rows/s)"
        )
        print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    finally:
        if a.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
