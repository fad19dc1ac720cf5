# Interventions: choose the documents to swap (ParaRel strategies, or a score-based mapping).


rule select:
    input:
        learned="results/eval/original/learned.npz",
        pair=lambda wc: expand(
            "results/search/pair_doc/{group}", group=intervention_groups(wc.name)
        ),
        term=lambda wc: expand(
            "results/search/term_doc/{group}", group=intervention_groups(wc.name)
        ),
        doc_info=lambda wc: expand(
            f"{DATA_DIR}/doc_info/{{group}}.npy", group=intervention_groups(wc.name)
        ),
        terms_dir=MATCH.get("terms_dir", f"{WORLD_DIR}/search_terms"),
        pararel=EVAL.get("sources", {}).get("pararel", f"{WORLD_DIR}/eval"),
    output:
        "results/interventions/{name}/doc_idxs.npz",
    log:
        "logs/interventions/{name}/select.log",
    benchmark:
        "results/benchmarks/interventions/{name}_select.tsv"
    wildcard_constraints:
        name="|".join(selection_names()) or "no-selection",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("select", "mem_mb"),
        runtime=fitted("select", "runtime"),
    params:
        strategy=lambda wc: INTERVENTIONS[wc.name]["strategy"],
        checkpoint=lambda wc: INTERVENTIONS[wc.name]["checkpoint"],
        n_drop=lambda wc: INTERVENTIONS[wc.name].get("n_drop", 5),
        interval=config["train"]["save_interval"],
        per_group=config["decode"]["batches_per_group"],
        relations=",".join(match_relations()),
        last_batch=config["decode"]["last_batch"],
    shell:
        "intervene select --strategy {params.strategy} --checkpoint {params.checkpoint}"
        " --interval {params.interval} --learned {input.learned} --search-dir results/search"
        f" --doc-info-dir {DATA_DIR}/doc_info --terms-dir {{input.terms_dir}} --pararel {{input.pararel}}"
        " --relations {params.relations} --batches-per-group {params.per_group}"
        " --n-drop {params.n_drop} --last-batch {params.last_batch} --out {output} > {log} 2>&1"


rule bm25_window:
    input:
        batches=side_files(f"{DATA_DIR}/batches/{{group}}"),
        doc_info=side_files(f"{DATA_DIR}/doc_info/{{group}}.npy"),
        targets=lambda wc: learned_targets(wc.name),
        pararel=EVAL.get("sources", {}).get("pararel", f"{WORLD_DIR}/eval"),
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    benchmark:
        "results/benchmarks/interventions/{name}_scores_{side}.tsv"
    wildcard_constraints:
        name="|".join(mapping_names(["bm25_mapping"])) or "no-mapping",
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("bm25_window", "mem_mb"),
        runtime=fitted("bm25_window", "runtime"),
    params:
        window=lambda wc: " ".join(str(x) for x in mapping_window(wc.name, wc.side)),
        per_group=config["decode"]["batches_per_group"],
        tasks=",".join(EVAL.get("tasks", [])),
        sources=" ".join(source_flags()),
        datasets=lambda wc: datasets_flag(wc.name),
        query=lambda wc: INTERVENTIONS[wc.name].get("query", "subject"),
    shell:
        f"set -- {{params.window}}; intervene bm25-window --batches-root {DATA_DIR}/batches"
        f" --doc-info-dir {DATA_DIR}/doc_info --first $1 --last $2"
        " --batches-per-group {params.per_group} --tasks {params.tasks} {params.sources}"
        " --instances {input.targets} {params.datasets} --query {params.query} --out {output} > {log} 2>&1"


rule dense_window:
    input:
        docs=side_files("results/search/dense/docs/{group}.npy"),
        doc_info=side_files(f"{DATA_DIR}/doc_info/{{group}}.npy"),
        targets=lambda wc: learned_targets(wc.name),
    output:
        "results/interventions/{name}/scores_{side}.npz",
    log:
        "logs/interventions/{name}/scores_{side}.log",
    wildcard_constraints:
        name="|".join(mapping_names(["dense_mapping"])) or "no-dense-mapping",
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=lambda wc: 1 if DENSE.get("device", "cpu").startswith("cuda") else 0,
    params:
        window=lambda wc: " ".join(str(x) for x in mapping_window(wc.name, wc.side)),
        per_group=config["decode"]["batches_per_group"],
        model=DENSE.get("question_model", DENSE.get("ctx_model", "")),
        kind="dpr_question" if DENSE.get("kind", "dpr") == "dpr" else "mean",
        tasks=",".join(EVAL.get("tasks", [])),
        sources=" ".join(source_flags()),
        datasets=lambda wc: datasets_flag(wc.name),
        query=lambda wc: INTERVENTIONS[wc.name].get("query", "question"),
        k=DENSE.get("k", 10000),
        device=DENSE.get("device", "cpu"),
    shell:
        f"set -- {{params.window}}; intervene dense-window --doc-embeddings {{input.docs}}"
        f" --doc-info-dir {DATA_DIR}/doc_info --first $1 --last $2"
        " --batches-per-group {params.per_group} --question-model {params.model} --kind {params.kind}"
        " --tasks {params.tasks} {params.sources} --instances {input.targets} {params.datasets}"
        " --query {params.query} --k {params.k} --device {params.device} --out {output} > {log} 2>&1"


