# LLMs on AI accelerators (arXiv 2310.04607): the transformer-block micro-benchmark, and the training
# throughput of its two model workloads -- GPT-2 on text, GenSLM on codons -- over sequence length,
# micro-batch, gradient accumulation, sparsity and device count.
# Points: workflow/studies/benchmarks.py; measurement: workflow/bench/; tables and figures:
# analysis/efficiency.py; config: studies.efficiency.


wildcard_constraints:
    arch=r"gpt-neox|llama",
    job=r"[A-Za-z0-9.-]+\.dp[0-9]+",
    workload=r"gpt2|genslm",


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
        "python -m workflow.warm -m workflow.bench.block --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule benchmark_train:
    input:
        unpack(dag.train_data),
    output:
        rows=layout.study_file("{study}", "{workload}/{job}.jsonl"),
    log:
        layout.log("benchmark_train", "{study}", "{workload}", "{job}"),
    benchmark:
        layout.benchmark("benchmark_train", "{study}", "{workload}", "{job}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.train_threads
    resources:
        **dag.train_resources(),
    params:
        spec=dag.train_spec,
        launcher=dag.train_launcher,
    shell:
        "{params.launcher} -m workflow.bench.train --spec {params.spec:q} --out {output.rows:q} > {log:q} 2>&1"


rule efficiency_figures:
    input:
        block=dag.block_rows,
        gpt2=dag.train_rows("gpt2"),
        genslm=dag.train_rows("genslm"),
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
        genslm_seq_fig=report(
            layout.figure("{study}", "genslm_seq_length"),
            caption="../report/efficiency_genslm.rst",
            category="{study}",
        ),
        genslm_accum_fig=report(
            layout.figure("{study}", "genslm_grad_accum"),
            caption="../report/efficiency_genslm.rst",
            category="{study}",
        ),
        genslm_scaling_fig=report(
            layout.figure("{study}", "genslm_scaling"),
            caption="../report/efficiency_genslm.rst",
            category="{study}",
        ),
        sparsity_fig=report(
            layout.figure("{study}", "sparsity"), caption="../report/efficiency_sparsity.rst", category="{study}"
        ),
        block=layout.table("{study}", "block"),
        gpt2=layout.table("{study}", "gpt2"),
        genslm=layout.table("{study}", "genslm"),
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
        "python -m workflow.warm -m analysis.efficiency figures --block {input.block:q} --gpt2 {input.gpt2:q} --genslm {input.genslm:q}"
        " --external {input.external:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
