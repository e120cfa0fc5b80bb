# Pretraining: one Megatron-core run per (study, run); resumes from its latest checkpoint.


rule pretrain:
    input:
        unpack(dag.run_data),
    output:
        metrics=layout.run_file("{study}", "{run}", "metrics.jsonl"),
        summary=layout.run_file("{study}", "{run}", "summary.json"),
    log:
        layout.log("pretrain", "{study}", "{run}"),
    benchmark:
        layout.benchmark("pretrain", "{study}", "{run}")
    retries: dag.retries("pretrain")
    conda:
        "../envs/scaledag.yaml"
    envmodules:
        *dag.envmodules(),
    threads: dag.run_threads
    resources:
        **dag.resources("pretrain"),
    params:
        spec=lambda wildcards: planned_pretrain_spec(dag, wildcards),
    shell:
        "{resources.mpi} python -m workflow.warm -m workflow.train.pretrain --spec {params.spec:q} > {log:q} 2>&1"