rule mapping:
    input:
        target="results/interventions/{name}/scores_target.npz",
        source="results/interventions/{name}/scores_source.npz",
    output:
        "results/interventions/{name}/mapping.npz",
    log:
        "logs/interventions/{name}/mapping.log",
    benchmark:
        "results/benchmarks/interventions/{name}_mapping.tsv"
    wildcard_constraints:
        name="|".join(mapping_names()) or "no-mapping",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("mapping", "mem_mb"),
        runtime=fitted("mapping", "runtime"),
    params:
        target=lambda wc: " ".join(str(x) for x in mapping_window(wc.name, "target")),
        source=lambda wc: " ".join(str(x) for x in mapping_window(wc.name, "source")),
        per_group=config["decode"]["batches_per_group"],
        per_inst=lambda wc: INTERVENTIONS[wc.name].get("per_inst", 10),
        flags=lambda wc: " ".join(
            f"--{f.replace('_', '-')}"
            for f in ("shuffle_candidates", "swap_direction")
            if INTERVENTIONS[wc.name].get(f)
        ),
        seed=lambda wc: INTERVENTIONS[wc.name].get("seed", 42),
    shell:
        "intervene map-docs --target-scores {input.target} --source-scores {input.source}"
        f" --doc-info-dir {DATA_DIR}/doc_info"
        " --target-window {params.target} --source-window {params.source}"
        " --batches-per-group {params.per_group} --per-inst {params.per_inst} {params.flags}"
        " --seed {params.seed} --out {output} > {log} 2>&1"


rule swap:
    input:
        indices=lambda wc: intervention_indices(wc.name),
        doc_info=lambda wc: expand(
            f"{DATA_DIR}/doc_info/{{group}}.npy", group=intervention_groups(wc.name)
        ),
        batches=lambda wc: expand(
            f"{DATA_DIR}/batches/{{group}}", group=intervention_groups(wc.name)
        ),
        tokenizer=tokenizer_input(),
    output:
        directory("results/interventions/{name}/batches"),
    log:
        "logs/interventions/{name}/swap.log",
    benchmark:
        "results/benchmarks/interventions/{name}_swap.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("swap", "mem_mb"),
        runtime=fitted("swap", "runtime"),
    params:
        per_group=config["decode"]["batches_per_group"],
        flags=lambda wc: swap_flags(wc.name),
        seed=lambda wc: INTERVENTIONS[wc.name].get("seed", 0),
        doc_info_dir=f"{DATA_DIR}/doc_info",
        batches_root=f"{DATA_DIR}/batches",
        tokenizer=tokenizer_arg,
    shell:
        "intervene swap --indices {input.indices} --doc-info-dir {params.doc_info_dir}"
        " --batches-root {params.batches_root} --batches-per-group {params.per_group}"
        " {params.flags} --seed {params.seed} --tokenizer {params.tokenizer}"
        " --out-dir {output} > {log} 2>&1"


rule memmap:
    input:
        "results/interventions/{name}/batches",
    output:
        directory("results/interventions/{name}/memmap"),
    log:
        "logs/interventions/{name}/memmap.log",
    benchmark:
        "results/benchmarks/interventions/{name}_memmap.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("memmap", "mem_mb"),
        runtime=fitted("memmap", "runtime"),
    shell:
        "intervene memmap --batches-dir {input} --out-dir {output} > {log} 2>&1"


rule intervention_list:
    input:
        "results/interventions/{name}/batches",
    output:
        "results/reruns/{name}/data_list.txt",
    log:
        "logs/reruns/{name}_list.log",
    wildcard_constraints:
        name="|".join(INTERVENTIONS) or "no-intervention",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    shell:
        "sed 's|^|../../interventions/{wildcards.name}/batches/|' {input}/data_list.txt > {output} 2> {log}"
