# BLOOM ablations (arXiv 2210.15424): one choice moved at a time from a baseline, compared by zero-shot
# accuracy. Its runs train and evaluate through the shared stage rules (train, evaluate, downstream,
# figures); this file adds the ablation table. Function: analysis/bloom_ablations.py; config:
# studies.bloom_ablations (each variant's `axis`).


rule bloom_ablations_table:
    input:
        unpack(dag.study_table_inputs("bloom_ablations")),
    output:
        table=report(
            layout.table("bloom_ablations", "downstream"),
            caption="../report/bloom_ablations_table.rst",
            category="bloom_ablations",
            subcategory="Downstream",
        ),
        variants=report(
            layout.table("bloom_ablations", "variants"),
            caption="../report/bloom_ablations_variants.rst",
            category="bloom_ablations",
            subcategory="Seeds",
        ),
    log:
        layout.log("bloom_ablations_table", "bloom_ablations"),
    benchmark:
        layout.benchmark("bloom_ablations_table", "bloom_ablations")
    conda:
        "../envs/scaledag.yaml"
    params:
        runs=dag.runs_json("bloom_ablations"),
    shell:
        "python -m workflow.warm -m analysis.bloom_ablations table --runs {params.runs:q} --zeroshot {input.zeroshot:q}"
        " --evals {input.evals:q} --out {output.table:q}"
        " --variants-out {output.variants:q} > {log:q} 2>&1"
