# Reports: a W&B Report per study, built offline; `snakemake --report` captions live in report/.


rule report:
    input:
        summaries=dag.report_summaries,
        tables=dag.report_tables,
    output:
        spec=layout.study_file("{study}", "report/wandb_report.json"),
    log:
        layout.log("report", "{study}"),
    benchmark:
        layout.benchmark("report", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        title=dag.study_title,
        runs=dag.report_runs,
        offline_runs=dag.offline_runs,
        scale=config["scale"],
    shell:
        "python -m workflow.warm -m workflow.report.wandb_report build --study {wildcards.study} --scale {params.scale}"
        " --title {params.title:q} --runs {params.runs:q} --summaries {input.summaries:q}"
        " --tables {input.tables:q} --offline-runs {params.offline_runs:q} --out {output.spec:q} > {log:q} 2>&1"
        " && cat {log:q}"


rule evidence:
    input:
        tables=dag.evidence_tables,
    output:
        csv=layout.evidence("csv"),
        md=report(layout.evidence("md"), caption="../report/evidence.rst", category="evidence"),
    log:
        layout.log("evidence", "evidence"),
    benchmark:
        layout.benchmark("evidence", "evidence")
    conda:
        "../envs/scaledag.yaml"
    params:
        results=lambda wildcards, output: os.path.dirname(output.csv),
        scale=config["scale"],
        skipped=dag.evidence_skipped(),
    shell:
        "python -m workflow.warm -m analysis.evidence --results {params.results:q} --scale {params.scale} --inputs {input.tables:q}"
        " --skipped {params.skipped:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1 && cat {log:q}"
