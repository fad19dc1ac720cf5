# Materialise one group of training batches: {b}.npy token arrays and {b}.json.gz documents.


rule decode:
    input:
        train_config=layout.train_config_path(config),
        order=f"{DATA_DIR}/global_indices.npy",
        manifest=f"{DATA_DIR}/data_files.tsv",
        tokenizer=W.tokenizer_input(),
        data=W.data_inputs(),
    output:
        directory(f"{BATCHES_DIR}/{{group}}"),
    log:
        "logs/decode/{group}.log",
    benchmark:
        "results/benchmarks/decode/{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("decode", "mem_mb"),
        runtime=W.fitted("decode", "runtime"),
    params:
        tokenizer=W.tokenizer,
        group=W.group_number,
        settings=wargs.decode_settings(config),
        world_size=config["data"]["world_size"],
    shell:
        "intervene decode --train-config {input.train_config} --order {input.order}"
        " --manifest {input.manifest} --tokenizer {params.tokenizer} --out {output}"
        " --group {params.group} --settings {params.settings} --world-size {params.world_size}"
        " --quiet > {log} 2>&1"
