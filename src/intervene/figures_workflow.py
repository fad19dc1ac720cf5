"""What the rules of workflow/rules/figures.smk (the paper's notebook figures) read and write,
computed from the config (cheap: no data read; unit-tested)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from intervene import layout

EVAL_DIR = "results/eval/original"
SELECTIONS = layout.SELECTION_STRATEGIES


def relations(config: Mapping) -> list[str]:
    return layout.pararel_relations((config.get("eval") or {}).get("tasks") or [])


def selection_names(config: Mapping) -> list[str]:
    """The interventions whose documents come from a selection (rm_coocc, rm_occ, add_coocc)."""
    return layout.strategy_names(config, SELECTIONS)


def targets(config: Mapping, given: frozenset[str]) -> list[str]:
    """The accuracy grid with the evaluation; the learned histogram with co-occurrence once the
    matching stage runs on ParaRel; a documents-per-instance figure per selection intervention."""
    if not layout.eval_targets(config, given):
        return []
    out = [f"{EVAL_DIR}/accuracy_grid.png"]
    if layout.match_targets(config, given) and relations(config):
        out.append(f"{EVAL_DIR}/learned_cooccurrence.png")
    if layout.intervention_targets(config, given):
        out += [f"results/report/{n}/docs_per_instance.png" for n in selection_names(config)]
    return out


def matrix_kind(config: Mapping, name: str) -> str:
    """The matrices that say which documents are an instance's: term matrices for rm_occ
    (subject or object occurs), pair matrices otherwise (the pair co-occurs)."""
    return "term_doc" if layout.intervention(config, name)["strategy"] == "rm_occ" else "pair_doc"


def docs_groups(config: Mapping, name: str) -> list[str]:
    """The groups of the documents counted: window(c) (removals), the next window (add_coocc)."""
    v = layout.intervention(config, name)
    adding = v["strategy"] == "add_coocc"
    window = layout.extras_window(config, name) if adding else layout.intervention_window(config, name)
    return layout.groups_of(config, *window)


def group_files(config: Mapping, pattern: str, groups: list[str] | None = None) -> list[str]:
    """``pattern`` (with ``{group}``) per group: ``groups``, else every decoded group (the windows
    of every checkpoint)."""
    return [pattern.format(group=g) for g in (layout.decoded_groups(config) if groups is None else groups)]


def docs_matrices(config: Mapping, name: str) -> list[str]:
    """The matrix folders of the groups whose documents intervention ``name`` removes or adds."""
    kind = matrix_kind(config, name)
    return group_files(config, f"{layout.SEARCH_DIR}/{kind}/{{group}}", docs_groups(config, name))


def docs_terms_args(config: Mapping, name: str) -> str:
    """rm_occ: ``--terms-dir`` and ``--pararel`` (which terms are an instance's); else nothing."""
    if matrix_kind(config, name) != "term_doc":
        return ""
    return shlex.join(["--terms-dir", layout.terms_dir(config), "--pararel", layout.pararel_dir(config)])
