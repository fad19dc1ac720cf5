# Shared by every rule: config validation, wildcard constraints, input functions (get_*) and the
# default target's lists. Where things are (windows, groups, run names, targets): intervene.layout;
# what a job runs with (settings, launch command, resources): intervene.workflow_args. The config
# is resolved (intervene.settings: every default filled), so rules index it and write no default.
# Top-level code stays cheap: it reads the config only, never the data.
import functools
import os
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from intervene import layout
from intervene import workflow_args as wargs
from intervene.config_check import ConfigError, check_config
from intervene.layout import (
    BATCHES_DIR,
    DATA_DIR,
    DOC_INFO_DIR,
    LOCAL_TRAIN_CONFIG,
    TRAIN_DIR,
    WORLD_DIR,
)
from intervene.settings import Bm25Config, DenseConfig, SettingsError, resolve_config

validate(config, "../schemas/config.schema.yaml")
# what the schema cannot say (checkpoints vs save_interval, windows vs the decoded batches, paths):
# one line naming the key, before any job runs
try:
    check_config(config, schema=workflow.source_path("../schemas/config.schema.yaml"))
    GIVEN = layout.given_sections(config)  # optional stages switch on by presence
    config.update(resolve_config(config))
except (ConfigError, SettingsError) as e:
    raise WorkflowError(f"config: {e}") from None

EVAL = config["eval"] if "eval" in GIVEN else {}
MATCH = config["match"] if "match" in GIVEN else {}
# an optional stage that is off: its settings' defaults (its rules are never asked for jobs)
BM25 = MATCH["bm25"] if MATCH else Bm25Config().to_dict()
DENSE = MATCH["dense"] if MATCH else DenseConfig().to_dict()
INTERVENTIONS = config["interventions"] if "interventions" in GIVEN else {}
EXPERIMENT = config["experiment"]
RELEASED = config["train"]["released"] or {}
EVAL_TASKS = wargs.eval_tasks(config)
RELATIONS = ",".join(layout.pararel_relations(EVAL["tasks"] if EVAL else []))
PER_GROUP = config["decode"]["batches_per_group"]
DENSE_DEVICE = DENSE["device"]
DPR = DENSE["kind"] == "dpr"
TERMS_DIR = layout.terms_dir(config)
PARAREL = layout.pararel_dir(config)
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


# -- interventions (wildcard `name`) -------------------------------------------------------------


def option(key, default=None):
    """A param: option `key` of intervention `{name}` (resolved); `default` stands only for None:
    an intervention's `seed`, whose two defaults (InterventionConfig.map_settings, swap_settings)
    resolve_config leaves to its reader."""

    def get(wildcards):
        v = INTERVENTIONS[wildcards.name][key]
        return default if v is None else v

    return get


def get_window(wildcards):
    """`first last` of a mapping's side `{side}` (target: window(c); source: the next window)."""
    return " ".join(
        map(str, layout.mapping_window(config, wildcards.name, wildcards.side))
    )


def get_datasets_flag(wildcards):
    """`--datasets ...` when an intervention targets only some tasks' instances (e.g. sciq)."""
    ds = INTERVENTIONS[wildcards.name]["datasets"]
    return f"--datasets {','.join(ds)}" if ds else ""


def get_learned_targets(wildcards):
    """A score mapping's targets: the instances learned at its checkpoint, or (`target_selection`)
    the instances of an rm_coocc intervention's selection (its doc_idxs.npz: the rule depends on it).
    """
    v = INTERVENTIONS[wildcards.name]
    if v.get("target_selection"):
        return f"{layout.INTERVENTIONS_DIR}/{v['target_selection']}/doc_idxs.npz"
    return f"results/eval/original/learned_step{v['checkpoint']}.npz"


# -- original run and evaluation ----------------------------------------------------------------


def replay_inputs():
    """The decoded group folders the replay check reads (none without a replay check)."""
    return group_files(f"{BATCHES_DIR}/{{group}}", wargs.replay_groups(config))


# `--pararel PATH --sciq ...`: the evaluation data flags of the window scorers
source_flags = functools.partial(wargs.source_flags, config)


def eval_gpus(section):
    """A `resources: gpu` callable: one GPU when the section's device is CUDA."""

    def get(wildcards):
        return wargs.gpus_of(section["device"])

    return get


# -- the default target's lists (intervene.layout: the stages the config switches on) -----------
doc_info_targets = functools.partial(layout.doc_info_targets, config)
train_targets = functools.partial(layout.train_targets, config)
eval_targets = functools.partial(layout.eval_targets, config, GIVEN)
match_targets = functools.partial(layout.match_targets, config, GIVEN)
intervention_targets = functools.partial(layout.intervention_targets, config, GIVEN)
experiment_targets = functools.partial(layout.experiment_targets, config, GIVEN)


