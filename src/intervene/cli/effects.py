"""Subcommands of the experiment's end: effects, the report and the notebook figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from intervene.cli.common import GROUP_FILES, OUT, log
from intervene.cli_build import Command, arg, call, command, opt
from intervene.settings import BootstrapConfig, EffectConfig


def _cmd_effect(a: argparse.Namespace) -> None:
    from intervene.effect.compute import write_effect
    from intervene.effect.plots import plot_effect
    from intervene.evaluation.tasks import dataset_labels_of

    datasets = dataset_labels_of(a.datasets.split(",")) if a.datasets else None
    settings = EffectConfig.from_namespace(a, datasets=datasets, bootstrap=BootstrapConfig.from_namespace(a))
    eff = write_effect(
        settings,
        a.intervention_labels,
        a.control_labels,
        a.targets,
        a.out_json,
        audit=a.audit,
        replay=a.replay,
    )
    if a.out_png:
        plot_effect(eff, a.out_png)
    t = eff["targeted"]
    log.info(
        "%s: targeted %d, accuracy %.3f vs control %.3f (change %+.3f)",
        a.name,
        t["n"],
        t["intervention"]["accuracy"],
        t["control"]["accuracy"],
        t["difference"]["value"],
    )


def _cmd_report(a: argparse.Namespace) -> None:
    from intervene.effect.plots import plot_effects
    from intervene.effect.summary import write_summary

    effects = [json.loads(Path(p).read_text()) for p in a.effects]
    plot_effects(effects, a.out_png)
    figures = {"effects": a.out_png}
    for spec in a.figure or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--figure: {spec!r} is not NAME=PNG")
        figures[name] = path
    write_summary(a.effects, figures, a.out_md, a.out_html, a.out_headline)
    sys.stdout.write(Path(a.out_headline).read_text())


COMMANDS: tuple[Command, ...] = (
    command(
        "accuracy-grid",
        "accuracy over checkpoints, one panel per dataset (the notebooks' per-relation grid, PNG)",
        call("intervene.notebook_figures:plot_panel_grid", "labels", "eval_dir", "tasks", "out"),
        "notebook figures | results/eval/original/accuracy_grid.png | intervene.notebook_figures.plot_panel_grid",
        arg("--labels", required=True, help="labels.npz"),
        arg("--eval-dir", required=True, help="one checkpoint's eval folder (for gold labels)"),
        arg("--tasks", required=True, help="comma-separated task names"),
        OUT,
    ),
    command(
        "learned-cooccurrence",
        "learned-checkpoint histogram, instances co-occurring in the window before overlaid (PNG)",
        call(
            "intervene.notebook_figures:write_learned_cooccurrence",
            *("learned", "pair_doc", "doc_info", "group_dirs", "relations", "out"),
            log_as="learned",
        ),
        "notebook figures | results/eval/original/learned_cooccurrence.png | intervene.notebook_figures.write_learned_cooccurrence",
        arg("--learned", required=True, help="learned.npz"),
        arg("--pair-doc", nargs="+", required=True, help="the groups' pair-matrix folders"),
        *GROUP_FILES,
        arg("--relations", required=True, help="comma-separated, in the labels' order"),
        OUT,
    ),
    command(
        "docs-per-instance",
        "per target instance of a selection, its documents removed or added (PNG + TSV)",
        call(
            "intervene.notebook_figures:write_docs_per_instance",
            *("doc_idxs", "learned", "matrices", "relations", "out", "out_tsv"),
            audit="audit",
            terms_dir="terms_dir",
            pararel_root="pararel",
            name="name",
            log_as="documents",
        ),
        "notebook figures | results/report/{name}/docs_per_instance.png | intervene.notebook_figures.write_docs_per_instance",
        arg("--doc-idxs", required=True, help="a selection's doc_idxs.npz"),
        arg("--learned", required=True, help="learned.npz (the instances' rows)"),
        arg("--matrices", nargs="+", required=True, help="the groups' pair (rm_occ: term) matrix folders"),
        arg("--relations", required=True, help="comma-separated, in the labels' order"),
        arg("--audit", help="the swap's audit.json: count only the documents it replaced or inserted"),
        arg("--terms-dir", help="rm_occ: the relations' term files"),
        arg("--pararel", help="rm_occ: the ParaRel data folder"),
        arg("--name", help="the intervention's name (the title)"),
        OUT,
        arg("--out-tsv", required=True),
    ),
    command(
        "effect",
        "an intervention's effect: re-runs vs. controls, bootstrap CIs",
        _cmd_effect,
        "effect of an intervention | results/report/{name}/effect.json | intervene.effect.compute.write_effect",
        opt(EffectConfig, "name"),
        opt(EffectConfig, "strategy"),
        arg("--intervention-labels", required=True, help="labels.npz (run1..runN) of its re-runs"),
        arg("--control-labels", required=True, help="labels.npz (run1..runN) of the control re-runs"),
        arg(
            "--targets",
            required=True,
            help="doc_idxs.npz of the selection, or learned_step{N}.npz (mappings)",
        ),
        arg("--audit", help="the swap's audit.json"),
        arg("--replay", help="replay_check.json"),
        opt(EffectConfig, "swap_direction"),
        arg(
            "--datasets",
            help="targets only of these dataset labels (an MCQA mapping's task, e.g. sciq)",
            key=(EffectConfig, "datasets"),
            to_text=",".join,
        ),
        opt(BootstrapConfig, "samples", "--bootstrap"),
        opt(BootstrapConfig, "level"),
        opt(BootstrapConfig, "seed"),
        arg("--out-json", required=True),
        arg("--out-png"),
    ),
    command(
        "report",
        "the effect report (markdown, HTML, figure, headline) of all interventions",
        _cmd_report,
        "report | results/report/summary.html | intervene.effect.summary.write_summary",
        arg("--effects", nargs="+", required=True, help="effect.json files"),
        arg("--figure", action="append", help="NAME=PNG: an intervention's figure to include"),
        arg("--out-md", required=True),
        arg("--out-html", required=True),
        arg("--out-png", required=True, help="the forest plot of all effects"),
        arg("--out-headline", required=True),
    ),
)
