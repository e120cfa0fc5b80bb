# Evaluation of final checkpoints: validation loss, perplexity and bits per byte on the held-out split,
# and per language on the study's `language_eval` corpus where it declares one.


rule evaluate_loss:
    input:
        unpack(dag.run_eval_data),
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
        max_tokens=dag.eval_max_tokens,
        text=dag.language_eval_arg,
    shell:
        "python -m workflow.warm -m workflow.evaluate.loss --spec {params.spec:q} --max-tokens {params.max_tokens} {params.text}"
        " --out {output.result:q} > {log:q} 2>&1"
