# Efficiency studies (issue #9): the AI-accelerator study's block micro-benchmark and GPT-2 training
# throughput, and MatGPT's architecture design by proxy runs. Logic: workflow/efficiency.py,
# workflow/bench_block.py, workflow/bench_gpt2.py, workflow/sparsity.py, workflow/proxy.py,
# analysis/efficiency.py.


wildcard_constraints:
    arch=r"gpt-neox|llama",
    job=r"[A-Za-z0-9.-]+\.dp[0-9]+",


rule benchmark_block:
    output:
        rows=f"{R}/{{study}}/block/{{arch}}.jsonl",
    params:
        spec=get_block_spec,
    threads: get_run_threads
    resources:
        **get_rule_resources("benchmark_block"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/benchmark_block/{{study}}/{{arch}}.tsv"
    log:
        f"{LOGS}/benchmark_block/{{study}}/{{arch}}.log",
    shell:
        "python -m workflow.bench_block --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule benchmark_gpt2:
    input:
        unpack(get_scale_data),
    output:
        rows=f"{R}/{{study}}/gpt2/{{job}}.jsonl",
    params:
        spec=get_gpt2_spec,
        launcher=get_gpt2_launcher,
    threads: get_gpt2_threads
    resources:
        **get_gpt2_resources(),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/benchmark_gpt2/{{study}}/{{job}}.tsv"
    log:
        f"{LOGS}/benchmark_gpt2/{{study}}/{{job}}.log",
    shell:
        "{params.launcher} -m workflow.bench_gpt2 --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule efficiency_figures:
    input:
        block=get_block_rows,
        gpt2=get_gpt2_rows,
        external=get_external_rows,
    output:
        block_fig=report(f"{R}/{{study}}/figures/block_throughput.png", caption="../report/efficiency_block.rst", category="Efficiency"),
        seq_fig=report(f"{R}/{{study}}/figures/gpt2_seq_length.png", caption="../report/efficiency_gpt2_seq_length.rst", category="Efficiency"),
        accum_fig=report(f"{R}/{{study}}/figures/gpt2_grad_accum.png", caption="../report/efficiency_gpt2_grad_accum.rst", category="Efficiency"),
        scaling_fig=report(f"{R}/{{study}}/figures/gpt2_scaling.png", caption="../report/efficiency_gpt2_scaling.rst", category="Efficiency"),
        sparsity_fig=report(f"{R}/{{study}}/figures/sparsity.png", caption="../report/efficiency_sparsity.rst", category="Efficiency"),
        block=f"{R}/{{study}}/tables/block.csv",
        gpt2=f"{R}/{{study}}/tables/gpt2.csv",
        scaling=f"{R}/{{study}}/tables/scaling.csv",
        sparsity=f"{R}/{{study}}/tables/sparsity.csv",
    params:
        out_dir=f"{R}/{{study}}",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/efficiency_figures/{{study}}.tsv"
    log:
        f"{LOGS}/efficiency_figures/{{study}}.log",
    shell:
        "python -m analysis.efficiency figures --block {input.block:q} --gpt2 {input.gpt2:q} --external {input.external:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


checkpoint proxy_rank:
    input:
        metrics=get_proxy_metrics,
        summaries=get_proxy_summaries,
    output:
        ranking=f"{R}/{{study}}/proxy/ranking.json",
    params:
        settings=get_proxy_settings,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/proxy_rank/{{study}}.tsv"
    log:
        f"{LOGS}/proxy_rank/{{study}}.log",
    shell:
        "python -m analysis.efficiency proxy-rank --settings {params.settings:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --out {output.ranking:q} > {log:q} 2>&1"


rule proxy_report:
    input:
        ranking=f"{R}/{{study}}/proxy/ranking.json",
        metrics=get_full_metrics,
        summaries=get_full_summaries,
    output:
        report=f"{R}/{{study}}/proxy/report.json",
        table=f"{R}/{{study}}/tables/proxy.csv",
        png=report(f"{R}/{{study}}/figures/proxy_predicted_vs_actual.png", caption="../report/efficiency_proxy.rst", category="Efficiency"),
        pdf=f"{R}/{{study}}/figures/proxy_predicted_vs_actual.pdf",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/proxy_report/{{study}}.tsv"
    log:
        f"{LOGS}/proxy_report/{{study}}.log",
    shell:
        "python -m analysis.efficiency proxy-report --ranking {input.ranking:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --report {output.report:q} --table {output.table:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
