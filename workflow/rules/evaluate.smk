# Evaluate the original run's checkpoints (trained here, or released ones from the hub), stack
# correctness labels, find learned instances, plot; evaluate every re-run (interventions and their
# controls) and stack their correctness per run.


rule evaluate:
    input:
        unpack(W.original_run),
        pararel=PARAREL_BUILT,
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
        gpu=W.eval_gpus(W.eval),
    params:
        model=W.eval_model,
        settings=W.eval_settings,
    shell:
        "intervene eval --model {params.model} --settings {params.settings} --out {output} > {log} 2>&1"


rule labels:
    input:
        expand("results/eval/original/step{step}", step=layout.original_steps(config)),
    output:
        "results/eval/original/labels.npz",
    log:
        "logs/eval/original/labels.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        evals=W.original_evals,
        settings=W.eval_settings,
    shell:
        "intervene labels --evals {params.evals} --settings {params.settings} --out {output} > {log} 2>&1"


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
        first=f"results/eval/original/step{layout.original_steps(config)[0]}",
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
        tasks=W.eval_tasks,
    shell:
        "intervene eval-plots --labels {input.labels} --learned-json {input.learned}"
        " --eval-dir {input.first} --tasks {params.tasks}"
        " --accuracy-png {output.accuracy} --learned-png {output.learned} > {log} 2>&1"


rule evaluate_rerun:
    input:
        W.rerun_trained,
        pararel=PARAREL_BUILT,
    output:
        directory("results/eval/reruns/{run}/run{r}"),
    log:
        "logs/eval/reruns/{run}/run{r}.log",
    benchmark:
        "results/benchmarks/eval/reruns/{run}/run{r}.tsv"
    wildcard_constraints:
        run=W.rerun_names,
        r=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=W.eval_gpus(W.eval),
    params:
        model=W.rerun_model,
        settings=W.eval_settings,
    shell:
        "intervene eval --model {params.model} --settings {params.settings} --out {output} > {log} 2>&1"


rule rerun_labels:
    input:
        W.rerun_evals,
    output:
        "results/eval/reruns/{run}/labels.npz",
    log:
        "logs/eval/reruns/{run}/labels.log",
    wildcard_constraints:
        run=W.rerun_names,
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        runs=W.rerun_label_args,
        settings=W.eval_settings,
    shell:
        "intervene labels {params.runs} --settings {params.settings} --out {output} > {log} 2>&1"
