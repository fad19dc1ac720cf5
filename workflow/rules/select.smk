# Interventions: choose the documents to swap (ParaRel strategies, or a score-based mapping).


rule select:
    input:
        learned="results/eval/original/learned.npz",
        pair=intervention_files("results/search/pair_doc/{group}"),
        term=intervention_files("results/search/term_doc/{group}"),
        doc_info=intervention_files(f"{DOC_INFO_DIR}/{{group}}.npy"),
        terms_dir=TERMS_DIR,
        pararel=PARAREL,
    output:
        "results/interventions/{name}/doc_idxs.npz",
    log:
        "logs/interventions/{name}/select.log",
    benchmark:
        "results/benchmarks/interventions/{name}_select.tsv"
    wildcard_constraints:
        name=names_of(*layout.SELECTION_STRATEGIES, none="no-selection"),
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("select", "mem_mb"),
        runtime=fitted("select", "runtime"),
    params:
        strategy=option("strategy"),
        checkpoint=option("checkpoint"),
        n_drop=option("n_drop", 5),
        interval=config["train"]["save_interval"],
        per_group=PER_GROUP,
        relations=RELATIONS,
        last_batch=config["decode"]["last_batch"],
        search_dir=get_search_dir,
        doc_info_dir=get_doc_info_dir,
    shell:
        "intervene select --strategy {params.strategy} --checkpoint {params.checkpoint}"
        " --interval {params.interval} --learned {input.learned} --search-dir {params.search_dir}"
        " --doc-info-dir {params.doc_info_dir} --terms-dir {input.terms_dir} --pararel {input.pararel}"
        " --relations {params.relations} --batches-per-group {params.per_group}"
        " --n-drop {params.n_drop} --last-batch {params.last_batch} --out {output} > {log} 2>&1"


rule bm25_window:
    input:
        batches=side_files(f"{BATCHES_DIR}/{{group}}"),
        doc_info=side_files(f"{DOC_INFO_DIR}/{{group}}.npy"),
        targets=get_learned_targets,
        pararel=PARAREL,
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    benchmark:
        "results/benchmarks/interventions/{name}_scores_{side}.tsv"
    wildcard_constraints:
        name=names_of("bm25_mapping", none="no-mapping"),
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("bm25_window", "mem_mb"),
        runtime=fitted("bm25_window", "runtime"),
    params:
        window=get_window,
        per_group=PER_GROUP,
        tasks=EVAL_TASKS,
        sources=" ".join(source_flags()),
        datasets=get_datasets_flag,
        query=option("query", "subject"),
        batches_root=get_batches_root,
        doc_info_dir=get_doc_info_dir,
    shell:
        "set -- {params.window}; intervene bm25-window --batches-root {params.batches_root}"
        " --doc-info-dir {params.doc_info_dir} --first $1 --last $2"
        " --batches-per-group {params.per_group} --tasks {params.tasks} {params.sources}"
        " --instances {input.targets} {params.datasets} --query {params.query} --out {output} > {log} 2>&1"


rule dense_window:
    input:
        docs=side_files("results/search/dense/docs/{group}.npy"),
        doc_info=side_files(f"{DOC_INFO_DIR}/{{group}}.npy"),
        targets=get_learned_targets,
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    wildcard_constraints:
        name=names_of("dense_mapping", none="no-dense-mapping"),
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=eval_gpus(DENSE),
    params:
        window=get_window,
        per_group=PER_GROUP,
        model=DENSE.get("question_model", DENSE.get("ctx_model", "")),
        kind="dpr_question" if DPR else "mean",
        tasks=EVAL_TASKS,
        sources=" ".join(source_flags()),
        datasets=get_datasets_flag,
        query=option("query", "question"),
        k=DENSE.get("k", 10000),
        device=DENSE_DEVICE,
        doc_info_dir=get_doc_info_dir,
    shell:
        "set -- {params.window}; intervene dense-window --doc-embeddings {input.docs}"
        " --doc-info-dir {params.doc_info_dir} --first $1 --last $2"
        " --batches-per-group {params.per_group} --question-model {params.model} --kind {params.kind}"
        " --tasks {params.tasks} {params.sources} --instances {input.targets} {params.datasets}"
        " --query {params.query} --k {params.k} --device {params.device} --out {output} > {log} 2>&1"


rule mapping:
    input:
        target="results/interventions/{name}/scores_target.npz",
        source="results/interventions/{name}/scores_source.npz",
        doc_info=mapping_files(f"{DOC_INFO_DIR}/{{group}}.npy"),
    output:
        "results/interventions/{name}/mapping.npz",
    log:
        "logs/interventions/{name}/mapping.log",
    benchmark:
        "results/benchmarks/interventions/{name}_mapping.tsv"
    wildcard_constraints:
        name=names_of(*layout.MAPPING_STRATEGIES, none="no-mapping"),
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("mapping", "mem_mb"),
        runtime=fitted("mapping", "runtime"),
    params:
        target=get_mapping_window("target"),
        source=get_mapping_window("source"),
        per_group=PER_GROUP,
        per_inst=option("per_inst", 10),
        flags=get_mapping_flags,
        seed=option("seed", 42),
        doc_info_dir=get_doc_info_dir,
    shell:
        "intervene map-docs --target-scores {input.target} --source-scores {input.source}"
        " --doc-info-dir {params.doc_info_dir}"
        " --target-window {params.target} --source-window {params.source}"
        " --batches-per-group {params.per_group} --per-inst {params.per_inst} {params.flags}"
        " --seed {params.seed} --out {output} > {log} 2>&1"
