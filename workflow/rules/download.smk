# Download the train config's data files (data.source: url), in shards of files, not per file.


rule download:
    input:
        config["data"]["train_config"],
    output:
        "resources/manifests/shard_{shard}.tsv",
    log:
        "logs/download/shard_{shard}.log",
    conda:
        "../envs/intervene.yaml"
    threads: config["data"]["download"]["workers"]
    resources:
        runtime=24 * 60,
    params:
        settings=W.download_settings,
    shell:
        "intervene download --train-config {input} --settings {params.settings}"
        " --shard {wildcards.shard} --manifest {output} > {log} 2>&1"


rule localize:
    input:
        train_config=config["data"]["train_config"],
        manifests=expand(
            "resources/manifests/shard_{shard}.tsv",
            shard=range(config["data"]["download"]["num_shards"]),
        ),
    output:
        LOCAL_TRAIN_CONFIG,
    log:
        "logs/localize.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        root=config["data"]["download"]["root"],
    shell:
        "intervene localize --train-config {input.train_config} --root {params.root}"
        " --out {output} > {log} 2>&1"
