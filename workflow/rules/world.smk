# The built-in toy world: corpus in OLMo's formats, tokenizer, facts and ParaRel-style eval items.


rule world:
    output:
        train_config=f"{WORLD_DIR}/train_config.yaml",
        data=directory(f"{WORLD_DIR}/data"),
        tokenizer=directory(f"{WORLD_DIR}/tokenizer"),
        eval=directory(f"{WORLD_DIR}/eval"),
        search_terms=directory(f"{WORLD_DIR}/search_terms"),
        facts=f"{WORLD_DIR}/facts.tsv",
        documents=f"{WORLD_DIR}/documents.tsv.gz",
        summary=report(
            f"{WORLD_DIR}/summary.json",
            caption="../report/world.rst",
            category="Toy world",
        ),
    log:
        "logs/world.log",
    benchmark:
        "results/benchmarks/world.tsv"
    conda:
        "../envs/intervene.yaml"
    params:
        out=W.output_dir,
        spec=wargs.world_spec(config),
    shell:
        "intervene world --out {params.out} --spec-json {params.spec} > {log} 2>&1"
