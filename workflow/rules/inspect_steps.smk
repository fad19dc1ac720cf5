# What a step read (`intervene inspect`: per instance its token file, offset and documents with their
# side-car ids, token counts and a text preview) and which steps read a document
# (`intervene inspect-document`). On demand only, e.g. `snakemake results/inspect/steps/step3001.html`
# (steps 3001 to 3010: step3001-3010; formats jsonl, tsv, html) or
# `snakemake results/inspect/documents/0@123456.jsonl` (a side-car id, or FILE_INDEX@TOKEN).


rule inspect_step:
    input:
        train_config=layout.train_config_path(config),
        order=f"{DATA_DIR}/global_indices.npy",
        manifest=f"{DATA_DIR}/data_files.tsv",
        tokenizer=W.tokenizer_input(),
        data=W.data_inputs(),
    output:
        "results/inspect/steps/step{steps}.{fmt}",
    log:
        "logs/inspect/steps/step{steps}.{fmt}.log",
    wildcard_constraints:
        steps=r"[1-9]\d*(-[1-9]\d*)?",
        fmt="jsonl|tsv|html",
    conda:
        "../envs/intervene.yaml"
    params:
        tokenizer=W.tokenizer,
        # step{A} or step{A}-{B}
        steps=W.inspect_steps,
        world_size=config["data"]["world_size"],
        # side-cars as memory-mapped indexes, built on first use (a cache, not an output)
        cache="results/inspect/sidecar_index",
    shell:
        "intervene inspect --train-config {input.train_config} --order {input.order}"
        " --manifest {input.manifest} --tokenizer {params.tokenizer} {params.steps}"
        " --world-size {params.world_size} --sidecar-cache {params.cache} --out {output} > {log} 2>&1"


rule inspect_document:
    input:
        train_config=layout.train_config_path(config),
        order=f"{DATA_DIR}/global_indices.npy",
        manifest=f"{DATA_DIR}/data_files.tsv",
        data=W.data_inputs(),
    output:
        "results/inspect/documents/{document}.jsonl",
    log:
        "logs/inspect/documents/{document}.log",
    wildcard_constraints:
        document=r"[A-Za-z0-9_.:@-]+",
    conda:
        "../envs/intervene.yaml"
    params:
        world_size=config["data"]["world_size"],
        cache="results/inspect/sidecar_index",
    shell:
        "intervene inspect-document --train-config {input.train_config} --order {input.order}"
        " --manifest {input.manifest} --document {wildcards.document:q}"
        " --world-size {params.world_size} --sidecar-cache {params.cache} --out {output} > {log} 2>&1"
