"""One size of the scale benchmark: a pipeline config over the generated data, every CPU stage run
through Snakemake (the repository's Snakefile, ``--directory`` a scratch folder), and each job's CPU
time and peak RSS read from the kernel (``rusage.py`` behind an ``intervene`` shim on the jobs' PATH).

The selection, mapping and swap stages need the original run's evaluation labels, which come from a
trained model. The bench writes synthetic ``labels.npz`` (each ParaRel instance learned at a random
checkpoint, or never) and runs the rest through Snakemake with ``--allowed-rules`` naming the rules
downstream of the labels, so no evaluation is attempted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from intervene.atomic import write_npz, write_text
from intervene.evaluation.tasks import PARAREL_RELATIONS, pararel_split

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: rules run after the synthetic labels (everything downstream of the evaluation, up to the rewritten
#: token files); their CLI subcommands map to these names in ``stage_of``
DOWNSTREAM_RULES = ("learned", "learned_indices", "select", "bm25_window", "mapping", "swap", "memmap")
SUBCOMMAND_STAGE = {
    "data-order": "data_order",
    "decode": "decode",
    "doc-info": "doc_info",
    "term-vocab": "term_vocab",
    "search": "search",
    "term-doc": "term_doc",
    "pair-doc": "pair_doc",
    "bm25": "bm25",
    "learned": "learned",
    "learned-indices": "learned_indices",
    "select": "select",
    "bm25-window": "bm25_window",
    "map-docs": "mapping",
    "swap": "swap",
    "memmap": "memmap",
}


def interventions(batches: int) -> tuple[int, dict]:
    """Interval K and the rm_occ-like interventions at checkpoint c = K: window(c) = [0, K), the
    following windows [K, 2K) and [2K, 3K) (rm_occ reads both): the whole group."""
    k = max(1, batches // 3)
    return k, {
        f"rm_occ_{k}": {"strategy": "rm_occ", "checkpoint": k, "n_drop": 5},
        f"rm_coocc_{k}": {"strategy": "rm_coocc", "checkpoint": k},
        f"add_coocc_{k}": {"strategy": "add_coocc", "checkpoint": k},
        f"bm25_{k}": {
            "strategy": "bm25_mapping",
            "checkpoint": k,
            "per_inst": 10,
            "query": "subject",
            "datasets": ["pararel"],
        },
    }


def pipeline_config(train_config: Path, tokenizer: Path, pararel: Path, batches: int) -> dict:
    """The pipeline config of one size: local data, one group holding batches [0, batches), the 12
    ParaRel relations matched with their real terms and BM25 (subject queries, k = 10000 as in the
    full-scale configs)."""
    k, iv = interventions(batches)
    return {
        "data": {
            "train_config": str(train_config),
            "tokenizer": str(tokenizer),
            "source": "local",
            "download": {"root": "resources/data", "num_shards": 1, "workers": 1},
            "world_size": 1,
        },
        "decode": {"batches_per_group": batches, "first_batch": 0, "last_batch": batches},
        "train": {"backend": "builtin", "device": "cpu", "nproc": 1, "save_interval": k, "original": False},
        "eval": {
            "backend": "builtin",
            "tasks": ["pararel"],
            "sources": {"pararel": str(pararel / "huggingface")},
            "metric": "acc_per_token",
            "device": "cpu",
            "steps": [0, k, 2 * k, 3 * k],
            "target_steps": [k],
        },
        "match": {
            "terms_dir": str(pararel / "search_terms"),
            "mode": "literal",
            "bm25": {
                "groups": ["001"],
                "query": "subject",
                "method": "okapi",
                "tokenizer": "bm25s_en",
                "k": 10000,
            },
        },
        "interventions": iv,
    }


def synthetic_labels(path: Path, pararel: Path, steps: list[int], targets: int, seed: int = 0) -> int:
    """``labels.npz`` as ``intervene labels`` writes it for the 12 relations: ``targets`` instances
    learned at each checkpoint (incorrect before it, correct from it on), drawn at random; the rest
    never learned. A fixed number per checkpoint, so the selections' work grows with the data only
    (a mapping needs ``per_inst`` unused source documents per target: the window must hold them)."""
    labels_of: list[str] = []
    for rel in PARAREL_RELATIONS:
        _, ds = pararel_split(pararel / "huggingface", rel)
        labels_of += [rel] * len(ds)
    rng = np.random.default_rng(seed)
    n, c = len(labels_of), len(steps)
    at = np.full(n, c)
    at[rng.permutation(n)[: c * targets]] = np.repeat(np.arange(c), targets)
    labels = (np.arange(c)[None, :] >= at[:, None]).astype(np.int8)
    write_npz(path, steps=np.array(steps), dataset_labels=np.array(labels_of), labels=labels)
    return n


def source_tree(cache: Path, commit: str | None) -> tuple[Path, str]:
    """The tree to measure and its label: this checkout (``HEAD`` plus ``+dirty`` when it has
    uncommitted changes), or ``commit`` exported with ``git archive`` into the cache and its Cython
    kernels built there (so a measurement names exactly the code it ran)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout

    if commit is None:
        head = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "src", "workflow", "Snakefile").strip()
        )
        return REPO, head + ("+dirty" if dirty else "")
    sha = git("rev-parse", "--short=12", f"{commit}^{{commit}}").strip()
    root = cache / f"src-{sha}"
    if not (root / ".built").exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=root,
            check=True,
            capture_output=True,
        )
        (root / ".built").touch()
    return root, sha


