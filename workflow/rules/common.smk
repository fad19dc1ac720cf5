# Shared by every rule: config validation, wildcard constraints, input functions (get_*) and the
# default target's lists. Where things are and the windows/groups/run names: intervene.layout.
# Top-level code stays cheap: it reads the config only, never the data.
import json
import os
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from intervene import layout
from intervene.config_check import ConfigError, check_config
from intervene.evaluation.metric_spec import metric_cli_value
from intervene.layout import (
    BATCHES_DIR,
    DATA_DIR,
    DOC_INFO_DIR,
    LOCAL_TRAIN_CONFIG,
    TRAIN_DIR,
    WORLD_DIR,
)

validate(config, "../schemas/config.schema.yaml")
# what the schema cannot say (checkpoints vs save_interval, windows vs the decoded batches, paths):
# one line naming the key, before any job runs
try:
    check_config(config, schema=workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as e:
    raise WorkflowError(f"config: {e}") from None

EVAL = config.get("eval") or {}
MATCH = config.get("match") or {}
BM25 = MATCH.get("bm25") or {}
DENSE = MATCH.get("dense") or {}
INTERVENTIONS = config.get("interventions") or {}
EXPERIMENT = config.get("experiment") or {}
RELEASED = config["train"].get("released") or {}
EVAL_TASKS = ",".join(EVAL.get("tasks", []))
RELATIONS = ",".join(layout.pararel_relations(EVAL.get("tasks", [])))
PER_GROUP = config["decode"]["batches_per_group"]
DENSE_DEVICE = DENSE.get("device", "cpu")
DPR = DENSE.get("kind", "dpr") == "dpr"
TERMS_DIR = MATCH.get("terms_dir", f"{WORLD_DIR}/search_terms")
PARAREL = EVAL.get("sources", {}).get("pararel", f"{WORLD_DIR}/eval")
# wildcard constraint of a re-run's name: an intervention, or a control window
RERUN_NAMES = layout.rerun_name_pattern(config)


wildcard_constraints:
    group=r"\d{3}",
    shard=r"\d+",


def names_of(*strategies, none="none"):
    """Wildcard constraint: the interventions of these strategies (`none` when there is none)."""
    return "|".join(layout.strategy_names(config, strategies)) or none


# -- data ---------------------------------------------------------------------------------------


def data_inputs():
    """Token files that rules must wait for (the world's; a user's local files are not listed,
    so that parsing never touches the data)."""
    local = config["data"]["source"] == "local"
    return [f"{WORLD_DIR}/data"] if layout.uses_world(config) and local else []


def tokenizer_input():
    """The tokenizer folder as an input when it is a local path (not a hub id)."""
    tok = config["data"]["tokenizer"]
    return [tok] if tok.startswith(WORLD_DIR) or os.path.exists(tok) else []


def get_tokenizer(wildcards, input):
    """The tokenizer as the CLI gets it: the input folder, else the configured hub id."""
    return input.tokenizer if input.tokenizer else config["data"]["tokenizer"]


def get_output_dir(wildcards, output):
    """The folder of a rule's first output (stages that write several files into it)."""
    return os.path.dirname(output[0])


def attempt_times(base):
    """A `resources:` callable: `base` times the Slurm attempt (a retried job asks for more)."""

    def get(wildcards, attempt):
        return base * attempt

    return get


def group_files(pattern, groups):
    """`pattern` (with `{group}`) for each group folder name in `groups`."""
    return expand(pattern, group=groups)


# -- interventions (wildcard `name`) -------------------------------------------------------------


def option(key, default=None):
    """A param: option `key` of intervention `{name}` (`default` when not set)."""

    def get(wildcards):
        v = INTERVENTIONS[wildcards.name]
        return v[key] if default is None else v.get(key, default)

    return get


def intervention_files(pattern):
    """An input function: `pattern` (with `{group}`) for every group a selection (or its swap)
    reads: window(c) and the following window(s)."""

    def get(wildcards):
        return group_files(pattern, layout.intervention_groups(config, wildcards.name))

    return get


def get_window(wildcards):
    """`first last` of a mapping's side `{side}` (target: window(c); source: the next window)."""
    return " ".join(
        map(str, layout.mapping_window(config, wildcards.name, wildcards.side))
    )


def datasets_flag(name):
    """`--datasets ...` when an intervention targets only some tasks' instances (e.g. sciq)."""
    ds = INTERVENTIONS[name].get("datasets")
    return f"--datasets {','.join(ds)}" if ds else ""


def get_datasets_flag(wildcards):
    return datasets_flag(wildcards.name)


def get_learned_targets(wildcards):
    """The instances learned at an intervention's checkpoint: a score mapping's targets."""
    c = INTERVENTIONS[wildcards.name]["checkpoint"]
    return f"results/eval/original/learned_step{c}.npz"


# -- original run and evaluation ----------------------------------------------------------------


def replay_inputs():
    """The decoded group folders the replay check reads (none without a replay check)."""
    rc = config["train"].get("replay_check")
    if not rc:
        return []
    groups = layout.groups_of(config, rc["from_step"], rc["from_step"] + rc["steps"])
    return group_files(f"{BATCHES_DIR}/{{group}}", groups)


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


def eval_gpus(section):
    """A `resources: gpu` callable: one GPU when the section's device is CUDA."""

    def get(wildcards):
        return 1 if section.get("device", "cpu").startswith("cuda") else 0

    return get


# -- targets of `rule all` ------------------------------------------------------------------------


def doc_info_targets():
    return group_files(f"{DOC_INFO_DIR}/{{group}}.npy", layout.decoded_groups(config))


def train_targets():
    out = []
    if config["train"]["original"]:
        out.append(f"{TRAIN_DIR}/original/summary.json")
        if config["train"].get("replay_check"):
            out.append(f"{TRAIN_DIR}/replay_check.json")
    return out


def eval_targets():
    """The original run's evaluation: checkpoints trained here or released ones (imported on demand)."""
    if not ((config["train"]["original"] or RELEASED) and EVAL):
        return []
    return [
        "results/eval/original/learned.json",
        "results/eval/original/accuracy.png",
        "results/eval/original/learned_hist.png",
    ] + [
        f"results/eval/original/learned_step{s}.npz"
        for s in EVAL.get("target_steps", [])
    ]


def match_targets():
    if not (MATCH and RELATIONS):
        return []
    out = expand(
        "results/search/{kind}/{group}",
        kind=["term_doc", "pair_doc"],
        group=layout.decoded_groups(config),
    )
    out += expand("results/search/bm25/{group}.npz", group=BM25.get("groups", []))
    if DENSE.get("ctx_model"):
        out.append("results/search/dense/similarity.npz")
    return out


def intervention_targets():
    """Selections need the original run's learned instances (and the matching stage)."""
    if not (eval_targets() and match_targets()):
        return []
    return [f"results/interventions/{n}/batches" for n in INTERVENTIONS]


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


# -- decode -----------------------------------------------------------------------------------------


def get_group_number(wildcards):
    """The CLI's 1-based group number of folder `{group}` (001 -> 1)."""
    return int(wildcards.group)


# -- training (train.smk) ---------------------------------------------------------------------------


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


STRATEGY_FLAG = "--strategy fsdp" if config["train"].get("strategy") == "fsdp" else ""


def protect_original(path):
    """The original run's summary, write-protected when the data are not the toy world's: hours of
    GPU time at scale, and a re-run of the rule would let the trainer clear checkpoints of another
    fingerprint. Snakemake then refuses to run the rule again until the file is removed by hand
    (`chmod u+w` and `rm`); the checkpoints stay and the trainer resumes from them. The toy world's
    run stays unprotected: a changed world retrains it (README, run fingerprints)."""
    return path if layout.uses_world(config) else protected(path)


def get_control_groups(wildcards):
    """The decoded group folders holding a control's window [first, last)."""
    groups = layout.groups_of(config, int(wildcards.first), int(wildcards.last))
    return group_files(f"{BATCHES_DIR}/{{group}}", groups)


def get_rerun_start(wildcards):
    """A re-run starts from the original run's checkpoint at its window's start: trained here (wait
    for the run), or a released one (fetched and imported by rule `import_released`)."""
    if config["train"]["original"]:
        return f"{TRAIN_DIR}/original/summary.json"
    return layout.original_checkpoint(layout.rerun_window(config, wildcards.run)[0])


def get_rerun_load_path(wildcards):
    """The checkpoint a re-run starts from: its window's first batch = the original run's step."""
    return layout.original_checkpoint(layout.rerun_window(config, wildcards.run)[0])


def get_rerun_steps(wildcards):
    first, last = layout.rerun_window(config, wildcards.run)
    return last - first


def get_order_flag(wildcards):
    """Run 1 reads the window's batches in order (on CPU a control run 1 reproduces the original
    checkpoint bit for bit); with `experiment.order: shuffle`, run r > 1 reads them in the
    permutation of seed + r, the same for the intervention and its control (paired runs).
    """
    r = int(wildcards.r)
    if EXPERIMENT.get("order", "given") == "shuffle" and r > 1:
        return f"--order-seed {EXPERIMENT.get('seed', 0) + r}"
    return ""


def get_doc_info_dir(wildcards, input):
    """The folder of the doc-info files a job reads (the parent of its `doc_info` inputs)."""
    return os.path.dirname(input.doc_info[0])


def get_search_dir(wildcards, input):
    """The matching stage's folder (holding the `pair_doc/{group}` inputs)."""
    return os.path.dirname(os.path.dirname(input.pair[0]))


def get_original_dir(wildcards, input):
    return os.path.dirname(input.original)


def get_batches_root(wildcards, input):
    """The folder of the decoded groups (the parent of the input group folders)."""
    return os.path.dirname(input.batches[0])


def replay_setting(key):
    return (config["train"].get("replay_check") or {}).get(key, 0)


# -- released checkpoints (released.smk) ------------------------------------------------------------


def get_checkpoint_url(wildcards):
    return RELEASED["checkpoint_url"].format(step=wildcards.step)


# -- OLMo backend (olmo_backend.smk) ----------------------------------------------------------------


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


def get_olmo_train_command(wildcards, input):
    from intervene.train.olmo_backend import train_command

    olmo = config["train"].get("olmo") or {}
    return train_command(olmo["repo"], input[0], wildcards.run, olmo.get("nproc", 1))


def get_olmo_convert_command(wildcards, input, output):
    from intervene.train.olmo_backend import convert_command

    olmo = config["train"].get("olmo") or {}
    return convert_command(olmo["repo"], input[0], output[0], olmo["tokenizer_json"])


def get_olmo_checkpoints(wildcards, input):
    return os.path.join(os.path.dirname(input[0]), "ckpt")


def get_olmo_save_folder(wildcards, output):
    return os.path.join(os.path.dirname(output[0]), "ckpt")


# -- evaluation (evaluate.smk) ----------------------------------------------------------------------


def get_original_run(wildcards):
    """What an evaluation of the original run's checkpoint waits for: the run trained here (its
    summary is written last), or nothing for a released checkpoint (read from the hub).
    """
    if config["train"]["original"]:
        return {"original": f"{TRAIN_DIR}/original/summary.json"}
    return {}


def get_eval_model(wildcards):
    """Our checkpoint folder, or the released checkpoint's hub id and revision."""
    return layout.eval_model(config, wildcards.step)


def get_original_evals(wildcards, input):
    """`step=folder` of every evaluated checkpoint of the original run."""
    return " ".join(f"{s}={d}" for s, d in zip(layout.original_steps(config), input))


def get_rerun_model(wildcards, input):
    """A re-run's last checkpoint: the end of its window."""
    last = layout.rerun_window(config, wildcards.run)[1]
    return os.path.join(os.path.dirname(input[0]), f"step{last}")


def get_rerun_evals(wildcards):
    """The evaluations of a re-run's runs 1..experiment.runs."""
    runs = range(1, EXPERIMENT.get("runs", 1) + 1)
    return expand("results/eval/reruns/{run}/run{r}", run=wildcards.run, r=runs)


def get_rerun_label_args(wildcards, input):
    """`--run STEP=folder` per run, STEP being the checkpoint the runs end at."""
    last = layout.rerun_window(config, wildcards.run)[1]
    return " ".join(f"--run {last}={d}" for d in input)


# `--metric X` (one metric, or task=metric pairs), or nothing: the paper's metric per task
EVAL_METRIC = " ".join(
    ["--metric", shlex.quote(metric_cli_value(EVAL.get("metric")))]
    if EVAL.get("metric")
    else []
)


# -- search (search.smk) ----------------------------------------------------------------------------


def term_files():
    """The relations' term files as inputs, so that an edited file re-runs the vocabulary and the
    search (a folder's mtime does not change when a file in it does); the toy world's folder as a
    whole, since rule `world` (or `pararel`, with `eval.pararel_hub`) writes it as one output.
    """
    if TERMS_DIR.startswith(WORLD_DIR) or EVAL.get("pararel_hub"):
        return [TERMS_DIR]
    rels = layout.pararel_relations(EVAL.get("tasks", []))
    return [str(layout.term_file(TERMS_DIR, rel)) for rel in rels]


def get_terms_dir(wildcards, input):
    """The folder of the term files (the input is the folder, or its files)."""
    t = input.terms[0]
    return t if os.path.isdir(t) else os.path.dirname(t)


# -- selection and mapping (select.smk) -------------------------------------------------------------


def side_files(pattern):
    """An input function: `pattern` (with `{group}`) for every group of a mapping's `{side}`."""

    def get(wildcards):
        groups = layout.side_groups(config, wildcards.name, [wildcards.side])
        return group_files(pattern, groups)

    return get


def mapping_files(pattern):
    """An input function: `pattern` (with `{group}`) for every group of both sides of a mapping."""

    def get(wildcards):
        groups = layout.side_groups(config, wildcards.name, ["target", "source"])
        return group_files(pattern, groups)

    return get


def get_mapping_window(side):
    """A param: `first last` of a mapping's `side` window."""

    def get(wildcards):
        return " ".join(map(str, layout.mapping_window(config, wildcards.name, side)))

    return get


def get_mapping_flags(wildcards):
    v = INTERVENTIONS[wildcards.name]
    flags = ("shuffle_candidates", "swap_direction")
    return " ".join(f"--{f.replace('_', '-')}" for f in flags if v.get(f))


# -- swap (swap.smk) --------------------------------------------------------------------------------


def get_indices(wildcards):
    """The documents to swap: a score mapping's, or a selection's doc indices."""
    mapped = layout.strategy_names(config, layout.MAPPING_STRATEGIES)
    kind = "mapping" if wildcards.name in mapped else "doc_idxs"
    return f"results/interventions/{wildcards.name}/{kind}.npz"


def get_swap_flags(wildcards):
    """add_coocc inserts documents: pair new-first and skip extras (the paper's README); others
    pair originals first; both overridable per intervention."""
    v = INTERVENTIONS[wildcards.name]
    adding = v["strategy"] == "add_coocc"
    flags = []
    if v.get("pair_by_new_first", adding):
        flags.append("--pair-by-new-first")
    if v.get("skip_extra", adding):
        flags.append("--skip-extra")
    return " ".join(flags)


# -- effect and report (effect.smk) -----------------------------------------------------------------


def get_control_labels(wildcards):
    """The labels of the control re-runs of an intervention's window."""
    return f"results/eval/reruns/{layout.control_of(config, wildcards.name)}/labels.npz"


def get_effect_targets(wildcards):
    """The file naming an intervention's targeted instances (intervene.effect.targeted_instances):
    a score mapping's learned instances, or a selection's doc indices."""
    if wildcards.name in layout.strategy_names(config, layout.MAPPING_STRATEGIES):
        return get_learned_targets(wildcards)
    return f"results/interventions/{wildcards.name}/doc_idxs.npz"


def get_replay_flag(wildcards, input):
    return f"--replay {input.replay[0]}" if input.replay else ""


def get_direction_flag(wildcards):
    return (
        "--swap-direction"
        if INTERVENTIONS[wildcards.name].get("swap_direction")
        else ""
    )


def get_figure_args(wildcards, input):
    """`--figure name=path` per intervention, in config order."""
    return " ".join(f"--figure {n}={p}" for n, p in zip(INTERVENTIONS, input.figures))


BOOTSTRAP = EXPERIMENT.get("bootstrap", {})
