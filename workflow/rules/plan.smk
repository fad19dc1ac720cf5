# The plan summary of a dry run (`snakemake -n`): jobs per rule, GPU jobs and their GPUs, the
# interventions' windows and checkpoints, the download size (intervene.plan), printed to stderr
# when Snakemake exits. With INTERVENE_PLAN_JSON set (intervene plan), also written there as JSON.
if workflow.output_settings.dryrun:
    from intervene.plan import PLAN_JSON_ENV, watch_dry_run

    watch_dry_run(
        config,
        json_path=os.environ.get(PLAN_JSON_ENV),
        configfiles=workflow.config_settings.configfiles or (),
        # local rules run on the submitting node, not in a partition (Snakemake keeps the
        # localrules set private: without it the plan shows their partition)
        local_rules=lambda: {
            r.name
            for r in workflow.rules
            if r.norun or r.name in getattr(workflow, "_localrules", ())
        },
    )