def _shim(bin_dir: Path, source: Path) -> None:
    """``bin_dir/intervene``: the CLI of ``source`` under ``rusage.py`` (log file from
    $SCALE_RUSAGE_LOG)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "intervene"
    write_text(
        script,
        f'#!/bin/sh\nPYTHONPATH="{source / "src"}" exec "{sys.executable}"'
        f' "{Path(__file__).with_name("rusage.py")}" "$SCALE_RUSAGE_LOG"'
        f' "{sys.executable}" -m intervene.cli "$@"\n',
    )
    script.chmod(0o755)


def snakemake(run_dir: Path, source: Path, targets: list[str], *extra: str) -> bool:
    """Run ``targets``; with --keep-going, so that a stage that fails (measured, its rc recorded by
    the shim) does not stop the others. False when a job failed; an error when Snakemake failed
    without a job failing (a config or DAG error)."""
    log = run_dir / "rusage.jsonl"
    env = {
        **os.environ,
        "PATH": f"{run_dir / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "SCALE_RUSAGE_LOG": str(log),
    }
    cmd = [str(BIN / "snakemake"), *targets, "-s", str(source / "Snakefile"), "--directory", str(run_dir)]
    cmd += ["--configfile", str(run_dir / "config.yaml"), "--replace-workflow-config"]
    cmd += ["--cores", "1", "--keep-going", "--quiet", "rules", *extra]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    failed = log.exists() and any(json.loads(x)["rc"] != 0 for x in log.read_text().splitlines())
    if r.returncode != 0 and not failed:
        raise RuntimeError(
            f"snakemake failed in {run_dir} (logs under {run_dir / 'logs'}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
    return r.returncode == 0


def run_size(
    out: Path,
    source: Path,
    train_config: Path,
    tokenizer: Path,
    pararel: Path,
    *,
    batches: int,
    targets: int = 100,
) -> list[dict]:
    """Run every CPU stage at one size in a fresh ``out``; the per-job measurements."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _shim(out / "bin", source)
    cfg = pipeline_config(train_config, tokenizer, pararel, batches)
    write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    snakemake(
        out,
        source,
        ["results/search/term_doc/001", "results/search/pair_doc/001", "results/search/bm25/001.npz"],
    )
    k = cfg["train"]["save_interval"]
    synthetic_labels(out / "results/eval/original/labels.npz", pararel, cfg["eval"]["steps"], targets)
    names = list(cfg["interventions"])
    snakemake(
        out,
        source,
        [f"results/interventions/{n}/memmap" for n in names],
        "--allowed-rules",
        *DOWNSTREAM_RULES,
    )
    print(f"  pipeline at {batches} batches: {time.perf_counter() - t0:.0f} s wall (K = {k})", flush=True)
    recs = [json.loads(line) for line in (out / "rusage.jsonl").read_text().splitlines()]
    for r in recs:
        sub = next(a for a in r["argv"] if a in SUBCOMMAND_STAGE)
        r["stage"] = SUBCOMMAND_STAGE[sub]
        r["argv"] = r["argv"][r["argv"].index(sub) :]
        if r["rc"] != 0:  # measured all the same; reported as a failure with its log
            a = r["argv"]
            out_arg = next((a[i + 1] for i in range(len(a) - 1) if a[i] in ("--out", "--out-dir")), "")
            r["out"] = out_arg
            print(f"SCALE_FAIL stage={r['stage']} batches={batches} rc={r['rc']} out={out_arg}", flush=True)
    return recs
