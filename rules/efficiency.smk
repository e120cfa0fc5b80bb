# LLMs on AI accelerators (arXiv 2310.04607): the transformer-block micro-benchmark and GPT-2 training
# throughput over sequence length, micro-batch, gradient accumulation, sparsity and device count.
# Points: workflow/studies/benchmarks.py; measurement: workflow/bench/; tables and figures:
# analysis/efficiency.py; config: studies.efficiency.


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
        "python -m workflow.bench.block --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


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
        "{params.launcher} -m workflow.bench.gpt2 --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule efficiency_figures:
    input:
        block=get_block_rows,
        gpt2=get_gpt2_rows,
        external=get_external_rows,
    output:
        block_fig=report(f"{R}/{{study}}/figures/block_throughput.png", caption="../report/efficiency_block.rst", category="{study}"),
        seq_fig=report(f"{R}/{{study}}/figures/gpt2_seq_length.png", caption="../report/efficiency_gpt2_seq_length.rst", category="{study}"),
        accum_fig=report(f"{R}/{{study}}/figures/gpt2_grad_accum.png", caption="../report/efficiency_gpt2_grad_accum.rst", category="{study}"),
        scaling_fig=report(f"{R}/{{study}}/figures/gpt2_scaling.png", caption="../report/efficiency_gpt2_scaling.rst", category="{study}"),
        sparsity_fig=report(f"{R}/{{study}}/figures/sparsity.png", caption="../report/efficiency_sparsity.rst", category="{study}"),
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
