"""Per-stage measurements at every size -> growth fits, projections to one group of 1000 batches at
the OLMo 2 shapes, the SCALE lines, ``scale_<machine>.md``, ``scale.json`` and the resource fit the
rules read (``intervene.resources``)."""

from __future__ import annotations

import json
from pathlib import Path

from intervene.atomic import write_text
from intervene.resources import fit_growth, project

#: the paper's groups: 1000 batches of 512 x 4096 (OLMo 2 1B) or 1024 x 4096 (7B)
SHAPES = {"1b": (512, 4096), "7b": (1024, 4096)}
GROUP = 1000
#: what the rules ask for beyond the projection (CPU time -> wall time on a shared node, RSS that
#: depends on the text) and never less than (small jobs: the Python start-up and imports)
HEADROOM = {"mem": 1.5, "time": 2.0}
FLOORS = {"mem_mb": 2000, "runtime_min": 15}
ORDER = (
    "data_order",
    "decode",
    "doc_info",
    "term_vocab",
    "search",
    "term_doc",
    "pair_doc",
    "bm25",
    "learned",
    "learned_indices",
    "select",
    "bm25_window",
    "mapping",
    "swap",
    "memmap",
)


def per_stage(runs: dict[int, list[dict]], k_of) -> dict[str, dict]:
    """Per stage: the sizes, the batches each job reads, and per size the largest job's CPU seconds,
    peak RSS, peak anonymous memory and wall seconds (a stage with several jobs at one size, e.g. select per strategy, is
    sized by its largest job: that is what a job's resources must cover)."""
    out: dict[str, dict] = {}
    for n, recs in sorted(runs.items()):
        for stage in dict.fromkeys(r["stage"] for r in recs):
            jobs = [r for r in recs if r["stage"] == stage]
            s = out.setdefault(
                stage,
                {
                    "sizes": [],
                    "batches": [],
                    "jobs": [],
                    "failed": [],
                    "cpu_s": [],
                    "rss_mb": [],
                    "anon_mb": [],
                    "wall_s": [],
                },
            )
            s["sizes"].append(n)
            s["batches"].append(k_of(n) if stage == "memmap" else n)  # memmap reads the K rewritten batches
            s["jobs"].append(len(jobs))
            s["failed"].append([j.get("out", "") for j in jobs if j["rc"] != 0])
            s["cpu_s"].append(max(j["cpu_s"] for j in jobs))
            s["rss_mb"].append(max(j["max_rss_mb"] for j in jobs))
            s["anon_mb"].append(max(j["peak_anon_mb"] for j in jobs))
            s["wall_s"].append(max(j["wall_s"] for j in jobs))
    return dict(sorted(out.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER)))


def fit_stages(stages: dict[str, dict], gbs: int, seq_len: int) -> dict[str, dict]:
    """Growth fits (per token read) and projections to 1000 batches at each OLMo 2 shape."""
    for s in stages.values():
        tokens = [b * gbs * seq_len for b in s["batches"]]
        if len(set(tokens)) < 2:
            continue
        s["fit"] = {k: fit_growth(tokens, s[k]) for k in ("cpu_s", "rss_mb", "anon_mb")}
        s["projection"] = {}
        for shape, (g, L) in SHAPES.items():
            x = GROUP * g * L
            s["projection"][shape] = {
                "core_h": project(s["fit"]["cpu_s"], x) / 3600,
                "rss_gb": project(s["fit"]["rss_mb"], x) / 1024,
                "anon_gb": project(s["fit"]["anon_mb"], x) / 1024,
            }
    return stages


def scale_lines(stages: dict[str, dict]) -> list[str]:
    lines = []
    for name, s in stages.items():
        if "projection" not in s:
            continue
        for shape, p in s["projection"].items():
            lines.append(
                f"SCALE stage={name} shape={shape} batches={s['batches'][-1]} cpu_s={s['cpu_s'][-1]:.1f}"
                f" rss_gb={s['rss_mb'][-1] / 1024:.2f} anon_gb={s['anon_mb'][-1] / 1024:.2f}"
                f" exponent={s['fit']['cpu_s']['exponent_all']:.2f}"
                f" anon_exponent={s['fit']['anon_mb']['exponent_all']:.2f}"
                f" rss_exponent={s['fit']['rss_mb']['exponent_all']:.2f} projected_core_h={p['core_h']:.3f}"
                f" projected_rss_gb={p['rss_gb']:.2f} projected_anon_gb={p['anon_gb']:.2f}"
            )
    return lines


