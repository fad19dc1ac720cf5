# Interventions: swap the chosen documents into the window's batches (a new set of batch files
# with an audit), their memmaps (OLMo backend), and the re-run's list of batch files.


rule swap:
    input:
        unpack(get_swap_inputs),
        indices=get_indices,
        tokenizer=tokenizer_input(),
    output:
        directory("results/interventions/{name}/batches"),
    log:
        "logs/interventions/{name}/swap.log",
    benchmark:
        "results/benchmarks/interventions/{name}_swap.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=fitted("swap", "mem_mb"),
        runtime=fitted("swap", "runtime"),
    params:
        settings=get_intervention_settings("swap_settings"),
        tokenizer=get_tokenizer,
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
        mem_mb=fitted("memmap", "mem_mb"),
        runtime=fitted("memmap", "runtime"),
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
        name=UNPADDED_NAMES,
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
        before=get_padding_groups("before"),
        after=get_padding_groups("after"),
    output:
        "results/reruns/{name}/data_list.txt",
    log:
        "logs/reruns/{name}_list.log",
    wildcard_constraints:
        name="|".join(layout.padded_names(config)) or "no-padded-intervention",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        lists=get_padding_lists,
        parts=get_padding_parts,
    shell:
        "({params.lists}"
        " sed 's|^|../../interventions/{wildcards.name}/batches/|' {input.swapped}/data_list.txt"
        " | cat {params.parts} > {output}.tmp && mv {output}.tmp {output}"
        " && rm -f {output}.before {output}.after) > {log} 2>&1"
