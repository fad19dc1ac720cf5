"""The workflow's input and param functions, bound to the resolved config.

``workflow/rules/common.smk`` builds one :class:`Inputs` from the checked, resolved config
(:func:`intervene.settings.resolve_config`) and the rules name its methods (``W.select_inputs``):
Snakemake passes ``wildcards``, ``input``, ``output`` and ``attempt`` by parameter name, which a
bound method takes as a function does. Where things are comes from :mod:`intervene.layout`, what a
job runs with from :mod:`intervene.workflow_args`; here they become the files a job waits for and
the words of its command, as pure functions of the config and the wildcards (unit-tested in
``tests/test_workflow_inputs.py``). Cheap: nothing here reads the data while the DAG is built
(the data's batch shape, for the resources, is read when a job is scheduled).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from intervene import figures_workflow as figw
from intervene import inspect_workflow as iw
from intervene import layout
from intervene import workflow_args as wargs
from intervene.layout import BATCHES_DIR, DOC_INFO_DIR, INTERVENTIONS_DIR, SEARCH_DIR, TRAIN_DIR, WORLD_DIR
from intervene.settings import Bm25Config, DenseConfig, InterventionConfig, OlmoBackendConfig

ORIGINAL_SUMMARY = f"{TRAIN_DIR}/original/summary.json"
#: The original run's checkpoints in OLMo's unsharded format (rule export_olmo), the fork's start.
OLMO_EXPORT_DIR = "results/olmo/checkpoints"


def group_files(pattern: str, groups: Iterable[str]) -> list[str]:
    """``pattern`` (with ``{group}``) for each group folder name in ``groups``, in order."""
    return [pattern.replace("{group}", g) for g in groups]


def group_inputs(groups: list[str], **patterns: str) -> dict[str, list[str]]:
    """``{name: pattern per group}`` for ``unpack()``: each input a list in group (batch) order."""
    return {k: group_files(p, groups) for k, p in patterns.items()}


def window_inputs(groups: list[str]) -> dict[str, list[str]]:
    """The decoded folders and doc-info files of ``groups`` (what every window stage reads)."""
    return group_inputs(groups, batches=f"{BATCHES_DIR}/{{group}}", doc_info=f"{DOC_INFO_DIR}/{{group}}.npy")


def attempt_times(base: int) -> Callable[..., int]:
    """A ``resources:`` callable: ``base`` times the Slurm attempt (a retried job asks for more)."""

    def get(wildcards: Any, attempt: int) -> int:
        return base * attempt

    return get


def output_dir(wildcards: Any, output: Any) -> str:
    """The folder of a rule's first output (stages that write several files into it)."""
    return os.path.dirname(output[0])


def original_dir(wildcards: Any, input: Any) -> str:
    """The original run's folder (beside its summary)."""
    return os.path.dirname(input.original)


def list_dir(wildcards: Any, input: Any) -> str:
    """The folder of a rule's ``data_list`` input (whose entries are relative to it)."""
    return os.path.dirname(input.data_list)


def terms_dir_of(wildcards: Any, input: Any) -> str:
    """The folder of the term files (the input is the folder, or its files)."""
    t = input.terms[0]
    return t if os.path.isdir(t) else os.path.dirname(t)


def group_number(wildcards: Any) -> int:
    """The CLI's 1-based group number of folder ``{group}`` (001 -> 1)."""
    return int(wildcards.group)


def replay_flag(wildcards: Any, input: Any) -> str:
    """``--replay FILE`` when the effect reads the replay check."""
    return f"--replay {input.replay[0]}" if input.replay else ""


def olmo_save_folder(wildcards: Any, output: Any) -> str:
    """The fork's save folder, beside the re-run's config."""
    return os.path.join(os.path.dirname(output[0]), "ckpt")


def inspect_steps(wildcards: Any) -> str:
    """``--step A --to-step B`` of ``step{A}`` or ``step{A}-{B}``."""
    parts = wildcards.steps.split("-")
    return f"--step {parts[0]} --to-step {parts[-1]}"