def resource_fit(stages: dict[str, dict], meta: dict) -> dict:
    """The data file ``intervene.resources`` reads."""
    return {
        "about": "CPU seconds and peak RSS (MB) per job vs tokens read; written by make bench-scale",
        "measured": meta,
        "headroom": HEADROOM,
        "floors": FLOORS,
        # memory from the anonymous peak: mapped file pages are reclaimed under a job's limit
        "stages": {
            n: {"cpu_s": s["fit"]["cpu_s"], "mem_mb": s["fit"]["anon_mb"]}
            for n, s in stages.items()
            if "fit" in s
        },
    }


def markdown(stages: dict[str, dict], meta: dict) -> str:
    sizes = sorted({n for s in stages.values() for n in s["sizes"]})
    head = "| stage | " + " | ".join(f"{n} batches" for n in sizes) + " | exponent (time, anon) |"
    head += " 1000 batches, 1B (512 x 4096) | 1000 batches, 7B (1024 x 4096) |"
    rows = [head, "|" + "---|" * (len(sizes) + 4)]
    for name, s in stages.items():
        cells = []
        for n in sizes:
            if n in s["sizes"]:
                i = s["sizes"].index(n)
                cells.append(
                    f"{s['cpu_s'][i]:.1f} s, {s['anon_mb'][i] / 1024:.2f} / {s['rss_mb'][i] / 1024:.2f} GB"
                )
            else:
                cells.append("")
        if "fit" in s:
            f = s["fit"]
            cells.append(f"{f['cpu_s']['exponent_all']:.2f}, {f['anon_mb']['exponent_all']:.2f}")
            cells += [
                f"{p['core_h']:.2f} core-h, {p['anon_gb']:.1f} / {p['rss_gb']:.1f} GB"
                for p in (s["projection"][k] for k in SHAPES)
            ]
        else:
            cells += ["", "", ""]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return (
        f"# Scale benchmark: every CPU stage through Snakemake ({meta['machine']})\n\n"
        f"Command: `{meta['command']}`\n\n"
        f"Code measured: {meta['commit']}. Machine: {meta['machine_detail']}. Data: {meta['data']}.\n\n"
        "Per stage and size: CPU seconds (user + system, all threads), peak anonymous memory / peak RSS of "
        "the stage's largest job. CPU time and peak RSS from the kernel's accounting of each job (wait4); "
        "the anonymous peak sampled every 20 ms (RssAnon). Peak RSS also counts the pages of memory-mapped "
        "files a stage reads (token files, occurrences), which the kernel reclaims under a job's memory "
        "limit: the rules ask for the anonymous peak with headroom. A size of N batches is one group "
        f"holding batches [0, N) of {meta['gbs']} x {meta['seq_len']} tokens; memmap reads the rewritten "
        "window (N/3 batches). Exponent: the log-log slope of time and anonymous memory against the batches read, over "
        "all sizes (1 = linear; fixed start-up costs pull it below 1 at small sizes). Projections: the "
        "larger of the line through the two largest sizes and the power law through the largest (exponent of the "
        "two largest sizes), at one group of 1000 batches.\n\n" + "\n".join(rows) + "\n" + failures(stages)
    )


def failures(stages: dict[str, dict]) -> str:
    """Jobs that exited non-zero (measured all the same: they ran to their end or their error)."""
    lines = [
        f"- {name} at {n} batches: {out} (see the run's logs/)"
        for name, s in stages.items()
        for n, outs in zip(s["sizes"], s["failed"], strict=True)
        for out in outs
    ]
    return (
        "\nJobs that failed (their time and memory are included above):\n\n" + "\n".join(lines) + "\n"
        if lines
        else ""
    )


def write_outputs(stages: dict, meta: dict, results_dir: Path, fit_path: Path | None) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    write_text(results_dir / f"scale_{meta['machine']}.md", markdown(stages, meta))
    write_text(results_dir / "scale.json", json.dumps({"meta": meta, "stages": stages}, indent=1) + "\n")
    if fit_path is not None:
        write_text(fit_path, json.dumps(resource_fit(stages, meta), indent=1) + "\n")
