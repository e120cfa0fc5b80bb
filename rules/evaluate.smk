# Evaluation of final checkpoints: validation loss and perplexity on the held-out split.


rule evaluate_loss:
    input:
        unpack(get_run_valid_data),
        summary=f"{R}/{{study}}/runs/{{run}}/summary.json",
    output:
        result=f"{R}/{{study}}/runs/{{run}}/eval_loss.json",
    params:
        spec=get_pretrain_spec,
        max_tokens=scale_config(config).get("eval", {}).get("max_tokens", 1000000),
    threads: get_run_threads
    resources:
        **get_rule_resources("evaluate_loss"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/evaluate_loss/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/evaluate_loss/{{study}}/{{run}}.log",
    shell:
        "python -m workflow.evaluate.loss --spec {params.spec:q} --max-tokens {params.max_tokens}"
        " --out {output.result:q} > {log:q} 2>&1"