# -- decode -----------------------------------------------------------------------------------------


def get_group_number(wildcards):
    """The CLI's 1-based group number of folder `{group}` (001 -> 1)."""
    return int(wildcards.group)


def get_download_settings(wildcards):
    """`intervene download --settings`: the `data.download` section (root, shards, workers)."""
    return wargs.download_settings(config)


# -- training (train.smk) ---------------------------------------------------------------------------


def get_train_resources():
    """Slurm resources of a training job: GPUs per node, nodes, tasks (intervene.workflow_args)."""
    return wargs.train_resources(config)


# `intervene`, `torchrun ...` or `srun ... torchrun_node.sh NPROC` (several nodes)
TRAIN_LAUNCHER = wargs.train_launcher(
    config, os.path.join(workflow.basedir, "workflow", "scripts", "torchrun_node.sh")
)


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


def get_rerun_steps(wildcards):
    """The steps of a re-run: its window's batches."""
    first, last = layout.rerun_window(config, wildcards.run)
    return last - first


def get_rerun_settings(wildcards):
    """`intervene train --settings` of run `{r}` of re-run `{run}` (start checkpoint, steps, the
    run's order seed): intervene.workflow_args.rerun_train_settings."""
    return wargs.rerun_train_settings(config, wildcards.run, int(wildcards.r))


def get_original_dir(wildcards, input):
    return os.path.dirname(input.original)


def get_replay_settings(wildcards):
    """`intervene replay-check --settings`: the replayed steps and the tolerance of the device."""
    return wargs.replay_settings(config)


# -- released checkpoints (released.smk) ------------------------------------------------------------


def get_checkpoint_url(wildcards):
    return RELEASED["checkpoint_url"].format(step=wildcards.step)


# -- OLMo backend (olmo_backend.smk) ----------------------------------------------------------------


OLMO = config["train"].get("olmo") or {}
# which trainer re-runs the windows: this package's (rule pretrain_rerun) or the OLMo fork's
OLMO_BACKEND = config["train"].get("backend", "builtin") == "olmo"


def get_olmo_base_config():
    """The original run's OLMo config the re-run configs are copies of (default: data.train_config,
    as given: its data paths are replaced, so the localized copy is not needed)."""
    return OLMO.get("base_config") or config["data"]["train_config"]


def get_olmo_memmap(wildcards):
    """A re-run's raw token memmaps: an intervention's rewritten window (rule `memmap`), or a
    control's unmodified batches (rule `control_memmap`)."""
    if wildcards.run in INTERVENTIONS:
        return f"results/interventions/{wildcards.run}/memmap"
    return f"results/olmo/{wildcards.run}/memmap"


def get_list_dir(wildcards, input):
    """The folder of a rule's `data_list` input (whose entries are relative to it)."""
    return os.path.dirname(input.data_list)


def get_olmo_start(wildcards):
    """The window's first checkpoint as an input: the released one, fetched unsharded (rule
    `fetch_released`); none when train.olmo.checkpoints names it (a path or URL the user provides).
    """
    if OLMO.get("checkpoints"):
        return []
    first = layout.rerun_window(config, wildcards.run)[0]
    return [f"resources/checkpoints/step{first}-unsharded"]


def get_olmo_load_path(wildcards, input):
    """The fork's load_path: the window's first checkpoint in OLMo's unsharded format."""
    if OLMO.get("checkpoints"):
        first = layout.rerun_window(config, wildcards.run)[0]
        return shlex.quote(OLMO["checkpoints"].format(step=first))
    return input.start[0]


def get_olmo_max_duration_flag():
    md = OLMO.get("max_duration")
    return f"--max-duration {shlex.quote(str(md))}" if md is not None else ""


def get_olmo_train_command(wildcards, input):
    from intervene.train.olmo_backend import train_command

    name = f"{wildcards.run}/run{wildcards.r}"
    return train_command(OLMO["repo"], input[0], name, OLMO.get("nproc", 1))


def get_olmo_convert_command(wildcards, input, output):
    """Convert the re-run's last checkpoint, step{last}-unsharded in its save folder."""
    from intervene.train.olmo_backend import convert_command, final_checkpoint

    last = layout.rerun_window(config, wildcards.run)[1]
    ckpt = final_checkpoint(input[0], last)
    return convert_command(OLMO["repo"], ckpt, output[0], OLMO["tokenizer_json"])


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


def get_eval_settings(wildcards):
    """`intervene eval` / `labels --settings`: the resolved `eval` section."""
    return wargs.eval_settings(config)


def get_original_evals(wildcards, input):
    """`step=folder` of every evaluated checkpoint of the original run."""
    return wargs.original_evals(config, list(input))


