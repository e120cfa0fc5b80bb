# Chinchilla (arXiv 2203.15556): an IsoFLOP sweep's runs (designed in workflow/studies/isoflop.py, trained
# by the `pretrain` stage rule) -> points -> approaches 1-3 -> tables and figures -> the closed loop that
# trains the predicted optimum. Code: analysis/chinchilla/; config: studies.chinchilla.


rule isoflop_points:
    input:
        unpack(get_isoflop_points_inputs),
    output:
        points=f"{R}/{{study}}/tables/scaling_points.csv",
        curves=f"{R}/{{study}}/tables/scaling_curves.csv",
    params:
        budgets=get_isoflop_budgets,
        flops=lambda wildcards: get_isoflop(wildcards)["flops_per_token"],
        counting=lambda wildcards: get_isoflop(wildcards)["params_counting"],
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/isoflop_points/{{study}}.tsv"
    log:
        f"{LOGS}/isoflop_points/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.approaches points --budgets {params.budgets:q} --flops-per-token {params.flops}"
        " --params-counting {params.counting}"
        " --curve-metrics {input.curve_metrics:q} --curve-summaries {input.curve_summaries:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q}"
        " --points {output.points:q} --curves {output.curves:q} > {log:q} 2>&1"


rule isoflop_fit:
    input:
        points=f"{R}/{{study}}/tables/scaling_points.csv",
        curves=f"{R}/{{study}}/tables/scaling_curves.csv",
    output:
        exponents=f"{R}/{{study}}/tables/scaling_exponents.csv",
        allocation=f"{R}/{{study}}/tables/compute_optimal_allocation.csv",
        prediction=f"{R}/{{study}}/tables/target_prediction.csv",
        minima=f"{R}/{{study}}/tables/isoflop_minima.csv",
        envelope=f"{R}/{{study}}/tables/approach1_envelope.csv",
        fit=f"{R}/{{study}}/tables/scaling_fit.json",
    params:
        target=lambda wildcards: get_isoflop(wildcards)["target_budget"],
        table=lambda wildcards: " ".join(f"{c:g}" for c in get_isoflop(wildcards)["table_budgets"]),
        bootstrap=lambda wildcards: get_isoflop(wildcards)["bootstrap"],
        conventions=get_fit_conventions,
        out_dir=lambda wildcards, output: os.path.dirname(output.fit),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/isoflop_fit/{{study}}.tsv"
    log:
        f"{LOGS}/isoflop_fit/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.approaches fit --points {input.points:q} --curves {input.curves:q}"
        " --target-budget {params.target} --table-budgets {params.table} --bootstrap {params.bootstrap}"
        " --conventions {params.conventions:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule isoflop_curves_figure:
    input:
        points=f"{R}/{{study}}/tables/scaling_points.csv",
        minima=f"{R}/{{study}}/tables/isoflop_minima.csv",
        fit=f"{R}/{{study}}/tables/scaling_fit.json",
    output:
        png=report(
            f"{R}/{{study}}/figures/isoflop_curves.png",
            caption="../report/chinchilla_isoflop_curves.rst",
            category="{study}",
        ),
        pdf=f"{R}/{{study}}/figures/isoflop_curves.pdf",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/isoflop_curves_figure/{{study}}.tsv"
    log:
        f"{LOGS}/isoflop_curves_figure/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.figures isoflop --points {input.points:q} --minima {input.minima:q}"
        " --fit {input.fit:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule parametric_contour_figure:
    input:
        points=f"{R}/{{study}}/tables/scaling_points.csv",
        fit=f"{R}/{{study}}/tables/scaling_fit.json",
    output:
        png=report(
            f"{R}/{{study}}/figures/parametric_contour.png",
            caption="../report/chinchilla_parametric_contour.rst",
            category="{study}",
        ),
        pdf=f"{R}/{{study}}/figures/parametric_contour.pdf",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/parametric_contour_figure/{{study}}.tsv"
    log:
        f"{LOGS}/parametric_contour_figure/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.figures contour --points {input.points:q} --fit {input.fit:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


# Closing the loop: the fit's predicted optimum (per approach) and an over- and an under-sized
# model at budgets beyond the sweep, trained by the same `pretrain` rule, then prediction vs outcome.
checkpoint closed_loop_plan:
    input:
        fit=rules.isoflop_fit.output.fit,
    output:
        plan=f"{R}/{{study}}/closed_loop/plan.json",
        size_choice=f"{R}/{{study}}/tables/size_choice.csv",
        size_config=f"{R}/{{study}}/closed_loop/size_choice.yaml",
    params:
        settings=get_closed_loop_settings,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/closed_loop_plan/{{study}}.tsv"
    log:
        f"{LOGS}/closed_loop_plan/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.closed_loop plan --settings {params.settings:q} --fit {input.fit:q} --out {output.plan:q}"
        " --size-choice {output.size_choice:q} --size-config {output.size_config:q} > {log:q} 2>&1"


rule closed_loop_report:
    input:
        plan=rules.closed_loop_plan.output.plan,
        fit=rules.isoflop_fit.output.fit,
        metrics=get_closed_loop_metrics,
        summaries=get_closed_loop_summaries,
    output:
        table=report(
            f"{R}/{{study}}/tables/closed_loop.csv",
            caption="../report/chinchilla_closed_loop_table.rst",
            category="{study}",
        ),
        png=report(
            f"{R}/{{study}}/figures/closed_loop.png",
            caption="../report/chinchilla_closed_loop.rst",
            category="{study}",
        ),
        pdf=f"{R}/{{study}}/figures/closed_loop.pdf",
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/closed_loop_report/{{study}}.tsv"
    log:
        f"{LOGS}/closed_loop_report/{{study}}.log",
    shell:
        "python -m analysis.chinchilla.closed_loop report --plan {input.plan:q} --fit {input.fit:q}"
        " --metrics {input.metrics:q} --summaries {input.summaries:q}"
        " --table {output.table:q} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"
