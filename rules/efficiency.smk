# LLMs on AI accelerators (arXiv 2310.04607): the transformer-block micro-benchmark and GPT-2 training
# throughput over sequence length, micro-batch, gradient accumulation, sparsity and device count.
# Points: workflow/studies/benchmarks.py; measurement: workflow/bench/; tables and figures:
# analysis/efficiency.py; config: studies.efficiency.


wildcard_constraints:
    arch=r"gpt-neox|llama",
    job=r"[A-Za-z0-9.-]+\.dp[0-9]+",


rule benchmark_block:
    output:
        rows=layout.study_file("{study}", "block/{arch}.jsonl"),
    log:
        layout.log("benchmark_block", "{study}", "{arch}"),
    benchmark:
        layout.benchmark("benchmark_block", "{study}", "{arch}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.run_threads
    resources:
        **dag.resources("benchmark_block"),
    params:
        spec=dag.block_spec,
    shell:
        "python -m workflow.bench.block --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule benchmark_gpt2:
    input:
        unpack(dag.scale_data),
    output:
        rows=layout.study_file("{study}", "gpt2/{job}.jsonl"),
    log:
        layout.log("benchmark_gpt2", "{study}", "{job}"),
    benchmark:
        layout.benchmark("benchmark_gpt2", "{study}", "{job}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.gpt2_threads
    resources:
        **dag.gpt2_resources(),
    params:
        spec=dag.gpt2_spec,
        launcher=dag.gpt2_launcher,
    shell:
        "{params.launcher} -m workflow.bench.gpt2 --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule efficiency_figures:
    input:
        block=dag.block_rows,
        gpt2=dag.gpt2_rows,
        external=dag.external_rows,
    output:
        block_fig=report(
            layout.figure("{study}", "block_throughput"), caption="../report/efficiency_block.rst", category="{study}"
        ),
        seq_fig=report(
            layout.figure("{study}", "gpt2_seq_length"),
            caption="../report/efficiency_gpt2_seq_length.rst",
            category="{study}",
        ),
        accum_fig=report(
            layout.figure("{study}", "gpt2_grad_accum"),
            caption="../report/efficiency_gpt2_grad_accum.rst",
            category="{study}",
        ),
        scaling_fig=report(
            layout.figure("{study}", "gpt2_scaling"),
            caption="../report/efficiency_gpt2_scaling.rst",
            category="{study}",
        ),
        sparsity_fig=report(
            layout.figure("{study}", "sparsity"), caption="../report/efficiency_sparsity.rst", category="{study}"
        ),
        block=layout.table("{study}", "block"),
        gpt2=layout.table("{study}", "gpt2"),
        scaling=layout.table("{study}", "scaling"),
        sparsity=layout.table("{study}", "sparsity"),
    log:
        layout.log("efficiency_figures", "{study}"),
    benchmark:
        layout.benchmark("efficiency_figures", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        out_dir=layout.study_dir("{study}"),
    shell:
        "python -m analysis.efficiency figures --block {input.block:q} --gpt2 {input.gpt2:q} --external {input.external:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
