# Interventions: swap the chosen documents into the window's batches (a new set of batch files
# with an audit), their memmaps (OLMo backend), and the re-run's list of batch files.


rule swap:
    input:
        unpack(W.swap_inputs),
        indices=W.indices,
        tokenizer=W.tokenizer_input(),
    output:
        directory("results/interventions/{name}/batches"),
    log:
        "logs/interventions/{name}/swap.log",
    benchmark:
        "results/benchmarks/interventions/{name}_swap.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("swap", "mem_mb"),
        runtime=W.fitted("swap", "runtime"),
    params:
        settings=W.intervention_settings("swap_settings"),
        tokenizer=W.tokenizer,
    shell:
        "intervene swap --indices {input.indices} --group-dirs {input.batches}"
        " --doc-info {input.doc_info} --settings {params.settings}"
        " --tokenizer {params.tokenizer} --out-dir {output} > {log} 2>&1"


rule memmap:
    input:
        "results/interventions/{name}/batches",
    output:
        directory("results/interventions/{name}/memmap"),
    log:
        "logs/interventions/{name}/memmap.log",
    benchmark:
        "results/benchmarks/interventions/{name}_memmap.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("memmap", "mem_mb"),
        runtime=W.fitted("memmap", "runtime"),
    shell:
        "intervene memmap --batches-dir {input} --out-dir {output} > {log} 2>&1"


rule intervention_list:
    input:
        "results/interventions/{name}/batches",
    output:
        "results/reruns/{name}/data_list.txt",
    log:
        "logs/reruns/{name}_list.log",
    wildcard_constraints:
        name=W.unpadded_names,
    localrule: True
    conda:
        "../envs/intervene.yaml"
    shell:
        "sed 's|^|../../interventions/{wildcards.name}/batches/|' {input}/data_list.txt > {output} 2> {log}"


# A re-run that starts before its window (start_checkpoint) or is evaluated after it
# (eval_checkpoint): the unmodified batches before and after the rewritten ones, in order.
rule padded_intervention_list:
    input:
        swapped="results/interventions/{name}/batches",
        before=W.padding_groups("before"),
        after=W.padding_groups("after"),
    output:
        "results/reruns/{name}/data_list.txt",
    log:
        "logs/reruns/{name}_list.log",
    wildcard_constraints:
        name=W.padded_names,
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        lists=W.padding_lists,
        parts=W.padding_parts,
    shell:
        "({params.lists}"
        " sed 's|^|../../interventions/{wildcards.name}/batches/|' {input.swapped}/data_list.txt"
        " | cat {params.parts} > {output}.tmp && mv {output}.tmp {output}"
        " && rm -f {output}.before {output}.after) > {log} 2>&1"
