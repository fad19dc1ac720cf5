# Matching documents to instances: one-pass term search per batch group, term / pair matrices,
# W.bm25 scores of the ParaRel instances against a group's documents; dense embeddings and similarity.


rule term_vocab:
    input:
        terms=W.term_files(),
    output:
        "results/search/terms.txt",
    log:
        "logs/search/terms.log",
    localrule: True
    conda:
        "../envs/intervene.yaml"
    params:
        terms_dir=W.terms_dir_of,
        relations=W.relations,
    shell:
        "intervene term-vocab --terms-dir {params.terms_dir} --relations {params.relations}"
        " --out {output} > {log} 2>&1"


rule search:
    input:
        batches=f"{BATCHES_DIR}/{{group}}",
        doc_info=f"{DOC_INFO_DIR}/{{group}}.npy",
        terms="results/search/terms.txt",
    output:
        "results/search/occurrences/{group}.npz",
    log:
        "logs/search/{group}.log",
    benchmark:
        "results/benchmarks/search/{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("search", "mem_mb"),
        runtime=W.fitted("search", "runtime"),
    params:
        mode=W.match["mode"],
    shell:
        "intervene search --group-dir {input.batches} --doc-info {input.doc_info} --terms {input.terms}"
        " --mode {params.mode} --out {output} > {log} 2>&1"


rule term_doc:
    input:
        occ="results/search/occurrences/{group}.npz",
        terms="results/search/terms.txt",
        terms_dir=W.terms_dir,
    output:
        directory("results/search/term_doc/{group}"),
    log:
        "logs/search/term_doc/{group}.log",
    benchmark:
        "results/benchmarks/search/term_doc_{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("term_doc", "mem_mb"),
        runtime=W.fitted("term_doc", "runtime"),
    params:
        relations=W.relations,
    shell:
        "intervene term-doc --occurrences {input.occ} --terms {input.terms} --terms-dir {input.terms_dir}"
        " --relations {params.relations} --out-dir {output} > {log} 2>&1"


rule pair_doc:
    input:
        occ="results/search/occurrences/{group}.npz",
        terms="results/search/terms.txt",
        terms_dir=W.terms_dir,
        pararel=W.pararel,
    output:
        directory("results/search/pair_doc/{group}"),
    log:
        "logs/search/pair_doc/{group}.log",
    benchmark:
        "results/benchmarks/search/pair_doc_{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("pair_doc", "mem_mb"),
        runtime=W.fitted("pair_doc", "runtime"),
    params:
        relations=W.relations,
    shell:
        "intervene pair-doc --occurrences {input.occ} --terms {input.terms} --terms-dir {input.terms_dir}"
        " --relations {params.relations} --pararel {input.pararel} --out-dir {output} > {log} 2>&1"


rule bm25:
    input:
        batches=f"{BATCHES_DIR}/{{group}}",
        pararel=W.pararel,
    output:
        "results/search/bm25/{group}.npz",
    log:
        "logs/search/bm25/{group}.log",
    benchmark:
        "results/benchmarks/search/bm25_{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        mem_mb=W.fitted("bm25", "mem_mb"),
        runtime=W.fitted("bm25", "runtime"),
    params:
        relations=W.relations,
        query=W.bm25["query"],
        method=W.bm25["method"],
        tokenizer=W.bm25["tokenizer"],
        k=W.bm25["k"],
    shell:
        "intervene bm25 --group-dirs {input.batches} --pararel {input.pararel} --relations {params.relations}"
        " --query {params.query} --method {params.method} --tokenizer {params.tokenizer} --k {params.k}"
        " --out {output} > {log} 2>&1"


rule encode_docs:
    input:
        batches=f"{BATCHES_DIR}/{{group}}",
    output:
        "results/search/dense/docs/{group}.npy",
    log:
        "logs/search/dense/docs_{group}.log",
    benchmark:
        "results/benchmarks/search/encode_{group}.tsv"
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=W.eval_gpus(W.dense),
    params:
        model=W.dense["ctx_model"],
        kind="dpr_ctx" if W.dpr else "mean",
        device=W.dense["device"],
        # a group holds millions of documents: compiling (about a minute) pays on a GPU (the
        # resolved default: on with a cuda device)
        compile="--compile" if W.dense["compile"] else "",
    shell:
        "intervene encode --model {params.model} --kind {params.kind} --group-dir {input.batches}"
        " --device {params.device} {params.compile} --out {output} > {log} 2>&1"


rule encode_instances:
    input:
        pararel=W.pararel,
    output:
        "results/search/dense/instances.npy",
    log:
        "logs/search/dense/instances.log",
    conda:
        "../envs/intervene.yaml"
    resources:
        gpu=W.eval_gpus(W.dense),
    params:
        model=W.dense["question_model"],
        kind="dpr_question" if W.dpr else "mean",
        relations=W.relations,
        query=W.dense["query"],
        device=W.dense["device"],
    shell:
        "intervene encode --model {params.model} --kind {params.kind} --pararel {input.pararel}"
        " --relations {params.relations} --query {params.query} --device {params.device}"
        " --out {output} > {log} 2>&1"


rule similarity:
    input:
        queries="results/search/dense/instances.npy",
        docs=expand("results/search/dense/docs/{group}.npy", group=W.dense["groups"]),
    output:
        "results/search/dense/similarity.npz",
    log:
        "logs/search/dense/similarity.log",
    conda:
        "../envs/intervene.yaml"
    params:
        k=W.dense["k"],
        device=W.dense["device"],
    shell:
        "intervene similarity --queries {input.queries} --docs {input.docs} --k {params.k}"
        " --device {params.device} --out {output} > {log} 2>&1"
