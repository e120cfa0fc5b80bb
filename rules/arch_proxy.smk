# Architecture design by proxy (MatGPT, arXiv 2402.00691): short runs rank candidate shapes, the top and
# bottom of the ranking train in full, and the report checks the ranking. Runs: workflow/studies/proxy.py;
# tables and figure: analysis/arch_proxy.py; config: studies.arch_proxy.


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
        "python -m analysis.arch_proxy rank --settings {params.settings:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --out {output.ranking:q} > {log:q} 2>&1"


rule proxy_report:
    input:
        ranking=f"{R}/{{study}}/proxy/ranking.json",
        metrics=get_full_metrics,
        summaries=get_full_summaries,
    output:
        report=f"{R}/{{study}}/proxy/report.json",
        table=f"{R}/{{study}}/tables/proxy.csv",
        png=report(f"{R}/{{study}}/figures/proxy_predicted_vs_actual.png", caption="../report/arch_proxy_ranking.rst", category="{study}"),
        pdf=f"{R}/{{study}}/figures/proxy_predicted_vs_actual.pdf",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/proxy_report/{{study}}.tsv"
    log:
        f"{LOGS}/proxy_report/{{study}}.log",
    shell:
        "python -m analysis.arch_proxy report --ranking {input.ranking:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --report {output.report:q} --table {output.table:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
