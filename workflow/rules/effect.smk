# The experiment's end: measure each intervention's effect against its controls (from the re-runs'
# labels, rules in evaluate.smk), write the report.


rule effect:
    input:
        intervention="results/eval/reruns/{name}/labels.npz",
        control=W.control_labels,
        targets=W.effect_targets,
        batches="results/interventions/{name}/batches",
        replay=W.replay_report(),
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
        name=W.intervention_names,
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        settings=W.effect_settings,
        replay=W.replay_flag,
    shell:
        "intervene effect --settings {params.settings}"
        " --intervention-labels {input.intervention} --control-labels {input.control}"
        " --targets {input.targets} --audit {input.batches}/audit.json {params.replay}"
        " --out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule report:
    input:
        effects=expand("results/report/{name}/effect.json", name=W.interventions),
        figures=expand("results/report/{name}/effect.png", name=W.interventions),
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
        figures=W.figure_args,
    shell:
        "intervene report --effects {input.effects} {params.figures} --out-md {output.md}"
        " --out-html {output.html} --out-png {output.png} --out-headline {output.headline}"
        " > {log} 2>&1"
