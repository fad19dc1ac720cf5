# Released OLMo checkpoints as the original run (train.original: false, train.released): the
# checkpoint a re-run starts from is downloaded unsharded (model, optimizer, counters) and imported
# as ours; evaluations read the released HF revisions instead (intervene.layout.eval_model).
# An OLMo-core run's (data.loader: olmo_core): its checkpoint folder stepN/ (DCP model_and_optim/,
# train/rank0.pt) fetched file by file, or read in place from a local path, and imported by
# `intervene import-olmo-core`.


rule fetch_released:
    output:
        directory(W.released_dir),
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
        format=W.released_fetch_format(),
    shell:
        "intervene fetch-checkpoint --url {params.url} --format {params.format} --out {output}"
        " > {log} 2>&1"


rule import_released:
    input:
        checkpoint=W.released_source,
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
        mem_mb=W.checkpoint_mem_mb,
    params:
        command=W.import_released_command,
    shell:
        "{params.command} > {log} 2>&1"
