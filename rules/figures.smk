# Figures and tables of each study, regenerated from the runs' metrics.


rule loss_curves:
    input:
        metrics=dag.study_run_files("metrics.jsonl"),
        summaries=dag.study_run_files("summary.json"),
        evals=dag.study_run_files("eval_loss.json"),
    output:
        png=report(
            layout.figure("{study}", "loss_curves"),
            caption="../report/loss_curves.rst",
            category="{study}",
            subcategory="Loss curves",
        ),
        pdf=layout.figure("{study}", "loss_curves", "pdf"),
        table=report(
            layout.table("{study}", "loss"),
            caption="../report/loss_table.rst",
            category="{study}",
            subcategory="Loss curves",
        ),
    log:
        layout.log("loss_curves", "{study}"),
    benchmark:
        layout.benchmark("loss_curves", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        title=dag.study_title,
    shell:
        "python -m workflow.warm -m workflow.report.loss_curves loss-curves --title {params.title:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q} --evals {input.evals:q}"
        " --png {output.png:q} --pdf {output.pdf:q} --table {output.table:q} > {log:q} 2>&1"
