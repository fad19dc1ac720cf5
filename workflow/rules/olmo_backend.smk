# Re-runs with the user's OLMo checkout (train.backend: olmo): config, train, unshard, convert to HF.
# The data list of a re-run (results/reruns/{run}/data_list.txt: the modified memmaps in order)
# comes from the intervention stages.


rule olmo_rerun_config:
    input:
        data_list="results/reruns/{run}/data_list.txt",
    output:
        "results/olmo/{run}/config.yaml",
    log:
        "logs/olmo/{run}/config.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        base=olmo_setting("base_config"),
        load_path=olmo_setting("load_path"),
        stop_after=olmo_setting("stop_after"),
        save_folder=get_olmo_save_folder,
        max_duration=olmo_setting("max_duration"),
    shell:
        "intervene olmo-config --base-config {params.base} --data-list {input.data_list}"
        " --run-name {wildcards.run} --load-path {params.load_path} --stop-after {params.stop_after}"
        " --save-folder {params.save_folder} --max-duration {params.max_duration} --out {output} > {log} 2>&1"


rule olmo_rerun:
    input:
        "results/olmo/{run}/config.yaml",
    output:
        touch("results/olmo/{run}/trained.done"),
    log:
        "logs/olmo/{run}/train.log",
    benchmark:
        "results/benchmarks/olmo/{run}.tsv"
    conda:
        "../envs/olmo.yaml"
    threads: 16
    resources:
        gpu=(config["train"].get("olmo") or {}).get("nproc", 1),
        runtime=24 * 60,
    params:
        cmd=get_olmo_train_command,
    shell:
        "({params.cmd}) > {log} 2>&1"


rule olmo_unshard:
    input:
        "results/olmo/{run}/trained.done",
    output:
        # the unsharded checkpoint (model and optimizer: ~100 GB at 7B) only feeds the conversion
        temp(directory("results/olmo/{run}/unsharded")),
    log:
        "logs/olmo/{run}/unshard.log",
    conda:
        "../envs/olmo.yaml"
    params:
        ckpt=get_olmo_checkpoints,
        repo=olmo_setting("repo"),
    shell:
        "(last=$(ls -d {params.ckpt}/step*[0-9] | sort -V | tail -n 1);"
        " cd {params.repo} && python scripts/unshard.py $OLDPWD/$last $OLDPWD/{output}) > {log} 2>&1"


rule olmo_convert:
    input:
        "results/olmo/{run}/unsharded",
    output:
        directory("results/olmo/{run}/hf"),
    log:
        "logs/olmo/{run}/convert.log",
    conda:
        "../envs/olmo.yaml"
    params:
        cmd=get_olmo_convert_command,
    shell:
        "({params.cmd}) > {log} 2>&1"
