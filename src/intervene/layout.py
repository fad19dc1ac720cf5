"""Where the pipeline's files are, and the arithmetic that places batches, windows and runs.

One place for what the workflow (``workflow/rules/common.smk``), the config check and the stages
each used to compute for themselves: which batch group holds a batch and what its folder is called,
the windows an intervention reads, the names of control re-runs, the ParaRel relations searched,
and the few config readings the DAG needs. Everything here is a pure function of integers, paths
and the config dict, cheap enough to run while Snakemake builds the DAG (no numpy, no data read
except :func:`eval_model` and :func:`data_shape`, which read the train config when a job needs it).

Batches ``b`` are grouped in folders of ``decode.batches_per_group`` (``per``) named ``001``,
``002``, ... (1-based, as the paper's): 0-based group ``g`` holds batches ``[g*per, (g+1)*per)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Folders the rules write (relative to the workflow's working directory).
WORLD_DIR = "results/world"
DATA_DIR = "results/data"
BATCHES_DIR = f"{DATA_DIR}/batches"
DOC_INFO_DIR = f"{DATA_DIR}/doc_info"
LOCAL_TRAIN_CONFIG = f"{DATA_DIR}/train_config.local.yaml"
TRAIN_DIR = "results/train"
SEARCH_DIR = "results/search"
INTERVENTIONS_DIR = "results/interventions"

#: The paper's 12 ParaRel relations in its order (get_correctness_labels.py stacks relations in
#: this order); the toy world's relations carry the same ids (a test keeps the schema's enum equal).
PARAREL_RELATIONS: tuple[str, ...] = (
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
)

SELECTION_STRATEGIES = ("rm_coocc", "rm_occ", "add_coocc")
MAPPING_STRATEGIES = ("bm25_mapping", "dense_mapping")

#: A control re-run: the window [first, last) of the original batches, unmodified.
CONTROL_RUN = re.compile(r"control_(\d+)_(\d+)")


# -- batch groups -----------------------------------------------------------------------------


def group_name(group: int) -> str:
    """Folder name of 0-based group ``group`` (the paper's ``001`` for the first)."""
    if group < 0:
        raise ValueError(f"group {group} is negative")
    return f"{group + 1:03d}"


def group_index(name: str | int) -> int:
    """0-based group of a folder name (``"002"`` or 2 -> 1)."""
    n = int(name)
    if n < 1:
        raise ValueError(f"group folder {name!r} is not a 1-based group number")
    return n - 1


def group_of(batch: int, per: int) -> int:
    """0-based group holding batch ``batch``."""
    return batch // per


def group_batches(group: int, per: int, first: int = 0, last: int | None = None) -> range:
    """Batch indices of 0-based ``group``, clipped to the window ``[first, last)``."""
    lo, hi = group * per, (group + 1) * per
    lo = max(lo, first)
    if last is not None:
        hi = min(hi, last)
    return range(lo, max(lo, hi))


def window_groups(first: int, last: int, per: int) -> range:
    """0-based groups overlapping the window ``[first, last)`` (empty for an empty window)."""
    if last <= first:
        return range(0)
    return range(first // per, (last - 1) // per + 1)


def window_group_names(first: int, last: int, per: int) -> list[str]:
    """Folder names of the groups holding batches ``[first, last)``."""
    return [group_name(g) for g in window_groups(first, last, per)]


def batch_file(batches_root: str | os.PathLike, batch: int, per: int) -> Path:
    """``{batches_root}/{group}/{batch}.npy``: where the decode stage puts batch ``batch``."""
    return Path(batches_root) / group_name(group_of(batch, per)) / f"{batch}.npy"


def batch_files(batches_root: str | os.PathLike, first: int, last: int, per: int) -> list[Path]:
    """The decoded ``.npy`` files of batches ``[first, last)``, in order."""
    return [batch_file(batches_root, b, per) for b in range(first, last)]


def doc_info_file(doc_info_dir: str | os.PathLike, group: str) -> Path:
    """The doc-info file of group folder ``group`` (``002`` -> ``{doc_info_dir}/002.npy``)."""
    return Path(doc_info_dir) / f"{group}.npy"


def term_file(terms_dir: str | os.PathLike, rel: str) -> Path:
    """The paper's term-file name for a relation (``pararel_patterns_{rel}_train.txt``)."""
    return Path(terms_dir) / f"pararel_patterns_{rel}_train.txt"


# -- the decoded window (config ``decode``) ----------------------------------------------------


def decoded_groups(config: Mapping) -> list[str]:
    """Folder names of the groups overlapping the decoded window [first_batch, last_batch)."""
    d = config["decode"]
    return window_group_names(d["first_batch"], d["last_batch"], d["batches_per_group"])


def decoded_batch_count(config: Mapping, group: str) -> int:
    """Batches of group folder ``group`` inside the decoded window (the last group may be partial)."""
    d = config["decode"]
    r = group_batches(group_index(group), d["batches_per_group"], d["first_batch"], d["last_batch"])
    return len(r)


def groups_of(config: Mapping, first: int, last: int) -> list[str]:
    """Folder names of the groups holding batches ``[first, last)`` under the config's grouping."""
    return window_group_names(first, last, config["decode"]["batches_per_group"])


# -- windows of an intervention (checkpoint c, save interval K) --------------------------------


def target_window(checkpoint: int, interval: int) -> tuple[int, int]:
    """window(c) = [c - K, c): the batches before checkpoint c, the ones an intervention rewrites."""
    return checkpoint - interval, checkpoint


def next_window(checkpoint: int, interval: int) -> tuple[int, int]:
    """[c, c + K): the window after window(c) (a mapping's source side)."""
    return checkpoint, checkpoint + interval


def following_window(
    strategy: str, checkpoint: int, interval: int, last_batch: int | None = None
) -> tuple[int, int]:
    """The window after window(c) whose documents a selection adds or keeps as extras: [c, c + K);
    rm_occ (which looks for the instances' terms further ahead) the two following windows
    [c, c + 2K), clipped to the decoded batches (``last_batch``)."""
    ahead = 2 if strategy == "rm_occ" else 1
    end = checkpoint + ahead * interval
    if last_batch is not None:
        end = min(end, last_batch)
    return checkpoint, end


def selection_span(
    strategy: str, checkpoint: int, interval: int, last_batch: int | None = None
) -> tuple[int, int]:
    """All batches a selection (and its swap) reads: window(c) and the following window."""
    return checkpoint - interval, following_window(strategy, checkpoint, interval, last_batch)[1]


def intervention(config: Mapping, name: str) -> Mapping:
    """The config of intervention ``name`` (``interventions.{name}``)."""
    return (config.get("interventions") or {})[name]


def _pair(v) -> tuple[int, int] | None:
    return None if v is None else (int(v[0]), int(v[1]))


def intervention_window(config: Mapping, name: str) -> tuple[int, int]:
    """[start, end): the batches intervention ``name`` rewrites: its ``window``, else window(c) =
    [c - K, c) (K = ``train.save_interval``)."""
    v = intervention(config, name)
    given = _pair(v.get("window"))
    return given or target_window(v["checkpoint"], config["train"]["save_interval"])


def adjacent_window(window: tuple[int, int], where: str = "next") -> tuple[int, int]:
    """The window of the same length right after (``next``) or right before (``previous``)."""
    start, end = window
    if where == "next":
        return end, 2 * end - start
    if where == "previous":
        return 2 * start - end, start
    raise ValueError(f"{where!r} is neither next nor previous")


def next_checkpoint_window(config: Mapping, name: str) -> tuple[int, int]:
    """The window whose end is the checkpoint J is learned at (rm_coocc keeps J's documents out of
    the extras, add_coocc adds them): the ``extras_window``, else the window after the window."""
    v = intervention(config, name)
    return _pair(v.get("extras_window")) or adjacent_window(intervention_window(config, name))


def extras_window(config: Mapping, name: str) -> tuple[int, int]:
    """[start, end): where a selection's extra (rm_coocc, rm_occ) or added (add_coocc) documents
    come from: its ``extras_window``, else the window after the window (rm_occ: the two after it,
    clipped to the decoded batches), as :func:`following_window` for window(c)."""
    v = intervention(config, name)
    given = _pair(v.get("extras_window"))
    if given:
        return given
    start, end = intervention_window(config, name)
    return following_window(v["strategy"], end, end - start, config["decode"]["last_batch"])


def mapping_window(config: Mapping, name: str, side: str) -> tuple[int, int]:
    """A window of intervention ``name``: ``target`` = the window it rewrites (:func:`intervention_
    window`); ``source`` = a mapping's replacement documents' window: its ``extras_window``, else
    the window of the same length after (or, ``source_window: previous``, before) the target; for a
    selection, the window after it (or its ``extras_window``: the next checkpoint's window)."""
    if side == "target":
        return intervention_window(config, name)
    if side == "source":
        v = intervention(config, name)
        given = _pair(v.get("extras_window"))
        if given:
            return given
        where = (v.get("source_window") or "next") if v["strategy"] in MAPPING_STRATEGIES else "next"
        return adjacent_window(intervention_window(config, name), where)
    raise ValueError(f"side {side!r} is neither target nor source")


def intervention_groups(config: Mapping, name: str) -> list[str]:
    """Groups of the window and of the window(s) the extras come from, which a selection and its
    swap read (a mapping's swap: its target and source windows), each once, in batch order."""
    v = intervention(config, name)
    if v["strategy"] in MAPPING_STRATEGIES:
        return side_groups(config, name, ["target", "source"])
    windows = (intervention_window(config, name), extras_window(config, name))
    return sorted({g for w in windows for g in groups_of(config, *w)})


def side_groups(config: Mapping, name: str, sides: Iterable[str] = ("target",)) -> list[str]:
    """Groups of a mapping's windows (``sides``: target, source), each once, in batch order."""
    return sorted({g for side in sides for g in groups_of(config, *mapping_window(config, name, side))})


def strategy_names(config: Mapping, strategies: Iterable[str]) -> list[str]:
    """Names of the interventions whose strategy is one of ``strategies``, in config order."""
    keep = set(strategies)
    return [n for n, v in (config.get("interventions") or {}).items() if v["strategy"] in keep]


# -- re-run names --------------------------------------------------------------------------------


def control_name(first: int, last: int) -> str:
    """The control re-run of window [first, last) (shared by every intervention on that window)."""
    return f"control_{first}_{last}"


def parse_control(run: str) -> tuple[int, int] | None:
    """(first, last) of a control re-run's name, or None for any other name."""
    m = CONTROL_RUN.fullmatch(run)
    return (int(m[1]), int(m[2])) if m else None


def intervention_rerun(config: Mapping, name: str) -> tuple[int, int]:
    """[start_checkpoint, eval_checkpoint): the steps the re-runs of intervention ``name`` train,
    from the original run's checkpoint ``start_checkpoint`` (default: the window's start) to the
    one they are evaluated at, ``eval_checkpoint`` (default: the window's end)."""
    v = intervention(config, name)
    start, end = intervention_window(config, name)
    first = start if v.get("start_checkpoint") is None else int(v["start_checkpoint"])
    last = end if v.get("eval_checkpoint") is None else int(v["eval_checkpoint"])
    return first, last


def rerun_padding(config: Mapping, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The unmodified batches a re-run of ``name`` reads before its rewritten window ([start
    checkpoint, window start)) and after it ([window end, eval checkpoint)); empty by default."""
    first, last = intervention_rerun(config, name)
    start, end = intervention_window(config, name)
    return (first, start), (end, last)


def padded_names(config: Mapping) -> list[str]:
    """Interventions whose re-runs also read unmodified batches around the rewritten window."""
    return [n for n in config.get("interventions") or {} if any(a < b for a, b in rerun_padding(config, n))]


def control_of(config: Mapping, name: str) -> str:
    """The control re-runs of intervention ``name``: its re-runs' steps, over unmodified batches."""
    return control_name(*intervention_rerun(config, name))


def rerun_window(config: Mapping, run: str) -> tuple[int, int]:
    """[first, last) batches a re-run reads, from checkpoint ``first`` to checkpoint ``last``: a
    control's window (unmodified), or an intervention's :func:`intervention_rerun` (by default its
    window(c) = [c - K, c), rewritten)."""
    window = parse_control(run)
    if window is not None:
        return window
    if run in (config.get("interventions") or {}):
        return intervention_rerun(config, run)
    raise ValueError(f"re-run {run!r} is neither an intervention nor control_FIRST_LAST (a control window)")


def rerun_name_pattern(config: Mapping) -> str:
    """Regular expression of the re-run names (a wildcard constraint): interventions, controls."""
    return "|".join([*(re.escape(n) for n in config.get("interventions") or {}), r"control_\d+_\d+"])


# -- evaluation and search -----------------------------------------------------------------------


def pararel_relations(tasks: Iterable[str]) -> list[str]:
    """ParaRel relations of the evaluation tasks (their terms are searched): all 12 for
    ``pararel``, else those named ``pararel_{rel}``, in the tasks' order."""
    tasks = list(tasks)
    if "pararel" in tasks:
        return list(PARAREL_RELATIONS)
    return [t[len("pararel_") :] for t in tasks if t.startswith("pararel_")]


def uses_world(config: Mapping) -> bool:
    """True when the data are the built-in toy world's (so rule `world` produces them)."""
    return config["data"]["train_config"] == f"{WORLD_DIR}/train_config.yaml"


def train_config_path(config: Mapping) -> str:
    """The train config the data stages read: the localized copy when data come from URLs."""
    if config["data"]["source"] == "url":
        return LOCAL_TRAIN_CONFIG
    return config["data"]["train_config"]


def original_steps(config: Mapping) -> list[int]:
    """Checkpoint steps of the original run the evaluation reads (from the config: no data read):
    ``eval.steps``, else every ``train.save_interval`` up to ``train.stop_at`` (default: the toy
    world's ``num_steps``)."""
    if (config.get("eval") or {}).get("steps"):
        return list(config["eval"]["steps"])
    w, t = config.get("world") or {}, config["train"]
    last = t.get("stop_at") or w.get("num_steps", 400)
    return list(range(0, last + 1, t["save_interval"]))


def original_checkpoint(step: int | str) -> str:
    """The original run's checkpoint folder at ``step``."""
    return f"{TRAIN_DIR}/original/step{step}"


def data_shape(config: Mapping) -> tuple[int, int]:
    """(global batch size, sequence length) of the data: the toy world's from the config, else the
    OLMo train config's (read from disk)."""
    if uses_world(config):
        from intervene.world.spec import WorldSpec

        w = config.get("world") or {}
        return w.get("global_batch_size", WorldSpec.global_batch_size), w.get("seq_len", WorldSpec.seq_len)
    from intervene.olmo import load_train_config

    spec = load_train_config(config["data"]["train_config"])
    return spec.global_batch_size, spec.seq_len


def eval_model(config: Mapping, step: int | str) -> str:
    """What ``intervene eval --model`` reads for checkpoint ``step``: our checkpoint folder, or the
    released checkpoint's hub id and ``--revision`` (OLMo 2 names them stage1-step{N}-tokens{T}B;
    reads the train config for the batch shape)."""
    if config["train"]["original"]:
        return original_checkpoint(step)
    from intervene.olmo import load_train_config
    from intervene.train.released import hf_revision

    spec = load_train_config(config["data"]["train_config"])
    rev = hf_revision(int(step), spec.global_batch_size, spec.seq_len)
    return f"{config['train']['released']['hub_model']} --revision {rev}"


# -- sources and targets of the workflow (a resolved config: intervene.settings.resolve_config) ----


def given_sections(config: Mapping) -> frozenset[str]:
    """The top-level sections a user's config sets (not empty): optional stages are switched on by
    their section's presence, so read this before resolve_config fills sections in."""
    return frozenset(k for k, v in config.items() if v)


def pararel_hub(config: Mapping) -> str | None:
    """``eval.pararel_hub``: ParaRel built from its source by rule `pararel` (None: it is given)."""
    return config["eval"]["pararel_hub"] if config.get("eval") else None


def pararel_dir(config: Mapping) -> str:
    """The ParaRel datasets' folder: ``eval.sources.pararel``, else the toy world's."""
    sources = config["eval"]["sources"] if config.get("eval") else {}
    return sources.get("pararel", f"{WORLD_DIR}/eval")


def terms_dir(config: Mapping) -> str:
    """The relations' term files: ``match.terms_dir`` (resolved: the toy world's when unset)."""
    return config["match"]["terms_dir"] if config.get("match") else f"{WORLD_DIR}/search_terms"


def doc_info_targets(config: Mapping) -> list[str]:
    return [str(doc_info_file(DOC_INFO_DIR, g)) for g in decoded_groups(config)]


def train_targets(config: Mapping) -> list[str]:
    """The original run (and its replay check) when it is trained here."""
    t = config["train"]
    if not t["original"]:
        return []
    return [f"{TRAIN_DIR}/original/summary.json"] + (
        [f"{TRAIN_DIR}/replay_check.json"] if t["replay_check"] else []
    )


def eval_targets(config: Mapping, given: frozenset[str]) -> list[str]:
    """The original run's evaluation: checkpoints trained here or released ones (imported on demand)."""
    if not ((config["train"]["original"] or config["train"]["released"]) and "eval" in given):
        return []
    e = "results/eval/original"
    steps = config["eval"]["target_steps"]
    return [f"{e}/learned.json", f"{e}/accuracy.png", f"{e}/learned_hist.png"] + [
        f"{e}/learned_step{s}.npz" for s in steps
    ]


def match_targets(config: Mapping, given: frozenset[str]) -> list[str]:
    """The term search over every decoded group, BM25 scores of the configured groups, the dense
    similarities when an encoder is set."""
    if not ("match" in given and config.get("eval") and pararel_relations(config["eval"]["tasks"])):
        return []
    m, groups = config["match"], decoded_groups(config)
    out = [f"{SEARCH_DIR}/{kind}/{g}" for kind in ("term_doc", "pair_doc") for g in groups]
    out += [f"{SEARCH_DIR}/bm25/{g}.npz" for g in m["bm25"]["groups"]]
    if m["dense"]["ctx_model"]:
        out.append(f"{SEARCH_DIR}/dense/similarity.npz")
    return out


def intervention_targets(config: Mapping, given: frozenset[str]) -> list[str]:
    """Selections need the original run's learned instances (and the matching stage)."""
    if not (eval_targets(config, given) and match_targets(config, given)):
        return []
    return [f"{INTERVENTIONS_DIR}/{n}/batches" for n in config.get("interventions") or {}]


def experiment_targets(config: Mapping, given: frozenset[str]) -> list[str]:
    """The effect report, once interventions can be selected (the original run's evaluation and
    the matching stage exist)."""
    if not (intervention_targets(config, given) and "experiment" in given):
        return []
    return ["results/report/summary.md", "results/report/summary.html", "results/report/headline.txt"]
