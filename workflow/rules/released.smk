# Released OLMo checkpoints as the original run (train.original: false, train.released): the
# checkpoint a re-run starts from is downloaded unsharded (model, optimizer, counters) and imported
# as ours; evaluations read the released HF revisions instead (intervene.layout.eval_model).


rule fetch_released:
    output:
        directory("resources/checkpoints/step{step}-unsharded"),
    log:
        "logs/released/fetch_step{step}.log",
    wildcard_constraints:
        step=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        runtime=W.attempt_times(240),
    params:
        url=W.checkpoint_url,
    shell:
        "intervene fetch-checkpoint --url {params.url} --out {output} > {log} 2>&1"


rule import_released:
    input:
        checkpoint="resources/checkpoints/step{step}-unsharded",
        train_config=config["data"]["train_config"],
    output:
        directory(f"{TRAIN_DIR}/original/step{{step}}"),
    log:
        "logs/released/import_step{step}.log",
    wildcard_constraints:
        step=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.attempt_times(256000),
    shell:
        "intervene import-olmo --olmo-dir {input.checkpoint} --out {output}"
        " --train-config {input.train_config} > {log} 2>&1"