def get_rerun_trained(wildcards):
    """What a re-run's evaluation reads: the built-in trainer's run (its summary is written last;
    the checkpoint at the window's end beside it), or the OLMo fork's run converted to HF.
    """
    if OLMO_BACKEND:
        return f"results/olmo/{wildcards.run}/run{wildcards.r}/hf"
    return f"results/reruns/{wildcards.run}/run{wildcards.r}/summary.json"


def get_rerun_model(wildcards, input):
    """A re-run's last checkpoint: the end of its window (the HF folder of an OLMo re-run)."""
    if OLMO_BACKEND:
        return input[0]
    last = layout.rerun_window(config, wildcards.run)[1]
    return os.path.join(os.path.dirname(input[0]), f"step{last}")


def get_rerun_evals(wildcards):
    """The evaluations of a re-run's runs 1..experiment.runs."""
    runs = range(1, EXPERIMENT.get("runs", 1) + 1)
    return expand("results/eval/reruns/{run}/run{r}", run=wildcards.run, r=runs)


def get_rerun_label_args(wildcards, input):
    """`--run STEP=folder` per run, STEP being the checkpoint the runs end at."""
    return wargs.rerun_label_args(config, wildcards.run, list(input))


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


def get_effect_settings(wildcards):
    """`intervene effect --settings`: the intervention's strategy, direction and target tasks,
    the experiment's bootstrap."""
    return wargs.effect_settings(config, wildcards.name)


def get_figure_args(wildcards, input):
    """`--figure name=path` per intervention, in config order."""
    return wargs.figure_args(config, list(input.figures))


# -- select / search / swap inputs ----------------------------------------------------------------
# The files each stage reads, as named input functions: the decoded group folders (the decode
# stage names every batch file by its global number, so a stage needs no batches_per_group), their
# doc info, and the groups' matrices or embeddings. Settings go as resolved values (no default here).


def group_files(pattern, groups):
    """`pattern` (with `{group}`) for each group folder name in `groups`."""
    return expand(pattern, group=groups)


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


def group_inputs(groups, **patterns):
    """`{name: pattern per group}` for `unpack()`: each input a list in group (batch) order."""
    return {k: group_files(p, groups) for k, p in patterns.items()}


def get_select_inputs(wildcards):
    """What `intervene select` reads: the decoded folders and doc info of window(c) and the
    following window(s); the pair matrices of window(c) and the next window; rm_occ also the term
    matrices of window(c) and its two following windows."""
    v = INTERVENTIONS[wildcards.name]
    span = layout.intervention_groups(config, wildcards.name)
    out = group_inputs(
        span,
        batches=f"{BATCHES_DIR}/{{group}}",
        doc_info=f"{DOC_INFO_DIR}/{{group}}.npy",
    )
    pairs = layout.side_groups(config, wildcards.name, ["target", "source"])
    out["pair_doc"] = group_files(f"{layout.SEARCH_DIR}/pair_doc/{{group}}", pairs)
    terms = span if v["strategy"] == "rm_occ" else []
    out["term_doc"] = group_files(f"{layout.SEARCH_DIR}/term_doc/{{group}}", terms)
    return out


def get_select_settings(wildcards):
    """`intervene select --settings`: the intervention's strategy, checkpoint and n_drop, the
    window length K (train.save_interval) and the decoded end (decode.last_batch)."""
    v = INTERVENTIONS[wildcards.name]
    s = {k: v[k] for k in ("strategy", "checkpoint", "n_drop")}
    s.update(
        interval=config["train"]["save_interval"],
        last_batch=config["decode"]["last_batch"],
    )
    # explicit windows only when given: a default config's command stays as it was
    s.update({k: v[k] for k in ("window", "extras_window") if v[k] is not None})
    return wargs.settings_arg(s)


def get_side_inputs(wildcards):
    """What a window scorer reads for a mapping's `{side}`: the window's decoded folders and doc
    info (the dense scorer also the groups' document embeddings)."""
    groups = layout.side_groups(config, wildcards.name, [wildcards.side])
    dense = INTERVENTIONS[wildcards.name]["strategy"] == "dense_mapping"
    docs = f"{layout.SEARCH_DIR}/dense/docs/{{group}}.npy"
    embeddings = {"docs": docs} if dense else {}
    return group_inputs(
        groups,
        batches=f"{BATCHES_DIR}/{{group}}",
        doc_info=f"{DOC_INFO_DIR}/{{group}}.npy",
        **embeddings,
    )


def get_window_flags(wildcards):
    """`--first F --last L`: a mapping's side `{side}` (target: window(c); source: the next)."""
    first, last = layout.mapping_window(config, wildcards.name, wildcards.side)
    return f"--first {first} --last {last}"


