# The paper's notebook figures (intervene.notebook_figures): the accuracy grid (one panel per
# dataset), the learned-checkpoint histogram with the instances that co-occur in the window before
# their checkpoint overlaid, and per selection intervention its documents per target instance.
# What the rules read: intervene.figures_workflow (its targets are in rule all).
from intervene import figures_workflow as figw


rule accuracy_grid:
    input:
        labels="results/eval/original/labels.npz",
        first=f"results/eval/original/step{layout.original_steps(config)[0]}",
    output:
        report(
            "results/eval/original/accuracy_grid.png",
            caption="../report/accuracy_grid.rst",
            category="Evaluation",
        ),
    log:
        "logs/eval/original/accuracy_grid.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        tasks=W.eval_tasks,
    shell:
        "intervene accuracy-grid --labels {input.labels} --eval-dir {input.first}"
        " --tasks {params.tasks} --out {output} > {log} 2>&1"


rule learned_cooccurrence:
    input:
        learned="results/eval/original/learned.npz",
        pair_doc=figw.group_files(config, f"{layout.SEARCH_DIR}/pair_doc/{{group}}"),
        batches=figw.group_files(config, f"{BATCHES_DIR}/{{group}}"),
        doc_info=figw.group_files(config, f"{DOC_INFO_DIR}/{{group}}.npy"),
    output:
        report(
            "results/eval/original/learned_cooccurrence.png",
            caption="../report/learned_cooccurrence.rst",
            category="Evaluation",
        ),
    log:
        "logs/eval/original/learned_cooccurrence.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        relations=W.relations,
    shell:
        "intervene learned-cooccurrence --learned {input.learned} --pair-doc {input.pair_doc}"
        " --group-dirs {input.batches} --doc-info {input.doc_info}"
        " --relations {params.relations} --out {output} > {log} 2>&1"


rule docs_per_instance:
    input:
        doc_idxs="results/interventions/{name}/doc_idxs.npz",
        learned="results/eval/original/learned.npz",
        matrices=W.docs_matrices,
        batches="results/interventions/{name}/batches",
    output:
        png=report(
            "results/report/{name}/docs_per_instance.png",
            caption="../report/docs_per_instance.rst",
            category="Effects",
            subcategory="{name}",
        ),
        tsv="results/report/{name}/docs_per_instance.tsv",
    log:
        "logs/report/{name}_docs_per_instance.log",
    wildcard_constraints:
        name=W.names_of(*figw.SELECTIONS, none="no-selection"),
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        relations=W.relations,
        terms=W.docs_terms,
    shell:
        "intervene docs-per-instance --doc-idxs {input.doc_idxs} --learned {input.learned}"
        " --matrices {input.matrices} --relations {params.relations} {params.terms}"
        " --audit {input.batches}/audit.json --name {wildcards.name}"
        " --out {output.png} --out-tsv {output.tsv} > {log} 2>&1"
