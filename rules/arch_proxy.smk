# Architecture design by proxy (MatGPT, arXiv 2402.00691): short runs rank candidate shapes, the top and
# bottom of the ranking train in full, and the report checks the ranking. Runs: workflow/studies/proxy.py;
# tables and figure: analysis/arch_proxy.py; config: studies.arch_proxy.


checkpoint proxy_rank:
    input:
        metrics=dag.proxy_metrics,
        summaries=dag.proxy_summaries,
    output:
        ranking=layout.study_file("{study}", "proxy/ranking.json"),
    log:
        layout.log("proxy_rank", "{study}"),
    benchmark:
        layout.benchmark("proxy_rank", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        settings=dag.proxy_settings,
    shell:
        "python -m workflow.warm -m analysis.arch_proxy rank --settings {params.settings:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --out {output.ranking:q} > {log:q} 2>&1"


rule proxy_report:
    input:
        ranking=rules.proxy_rank.output.ranking,
        metrics=dag.full_metrics,
        summaries=dag.full_summaries,
    output:
        report=layout.study_file("{study}", "proxy/report.json"),
        table=layout.table("{study}", "proxy"),
        png=report(
            layout.figure("{study}", "proxy_predicted_vs_actual"),
            caption="../report/arch_proxy_ranking.rst",
            category="{study}",
        ),
        pdf=layout.figure("{study}", "proxy_predicted_vs_actual", "pdf"),
    log:
        layout.log("proxy_report", "{study}"),
    benchmark:
        layout.benchmark("proxy_report", "{study}")
    conda:
        "../envs/scaledag.yaml"
    shell:
        "python -m workflow.warm -m analysis.arch_proxy report --ranking {input.ranking:q} --metrics {input.metrics:q}"
        " --summaries {input.summaries:q} --report {output.report:q} --table {output.table:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
