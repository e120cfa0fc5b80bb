# Pretraining: one Megatron-core run per (study, run); resumes from its latest checkpoint.


rule pretrain:
    input:
        unpack(get_run_data),
    output:
        metrics=f"{R}/{{study}}/runs/{{run}}/metrics.jsonl",
        summary=f"{R}/{{study}}/runs/{{run}}/summary.json",
    params:
        spec=get_pretrain_spec,
    threads: get_run_threads
    resources:
        **get_rule_resources("pretrain"),
    retries: get_rule_retries("pretrain")
    envmodules:
        *get_envmodules(),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/pretrain/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/pretrain/{{study}}/{{run}}.log",
    shell:
        "{resources.mpi} python -m workflow.train.pretrain --spec {params.spec:q} > {log:q} 2>&1"
