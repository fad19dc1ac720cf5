# Interventions: choose the documents to swap (ParaRel strategies, or a score-based mapping).
# Each stage gets the files it reads (input functions in common.smk): the decoded group folders and
# their doc info, the groups' matrices or embeddings; no root folder, no batches_per_group.


rule select:
    input:
        unpack(W.select_inputs),
        learned="results/eval/original/learned.npz",
        terms_dir=W.terms_dir,
        pararel=W.pararel,
    output:
        "results/interventions/{name}/doc_idxs.npz",
    log:
        "logs/interventions/{name}/select.log",
    benchmark:
        "results/benchmarks/interventions/{name}_select.tsv"
    wildcard_constraints:
        name=W.names_of(*layout.SELECTION_STRATEGIES, none="no-selection"),
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("select", "mem_mb"),
        runtime=W.fitted("select", "runtime"),
    params:
        settings=W.select_settings,
        relations=W.relations,
    shell:
        "intervene select --settings {params.settings} --learned {input.learned}"
        " --pair-doc {input.pair_doc} --term-doc {input.term_doc} --group-dirs {input.batches}"
        " --doc-info {input.doc_info} --terms-dir {input.terms_dir} --pararel {input.pararel}"
        " --relations {params.relations} --out {output} > {log} 2>&1"


rule bm25_window:
    input:
        unpack(W.side_inputs),
        targets=W.learned_targets,
        pararel=W.pararel,
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    benchmark:
        "results/benchmarks/interventions/{name}_scores_{side}.tsv"
    wildcard_constraints:
        name=W.names_of("bm25_mapping", none="no-mapping"),
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("bm25_window", "mem_mb"),
        runtime=W.fitted("bm25_window", "runtime"),
    params:
        window=W.window_flags,
        tasks=W.eval_tasks,
        sources=W.source_flags,
        datasets=W.datasets_flag,
        query=W.window_query,
    shell:
        "intervene bm25-window --group-dirs {input.batches} --doc-info {input.doc_info} {params.window}"
        " --tasks {params.tasks} {params.sources} --instances {input.targets} {params.datasets}"
        " --query {params.query} --out {output} > {log} 2>&1"


rule dense_window:
    input:
        unpack(W.side_inputs),
        targets=W.learned_targets,
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    wildcard_constraints:
        name=W.names_of("dense_mapping", none="no-dense-mapping"),
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=W.eval_gpus(W.dense),
    params:
        window=W.window_flags,
        model=W.dense["question_model"],
        kind="dpr_question" if W.dpr else "mean",
        tasks=W.eval_tasks,
        sources=W.source_flags,
        datasets=W.datasets_flag,
        query=W.window_query,
        k=W.dense["k"],
        device=W.dense["device"],
    shell:
        "intervene dense-window --doc-embeddings {input.docs} --group-dirs {input.batches}"
        " --doc-info {input.doc_info} {params.window} --question-model {params.model}"
        " --kind {params.kind} --tasks {params.tasks} {params.sources} --instances {input.targets}"
        " {params.datasets} --query {params.query} --k {params.k} --device {params.device}"
        " --out {output} > {log} 2>&1"


rule mapping:
    input:
        unpack(W.mapping_inputs),
        target="results/interventions/{name}/scores_target.npz",
        source="results/interventions/{name}/scores_source.npz",
    output:
        "results/interventions/{name}/mapping.npz",
    log:
        "logs/interventions/{name}/mapping.log",
    benchmark:
        "results/benchmarks/interventions/{name}_mapping.tsv"
    wildcard_constraints:
        name=W.names_of(*layout.MAPPING_STRATEGIES, none="no-mapping"),
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("mapping", "mem_mb"),
        runtime=W.fitted("mapping", "runtime"),
    params:
        target=W.mapping_window("target"),
        source=W.mapping_window("source"),
        settings=W.intervention_settings("map_settings"),
        counts=W.mapping_count_flags,
    shell:
        "intervene map-docs --target-scores {input.target} --source-scores {input.source}"
        " --group-dirs {input.batches} --doc-info {input.doc_info}"
        " --target-window {params.target} --source-window {params.source}"
        " --settings {params.settings}{params.counts} --out {output} > {log} 2>&1"
