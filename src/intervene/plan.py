"""The plan of an experiment before it runs: jobs per rule, GPU jobs, windows, download size.

Full scale means hundreds of jobs and thousands of GPU hours, so a researcher checks the plan
first. The jobs and their resources come from Snakemake itself (a dry run's job events, see
:func:`watch_dry_run`), never from a second count of the DAG here, so the plan cannot drift from
what the workflow will submit; the windows, checkpoints and data sizes come from the config
through :mod:`intervene.layout` (the functions the rules call).

Two ways in: ``snakemake -n`` prints the summary of the jobs still to run when it exits (the hook
in ``workflow/rules/plan.smk``), and ``intervene plan`` (:func:`make_plan`) plans the whole
experiment from nothing in a scratch work folder and renders the graphs (``make dag``). A job DAG
of hundreds of jobs is unreadable as a picture, so the picture of record is the rule graph with
each rule's job count and GPUs (:func:`plan_dot`); the full job DAG is rendered too, for search.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import yaml

from intervene import layout

#: The download stage's per-shard manifests (``workflow/rules/download.smk``: url, path, bytes).
DOWNLOAD_MANIFEST = "resources/manifests/shard_{shard}.tsv"
#: The data-order stage's manifest of token files (path, bytes per file).
DATA_FILES = f"{layout.DATA_DIR}/data_files.tsv"
#: Environment variable naming the JSON file a dry run writes its plan to (read by make_plan).
PLAN_JSON_ENV = "INTERVENE_PLAN_JSON"
#: Graph files ``intervene plan --out`` renders with graphviz.
FORMATS = ("svg", "pdf")


class PlanError(RuntimeError):
    """The plan could not be made (a failed dry run, jobs that disagree with Snakemake's count)."""


# -- jobs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One job of the DAG: its rule and the GPUs it asks for (0: a CPU job) on how many nodes."""

    rule: str
    gpus: int = 0
    nodes: int = 1
    partition: str = ""


def job_gpus(resources: Mapping[str, object]) -> tuple[int, int]:
    """(GPUs, nodes) of a job from its Snakemake resources: ``gpu`` (Slurm ``--gpus``, one node),
    or ``gres: gpu[:type]:N`` per node times ``nodes`` (the multi-node training jobs)."""
    nodes = int(resources.get("nodes") or 1)
    gpus = int(resources.get("gpu") or 0)
    gres = str(resources.get("gres") or "")
    m = re.fullmatch(r"gpu(?::[^:,]+)?:(\d+)", gres)
    if gres and not m:
        raise PlanError(f"resource gres={gres!r} is not gpu[:type]:N")
    if m:
        gpus = max(gpus, int(m[1]) * nodes)
    return gpus, nodes


@dataclass(frozen=True)
class RuleRow:
    """A rule's line of the plan: its jobs, GPUs per job (several values when they differ), the
    Slurm partition the profile sends it to (empty when no profile names one) and whether it is a
    local rule (run by the submitting Snakemake, not submitted)."""

    rule: str
    jobs: int
    gpus_per_job: tuple[int, ...]
    nodes: int
    partition: str = ""
    local: bool = False

    @property
    def gpu_total(self) -> int:
        """GPUs of all the rule's jobs together (what a fully parallel run holds at once)."""
        return self.jobs * max(self.gpus_per_job) if self.gpus_per_job else 0


def rule_rows(
    jobs: Iterable[Job],
    order: Sequence[str] = (),
    partitions: Mapping[str, str] | None = None,
    local_rules: Iterable[str] = (),
) -> list[RuleRow]:
    """One row per rule, in ``order`` (Snakemake's topological order of its job stats) and then by
    name for rules it does not list."""
    jobs = list(jobs)
    counts = Counter(j.rule for j in jobs)
    rank = {r: i for i, r in enumerate(order)}
    local = set(local_rules)
    rows = []
    for rule in sorted(counts, key=lambda r: (rank.get(r, len(rank)), r)):
        mine = [j for j in jobs if j.rule == rule]
        gpus = tuple(sorted({j.gpus for j in mine if j.gpus}))
        nodes = max(j.nodes for j in mine)
        part = next((j.partition for j in mine if j.partition), "") or _partition_of(partitions or {}, rule)
        rows.append(RuleRow(rule, counts[rule], gpus, nodes, part, rule in local))
    return rows


def profile_partitions(profile: str | os.PathLike | None) -> dict[str, str]:
    """Rule -> ``slurm_partition`` of a Snakemake profile (``set-resources``, else the
    ``default-resources`` one under ``*``); empty without a profile."""
    if profile is None:
        return {}
    path = Path(profile)
    if path.is_dir():
        path = path / "config.yaml"
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PlanError(f"{path}: profile not found") from None
    out = {
        r: str(v["slurm_partition"])
        for r, v in (spec.get("set-resources") or {}).items()
        if isinstance(v, dict) and "slurm_partition" in v
    }
    default = (spec.get("default-resources") or {}).get("slurm_partition")
    if default is not None:
        out["*"] = str(default)
    return out


def _partition_of(partitions: Mapping[str, str], rule: str) -> str:
    return partitions.get(rule, partitions.get("*", ""))


# -- what the config says: checkpoints, interventions, download ----------------------------------


@dataclass(frozen=True)
class InterventionPlan:
    """An intervention's windows: ``rewritten`` = window(c) = [c - K, c), re-run from checkpoint
    c - K to c; ``reads``: the other windows its selection or mapping reads; ``groups``: the batch
    group folders those span; ``control``: the control re-runs of window(c)."""

    name: str
    strategy: str
    checkpoint: int
    rewritten: tuple[int, int]
    reads: tuple[tuple[str, tuple[int, int]], ...]
    groups: tuple[str, ...]
    control: str
    datasets: tuple[str, ...] = ()


def intervention_plans(config: Mapping) -> list[InterventionPlan]:
    """The interventions of the config, in config order, placed by :mod:`intervene.layout`."""
    out = []
    for name, v in (config.get("interventions") or {}).items():
        c, strategy = v["checkpoint"], v["strategy"]
        if strategy in layout.MAPPING_STRATEGIES:
            reads = (("source", layout.mapping_window(config, name, "source")),)
            groups = layout.side_groups(config, name, ["target", "source"])
        else:
            reads = (("following", layout.extras_window(config, name)),)
            groups = layout.intervention_groups(config, name)
        out.append(
            InterventionPlan(
                name,
                strategy,
                c,
                layout.intervention_window(config, name),
                reads,
                tuple(groups),
                layout.control_of(config, name),
                tuple(v.get("datasets") or ()),
            )
        )
    return out


@dataclass(frozen=True)
class DownloadPlan:
    """The pretraining data to fetch: ``files`` (None: unknown), ``bytes`` (None: unknown until
    the download writes its manifests) and a sentence on where the figures come from."""

    files: int | None
    bytes: int | None
    note: str


def _manifest_bytes(path: Path, key: str) -> dict[str, int]:
    """``key`` column -> ``bytes`` of a TSV manifest with a header line."""
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    k, b = head.index(key), head.index("bytes")
    return {f[k]: int(f[b]) for f in (line.split("\t") for line in lines[1:] if line)}


def download_plan(config: Mapping, root: str | os.PathLike = ".") -> DownloadPlan:
    """What ``data.source: url`` downloads, sized from the download manifests once they exist (or
    the data order's manifest); before the download the servers alone know the sizes, and the plan
    asks no server."""
    root = Path(root)
    if layout.uses_world(config):
        return DownloadPlan(0, 0, "none: the toy world's token files are built by rule world")
    from intervene.download import config_urls, local_path_for
    from intervene.olmo import load_train_config

    data = config["data"]
    if data["source"] != "url":
        paths = load_train_config(root / data["train_config"]).paths
        return DownloadPlan(0, 0, f"none: {len(paths)} local token files (data.source: local)")
    urls = config_urls(root / data["train_config"])
    shards = [root / DOWNLOAD_MANIFEST.format(shard=s) for s in range(data["download"]["num_shards"])]
    if all(p.is_file() for p in shards):
        sizes: dict[str, int] = {}
        for p in shards:
            sizes.update(_manifest_bytes(p, "url"))
        missing = [u for u in urls if u not in sizes]
        if not missing:
            total = sum(sizes[u] for u in urls)
            return DownloadPlan(len(urls), total, "from the download manifests (downloaded)")
    if (root / DATA_FILES).is_file():  # counted only when it lists this config's mirrored files
        sizes = {(root / p).resolve(): n for p, n in _manifest_bytes(root / DATA_FILES, "path").items()}
        mirror = root / data["download"]["root"]
        local = [local_path_for(u, mirror).resolve() for u in urls]
        if all(p in sizes for p in local):
            return DownloadPlan(len(urls), sum(sizes[p] for p in local), f"from {DATA_FILES} (downloaded)")
    return DownloadPlan(
        len(urls), None, "size unknown until download (the servers' sizes; no server is asked)"
    )


def human_bytes(n: int) -> str:
    """Decimal units (the servers' and disks' GB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


# -- the plan -------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Everything the summary prints; ``scope``: ``to run`` (what a dry run still has to do) or
    ``from nothing`` (the whole experiment)."""

    config_name: str
    scope: str
    rows: list[RuleRow]
    interventions: list[InterventionPlan]
    download: DownloadPlan
    checkpoints: list[int]
    target_steps: list[int]
    save_interval: int
    runs: int
    released: bool = False
    edges: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_jobs(self) -> int:
        return sum(r.jobs for r in self.rows)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> Plan:
        d = dict(d)
        d["rows"] = [RuleRow(**{**r, "gpus_per_job": tuple(r["gpus_per_job"])}) for r in d["rows"]]
        d["interventions"] = [
            InterventionPlan(
                **{
                    **v,
                    "rewritten": tuple(v["rewritten"]),
                    "reads": tuple((s, tuple(w)) for s, w in v["reads"]),
                    "groups": tuple(v["groups"]),
                    "datasets": tuple(v["datasets"]),
                }
            )
            for v in d["interventions"]
        ]
        d["download"] = DownloadPlan(**d["download"])
        d["edges"] = [tuple(e) for e in d["edges"]]
        return cls(**d)


def build_plan(
    config: Mapping,
    jobs: Iterable[Job],
    *,
    order: Sequence[str] = (),
    partitions: Mapping[str, str] | None = None,
    local_rules: Iterable[str] = (),
    config_name: str = "config",
    scope: str = "to run",
    root: str | os.PathLike = ".",
) -> Plan:
    """The plan of ``jobs`` (from Snakemake) under ``config`` (validated, with the schema's defaults)."""
    rows = rule_rows(jobs, order, partitions, local_rules)
    t = config["train"]
    return Plan(
        config_name=config_name,
        scope=scope,
        rows=rows,
        interventions=intervention_plans(config),
        download=download_plan(config, root),
        checkpoints=layout.original_steps(config),
        target_steps=list((config.get("eval") or {}).get("target_steps") or []),
        save_interval=t["save_interval"],
        runs=(config.get("experiment") or {}).get("runs", 1),
        released=not t["original"] and bool(t.get("released")),
    )


def _span(w: Sequence[int]) -> str:
    return f"[{w[0]}, {w[1]})"


def _steps(steps: Sequence[int]) -> str:
    """``0, 500, ..., 4000`` for an arithmetic run of more than four steps."""
    s = list(steps)
    if len(s) > 4 and len({b - a for a, b in pairwise(s)}) == 1:
        return f"{s[0]}, {s[1]}, ..., {s[-1]}"
    return ", ".join(map(str, s))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()) -> list[str]:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = set(right)

    def line(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return [line(header), *(line(r) for r in rows)]


def format_plan(plan: Plan) -> str:
    """The summary as text (``snakemake -n``, ``intervene plan``, ``plan.txt``)."""
    gpu_rows = [r for r in plan.rows if r.gpus_per_job]
    gpu_jobs = sum(r.jobs for r in gpu_rows)
    slurm = any(r.partition for r in plan.rows)
    out = [
        f"Plan of {plan.config_name} ({plan.scope}): {plan.total_jobs} jobs, {gpu_jobs} of them on GPUs",
        "",
        "Jobs per rule (dependency order; GPUs per job"
        + ("; Slurm partition from the profile, local: run by the submitting Snakemake):" if slurm else "):"),
    ]

    def gpus(r: RuleRow) -> str:
        if not r.gpus_per_job:
            return "-"
        g = "/".join(map(str, r.gpus_per_job))
        return f"{g} ({r.nodes} nodes)" if r.nodes > 1 else g

    def where(r: RuleRow) -> tuple[str, ...]:
        return (("local" if r.local else r.partition or "-"),) if slurm else ()

    out += _table(
        ("rule", "jobs", "GPUs/job", "GPUs, all jobs", *(("partition",) if slurm else ())),
        ((r.rule, r.jobs, gpus(r), r.gpu_total or "-", *where(r)) for r in plan.rows),
        right=(1, 3),
    )
    out.append(f"  {'total':<{max((len(r.rule) for r in plan.rows), default=5)}}  {plan.total_jobs}")
    if gpu_rows:
        most = max(gpu_rows, key=lambda r: max(r.gpus_per_job))
        out += [
            "",
            f"GPU jobs: {gpu_jobs} ({', '.join(f'{r.rule} {r.jobs}' for r in gpu_rows)}); the largest ask "
            f"{max(most.gpus_per_job)} GPUs each ({most.rule}); {sum(r.gpu_total for r in gpu_rows)} GPUs "
            "if all ran at once",
        ]
    else:
        out += ["", "GPU jobs: none (every job runs on CPUs)"]
    who = "Released checkpoints evaluated" if plan.released else "Checkpoints of the original run"
    out += [
        "",
        f"{who} (every K = {plan.save_interval} steps): {_steps(plan.checkpoints)}; "
        f"learned-instance targets at {', '.join(map(str, plan.target_steps)) or '-'}",
    ]
    if plan.interventions:
        out += [
            "",
            f"Interventions: window(c) = [c - {plan.save_interval}, c) rewritten; {plan.runs} re-run(s) "
            "each from checkpoint c - K to c, evaluated at c, against the control re-runs of the same window:",
        ]
        out += _table(
            ("name", "strategy", "c", "rewritten", "also reads", "groups", "control", "datasets"),
            (
                (
                    v.name,
                    v.strategy,
                    v.checkpoint,
                    _span(v.rewritten),
                    ", ".join(f"{side} {_span(w)}" for side, w in v.reads),
                    ",".join(v.groups),
                    v.control,
                    ",".join(v.datasets) or "all",
                )
                for v in plan.interventions
            ),
            right=(2,),
        )
        controls = dict.fromkeys(v.control for v in plan.interventions)
        out.append(f"  controls: {', '.join(controls)} ({plan.runs} run(s) each)")
    d = plan.download
    if d.files:
        size = f"{human_bytes(d.bytes)} ({d.note})" if d.bytes is not None else d.note
        out += ["", f"Download: {d.files} files, {size}"]
    else:
        out += ["", f"Download: {d.note}"]
    fetched = next((r.jobs for r in plan.rows if r.rule == "fetch_released"), 0)
    if fetched:
        out.append(
            f"  and {fetched} released checkpoints (unsharded, with optimizer state): size unknown until download"
        )
    return "\n".join(out) + "\n"


# -- from inside a dry run (workflow/rules/plan.smk) ----------------------------------------------


class _JobEvents(logging.Handler):
    """Collects the jobs a dry run logs (Snakemake's logger-plugin events: ``job_info`` with the
    job's rule and evaluated resources; ``run_info`` with the job stats in topological order)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.jobs: list[Job] = []
        self.stats: dict[str, int] = {}
        self.finished = False

    def emit(self, record: logging.LogRecord) -> None:
        event = str(getattr(getattr(record, "event", None), "value", getattr(record, "event", "")))
        if event == "job_info":
            res = dict(record.resources.items())
            gpus, nodes = job_gpus(res)
            self.jobs.append(Job(record.rule_name, gpus, nodes, str(res.get("slurm_partition") or "")))
        elif event == "run_info" and isinstance(getattr(record, "stats", None), dict):
            # logged once the DAG is built and again when the dry run succeeded (after the jobs)
            self.stats = dict(record.stats)
            self.finished = bool(self.jobs)


def watch_dry_run(
    config: Mapping,
    *,
    json_path: str | None = None,
    profile: str | os.PathLike | None = None,
    configfiles: Sequence[str | os.PathLike] = (),
    local_rules: Callable[[], Iterable[str]] | None = None,
    stream=None,
) -> _JobEvents:
    """Print the plan when a dry run that succeeded exits (and write it to ``json_path``).
    Snakemake calls no hook in a dry run (onstart/onsuccess are skipped), hence an exit handler
    fed by its job events."""
    events = _JobEvents()
    logging.getLogger("snakemake.logging").addHandler(events)
    config = json.loads(json.dumps(config))  # the validated config as it is now
    config_name = " + ".join(os.path.relpath(f) for f in configfiles) or "config/config.yaml"

    def report() -> None:
        if not events.finished:
            return  # the dry run failed, or there was nothing to do
        counts = Counter(j.rule for j in events.jobs)
        want = {r: n for r, n in events.stats.items() if r != "total"}
        if counts != Counter(want):
            print(
                f"plan: the dry run's jobs {dict(counts)} differ from its job stats {want}", file=sys.stderr
            )
            return
        plan = build_plan(
            config,
            events.jobs,
            order=list(want),
            partitions=profile_partitions(profile),
            local_rules=local_rules() if local_rules else (),
            config_name=config_name,
        )
        if json_path:
            from intervene.atomic import write_text

            write_text(json_path, json.dumps(plan.to_json(), indent=1) + "\n")
        print("\n" + format_plan(plan), file=stream or sys.stderr, end="")

    atexit.register(report)
    return events


# -- intervene plan: the whole experiment from nothing --------------------------------------------


def user_inputs(config: Mapping) -> tuple[list[str], list[str]]:
    """(folders, files) the config names that no rule writes and a user provides (ParaRel's data
    and term files): a scratch work folder gets empty stand-ins, since a dry run reads none."""
    ev, match = config.get("eval") or {}, config.get("match") or {}
    dirs = [v for v in (ev.get("sources") or {}).values() if not str(v).startswith(layout.WORLD_DIR)]
    files = []
    terms = match.get("terms_dir")
    if match and terms and not terms.startswith(layout.WORLD_DIR):
        files = [str(layout.term_file(terms, r)) for r in layout.pararel_relations(ev.get("tasks", []))]
    return [d for d in dirs if "/" in d or os.sep in d], files


def load_config(configfiles: Sequence[str | os.PathLike], schema: str | os.PathLike) -> dict:
    """The config Snakemake sees with ``--configfile ... --replace-workflow-config``: the files
    merged in order, validated with the schema's defaults filled in."""
    from snakemake.utils import validate

    config: dict = {}
    for f in configfiles:
        try:
            config = _merged(config, yaml.safe_load(Path(f).read_text()) or {})
        except FileNotFoundError:
            raise PlanError(f"{f}: config file not found") from None
    try:
        validate(config, str(schema))
    except Exception as e:  # Snakemake's WorkflowError names the key; one line, no traceback
        raise PlanError(f"{' + '.join(map(str, configfiles))}: {str(e).splitlines()[0]}") from None
    return config


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def scratch_workdir(
    workdir: str | os.PathLike, configfiles: Sequence[str | os.PathLike], config: Mapping, scratch: Path
) -> list[str]:
    """Fill ``scratch`` as a work folder with nothing done yet: ``config/`` and the config files
    (copies), the user's inputs (links when they exist, else empty stand-ins). Returns the config
    files' paths inside it."""
    workdir = Path(workdir)
    if (workdir / "config").is_dir():
        shutil.copytree(workdir / "config", scratch / "config", dirs_exist_ok=True)
    inside = []
    for f in configfiles:
        p = Path(f).resolve()
        try:
            rel = p.relative_to(workdir.resolve())
        except ValueError:
            rel = Path("configfiles") / p.name
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, scratch / rel)
        inside.append(str(rel))
    dirs, files = user_inputs(config)
    for d in dirs:
        (scratch / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (scratch / f).parent.mkdir(parents=True, exist_ok=True)
        (scratch / f).touch()
    tok = config["data"]["tokenizer"]
    if (workdir / tok).exists() and not (scratch / tok).exists() and not tok.startswith(layout.WORLD_DIR):
        (scratch / tok).parent.mkdir(parents=True, exist_ok=True)
        (scratch / tok).symlink_to((workdir / tok).resolve())
    return inside


def snakemake(snakefile: Path, workdir: Path, configfiles: Sequence[str], *args: str, env=None) -> str:
    """Run Snakemake on ``configfiles`` (replacing the workflow's config) in ``workdir``; its stdout."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--cores", "1"]
    if configfiles:
        cmd += ["--configfile", *configfiles, "--replace-workflow-config"]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    r = subprocess.run(
        [*cmd, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **(env or {})},
    )
    if r.returncode != 0:
        tail = "\n".join((r.stderr + r.stdout).strip().splitlines()[-15:])
        raise PlanError(f"snakemake {' '.join(args)} failed in {workdir}:\n{tail}")
    return r.stdout


_NODE = re.compile(r'^\s*(\d+)\[label = "([^"\\]+)')
_EDGE = re.compile(r"^\s*(\d+) -> (\d+)\s*$")


def rule_edges(dag_dot: str) -> tuple[Counter, list[tuple[str, str]]]:
    """Jobs per rule and the rule graph's edges (sorted) of Snakemake's ``--dag`` (or ``--rulegraph``)
    dot: a node's label starts with its rule's name; edges between jobs of two rules become one."""
    rule_of: dict[str, str] = {}
    edges = set()
    for line in dag_dot.splitlines():
        if m := _NODE.match(line):
            rule_of[m[1]] = m[2]
        elif m := _EDGE.match(line):
            edges.add((m[1], m[2]))
    if not rule_of:
        raise PlanError("no jobs in the DAG's dot output")
    rule_edges = {(rule_of[a], rule_of[b]) for a, b in edges if rule_of[a] != rule_of[b]}
    return Counter(rule_of.values()), sorted(rule_edges)


def plan_dot(plan: Plan) -> str:
    """The rule graph as dot, each rule labelled with its jobs and GPUs, GPU rules filled: the
    readable picture of a DAG of hundreds of jobs. Deterministic (sorted), so a committed copy can
    be compared as text."""
    lines = [
        "digraph plan {",
        '    graph[bgcolor=white, margin=0, rankdir=TB, label="'
        + _esc(_legend(plan))
        + '", labelloc=b, fontname=sans, fontsize=10];',
        "    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=1.5];",
        "    edge[penwidth=1.2, color=grey40];",
    ]
    # the default target `all` is left out: its edges from every final output say nothing
    rows = [r for r in plan.rows if r.rule != "all"]
    ids = {r.rule: i for i, r in enumerate(rows)}
    for r in rows:
        label = f"{r.rule}\\n{r.jobs} job{'s' if r.jobs != 1 else ''}"
        attrs = 'color="grey30"'
        if r.gpus_per_job:
            g = "/".join(map(str, r.gpus_per_job))
            label += f" x {g} GPU{'s' if r.gpus_per_job != (1,) else ''}"
            if r.nodes > 1:
                label += f"\\non {r.nodes} nodes"
            attrs = 'color="#b35806", style="rounded,filled", fillcolor="#fee0b6"'
        lines.append(f'    {ids[r.rule]}[label="{label}", {attrs}];')
    for a, b in plan.edges:
        if a in ids and b in ids:
            lines.append(f"    {ids[a]} -> {ids[b]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _esc(s: str) -> str:
    return s.replace('"', '\\"')


def _legend(plan: Plan) -> str:
    gpu = sum(r.jobs for r in plan.rows if r.gpus_per_job)
    return f"{plan.config_name}: {plan.total_jobs} jobs, {gpu} on GPUs (filled: GPU rules)"


def render(dot_source: str, out: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """``out.dot`` and, with graphviz's ``dot``, ``out.{fmt}``; without it a one-line hint."""
    from intervene.atomic import write_text

    write_text(out.with_suffix(".dot"), dot_source)
    dot = shutil.which("dot")
    if dot is None:
        print(
            f"graphviz's dot not found: wrote {out.with_suffix('.dot')} only (Debian: apt-get install graphviz)",
            file=sys.stderr,
        )
        return [out.with_suffix(".dot")]
    done = [out.with_suffix(".dot")]
    for fmt in formats:
        img = subprocess.run(
            [dot, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, check=True
        ).stdout
        target = out.with_suffix(f".{fmt}")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(img)
        tmp.replace(target)
        done.append(target)
    return done


def make_plan(
    configfiles: Sequence[str | os.PathLike] = (),
    *,
    workdir: str | os.PathLike = ".",
    snakefile: str | os.PathLike | None = None,
    profile: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    formats: Sequence[str] = FORMATS,
    name: str | None = None,
) -> Plan:
    """The whole experiment's plan from nothing: a dry run in a scratch work folder (the configs,
    stand-ins for the user's inputs, no results); with ``out``, also the graphs there (the plan's
    rule graph ``rulegraph.*``, Snakemake's job DAG ``dag.*``) and ``plan.txt``."""
    workdir = Path(workdir).resolve()
    snakefile = Path(snakefile or workdir / "Snakefile").resolve()
    schema = snakefile.parent / "workflow" / "schemas" / "config.schema.yaml"
    files = [str(f) for f in configfiles] or [str(workdir / "config" / "config.yaml")]
    files = [str(Path(f).resolve()) for f in files]  # as Snakemake: relative to the current folder
    config = load_config(files, schema)
    name = name or " + ".join(os.path.relpath(f, workdir) for f in files)
    with tempfile.TemporaryDirectory(prefix="intervene-plan-") as tmp:
        scratch = Path(tmp) / "work"
        scratch.mkdir()
        inside = scratch_workdir(workdir, files, config, scratch)
        plan_json = Path(tmp) / "plan.json"
        snakemake(snakefile, scratch, inside, "-n", "--quiet", "rules", env={PLAN_JSON_ENV: str(plan_json)})
        if not plan_json.is_file():
            raise PlanError("the dry run wrote no plan (workflow/rules/plan.smk not included?)")
        plan = Plan.from_json(json.loads(plan_json.read_text()))
        dag = snakemake(snakefile, scratch, inside, "--dag")
    counts, edges = rule_edges(dag)
    if counts != Counter({r.rule: r.jobs for r in plan.rows}):
        raise PlanError(f"the job DAG's jobs per rule {dict(counts)} differ from the dry run's")
    plan.edges = edges
    plan.config_name = name
    plan.scope = "from nothing"
    plan.download = download_plan(config, workdir)  # the real folder's manifests, if downloaded
    partitions = profile_partitions(profile)
    plan.rows = [
        RuleRow(
            r.rule, r.jobs, r.gpus_per_job, r.nodes, r.partition or _partition_of(partitions, r.rule), r.local
        )
        for r in plan.rows
    ]
    if out is not None:
        from intervene.atomic import write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "plan.txt", format_plan(plan))
        render(plan_dot(plan), out / "rulegraph", formats)
        render(dag, out / "dag", formats)
    return plan


def print_plan(
    configfiles: Sequence[str] | None = None,
    workdir: str | None = None,
    snakefile: str | None = None,
    profile: str | None = None,
    out: str | None = None,
) -> Plan:
    """``intervene plan``: :func:`make_plan`, printed (and written under ``out``)."""
    plan = make_plan(configfiles or (), workdir=workdir or ".", snakefile=snakefile, profile=profile, out=out)
    print(format_plan(plan), end="")
    if out is not None:
        print(f"wrote {out}/plan.txt, rulegraph.* (rules with job counts) and dag.* (every job)")
    return plan
