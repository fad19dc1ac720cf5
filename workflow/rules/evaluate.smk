# Evaluate the original run's checkpoints, stack correctness labels, find learned instances.


rule evaluate:
    input:
        original=f"{TRAIN_DIR}/original/summary.json",
    output:
        directory("results/eval/original/step{step}"),
    log:
        "logs/eval/original/step{step}.log",
    benchmark:
        "results/benchmarks/eval/original/step{step}.tsv"
    wildcard_constraints:
        step=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=lambda wc: 1 if config.get("eval", {}).get("device") == "cuda" else 0,
    params:
        model=lambda wc, input: os.path.join(
            os.path.dirname(input.original), f"step{wc.step}"
        ),
        data_root=config.get("eval", {}).get("data_root", ""),
        relations=",".join(config.get("eval", {}).get("relations", [])),
        device=config.get("eval", {}).get("device", "cpu"),
    shell:
        "intervene eval --model {params.model} --data-root {params.data_root} --relations {params.relations}"
        " --device {params.device} --out {output} > {log} 2>&1"


rule labels:
    input:
        expand("results/eval/original/step{step}", step=original_steps()),
    output:
        "results/eval/original/labels.npz",
    log:
        "logs/eval/original/labels.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        evals=lambda wc, input: " ".join(
            f"{s}={d}" for s, d in zip(original_steps(), input)
        ),
        relations=",".join(config.get("eval", {}).get("relations", [])),
        metric=config.get("eval", {}).get("metric", "acc_per_token"),
    shell:
        "intervene labels --evals {params.evals} --relations {params.relations} --metric {params.metric}"
        " --out {output} > {log} 2>&1"


rule learned:
    input:
        "results/eval/original/labels.npz",
    output:
        summary=report(
            "results/eval/original/learned.json",
            caption="../report/learned.rst",
            category="Evaluation",
        ),
        npz="results/eval/original/learned.npz",
    log:
        "logs/eval/original/learned.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    shell:
        "intervene learned --labels {input} --out-json {output.summary} --out-npz {output.npz} > {log} 2>&1"
