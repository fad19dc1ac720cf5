# The experiment's end: evaluate every re-run (interventions and their controls), stack their
# correctness per run, measure each intervention's effect against its controls, write the report.


rule evaluate_rerun:
    input:
        "results/reruns/{run}/run{r}/summary.json",
    output:
        directory("results/eval/reruns/{run}/run{r}"),
    log:
        "logs/eval/reruns/{run}/run{r}.log",
    benchmark:
        "results/benchmarks/eval/reruns/{run}/run{r}.tsv"
    wildcard_constraints:
        run=RERUN_NAMES,
        r=r"\d+",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=lambda wc: 1 if EVAL.get("device", "cpu").startswith("cuda") else 0,
    params:
        model=lambda wc, input: os.path.join(
            os.path.dirname(input[0]), f"step{rerun_window(wc.run)[1]}"
        ),
        args=eval_args(),
    shell:
        "intervene eval --model {params.model} {params.args} --out {output} > {log} 2>&1"


rule rerun_labels:
    input:
        lambda wc: expand(
            "results/eval/reruns/{run}/run{r}", run=wc.run, r=range(1, n_runs() + 1)
        ),
    output:
        "results/eval/reruns/{run}/labels.npz",
    log:
        "logs/eval/reruns/{run}/labels.log",
    wildcard_constraints:
        run=RERUN_NAMES,
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        runs=lambda wc, input: " ".join(
            f"--run {rerun_window(wc.run)[1]}={d}" for d in input
        ),
        tasks=",".join(EVAL.get("tasks", [])),
        metric=EVAL.get("metric", "acc_per_token"),
    shell:
        "intervene labels {params.runs} --tasks {params.tasks} --metric {params.metric}"
        " --out {output} > {log} 2>&1"


rule effect:
    input:
        intervention="results/eval/reruns/{name}/labels.npz",
        control=lambda wc: f"results/eval/reruns/{control_of(wc.name)}/labels.npz",
        targets=lambda wc: effect_targets(wc.name),
        batches="results/interventions/{name}/batches",
        replay=[f"{TRAIN_DIR}/replay_check.json"] if replay_inputs() else [],
    output:
        json="results/report/{name}/effect.json",
        png=report(
            "results/report/{name}/effect.png",
            caption="../report/effect.rst",
            category="Effects",
            subcategory="{name}",
        ),
    log:
        "logs/report/{name}_effect.log",
    wildcard_constraints:
        name="|".join(INTERVENTIONS) or "no-intervention",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        strategy=lambda wc: INTERVENTIONS[wc.name]["strategy"],
        replay=lambda wc, input: f"--replay {input.replay[0]}" if input.replay else "",
        direction=lambda wc: (
            "--swap-direction" if INTERVENTIONS[wc.name].get("swap_direction") else ""
        ),
        datasets=lambda wc: datasets_flag(wc.name),
        boot=EXPERIMENT.get("bootstrap", {}).get("samples", 2000),
        level=EXPERIMENT.get("bootstrap", {}).get("level", 0.95),
        seed=EXPERIMENT.get("bootstrap", {}).get("seed", 0),
    shell:
        "intervene effect --name {wildcards.name} --strategy {params.strategy}"
        " --intervention-labels {input.intervention} --control-labels {input.control}"
        " --targets {input.targets} --audit {input.batches}/audit.json {params.replay}"
        " {params.direction} {params.datasets} --bootstrap {params.boot} --level {params.level} --seed {params.seed}"
        " --out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule report:
    input:
        effects=expand("results/report/{name}/effect.json", name=INTERVENTIONS),
        figures=expand("results/report/{name}/effect.png", name=INTERVENTIONS),
    output:
        md="results/report/summary.md",
        html=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Effects",
        ),
        png=report(
            "results/report/effects.png",
            caption="../report/effects.rst",
            category="Effects",
        ),
        headline="results/report/headline.txt",
    log:
        "logs/report/summary.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        figures=lambda wc, input: " ".join(
            f"--figure {n}={p}" for n, p in zip(INTERVENTIONS, input.figures)
        ),
    shell:
        "intervene report --effects {input.effects} {params.figures} --out-md {output.md}"
        " --out-html {output.html} --out-png {output.png} --out-headline {output.headline}"
        " > {log} 2>&1"
