# Re-runs with the user's checkout of the paper's OLMo fork (train.backend: olmo): every run r of
# every re-run (interventions and controls) is one training in the fork over the window's raw token
# memmaps, from the window's first checkpoint in OLMo's unsharded format, converted to HF; rule
# `evaluate_rerun` evaluates the HF folder (W.rerun_trained) as it does the built-in trainer's.
# Data: an intervention's rewritten window (rule `memmap`), a control's unmodified window (rule
# `control_memmap`). Start (W.olmo_start): train.olmo.checkpoints when given, else the original
# run's checkpoint exported to OLMo's format (rule `export_olmo`) when the run is trained here, else
# the released checkpoint (rule `fetch_released`).


rule export_olmo:
    input:
        # the original run's summary is written last: its checkpoints are complete
        f"{TRAIN_DIR}/original/summary.json",
    output:
        # model and optimizer (~100 GB at 7B); every consumer (olmo_rerun_config, olmo_rerun of the
        # windows starting at {step}) is in the DAG, so it goes once they are done (--notemp keeps it)
        temp(directory("results/olmo/checkpoints/step{step}-unsharded")),
    log:
        "logs/olmo/export_step{step}.log",
    wildcard_constraints:
        step=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.checkpoint_mem_mb,
    params:
        checkpoint=W.olmo_export_source,
    shell:
        "intervene export-olmo --checkpoint {params.checkpoint} --out {output} > {log} 2>&1"


rule control_memmap:
    input:
        data_list="results/reruns/control_{first}_{last}/data_list.txt",
        batches=W.control_groups,
    output:
        directory("results/olmo/control_{first}_{last}/memmap"),
    log:
        "logs/olmo/control_{first}_{last}/memmap.log",
    wildcard_constraints:
        first=r"\d+",
        last=r"\d+",
    conda:
        "../envs/intervene.yaml"
    params:
        listed=W.list_dir,
    shell:
        "intervene memmap --batches-dir {params.listed} --out-dir {output} > {log} 2>&1"


rule olmo_rerun_config:
    input:
        base=W.olmo_base_config(),
        memmap=W.olmo_memmap,
        start=W.olmo_start,
    output:
        "results/olmo/{run}/run{r}/config.yaml",
    log:
        "logs/olmo/{run}/run{r}/config.log",
    wildcard_constraints:
        run=W.rerun_names,
        r=r"\d+",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        load_path=W.olmo_load_path,
        steps=W.rerun_steps,
        save_folder=W.olmo_save_folder,
        max_duration=W.olmo_max_duration_flag(),
    shell:
        "intervene olmo-config --base-config {input.base} --data-list {input.memmap}/data_list.txt"
        " --run-name {wildcards.run}/run{wildcards.r} --load-path {params.load_path}"
        " --stop-after {params.steps} --save-folder {params.save_folder} {params.max_duration}"
        " --out {output} > {log} 2>&1"


rule olmo_rerun:
    input:
        "results/olmo/{run}/run{r}/config.yaml",
        # the fork reads the config's load_path: a temp() export must stay until this run is done
        start=W.olmo_start,
    output:
        # OLMo's save folder; its step{last}-unsharded (model and optimizer: ~100 GB at 7B) only
        # feeds the conversion
        temp(directory("results/olmo/{run}/run{r}/ckpt")),
    log:
        "logs/olmo/{run}/run{r}/train.log",
    benchmark:
        "results/benchmarks/olmo/{run}/run{r}.tsv"
    wildcard_constraints:
        run=W.rerun_names,
        r=r"\d+",
    conda:
        "../envs/olmo.yaml"
    threads: 16
    resources:
        gpu=W.olmo["nproc"],
        runtime=24 * 60,
    params:
        cmd=W.olmo_train_command,
    shell:
        "({params.cmd}) > {log} 2>&1"


rule olmo_convert:
    input:
        "results/olmo/{run}/run{r}/ckpt",
    output:
        directory("results/olmo/{run}/run{r}/hf"),
    log:
        "logs/olmo/{run}/run{r}/convert.log",
    wildcard_constraints:
        run=W.rerun_names,
        r=r"\d+",
    conda:
        "../envs/olmo.yaml"
    params:
        cmd=W.olmo_convert_command,
    shell:
        "({params.cmd}) > {log} 2>&1"