def get_window_query(wildcards):
    """The window scorers' query: the intervention's (resolved: its strategy's default)."""
    return INTERVENTIONS[wildcards.name]["query"]


def get_mapping_inputs(wildcards):
    """What `intervene map-docs` reads besides the scores: both windows' decoded folders and doc
    info; with `doc_counts: cooccurrence` also the targets file, learned.npz and the target
    window's pair matrices."""
    groups = layout.side_groups(config, wildcards.name, ["target", "source"])
    out = group_inputs(
        groups,
        batches=f"{BATCHES_DIR}/{{group}}",
        doc_info=f"{DOC_INFO_DIR}/{{group}}.npy",
    )
    if INTERVENTIONS[wildcards.name].get("doc_counts") == "cooccurrence":
        target = layout.side_groups(config, wildcards.name, ["target"])
        out["pair_doc"] = group_files(f"{layout.SEARCH_DIR}/pair_doc/{{group}}", target)
        out["instances"] = get_learned_targets(wildcards)
        out["learned"] = "results/eval/original/learned.npz"
    return out


def get_mapping_count_flags(wildcards, input):
    """` --instances ... --relations ...` for `doc_counts: cooccurrence` (else nothing: a default
    mapping's command stays as it was)."""
    if INTERVENTIONS[wildcards.name].get("doc_counts") != "cooccurrence":
        return ""
    return (
        f" --instances {input.instances} {get_datasets_flag(wildcards)} --learned {input.learned}"
        f" --pair-doc {' '.join(input.pair_doc)} --relations {RELATIONS}"
    )


def get_mapping_window(side):
    """A param: `first last` of a mapping's `side` window."""

    def get(wildcards):
        return " ".join(map(str, layout.mapping_window(config, wildcards.name, side)))

    return get


def get_intervention_settings(kind):
    """A param: `intervene map-docs` / `swap --settings` of intervention `{name}` (`kind`:
    `map_settings` or `swap_settings` of intervene.settings.InterventionConfig)."""

    def get(wildcards):
        from intervene.settings import InterventionConfig

        where = f"interventions.{wildcards.name}"
        v = InterventionConfig.from_mapping(INTERVENTIONS[wildcards.name], where)
        s = getattr(v, kind)
        # map-docs' later options only when set: a default mapping's command stays as it was
        return wargs.settings_arg(
            s.rule_dict() if kind == "map_settings" else s.to_dict()
        )

    return get


def get_swap_inputs(wildcards):
    """What `intervene swap` reads besides the indices: the decoded folders and doc info of the
    groups its windows span (window(c) and the following window(s))."""
    groups = layout.intervention_groups(config, wildcards.name)
    return group_inputs(
        groups,
        batches=f"{BATCHES_DIR}/{{group}}",
        doc_info=f"{DOC_INFO_DIR}/{{group}}.npy",
    )


# interventions whose re-runs read only their rewritten window (rule intervention_list)
UNPADDED_NAMES = (
    "|".join(n for n in INTERVENTIONS if n not in layout.padded_names(config))
    or "no-intervention"
)


def get_padding_groups(part):
    """An input function: the decoded group folders of the unmodified batches a re-run reads
    before (`part`: before) or after its rewritten window."""

    def get(wildcards):
        before, after = layout.rerun_padding(config, wildcards.name)
        first, last = before if part == "before" else after
        return group_files(
            f"{BATCHES_DIR}/{{group}}", layout.groups_of(config, first, last)
        )

    return get


def get_padding_lists(wildcards, input, output):
    """`intervene batch-list` of the unmodified batches before / after the window, each to a
    part file beside the output (`{output}.before`, `.after`)."""
    cmds = []
    for part, (first, last), dirs in zip(
        ("before", "after"),
        layout.rerun_padding(config, wildcards.name),
        (input.before, input.after),
    ):
        if first < last:
            cmds.append(
                f"intervene batch-list --group-dirs {' '.join(dirs)} --first {first}"
                f" --last {last} --out {output[0]}.{part} &&"
            )
    return " ".join(cmds)


def get_padding_parts(wildcards, output):
    """What `cat` joins: the before part, the rewritten window (stdin), the after part."""
    before, after = layout.rerun_padding(config, wildcards.name)
    parts = [f"{output[0]}.before"] if before[0] < before[1] else []
    parts.append("-")
    return " ".join(parts + ([f"{output[0]}.after"] if after[0] < after[1] else []))


def get_indices(wildcards):
    """The documents to swap: a score mapping's, or a selection's doc indices."""
    mapped = layout.strategy_names(config, layout.MAPPING_STRATEGIES)
    kind = "mapping" if wildcards.name in mapped else "doc_idxs"
    return f"{layout.INTERVENTIONS_DIR}/{wildcards.name}/{kind}.npz"
