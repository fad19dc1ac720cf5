# Locate every document in a decoded batch group (rows line up with the text files' lines).


rule doc_info:
    input:
        batches=f"{BATCHES_DIR}/{{group}}",
        tokenizer=W.tokenizer_input(),
    output:
        f"{DOC_INFO_DIR}/{{group}}.npy",
    log:
        "logs/doc_info/{group}.log",
    benchmark:
        "results/benchmarks/doc_info/{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("doc_info", "mem_mb"),
        runtime=W.fitted("doc_info", "runtime"),
    params:
        tokenizer=W.tokenizer,
    shell:
        "intervene doc-info --group-dir {input.batches} --tokenizer {params.tokenizer}"
        " --out {output} --check-text > {log} 2>&1"
