# Chinchilla (arXiv 2203.15556): an IsoFLOP sweep's runs (designed in workflow/studies/isoflop.py, trained
# by the `pretrain` stage rule) -> points -> approaches 1-3 -> tables and figures -> the closed loop that
# trains the predicted optimum. Code: analysis/chinchilla/; config: studies.chinchilla.


rule isoflop_points:
    input:
        unpack(dag.isoflop_points_inputs),
    output:
        points=layout.table("{study}", "scaling_points"),
        curves=layout.table("{study}", "scaling_curves"),
    log:
        layout.log("isoflop_points", "{study}"),
    benchmark:
        layout.benchmark("isoflop_points", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        budgets=dag.isoflop_budgets,
        flops=lambda wildcards: dag.isoflop(wildcards)["flops_per_token"],
        counting=lambda wildcards: dag.isoflop(wildcards)["params_counting"],
    shell:
        "python -m workflow.warm -m analysis.chinchilla.approaches points --budgets {params.budgets:q} --flops-per-token {params.flops}"
        " --params-counting {params.counting}"
        " --curve-metrics {input.curve_metrics:q} --curve-summaries {input.curve_summaries:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q}"
        " --points {output.points:q} --curves {output.curves:q} > {log:q} 2>&1"


rule isoflop_fit:
    input:
        points=rules.isoflop_points.output.points,
        curves=rules.isoflop_points.output.curves,
    output:
        exponents=layout.table("{study}", "scaling_exponents"),
        allocation=layout.table("{study}", "compute_optimal_allocation"),
        prediction=layout.table("{study}", "target_prediction"),
        minima=layout.table("{study}", "isoflop_minima"),
        envelope=layout.table("{study}", "approach1_envelope"),
        fit=layout.table("{study}", "scaling_fit.json"),
    log:
        layout.log("isoflop_fit", "{study}"),
    benchmark:
        layout.benchmark("isoflop_fit", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        target=lambda wildcards: dag.isoflop(wildcards)["target_budget"],
        table=lambda wildcards: " ".join(f"{c:g}" for c in dag.isoflop(wildcards)["table_budgets"]),
        bootstrap=lambda wildcards: dag.isoflop(wildcards)["bootstrap"],
        conventions=dag.fit_conventions,
        out_dir=lambda wildcards, output: os.path.dirname(output.fit),
    shell:
        "python -m workflow.warm -m analysis.chinchilla.approaches fit --points {input.points:q} --curves {input.curves:q}"
        " --target-budget {params.target} --table-budgets {params.table} --bootstrap {params.bootstrap}"
        " --conventions {params.conventions:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule isoflop_curves_figure:
    input:
        points=rules.isoflop_points.output.points,
        minima=rules.isoflop_fit.output.minima,
        fit=rules.isoflop_fit.output.fit,
    output:
        png=report(
            layout.figure("{study}", "isoflop_curves"),
            caption="../report/chinchilla_isoflop_curves.rst",
            category="{study}",
        ),
        pdf=layout.figure("{study}", "isoflop_curves", "pdf"),
    log:
        layout.log("isoflop_curves_figure", "{study}"),
    benchmark:
        layout.benchmark("isoflop_curves_figure", "{study}")
    conda:
        "../envs/scaledag.yaml"
    shell:
        "python -m workflow.warm -m analysis.chinchilla.figures isoflop --points {input.points:q} --minima {input.minima:q}"
        " --fit {input.fit:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule parametric_contour_figure:
    input:
        points=rules.isoflop_points.output.points,
        fit=rules.isoflop_fit.output.fit,
    output:
        png=report(
            layout.figure("{study}", "parametric_contour"),
            caption="../report/chinchilla_parametric_contour.rst",
            category="{study}",
        ),
        pdf=layout.figure("{study}", "parametric_contour", "pdf"),
    log:
        layout.log("parametric_contour_figure", "{study}"),
    benchmark:
        layout.benchmark("parametric_contour_figure", "{study}")
    conda:
        "../envs/scaledag.yaml"
    shell:
        "python -m workflow.warm -m analysis.chinchilla.figures contour --points {input.points:q} --fit {input.fit:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


# Closing the loop: the fit's predicted optimum (per approach) and an over- and an under-sized
# model at budgets beyond the sweep, trained by the same `pretrain` rule, then prediction vs outcome.
checkpoint closed_loop_plan:
    input:
        fit=rules.isoflop_fit.output.fit,
    output:
        plan=layout.study_file("{study}", "closed_loop/plan.json"),
        size_choice=layout.table("{study}", "size_choice"),
        size_config=layout.study_file("{study}", "closed_loop/size_choice.yaml"),
    log:
        layout.log("closed_loop_plan", "{study}"),
    benchmark:
        layout.benchmark("closed_loop_plan", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        settings=dag.closed_loop_settings,
    shell:
        "python -m workflow.warm -m analysis.chinchilla.closed_loop plan --settings {params.settings:q} --fit {input.fit:q} --out {output.plan:q}"
        " --size-choice {output.size_choice:q} --size-config {output.size_config:q} > {log:q} 2>&1"


rule closed_loop_report:
    input:
        plan=rules.closed_loop_plan.output.plan,
        fit=rules.isoflop_fit.output.fit,
        metrics=dag.closed_loop_metrics,
        summaries=dag.closed_loop_summaries,
    output:
        table=report(
            layout.table("{study}", "closed_loop"),
            caption="../report/chinchilla_closed_loop_table.rst",
            category="{study}",
        ),
        png=report(
            layout.figure("{study}", "closed_loop"),
            caption="../report/chinchilla_closed_loop.rst",
            category="{study}",
        ),
        pdf=layout.figure("{study}", "closed_loop", "pdf"),
    log:
        layout.log("closed_loop_report", "{study}"),
    benchmark:
        layout.benchmark("closed_loop_report", "{study}")
    conda:
        "../envs/scaledag.yaml"
    shell:
        "python -m workflow.warm -m analysis.chinchilla.closed_loop report --plan {input.plan:q} --fit {input.fit:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q}"
        " --table {output.table:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule isoflop_seed_noise:
    input:
        unpack(dag.seed_noise_inputs),
    output:
        table=report(
            layout.table("{study}", "seed_noise"),
            caption="../report/chinchilla_seed_noise.rst",
            category="{study}",
        ),
    log:
        layout.log("isoflop_seed_noise", "{study}"),
    benchmark:
        layout.benchmark("isoflop_seed_noise", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        seeds=dag.seed_noise_seeds,
    shell:
        "python -m workflow.warm -m analysis.chinchilla.noise --base {input.base:q} --replicates {input.replicates:q}"
        " --seeds {params.seeds} --out {output.table:q} > {log:q} 2>&1 && cat {log:q}"
