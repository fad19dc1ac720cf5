# intervene: interventional analyses on LLM pretraining data.
# The rules are thin: each calls one `intervene` subcommand; the logic lives in src/intervene.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/world.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/data_order.smk"
include: "workflow/rules/decode.smk"
include: "workflow/rules/doc_info.smk"
include: "workflow/rules/pararel.smk"
include: "workflow/rules/train.smk"


if W.released and not config["train"]["original"]:

    include: "workflow/rules/released.smk"


include: "workflow/rules/olmo_backend.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/swap.smk"
include: "workflow/rules/effect.smk"
include: "workflow/rules/inspect_docs.smk"
include: "workflow/rules/inspect_steps.smk"
include: "workflow/rules/figures.smk"


onstart:
    # Under the lock, before any job: temporaries left by killed jobs (intervene.atomic) go.
    import sys
    from intervene.atomic import remove_stale_temporaries

    for root in ("results", "resources"):
        for p in remove_stale_temporaries(root):
            print(f"removed {p}, left by a killed job", file=sys.stderr)
    # Files damaged after their folder was written (Snakemake sees only the folders' mtimes): every
    # manifest folder's sizes and the token files' (one stat per file), so no job reads them.
    from intervene.manifest import ManifestError, verify_tree

    try:
        verify_tree("results", f"{DATA_DIR}/data_files.tsv")
    except ManifestError as e:
        raise WorkflowError(
            f"{e}; remove that folder so that the rule that writes it runs again"
        ) from None


rule all:
    default_target: True
    input:
        doc_info_targets(),
        train_targets(),
        eval_targets(),
        match_targets(),
        intervention_targets(),
        experiment_targets(),
        figw.targets(config, GIVEN),
