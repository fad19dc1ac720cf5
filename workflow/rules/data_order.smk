# The run's data order (global_indices.npy: OLMo's or OLMo-core's, data.loader) from the token
# files' sizes and the config's seed.


rule data_order:
    input:
        train_config=layout.train_config_path(config),
        data=W.data_inputs(),
    output:
        order=f"{DATA_DIR}/global_indices.npy",
        manifest=f"{DATA_DIR}/data_files.tsv",
    log:
        "logs/data_order.log",
    benchmark:
        "results/benchmarks/data_order.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.attempt_times(8000),
    params:
        world_size=config["data"]["world_size"],
        loader=config["data"]["loader"],
    shell:
        "intervene data-order --train-config {input.train_config} --out {output.order}"
        " --manifest {output.manifest} --world-size {params.world_size} --loader {params.loader}"
        " > {log} 2>&1"