class Inputs:
    """Input, param and resource functions of the rules, for one resolved config.

    ``given``: the sections the user wrote (:func:`intervene.layout.given_sections`): an optional
    stage that is off reads as empty. ``node_script``: the multi-node torchrun launcher's path.
    """

    # functions that need no config, as attributes so that rules name them all as W.x
    attempt_times = staticmethod(attempt_times)
    output_dir = staticmethod(output_dir)
    original_dir = staticmethod(original_dir)
    list_dir = staticmethod(list_dir)
    terms_dir_of = staticmethod(terms_dir_of)
    group_number = staticmethod(group_number)
    replay_flag = staticmethod(replay_flag)
    olmo_save_folder = staticmethod(olmo_save_folder)
    inspect_steps = staticmethod(inspect_steps)

    def __init__(self, config: Mapping, given: Iterable[str], node_script: str = "torchrun_node.sh") -> None:
        self.config = config
        self.given = frozenset(given)
        self.eval = config["eval"] if "eval" in self.given else {}
        self.match = config["match"] if "match" in self.given else {}
        # an optional stage that is off: its settings' defaults (its rules are never asked for jobs)
        self.bm25 = self.match["bm25"] if self.match else Bm25Config().to_dict()
        self.dense = self.match["dense"] if self.match else DenseConfig().to_dict()
        self.dpr = self.dense["kind"] == "dpr"
        self.interventions = config["interventions"] if "interventions" in self.given else {}
        self.experiment = config["experiment"]
        self.released = config["train"]["released"] or {}
        # train.olmo with every default filled (an absent section: the defaults alone)
        self.olmo = config["train"].get("olmo") or OlmoBackendConfig().to_dict()
        # which trainer re-runs the windows: this package's (rule pretrain_rerun) or the OLMo fork's
        self.olmo_backend = config["train"].get("backend", "builtin") == "olmo"
        self.eval_tasks = wargs.eval_tasks(config)
        self.relations = ",".join(layout.pararel_relations(self.eval["tasks"] if self.eval else []))
        self.terms_dir = layout.terms_dir(config)
        self.pararel = layout.pararel_dir(config)
        # wildcard constraint of a re-run's name: an intervention, or a control window
        self.rerun_names = layout.rerun_name_pattern(config)
        # interventions whose re-runs read only their rewritten window (rule intervention_list)
        padded = layout.padded_names(config)
        self.padded_names = "|".join(padded) or "no-padded-intervention"
        self.unpadded_names = "|".join(n for n in self.interventions if n not in padded) or "no-intervention"
        self.intervention_names = "|".join(self.interventions) or "no-intervention"
        # `--pararel PATH --sciq ...`: the evaluation data flags of the window scorers
        self.source_flags = " ".join(wargs.source_flags(config))
        # `intervene`, `torchrun ...` or `srun ... torchrun_node.sh NPROC` (several nodes)
        self.train_launcher = wargs.train_launcher(config, node_script)
        self.train_resources = wargs.train_resources(config)

    # -- wildcard constraints and fixed inputs ----------------------------------------------------

    def names_of(self, *strategies: str, none: str = "none") -> str:
        """Wildcard constraint: the interventions of these strategies (``none`` when there is none)."""
        return "|".join(layout.strategy_names(self.config, strategies)) or none

    def data_inputs(self) -> list[str]:
        """Token files that rules must wait for (the world's; a user's local files are not listed,
        so that parsing never touches the data)."""
        local = self.config["data"]["source"] == "local"
        return [f"{WORLD_DIR}/data"] if layout.uses_world(self.config) and local else []

    def tokenizer_input(self) -> list[str]:
        """The tokenizer folder as an input when it is a local path (not a hub id)."""
        tok = self.config["data"]["tokenizer"]
        return [tok] if tok.startswith(WORLD_DIR) or os.path.exists(tok) else []

    def tokenizer(self, wildcards: Any, input: Any) -> str:
        """The tokenizer as the CLI gets it: the input folder, else the configured hub id."""
        return input.tokenizer if input.tokenizer else self.config["data"]["tokenizer"]

    def protects_original(self) -> bool:
        """Whether the original run's summary is write-protected: when the data are not the toy
        world's (hours of GPU time at scale, and a re-run of the rule would let the trainer clear
        checkpoints of another fingerprint). The toy world's run stays unprotected: a changed world
        retrains it (README, run fingerprints)."""
        return not layout.uses_world(self.config)

    def replay_inputs(self) -> list[str]:
        """The decoded group folders the replay check reads (none without a replay check)."""
        return group_files(f"{BATCHES_DIR}/{{group}}", wargs.replay_groups(self.config))

    def replay_report(self) -> list[str]:
        """The replay check's report as the effect's input, when there is a replay check."""
        return [f"{TRAIN_DIR}/replay_check.json"] if self.config["train"]["replay_check"] else []

    def term_files(self) -> list[str]:
        """The relations' term files as inputs, so that an edited file re-runs the vocabulary and
        the search (a folder's mtime does not change when a file in it does); the toy world's folder
        as a whole, since rule ``world`` (or ``pararel``, with ``eval.pararel_hub``) writes it as one
        output."""
        if self.terms_dir.startswith(WORLD_DIR) or self.eval.get("pararel_hub"):
            return [self.terms_dir]
        rels = layout.pararel_relations(self.eval.get("tasks", []))
        return [str(layout.term_file(self.terms_dir, rel)) for rel in rels]

    def eval_gpus(self, section: Mapping) -> Callable[[Any], int]:
        """A ``resources: gpu`` callable: one GPU when the section's device is CUDA."""

        def get(wildcards: Any) -> int:
            return wargs.gpus_of(section["device"])

        return get

    # -- resources of the CPU stages (intervene.resources' fit) -----------------------------------

    @cached_property
    def data_shape(self) -> tuple[int, int]:
        """(global batch size, sequence length) of the data (the OLMo train config is read once)."""
        return layout.data_shape(self.config)

    def job_groups(self, stage: str, wildcards: Any) -> list[str]:
        """The group folders a job of ``stage`` reads: its group, or the groups of the windows an
        intervention reads."""
        if hasattr(wildcards, "group"):
            return [wildcards.group]
        if stage == "bm25_window":
            return layout.side_groups(self.config, wildcards.name, [wildcards.side])
        if stage == "mapping":
            return layout.side_groups(self.config, wildcards.name, ["target", "source"])
        return layout.intervention_groups(self.config, wildcards.name)  # select, swap

    def job_batches(self, stage: str, wildcards: Any) -> int:
        """The batches a job of ``stage`` reads, which its time and memory grow with: those of its
        groups inside the decoded window, or (memmap) the rewritten window."""
        if stage == "memmap":
            return self.config["train"]["save_interval"]
        return sum(layout.decoded_batch_count(self.config, g) for g in self.job_groups(stage, wildcards))

    def fitted(self, stage: str, key: str) -> Callable[[Any, int], int]:
        """A ``resources:`` callable: ``mem_mb`` or ``runtime`` of a ``stage`` job at its attempt
        (evaluated when a job is scheduled, never at parse time)."""

        def get(wildcards: Any, attempt: int) -> int:
            from intervene.resources import estimate

            mem, runtime = estimate(stage, self.job_batches(stage, wildcards), *self.data_shape, attempt)
            return mem if key == "mem_mb" else runtime

        return get

    # -- training ---------------------------------------------------------------------------------

    def control_groups(self, wildcards: Any) -> list[str]:
        """The decoded group folders holding a control's window [first, last)."""
        groups = layout.groups_of(self.config, int(wildcards.first), int(wildcards.last))
        return group_files(f"{BATCHES_DIR}/{{group}}", groups)

    def rerun_start(self, wildcards: Any) -> str:
        """A re-run starts from the original run's checkpoint at its window's start: trained here
        (wait for the run), or a released one (fetched and imported by rule ``import_released``)."""
        if self.config["train"]["original"]:
            return ORIGINAL_SUMMARY
        return layout.original_checkpoint(layout.rerun_window(self.config, wildcards.run)[0])

    def rerun_steps(self, wildcards: Any) -> int:
        """The steps of a re-run: its window's batches."""
        first, last = layout.rerun_window(self.config, wildcards.run)
        return last - first

    def rerun_settings(self, wildcards: Any) -> str:
        """``intervene train --settings`` of run ``{r}`` of re-run ``{run}``."""
        return wargs.rerun_train_settings(self.config, wildcards.run, int(wildcards.r))

    def replay_settings(self, wildcards: Any) -> str:
        """``intervene replay-check --settings``: the replayed steps and the device's tolerance."""
        return wargs.replay_settings(self.config)

    def download_settings(self, wildcards: Any) -> str:
        """``intervene download --settings``: the ``data.download`` section."""
        return wargs.download_settings(self.config)

    def checkpoint_url(self, wildcards: Any) -> str:
        """The released checkpoint of step ``{step}``."""
        return self.released["checkpoint_url"].format(step=wildcards.step)

    # -- released checkpoints of an OLMo run (stepN-unsharded/) or an OLMo-core run (stepN/: DCP) ----

    @cached_property
    def released_olmo_core(self) -> bool:
        """Whether the released checkpoints are an OLMo-core run's (its data loader: data.loader)."""
        return self.config["data"].get("loader", "olmo") == "olmo_core"

    @cached_property
    def released_local(self) -> bool:
        """An OLMo-core run's checkpoints given as a local path template: read in place, not fetched."""
        return self.released_olmo_core and "://" not in self.released.get("checkpoint_url", "://")

    @cached_property
    def released_dir(self) -> str:
        """Rule ``fetch_released``'s folder of step ``{step}``."""
        kind = "olmo_core" if self.released_olmo_core else "unsharded"
        return f"resources/checkpoints/step{{step}}-{kind}"

    @cached_property
    def _checkpoint_mem_mb(self) -> int:
        """What one process holding a whole checkpoint of this run needs (weights and AdamW
        moments in fp32: :mod:`intervene.train.checkpoint_memory`); the toy world's is tiny."""
        from intervene.train.checkpoint_memory import MIN_MB, checkpoint_mem_mb

        if layout.uses_world(self.config):
            return MIN_MB
        path = Path(self.config["data"]["train_config"])
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if self.released_olmo_core:
            from intervene.train.olmo_core_import import olmo_style_config

            raw = olmo_style_config(raw, str(path), skip_step_as_adamw=True)  # its model section only
        return checkpoint_mem_mb(raw["model"])

    def checkpoint_mem_mb(self, wildcards: Any, attempt: int) -> int:
        """``mem_mb`` of ``import_released`` and ``export_olmo``: the model's need times the Slurm
        attempt."""
        return self._checkpoint_mem_mb * attempt

    def released_fetch_format(self) -> str:
        """``intervene fetch-checkpoint --format``."""
        return "olmo_core" if self.released_olmo_core else "olmo"

    def released_source(self, wildcards: Any) -> list[str]:
        """What rule ``import_released`` waits for: the fetched folder, or nothing for a local one."""
        return [] if self.released_local else [self.released_dir.format(step=wildcards.step)]

    def import_released_command(self, wildcards: Any, input: Any, output: Any) -> str:
        """``intervene import-olmo`` of an OLMo unsharded checkpoint, or ``intervene import-olmo-core``
        of an OLMo-core checkpoint folder, with the run's config (data.train_config)."""
        q = shlex.quote
        if not self.released_olmo_core:
            return (
                f"intervene import-olmo --olmo-dir {q(input.checkpoint[0])} --out {q(output[0])}"
                f" --train-config {q(input.train_config)}"
            )
        src = self.checkpoint_url(wildcards) if self.released_local else input.checkpoint[0]
        skip = " --skip-step-as-adamw" if self.released.get("skip_step_as_adamw") else ""
        return (
            f"intervene import-olmo-core --checkpoint {q(src)} --out {q(output[0])}"
            f" --train-config {q(input.train_config)}{skip}"
        )

    # -- OLMo backend -----------------------------------------------------------------------------

    def olmo_base_config(self) -> str:
        """The original run's OLMo config the re-run configs are copies of (default:
        data.train_config, as given: its data paths are replaced, so no localized copy needed)."""
        return self.olmo.get("base_config") or self.config["data"]["train_config"]

    def olmo_memmap(self, wildcards: Any) -> str:
        """A re-run's raw token memmaps: an intervention's rewritten window (rule ``memmap``), or a
        control's unmodified batches (rule ``control_memmap``)."""
        if wildcards.run in self.interventions:
            return f"{INTERVENTIONS_DIR}/{wildcards.run}/memmap"
        return f"results/olmo/{wildcards.run}/memmap"

    def olmo_start(self, wildcards: Any) -> list[str]:
        """The window's first checkpoint as an input: none when train.olmo.checkpoints names it (the
        user provides it); the original run's, exported by rule ``export_olmo``, when the run is
        trained here; else the released one, fetched unsharded (rule ``fetch_released``)."""
        if self.olmo.get("checkpoints"):
            return []
        first = layout.rerun_window(self.config, wildcards.run)[0]
        if self.config["train"]["original"]:
            return [f"{OLMO_EXPORT_DIR}/step{first}-unsharded"]
        return [f"resources/checkpoints/step{first}-unsharded"]

    def olmo_export_source(self, wildcards: Any) -> str:
        """The original run's checkpoint at ``{step}`` that rule ``export_olmo`` converts (written
        by rule ``pretrain_original``, which the rule waits for through its summary)."""
        return layout.original_checkpoint(wildcards.step)

    def olmo_load_path(self, wildcards: Any, input: Any) -> str:
        """The fork's load_path: the window's first checkpoint in OLMo's unsharded format."""
        if self.olmo.get("checkpoints"):
            first = layout.rerun_window(self.config, wildcards.run)[0]
            return shlex.quote(self.olmo["checkpoints"].format(step=first))
        return input.start[0]

    def olmo_max_duration_flag(self) -> str:
        """``--max-duration D`` when train.olmo.max_duration is set."""
        md = self.olmo.get("max_duration")
        return f"--max-duration {shlex.quote(str(md))}" if md is not None else ""

    def olmo_train_command(self, wildcards: Any, input: Any) -> str:
        """The fork's training command of run ``{r}`` of re-run ``{run}``."""
        from intervene.train.olmo_backend import train_command

        name = f"{wildcards.run}/run{wildcards.r}"
        return train_command(self.olmo["repo"], input[0], name, self.olmo["nproc"])

    def olmo_convert_command(self, wildcards: Any, input: Any, output: Any) -> str:
        """Convert the re-run's last checkpoint, step{last}-unsharded in its save folder."""
        from intervene.train.olmo_backend import convert_command, final_checkpoint

        last = layout.rerun_window(self.config, wildcards.run)[1]
        ckpt = final_checkpoint(input[0], last)
        return convert_command(self.olmo["repo"], ckpt, output[0], self.olmo["tokenizer_json"])

    # -- evaluation -------------------------------------------------------------------------------

    def original_run(self, wildcards: Any) -> dict[str, str]:
        """What an evaluation of the original run's checkpoint waits for: the run trained here
        (its summary is written last), or nothing for a released checkpoint (read from the hub)."""
        return {"original": ORIGINAL_SUMMARY} if self.config["train"]["original"] else {}

    def eval_model(self, wildcards: Any) -> str:
        """Our checkpoint folder, or the released checkpoint's hub id and revision."""
        return layout.eval_model(self.config, wildcards.step)

    def eval_settings(self, wildcards: Any) -> str:
        """``intervene eval`` / ``labels --settings``: the resolved ``eval`` section."""
        return wargs.eval_settings(self.config)

    def original_evals(self, wildcards: Any, input: Any) -> str:
        """``step=folder`` of every evaluated checkpoint of the original run."""
        return wargs.original_evals(self.config, list(input))

    def rerun_trained(self, wildcards: Any) -> str:
        """What a re-run's evaluation reads: the built-in trainer's run (its summary is written
        last; the checkpoint at the window's end beside it), or the OLMo fork's run converted to HF."""
        if self.olmo_backend:
            return f"results/olmo/{wildcards.run}/run{wildcards.r}/hf"
        return f"results/reruns/{wildcards.run}/run{wildcards.r}/summary.json"

    def rerun_model(self, wildcards: Any, input: Any) -> str:
        """A re-run's last checkpoint: the end of its window (the HF folder of an OLMo re-run)."""
        if self.olmo_backend:
            return input[0]
        last = layout.rerun_window(self.config, wildcards.run)[1]
        return os.path.join(os.path.dirname(input[0]), f"step{last}")

    def rerun_evals(self, wildcards: Any) -> list[str]:
        """The evaluations of a re-run's runs 1..experiment.runs."""
        runs = range(1, self.experiment.get("runs", 1) + 1)
        return [f"results/eval/reruns/{wildcards.run}/run{r}" for r in runs]

    def rerun_label_args(self, wildcards: Any, input: Any) -> str:
        """``--run STEP=folder`` per run, STEP being the checkpoint the runs end at."""
        return wargs.rerun_label_args(self.config, wildcards.run, list(input))

    # -- effect and report ------------------------------------------------------------------------

    def control_labels(self, wildcards: Any) -> str:
        """The labels of the control re-runs of an intervention's window."""
        return f"results/eval/reruns/{layout.control_of(self.config, wildcards.name)}/labels.npz"

    def learned_targets(self, wildcards: Any) -> str:
        """A score mapping's targets: the instances learned at its checkpoint, or
        (``target_selection``) the instances of an rm_coocc intervention's selection (its
        doc_idxs.npz: the rule depends on it)."""
        v = self.interventions[wildcards.name]
        if v.get("target_selection"):
            return f"{INTERVENTIONS_DIR}/{v['target_selection']}/doc_idxs.npz"
        return f"results/eval/original/learned_step{v['checkpoint']}.npz"

    def is_mapping(self, name: str) -> bool:
        """Whether intervention ``name`` is a score mapping (else a selection)."""
        return name in layout.strategy_names(self.config, layout.MAPPING_STRATEGIES)

    def effect_targets(self, wildcards: Any) -> str:
        """The file naming an intervention's targeted instances (intervene.effect.targeted_instances):
        a score mapping's learned instances, or a selection's doc indices."""
        if self.is_mapping(wildcards.name):
            return self.learned_targets(wildcards)
        return f"{INTERVENTIONS_DIR}/{wildcards.name}/doc_idxs.npz"

    def effect_settings(self, wildcards: Any) -> str:
        """``intervene effect --settings``: strategy, direction, target tasks, the bootstrap."""
        return wargs.effect_settings(self.config, wildcards.name)

    def figure_args(self, wildcards: Any, input: Any) -> str:
        """``--figure name=path`` per intervention, in config order."""
        return wargs.figure_args(self.config, list(input.figures))

    def docs_matrices(self, wildcards: Any) -> list[str]:
        """The matrices docs-per-instance counts a selection's documents in."""
        return figw.docs_matrices(self.config, wildcards.name)

    def docs_terms(self, wildcards: Any) -> str:
        """docs-per-instance's term flags of a selection."""
        return figw.docs_terms_args(self.config, wildcards.name)

    # -- select / window scorers / mapping / swap ---------------------------------------------------
    # The files each stage reads: the decoded group folders (decode names every batch file by its
    # global number, so a stage needs no batches_per_group), their doc info, and the groups'
    # matrices or embeddings. Settings go as resolved values (no default here).

    def select_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """What ``intervene select`` reads: the decoded folders and doc info of window(c) and the
        following window(s); the pair matrices of window(c) and the next window; rm_occ also the
        term matrices of window(c) and its two following windows."""
        v = self.interventions[wildcards.name]
        span = layout.intervention_groups(self.config, wildcards.name)
        out = window_inputs(span)
        pairs = layout.side_groups(self.config, wildcards.name, ["target", "source"])
        out["pair_doc"] = group_files(f"{SEARCH_DIR}/pair_doc/{{group}}", pairs)
        terms = span if v["strategy"] == "rm_occ" else []
        out["term_doc"] = group_files(f"{SEARCH_DIR}/term_doc/{{group}}", terms)
        return out

    def select_settings(self, wildcards: Any) -> str:
        """``intervene select --settings``: the intervention's strategy, checkpoint and n_drop, the
        window length K (train.save_interval) and the decoded end (decode.last_batch)."""
        v = self.interventions[wildcards.name]
        s = {k: v[k] for k in ("strategy", "checkpoint", "n_drop")}
        s.update(
            interval=self.config["train"]["save_interval"], last_batch=self.config["decode"]["last_batch"]
        )
        # explicit windows only when given: a default config's command stays as it was
        s.update({k: v[k] for k in ("window", "extras_window") if v[k] is not None})
        return wargs.settings_arg(s)

    def side_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """What a window scorer reads for a mapping's ``{side}``: the window's decoded folders and
        doc info (the dense scorer also the groups' document embeddings)."""
        groups = layout.side_groups(self.config, wildcards.name, [wildcards.side])
        out = window_inputs(groups)
        if self.interventions[wildcards.name]["strategy"] == "dense_mapping":
            out["docs"] = group_files(f"{SEARCH_DIR}/dense/docs/{{group}}.npy", groups)
        return out

    def window_flags(self, wildcards: Any) -> str:
        """``--first F --last L``: a mapping's side ``{side}`` (target: window(c); source: the next)."""
        first, last = layout.mapping_window(self.config, wildcards.name, wildcards.side)
        return f"--first {first} --last {last}"

    def window_query(self, wildcards: Any) -> str:
        """The window scorers' query: the intervention's (resolved: its strategy's default)."""
        return self.interventions[wildcards.name]["query"]

    def datasets_flag(self, wildcards: Any) -> str:
        """``--datasets ...`` when an intervention targets only some tasks' instances (e.g. sciq)."""
        ds = self.interventions[wildcards.name]["datasets"]
        return f"--datasets {','.join(ds)}" if ds else ""

    def cooccurrence_counts(self, name: str) -> bool:
        """Whether mapping ``name`` counts documents per instance from co-occurrences."""
        return self.interventions[name].get("doc_counts") == "cooccurrence"

    def mapping_inputs(self, wildcards: Any) -> dict[str, Any]:
        """What ``intervene map-docs`` reads besides the scores: both windows' decoded folders and
        doc info; with ``doc_counts: cooccurrence`` also the targets file, learned.npz and the
        target window's pair matrices."""
        out: dict[str, Any] = window_inputs(
            layout.side_groups(self.config, wildcards.name, ["target", "source"])
        )
        if self.cooccurrence_counts(wildcards.name):
            target = layout.side_groups(self.config, wildcards.name, ["target"])
            out["pair_doc"] = group_files(f"{SEARCH_DIR}/pair_doc/{{group}}", target)
            out["instances"] = self.learned_targets(wildcards)
            out["learned"] = "results/eval/original/learned.npz"
        return out

    def mapping_count_flags(self, wildcards: Any, input: Any) -> str:
        """`` --instances ... --relations ...`` for ``doc_counts: cooccurrence`` (else nothing: a
        default mapping's command stays as it was)."""
        if not self.cooccurrence_counts(wildcards.name):
            return ""
        return (
            f" --instances {input.instances} {self.datasets_flag(wildcards)} --learned {input.learned}"
            f" --pair-doc {' '.join(input.pair_doc)} --relations {self.relations}"
        )

    def mapping_window(self, side: str) -> Callable[[Any], str]:
        """A param: ``first last`` of a mapping's ``side`` window."""

        def get(wildcards: Any) -> str:
            return " ".join(map(str, layout.mapping_window(self.config, wildcards.name, side)))

        return get

    def intervention_settings(self, kind: str) -> Callable[[Any], str]:
        """A param: ``intervene map-docs`` / ``swap --settings`` of intervention ``{name}``
        (``kind``: ``map_settings`` or ``swap_settings`` of InterventionConfig)."""

        def get(wildcards: Any) -> str:
            where = f"interventions.{wildcards.name}"
            v = InterventionConfig.from_mapping(self.interventions[wildcards.name], where)
            s = getattr(v, kind)
            # map-docs' later options only when set: a default mapping's command stays as it was
            return wargs.settings_arg(s.rule_dict() if kind == "map_settings" else s.to_dict())

        return get

    def swap_inputs(self, wildcards: Any) -> dict[str, list[str]]:
        """What ``intervene swap`` reads besides the indices: the decoded folders and doc info of
        the groups its windows span (window(c) and the following window(s))."""
        return window_inputs(layout.intervention_groups(self.config, wildcards.name))

    def indices(self, wildcards: Any) -> str:
        """The documents to swap: a score mapping's, or a selection's doc indices."""
        kind = "mapping" if self.is_mapping(wildcards.name) else "doc_idxs"
        return f"{INTERVENTIONS_DIR}/{wildcards.name}/{kind}.npz"

    # -- a re-run's unmodified batches around its rewritten window --------------------------------

    def padding_groups(self, part: str) -> Callable[[Any], list[str]]:
        """An input function: the decoded group folders of the unmodified batches a re-run reads
        before (``part``: before) or after its rewritten window."""

        def get(wildcards: Any) -> list[str]:
            before, after = layout.rerun_padding(self.config, wildcards.name)
            first, last = before if part == "before" else after
            return group_files(f"{BATCHES_DIR}/{{group}}", layout.groups_of(self.config, first, last))

        return get

    def padding_lists(self, wildcards: Any, input: Any, output: Any) -> str:
        """``intervene batch-list`` of the unmodified batches before / after the window, each to a
        part file beside the output (``{output}.before``, ``.after``)."""
        cmds = []
        windows = layout.rerun_padding(self.config, wildcards.name)
        for part, (first, last), dirs in zip(
            ("before", "after"), windows, (input.before, input.after), strict=True
        ):
            if first < last:
                cmds.append(
                    f"intervene batch-list --group-dirs {' '.join(dirs)} --first {first}"
                    f" --last {last} --out {output[0]}.{part} &&"
                )
        return " ".join(cmds)

    def padding_parts(self, wildcards: Any, output: Any) -> str:
        """What ``cat`` joins: the before part, the rewritten window (stdin), the after part."""
        before, after = layout.rerun_padding(self.config, wildcards.name)
        parts = [f"{output[0]}.before"] if before[0] < before[1] else []
        parts.append("-")
        return " ".join(parts + ([f"{output[0]}.after"] if after[0] < after[1] else []))

    # -- inspecting a mapping's documents (inspect_docs.smk) --------------------------------------

    def top_docs_batches(self, wildcards: Any) -> list[str]:
        """The decoded folders of a mapping's side ``{side}``."""
        return iw.side_files(self.config, f"{BATCHES_DIR}/{{group}}", wildcards.name, wildcards.side)

    def top_docs_doc_info(self, wildcards: Any) -> list[str]:
        """The doc-info files of a mapping's side ``{side}``."""
        return iw.side_files(self.config, f"{DOC_INFO_DIR}/{{group}}.npy", wildcards.name, wildcards.side)

    def top_docs_window(self, wildcards: Any) -> str:
        """``first last`` of a mapping's side ``{side}`` (top-docs' window)."""
        return iw.window(self.config, wildcards.name, wildcards.side)

    def top_docs_instances(self, wildcards: Any) -> str:
        """top-docs' instance flags of a mapping."""
        return iw.instance_args(self.config, wildcards.name)
