# Downstream evaluation of final checkpoints: zero-shot tasks through lm-eval (offline),
# band-gap regression from model embeddings (Matbench expt_gap), and their tables/figure. A study's
# own table that puts them side by side is in rules/<study>.smk.


wildcard_constraints:
    task=dag.zeroshot_task_pattern(),


rule prepare_zeroshot:
    input:
        dag.zeroshot_raw,
    output:
        data=layout.zeroshot_task("{task}"),
        stats=layout.zeroshot_task_stats("{task}"),
    log:
        layout.log("prepare_zeroshot", "{task}"),
    benchmark:
        layout.benchmark("prepare_zeroshot", "{task}")
    conda:
        "../envs/scaledag.yaml"
    params:
        data_dir=dag.zeroshot_data_dir(),
        limit=dag.zeroshot_limit_arg(),
        seed=dag.zeroshot["seed"],
    shell:
        "python -m workflow.warm -m workflow.evaluate.zeroshot_tasks --task {wildcards.task} --data-dir {params.data_dir:q} {params.limit}"
        " --seed {params.seed} --out {output.data:q} > {log:q} 2>&1"


rule evaluate_zeroshot:
    input:
        unpack(dag.zeroshot_inputs),
    output:
        **{task: layout.run_file("{study}", "{run}", f"zeroshot/{task}.json") for task in dag.zeroshot_tasks},
    log:
        layout.log("evaluate_zeroshot", "{study}", "{run}"),
    benchmark:
        layout.benchmark("evaluate_zeroshot", "{study}", "{run}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.run_threads
    resources:
        **dag.resources("evaluate_zeroshot"),
    params:
        spec=dag.pretrain_spec,
        args=dag.zeroshot_args,
        batch_size=dag.zeroshot["batch_size"],
    shell:
        "python -m workflow.warm -m workflow.evaluate.zeroshot --spec {params.spec:q} --tokenizer {input.tokenizer:q} {params.args}"
        " --batch-size {params.batch_size} > {log:q} 2>&1"


rule zeroshot_table:
    input:
        dag.study_zeroshot,
    output:
        table=report(
            layout.table("{study}", "zeroshot"),
            caption="../report/downstream_zeroshot.rst",
            category="{study}",
            subcategory="Downstream",
        ),
    log:
        layout.log("zeroshot_table", "{study}"),
    benchmark:
        layout.benchmark("zeroshot_table", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        runs=dag.study_runs_json,
    shell:
        "python -m workflow.warm -m workflow.evaluate.downstream zeroshot-table --results {input:q} --runs {params.runs:q}"
        " --out {output.table:q} > {log:q} 2>&1"


rule embed_bandgap:
    input:
        summary=rules.pretrain.output.summary,
        tokenizer=dag.run_tokenizer,
        data=dag.bandgap_raw,
    output:
        npz=layout.run_file("{study}", "{run}", "bandgap/embeddings.npz"),
        meta=layout.run_file("{study}", "{run}", "bandgap/embeddings.json"),
    log:
        layout.log("embed_bandgap", "{study}", "{run}"),
    benchmark:
        layout.benchmark("embed_bandgap", "{study}", "{run}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.run_threads
    resources:
        **dag.resources("embed_bandgap"),
    params:
        spec=dag.pretrain_spec,
        data_dir=dag.bandgap_data_dir(),
        layer=dag.bandgap["layer"],
        rows=dag.bandgap_rows(),
    shell:
        "python -m workflow.warm -m workflow.evaluate.bandgap embed --spec {params.spec:q} --tokenizer {input.tokenizer:q}"
        " --data-dir {params.data_dir:q} --layer {params.layer} --rows {params.rows} --out {output.npz:q} > {log:q} 2>&1"


rule bandgap:
    input:
        npz=rules.embed_bandgap.output.npz,
        meta=rules.embed_bandgap.output.meta,
        data=dag.bandgap_raw,
    output:
        result=layout.run_file("{study}", "{run}", "bandgap.json"),
    log:
        layout.log("bandgap", "{study}", "{run}"),
    benchmark:
        layout.benchmark("bandgap", "{study}", "{run}")
    conda:
        "../envs/scaledag.yaml"
    params:
        data_dir=dag.bandgap_data_dir(),
        heads=" ".join(dag.bandgap["heads"]),
        mlp_iter=dag.bandgap["mlp_iter"],
    shell:
        "python -m workflow.warm -m workflow.evaluate.bandgap fit --embeddings {input.npz:q} --data-dir {params.data_dir:q}"
        " --heads {params.heads} --mlp-iter {params.mlp_iter} --out {output.result:q} > {log:q} 2>&1"


rule bandgap_baselines:
    input:
        data=dag.bandgap_raw,
    output:
        result=layout.bandgap_baselines(),
    log:
        layout.log("bandgap_baselines", "baselines"),
    benchmark:
        layout.benchmark("bandgap_baselines", "baselines")
    conda:
        "../envs/scaledag.yaml"
    params:
        data_dir=dag.bandgap_data_dir(),
        rows=dag.bandgap_rows(),
        rf_trees=dag.bandgap["rf_trees"],
    shell:
        "python -m workflow.warm -m workflow.evaluate.bandgap baselines --data-dir {params.data_dir:q} --rows {params.rows}"
        " --rf-trees {params.rf_trees} --out {output.result:q} > {log:q} 2>&1"


rule bandgap_table:
    input:
        fits=dag.study_run_files("bandgap.json"),
        baselines=rules.bandgap_baselines.output.result,
    output:
        table=report(
            layout.table("{study}", "bandgap"),
            caption="../report/downstream_bandgap.rst",
            category="{study}",
            subcategory="Downstream",
        ),
        png=report(
            layout.figure("{study}", "bandgap_mae"),
            caption="../report/downstream_bandgap_mae.rst",
            category="{study}",
            subcategory="Downstream",
        ),
        pdf=layout.figure("{study}", "bandgap_mae", "pdf"),
    log:
        layout.log("bandgap_table", "{study}"),
    benchmark:
        layout.benchmark("bandgap_table", "{study}")
    conda:
        "../envs/scaledag.yaml"
    params:
        runs=dag.study_runs_json,
        title=dag.bandgap_title,
    shell:
        "python -m workflow.warm -m workflow.evaluate.downstream bandgap-table --fits {input.fits:q} --baselines {input.baselines:q}"
        " --runs {params.runs:q} --title {params.title:q} --out {output.table:q} --png {output.png:q}"
        " --pdf {output.pdf:q} > {log:q} 2>&1"
