# Pretraining: one Megatron-core run per (study, run); resumes from its latest checkpoint.


rule pretrain:
    input:
        unpack(dag.run_data),
    output:
        metrics=layout.run_file("{study}", "{run}", "metrics.jsonl"),
        summary=layout.run_file("{study}", "{run}", "summary.json"),
    params:
        spec=dag.pretrain_spec,
    threads: dag.run_threads
    resources:
        **dag.resources("pretrain"),
    retries: dag.retries("pretrain")
    envmodules:
        *dag.envmodules(),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        layout.benchmark("pretrain", "{study}", "{run}")
    log:
        layout.log("pretrain", "{study}", "{run}"),
    shell:
        "{resources.mpi} python -m workflow.train.pretrain --spec {params.spec:q} > {log:q} 2>&1"
