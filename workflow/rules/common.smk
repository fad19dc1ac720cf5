# Shared by every rule: config validation, wildcard constraints and input functions.
# Top-level code stays cheap: it reads the config only, never the data.
import json
import os
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")
# what the schema cannot say (checkpoints vs save_interval, windows vs the decoded batches, paths):
# one line naming the key, before any job runs
from intervene.config_check import ConfigError, check_config

try:
    check_config(config, schema=workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as e:
    raise WorkflowError(f"config: {e}") from None

WORLD_DIR = "results/world"
DATA_DIR = "results/data"
LOCAL_TRAIN_CONFIG = f"{DATA_DIR}/train_config.local.yaml"
TRAIN_DIR = "results/train"


wildcard_constraints:
    group=r"\d{3}",
    shard=r"\d+",


def uses_world():
    """True when the data are the built-in toy world's (so rule `world` produces them)."""
    return config["data"]["train_config"] == f"{WORLD_DIR}/train_config.yaml"


def train_config():
    """The train config the data stages read: the localized copy when data come from URLs."""
    if config["data"]["source"] == "url":
        return LOCAL_TRAIN_CONFIG
    return config["data"]["train_config"]


def data_inputs():
    """Token files that rules must wait for (the world's; a user's local files are not listed,
    so that parsing never touches the data)."""
    return (
        [f"{WORLD_DIR}/data"]
        if uses_world() and config["data"]["source"] == "local"
        else []
    )


def tokenizer_input():
    """The tokenizer folder as an input when it is a local path (not a hub id)."""
    tok = config["data"]["tokenizer"]
    return [tok] if tok.startswith(WORLD_DIR) or Path(tok).exists() else []


def tokenizer_arg(wildcards, input):
    """The tokenizer as the CLI gets it: the input folder, else the configured hub id."""
    return input.tokenizer if input.tokenizer else config["data"]["tokenizer"]


def group_numbers():
    """0-based batch groups overlapping the window [first_batch, last_batch)."""
    d = config["decode"]
    per = d["batches_per_group"]
    return range(d["first_batch"] // per, -(-d["last_batch"] // per))


def group_names():
    return [f"{g + 1:03d}" for g in group_numbers()]


def doc_info_targets():
    return expand(f"{DATA_DIR}/doc_info/{{group}}.npy", group=group_names())


def download_manifests():
    n = config["data"]["download"]["num_shards"]
    return expand("resources/manifests/shard_{shard}.tsv", shard=range(n))


def train_nodes():
    return config["train"].get("nodes", 1)


def srun_launch():
    """Several nodes (or `train.launcher: srun`): one torchrun per node under srun, inside the job."""
    return train_nodes() > 1 or config["train"].get("launcher", "torchrun") == "srun"


def intervene_launcher():
    """`intervene`; `torchrun --standalone ...` for several processes on one node; or, under Slurm,
    `srun` starting one torchrun per node (workflow/scripts/torchrun_node.sh) whose rendezvous is
    the allocation's first node."""
    n = config["train"]["nproc"]
    if srun_launch():
        script = os.path.join(
            workflow.basedir, "workflow", "scripts", "torchrun_node.sh"
        )
        return (
            f"srun --nodes={train_nodes()} --ntasks-per-node=1 --ntasks={train_nodes()}"
            f" bash {script} {n}"
        )
    if n == 1:
        return "intervene"
    return f"torchrun --standalone --nproc_per_node={n} -m intervene.cli"


def train_resources():
    """Slurm resources of a training job (ignored when running locally): GPUs per node, nodes, one
    task per process (`mpi: srun` lets the job's shell call srun itself; `tasks_per_gpu: 0` keeps
    the executor plugin from adding --ntasks-per-gpu)."""
    t = config["train"]
    n, nodes, cuda = t["nproc"], train_nodes(), t["device"] == "cuda"
    res = {"gpu": n * nodes if cuda and nodes == 1 else 0}
    if cuda and nodes > 1:
        res["gres"] = f"gpu:{n}"  # per node
    if srun_launch():
        res.update(nodes=nodes, tasks=n * nodes, mpi="srun", tasks_per_gpu=0)
    return res


def batch_groups_of(first, last):
    """Decoded group folders holding batches [first, last)."""
    per = config["decode"]["batches_per_group"]
    return [
        f"{DATA_DIR}/batches/{g + 1:03d}" for g in range(first // per, -(-last // per))
    ]


def replay_setting(key):
    rc = config["train"].get("replay_check") or {}
    return rc.get(key, 0)


def replay_inputs():
    rc = config["train"].get("replay_check")
    if not rc:
        return []
    return batch_groups_of(rc["from_step"], rc["from_step"] + rc["steps"])


def train_targets():
    out = []
    if config["train"]["original"]:
        out.append(f"{TRAIN_DIR}/original/summary.json")
        if config["train"].get("replay_check"):
            out.append(f"{TRAIN_DIR}/replay_check.json")
    return out


def olmo_setting(key):
    """A `train.olmo` setting for the OLMo backend's rules (read when a job needs it)."""

    def get(wildcards):
        olmo = config["train"].get("olmo") or {}
        if key not in olmo:
            raise ValueError(
                f"config train.olmo.{key} is required for the OLMo backend"
            )
        return olmo[key]

    return get


def olmo_command(kind, path, other):
    from intervene.train.olmo_backend import convert_command, train_command

    olmo = config["train"].get("olmo") or {}
    if kind == "train":
        return train_command(olmo["repo"], path, other, olmo.get("nproc", 1))
    return convert_command(olmo["repo"], path, other, olmo["tokenizer_json"])


EXPERIMENT = config.get("experiment") or {}
CONTROL_RUN = re.compile(r"control_(\d+)_(\d+)")


def rerun_window(run):
    """[first, last) batches a re-run reads: a control `control_{first}_{last}` (the unmodified
    window), or an intervention's window(c) = [c - K, c) (rewritten)."""
    m = CONTROL_RUN.fullmatch(run)
    if m:
        return int(m[1]), int(m[2])
    if run in INTERVENTIONS:
        return mapping_window(run, "target")
    raise ValueError(
        f"re-run {run!r} is neither an intervention nor control_FIRST_LAST (a control window)"
    )


def rerun_setting(key):
    """A re-run's `from_step` (its first batch = the checkpoint it starts from) or `steps`."""

    def get(wildcards):
        first, last = rerun_window(wildcards.run)
        return {"from_step": first, "steps": last - first}[key]

    return get


def control_of(name):
    """The control re-runs of an intervention: its window, unmodified (shared by every intervention
    on that window)."""
    first, last = mapping_window(name, "target")
    return f"control_{first}_{last}"


def n_runs():
    return EXPERIMENT.get("runs", 1)


def order_flag(wildcards):
    """Run 1 reads the window's batches in order (on CPU a control run 1 reproduces the original
    checkpoint bit for bit); with `experiment.order: shuffle`, run r > 1 reads them in the
    permutation of seed + r, the same for the intervention and its control (paired runs).
    """
    r = int(wildcards.r)
    if EXPERIMENT.get("order", "given") == "shuffle" and r > 1:
        return f"--order-seed {EXPERIMENT.get('seed', 0) + r}"
    return ""


def side_files(pattern):
    """Input function: `pattern` (with `{group}`) for every group of an intervention's window side."""
    return lambda wc: expand(
        pattern, group=window_groups(*mapping_window(wc.name, wc.side))
    )


def learned_targets(name):
    """The instances learned at an intervention's checkpoint: a score mapping's targets."""
    return f"results/eval/original/learned_step{INTERVENTIONS[name]['checkpoint']}.npz"


def effect_targets(name):
    """The file naming an intervention's targeted instances (see intervene.effect.targeted_instances)."""
    if name in mapping_names():
        return learned_targets(name)
    return f"results/interventions/{name}/doc_idxs.npz"


def experiment_targets():
    """The effect report, once interventions can be selected (the original run's evaluation and
    the matching stage exist)."""
    if not (intervention_targets() and EXPERIMENT):
        return []
    return [
        "results/report/summary.md",
        "results/report/summary.html",
        "results/report/headline.txt",
    ]


def original_steps():
    """Checkpoint steps of the original run (from the config: no data is read): every
    `train.save_interval` up to `train.stop_at` (default: the toy world's `num_steps`).
    """
    if (config.get("eval") or {}).get("steps"):
        return list(config["eval"]["steps"])
    w, t = config.get("world", {}), config["train"]
    last = t.get("stop_at") or w.get("num_steps", 400)
    return list(range(0, last + 1, t["save_interval"]))


EVAL = config.get("eval") or {}


def source_flags():
    """The evaluation data flags (`--pararel PATH`, `--sciq ...`) as `intervene eval` and the window
    scorers take them."""
    return [f"--{k} {v}" for k, v in sorted(EVAL.get("sources", {}).items())]


def eval_args():
    """The `intervene eval` flags of the configured backend, tasks and data sources."""
    e = EVAL
    args = [
        f"--tasks {','.join(e.get('tasks', []))}",
        f"--device {e.get('device', 'cpu')}",
    ]
    args += source_flags()
    if e.get("backend", "builtin") == "olmes":
        o = e.get("olmes", {})
        args += ["--backend olmes"]
        args += [f"--olmes-{k.replace('_', '-')} {v}" for k, v in sorted(o.items())]
    else:
        args += [f"--row-tokens {e.get('row_tokens', 2048)}"]
        args += [f"--batch-tokens {e.get('batch_tokens', 16384)}"]
    return " ".join(args)


RELEASED = config["train"].get("released") or {}


def has_original_run():
    """Checkpoints of an original run exist: trained here, or released (imported on demand)."""
    return bool(config["train"]["original"] or RELEASED)


def original_checkpoint(step):
    return f"{TRAIN_DIR}/original/step{step}"


def original_run_input(wildcards):
    """What an evaluation of the original run's checkpoint waits for: the run trained here (its
    summary is written last), or nothing for a released checkpoint (read from the hub).
    """
    return (
        {"original": f"{TRAIN_DIR}/original/summary.json"}
        if config["train"]["original"]
        else {}
    )


def eval_model(wildcards):
    """The model `intervene eval` reads for checkpoint `step`: our checkpoint folder, or the released
    checkpoint's hub id and revision (OLMo 2 names them stage1-step{N}-tokens{T}B)."""
    if config["train"]["original"]:
        return original_checkpoint(wildcards.step)
    from intervene.olmo import load_train_config
    from intervene.train.released import hf_revision

    spec = load_train_config(config["data"]["train_config"])
    rev = hf_revision(int(wildcards.step), spec.global_batch_size, spec.seq_len)
    return f"{RELEASED['hub_model']} --revision {rev}"


def rerun_start_input(wildcards):
    """A re-run starts from the original run's checkpoint at its window's start: trained here (wait
    for the run), or a released one (fetched and imported by rule `import_released`)."""
    if config["train"]["original"]:
        return f"{TRAIN_DIR}/original/summary.json"
    return original_checkpoint(rerun_window(wildcards.run)[0])


def eval_targets():
    if not (has_original_run() and EVAL):
        return []
    return [
        "results/eval/original/learned.json",
        "results/eval/original/accuracy.png",
        "results/eval/original/learned_hist.png",
    ] + [
        f"results/eval/original/learned_step{s}.npz"
        for s in EVAL.get("target_steps", [])
    ]


MATCH = config.get("match") or {}
BM25 = MATCH.get("bm25") or {}
DENSE = MATCH.get("dense") or {}


def match_relations():
    """ParaRel relations whose terms are searched: those of the pararel_* evaluation tasks."""
    rels = [
        t[len("pararel_") :] for t in EVAL.get("tasks", []) if t.startswith("pararel_")
    ]
    if "pararel" in EVAL.get("tasks", []):
        rels = [
            "p17",
            "p27",
            "p36",
            "p127",
            "p131",
            "p138",
            "p176",
            "p178",
            "p276",
            "p495",
            "p1376",
            "p1412",
        ]
    return rels


def term_files():
    """The relations' term files as inputs, so that an edited file re-runs the vocabulary and the
    search (a folder's mtime does not change when a file in it does); the toy world's folder as a
    whole, since rule `world` writes it as one output."""
    terms = MATCH.get("terms_dir", f"{WORLD_DIR}/search_terms")
    if terms.startswith(WORLD_DIR):
        return [terms]
    return [
        os.path.join(terms, f"pararel_patterns_{rel}_train.txt")
        for rel in match_relations()
    ]


def match_targets():
    if not (MATCH and match_relations()):
        return []
    out = expand(
        "results/search/{kind}/{group}",
        kind=["term_doc", "pair_doc"],
        group=group_names(),
    )
    out += expand("results/search/bm25/{group}.npz", group=BM25.get("groups", []))
    if DENSE.get("ctx_model"):
        out.append("results/search/dense/similarity.npz")
    return out


INTERVENTIONS = config.get("interventions") or {}
SELECTION_STRATEGIES = ("rm_coocc", "rm_occ", "add_coocc")


def selection_names():
    return [
        n for n, v in INTERVENTIONS.items() if v["strategy"] in SELECTION_STRATEGIES
    ]


def mapping_names(strategies=("bm25_mapping", "dense_mapping")):
    """Interventions that map documents by scores (BM25 or dense), not by term matches."""
    return [n for n, v in INTERVENTIONS.items() if v["strategy"] in strategies]


def window_groups(first, last):
    """Group names holding batches [first, last)."""
    per = config["decode"]["batches_per_group"]
    return [f"{g + 1:03d}" for g in range(first // per, (last - 1) // per + 1)]


def intervention_groups(name):
    """Groups of window(c) and the following windows a selection reads."""
    c, K = INTERVENTIONS[name]["checkpoint"], config["train"]["save_interval"]
    ahead = 2 if INTERVENTIONS[name]["strategy"] == "rm_occ" else 1
    return window_groups(c - K, min(c + ahead * K, config["decode"]["last_batch"]))


def mapping_window(name, side):
    """Target window = window(c) = [c-K, c); source = the next window [c, c+K)."""
    c, K = INTERVENTIONS[name]["checkpoint"], config["train"]["save_interval"]
    return (c - K, c) if side == "target" else (c, c + K)


def intervention_indices(name):
    kind = "mapping" if name in mapping_names() else "doc_idxs"
    return f"results/interventions/{name}/{kind}.npz"


def datasets_flag(name):
    """`--datasets ...` when an intervention targets only some tasks' instances (e.g. sciq)."""
    ds = INTERVENTIONS[name].get("datasets")
    return f"--datasets {','.join(ds)}" if ds else ""


def swap_flags(name):
    """add_coocc inserts documents: pair new-first and skip extras (the paper's README); others
    pair originals first; both overridable per intervention."""
    v = INTERVENTIONS[name]
    adding = v["strategy"] == "add_coocc"
    flags = []
    if v.get("pair_by_new_first", adding):
        flags.append("--pair-by-new-first")
    if v.get("skip_extra", adding):
        flags.append("--skip-extra")
    return " ".join(flags)


# wildcard constraint of a re-run's name: an intervention, or a control window
RERUN_NAMES = "|".join([*INTERVENTIONS, r"control_\d+_\d+"])


def intervention_targets():
    """Selections need the original run's learned instances (and the matching stage)."""
    if not (eval_targets() and match_targets()):
        return []
    return [f"results/interventions/{n}/batches" for n in INTERVENTIONS]
