# Looking at the documents of the score mappings (config section `inspect`; nothing runs without it):
# per target instance its top-scoring window documents (rule `top_docs`), and, only with
# `inspect.relevance.enabled`, a chat model's verdict on each pair (rule `check_relevance`; the API
# key comes from the environment variable `inspect.relevance.api_key_env` names). Target: `inspect_docs`.
# What the rules pass: intervene.inspect_workflow.
from intervene import inspect_workflow as iw


rule inspect_docs:
    input:
        iw.targets(config),


rule top_docs:
    input:
        scores="results/interventions/{name}/scores_{side}.npz",
        batches=W.top_docs_batches,
        doc_info=W.top_docs_doc_info,
        targets=W.learned_targets,
        pararel=W.pararel,
    output:
        "results/inspect/{name}/top_docs_{side}.jsonl",
    log:
        "logs/inspect/{name}/top_docs_{side}.log",
    wildcard_constraints:
        name=W.names_of(*layout.MAPPING_STRATEGIES, none="no-mapping"),
        side="target|source",
    conda:
        "../envs/intervene.yaml"
    params:
        window=W.top_docs_window,
        instances=W.top_docs_instances,
        settings=iw.settings_word(config, "top_docs"),
    shell:
        "set -- {params.window}; intervene top-docs --scores {input.scores} --group-dirs {input.batches}"
        " --doc-info {input.doc_info} --first $1 --last $2 {params.instances}"
        " --settings {params.settings} --out {output} > {log} 2>&1"


# only with inspect.relevance.enabled: requests cost money and need the key
if iw.relevance_enabled(config):

    rule check_relevance:
        input:
            "results/inspect/{name}/top_docs_{side}.jsonl",
        output:
            pairs="results/inspect/{name}/relevance_{side}.jsonl",
            summary="results/inspect/{name}/relevance_{side}.json",
        log:
            "logs/inspect/{name}/relevance_{side}.log",
        wildcard_constraints:
            name=W.names_of(*layout.MAPPING_STRATEGIES, none="no-mapping"),
            side="target|source",
        conda:
            "../envs/intervene.yaml"
        params:
            # the answers so far: no output (Snakemake would delete it when a job fails), so a
            # re-run after a crash or a throttled stop asks only the rest
            cache="results/inspect/{name}/relevance_{side}.cache.jsonl",
            settings=iw.settings_word(config, "relevance"),
        shell:
            "intervene check-relevance --top-docs {input} --cache {params.cache} --settings {params.settings}"
            " --out {output.pairs} --summary {output.summary} > {log} 2>&1"
