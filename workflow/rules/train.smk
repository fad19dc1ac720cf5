# Pretraining with the built-in trainer: the original run (toy world), the replay-fidelity check, and
# re-runs (rule `pretrain_rerun`) from a checkpoint over an intervention's rewritten window or, for a
# control `control_{first}_{last}`, over the unmodified batches of that window. The original run's
# summary is write-protected at full scale (hours of GPU time; see `protect_original`).


rule pretrain_original:
    input:
        train_config=layout.train_config_path(config),
        order=f"{DATA_DIR}/global_indices.npy",
        manifest=f"{DATA_DIR}/data_files.tsv",
        data=W.data_inputs(),
    output:
        protect_original(f"{TRAIN_DIR}/original/summary.json"),
    log:
        "logs/train/original.log",
    benchmark:
        "results/benchmarks/train/original.tsv"
    conda:
        "../envs/intervene.yaml"
    threads: 2
    resources:
        **W.train_resources,
        runtime=W.attempt_times(240),
        mem_mb=W.attempt_times(8000),
    params:
        out=W.output_dir,
        launcher=W.train_launcher,
        settings=wargs.original_train_settings(config),
    shell:
        "{params.launcher} train --train-config {input.train_config} --order {input.order}"
        " --manifest {input.manifest} --out {params.out} --settings {params.settings} > {log} 2>&1"


rule replay_check:
    input:
        train_config=layout.train_config_path(config),
        original=f"{TRAIN_DIR}/original/summary.json",
        batches=W.replay_inputs(),
    output:
        report=report(
            f"{TRAIN_DIR}/replay_check.json",
            caption="../report/replay_check.rst",
            category="Pretraining",
        ),
        run=directory(f"{TRAIN_DIR}/replay"),
    log:
        "logs/train/replay_check.log",
    conda:
        "../envs/intervene.yaml"
    # as pretrain_original: Snakemake sets OMP_NUM_THREADS to a job's threads, and CPU float
    # reductions differ between 1 and 2 threads (the replay would not be bit-identical)
    threads: 2
    # launched as the original run (torchrun/srun with train.nproc, train.nodes): a replay on another
    # number of processes sums gradients in another order and is refused
    resources:
        **W.train_resources,
    params:
        original=W.original_dir,
        settings=W.replay_settings,
        device=config["train"]["device"],
        launcher=W.train_launcher,
    shell:
        "{params.launcher} replay-check --train-config {input.train_config} --original {params.original}"
        " --settings {params.settings} --group-dirs {input.batches} --work {output.run}"
        " --device {params.device} --out {output.report} > {log} 2>&1"


rule control_list:
    input:
        batches=W.control_groups,
    output:
        "results/reruns/control_{first}_{last}/data_list.txt",
    log:
        "logs/reruns/control_{first}_{last}_list.log",
    wildcard_constraints:
        first=r"\d+",
        last=r"\d+",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    shell:
        "intervene batch-list --group-dirs {input.batches} --first {wildcards.first}"
        " --last {wildcards.last} --out {output} > {log} 2>&1"


rule pretrain_rerun:
    input:
        train_config=layout.train_config_path(config),
        data_list="results/reruns/{run}/data_list.txt",
        start=W.rerun_start,
    output:
        "results/reruns/{run}/run{r}/summary.json",
    log:
        "logs/reruns/{run}/run{r}.log",
    benchmark:
        "results/benchmarks/reruns/{run}/run{r}.tsv"
    wildcard_constraints:
        run=W.rerun_names,
        r=r"\d+",
    conda:
        "../envs/intervene.yaml"
    threads: 2
    resources:
        **W.train_resources,
        runtime=W.attempt_times(240),
        mem_mb=W.attempt_times(8000),
    params:
        out=W.output_dir,
        launcher=W.train_launcher,
        settings=W.rerun_settings,
    shell:
        "{params.launcher} train --train-config {input.train_config} --data-list {input.data_list}"
        " --settings {params.settings} --out {params.out} > {log} 2>&1"
