# Figures and tables of each study, regenerated from the runs' metrics.


rule loss_curves:
    input:
        metrics=get_study_metrics,
        summaries=get_study_summaries,
        evals=get_study_evals,
    output:
        png=report(f"{R}/{{study}}/figures/loss_curves.png", caption="../report/loss_curves.rst",
                   category="{study}", subcategory="Loss curves"),
        pdf=f"{R}/{{study}}/figures/loss_curves.pdf",
        table=report(f"{R}/{{study}}/tables/loss.csv", caption="../report/loss_table.rst",
                     category="{study}", subcategory="Loss curves"),
    params:
        title=lambda wildcards: config["studies"][wildcards.study]["title"],
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/loss_curves/{{study}}.tsv"
    log:
        f"{LOGS}/loss_curves/{{study}}.log",
    shell:
        "python -m workflow.report.loss_curves loss-curves --title {params.title:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q} --evals {input.evals:q}"
        " --png {output.png:q} --pdf {output.pdf:q} --table {output.table:q} > {log:q} 2>&1"
