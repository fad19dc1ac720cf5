# Evaluate the original run's checkpoints (trained here, or released ones from the hub), stack correctness labels, find learned instances, plot.


rule evaluate:
    input:
        unpack(original_run_input),
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
        gpu=lambda wc: 1 if EVAL.get("device", "cpu").startswith("cuda") else 0,
    params:
        model=eval_model,
        args=eval_args(),
    shell:
        "intervene eval --model {params.model} {params.args} --out {output} > {log} 2>&1"


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
        tasks=",".join(EVAL.get("tasks", [])),
        metric=EVAL.get("metric", "acc_per_token"),
    shell:
        "intervene labels --evals {params.evals} --tasks {params.tasks} --metric {params.metric}"
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


rule learned_indices:
    input:
        "results/eval/original/learned.npz",
    output:
        "results/eval/original/learned_step{step}.npz",
    log:
        "logs/eval/original/learned_step{step}.log",
    wildcard_constraints:
        step=r"\d+",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    shell:
        "intervene learned-indices --learned {input} --step {wildcards.step} --out {output} > {log} 2>&1"


rule eval_plots:
    input:
        labels="results/eval/original/labels.npz",
        learned="results/eval/original/learned.json",
        first=f"results/eval/original/step{original_steps()[0]}",
    output:
        accuracy=report(
            "results/eval/original/accuracy.png",
            caption="../report/accuracy.rst",
            category="Evaluation",
        ),
        learned=report(
            "results/eval/original/learned_hist.png",
            caption="../report/learned_hist.rst",
            category="Evaluation",
        ),
    log:
        "logs/eval/original/plots.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        tasks=",".join(EVAL.get("tasks", [])),
    shell:
        "intervene eval-plots --labels {input.labels} --learned-json {input.learned}"
        " --eval-dir {input.first} --tasks {params.tasks}"
        " --accuracy-png {output.accuracy} --learned-png {output.learned} > {log} 2>&1"
