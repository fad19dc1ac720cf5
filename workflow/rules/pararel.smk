# ParaRel from its source (only with `eval.pararel_hub`: the hub id coastalcph/pararel_patterns or a
# local copy of it): the 12 relation datasets, written where `eval.sources.pararel` points, and
# their term files in `match.terms_dir` (intervene.pararel_source; the paper's
# scripts/split_pararel_dataset.py).

PARAREL_HUB = layout.pararel_hub(config)
# What evaluations wait for: the datasets this rule writes, else nothing (the DAG is unchanged).
PARAREL_BUILT = [W.pararel] if PARAREL_HUB else []

if PARAREL_HUB:

    rule pararel:
        output:
            data=directory(W.pararel),
            terms=directory(W.terms_dir),
        log:
            "logs/pararel.log",
        localrule: True
        conda:
            "../envs/intervene.yaml"
        params:
            source=PARAREL_HUB,
        shell:
            "intervene pararel --source {params.source} --data-dir {output.data}"
            " --terms-dir {output.terms} > {log} 2>&1"
