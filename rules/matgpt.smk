# MatGPT (arXiv 2402.00691): GPT-NeoX vs LLaMA on one materials-science corpus. Its runs train and
# evaluate through the shared stage rules (train, evaluate, downstream, figures); this file adds the
# table that puts architectures side by side. Function: analysis/matgpt.py; config: studies.matgpt.


rule matgpt_table:
    input:
        unpack(dag.study_table_inputs("matgpt")),
    output:
        table=report(
            layout.table("matgpt", "downstream"),
            caption="../report/matgpt_table.rst",
            category="matgpt",
            subcategory="Downstream",
        ),
        variants=report(
            layout.table("matgpt", "variants"),
            caption="../report/matgpt_variants.rst",
            category="matgpt",
            subcategory="Seeds",
        ),
    log:
        layout.log("matgpt_table", "matgpt"),
    benchmark:
        layout.benchmark("matgpt_table", "matgpt")
    conda:
        "../envs/scaledag.yaml"
    params:
        runs=dag.runs_json("matgpt"),
        bandgap=dag.bandgap_arg,
    shell:
        "python -m workflow.warm -m analysis.matgpt table --runs {params.runs:q} --zeroshot {input.zeroshot:q} --evals {input.evals:q}"
        " {params.bandgap} --out {output.table:q}"
        " --variants-out {output.variants:q} > {log:q} 2>&1"
