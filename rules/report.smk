# Reports (issue #5): a W&B Report per study, built offline; `snakemake --report` captions live in report/.


rule report:
    input:
        summaries=get_report_summaries,
        tables=get_study_tables,
    output:
        spec=f"{R}/{{study}}/report/wandb_report.json",
    params:
        title=lambda wildcards: config["studies"][wildcards.study]["title"],
        runs=get_study_report_runs,
        offline_runs=lambda wildcards: f"{R}/{wildcards.study}/runs/*/wandb/offline-run-*",
        scale=SCALE,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/report/{{study}}.tsv"
    log:
        f"{LOGS}/report/{{study}}.log",
    shell:
        "python -m workflow.report.wandb_report build --study {wildcards.study} --scale {params.scale}"
        " --title {params.title:q} --runs {params.runs:q} --summaries {input.summaries:q}"
        " --tables {input.tables:q} --offline-runs {params.offline_runs:q} --out {output.spec:q} > {log:q} 2>&1"
        " && cat {log:q}"
