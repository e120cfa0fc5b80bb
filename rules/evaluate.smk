# Evaluation of final checkpoints: validation loss and perplexity on the held-out split.


rule evaluate_loss:
    input:
        unpack(dag.run_valid_data),
        summary=rules.pretrain.output.summary,
    output:
        result=layout.run_file("{study}", "{run}", "eval_loss.json"),
    log:
        layout.log("evaluate_loss", "{study}", "{run}"),
    benchmark:
        layout.benchmark("evaluate_loss", "{study}", "{run}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.run_threads
    resources:
        **dag.resources("evaluate_loss"),
    params:
        spec=dag.pretrain_spec,
        max_tokens=dag.eval_max_tokens(),
    shell:
        "python -m workflow.evaluate.loss --spec {params.spec:q} --max-tokens {params.max_tokens}"
        " --out {output.result:q} > {log:q} 2>&1"
