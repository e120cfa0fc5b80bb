# Downstream evaluation of final checkpoints (issue #8): zero-shot tasks through lm-eval (offline),
# band-gap regression from model embeddings (Matbench expt_gap), and the study tables/figure.


wildcard_constraints:
    task=ZS_TASK_PATTERN,


rule prepare_zeroshot:
    input:
        get_zeroshot_raw,
    output:
        data=f"{R}/data/zeroshot/{{task}}.jsonl",
        stats=f"{R}/data/zeroshot/{{task}}.stats.json",
    params:
        data_dir=ZS_DATA_DIR,
        limit=ZS_LIMIT_ARG,
        seed=ZS["seed"],
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/prepare_zeroshot/{{task}}.tsv"
    log:
        f"{LOGS}/prepare_zeroshot/{{task}}.log",
    shell:
        "python -m workflow.evaluate.zeroshot_tasks --task {wildcards.task} --data-dir {params.data_dir:q} {params.limit}"
        " --seed {params.seed} --out {output.data:q} > {log:q} 2>&1"


rule evaluate_zeroshot:
    input:
        unpack(get_zeroshot_inputs),
    output:
        **{task: f"{R}/{{study}}/runs/{{run}}/zeroshot/{task}.json" for task in ZS_TASKS},
    params:
        spec=get_pretrain_spec,
        args=get_zeroshot_args,
        batch_size=ZS["batch_size"],
    threads: get_run_threads
    resources:
        **get_rule_resources("evaluate_zeroshot"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/evaluate_zeroshot/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/evaluate_zeroshot/{{study}}/{{run}}.log",
    shell:
        "python -m workflow.evaluate.zeroshot --spec {params.spec:q} --tokenizer {input.tokenizer:q} {params.args}"
        " --batch-size {params.batch_size} > {log:q} 2>&1"


rule zeroshot_table:
    input:
        get_study_zeroshot,
    output:
        table=report(f"{R}/{{study}}/tables/zeroshot.csv", caption="../report/downstream_zeroshot.rst", category="{study}", subcategory="Downstream"),
    params:
        runs=get_study_runs_json,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/zeroshot_table/{{study}}.tsv"
    log:
        f"{LOGS}/zeroshot_table/{{study}}.log",
    shell:
        "python -m workflow.evaluate.downstream zeroshot-table --results {input:q} --runs {params.runs:q}"
        " --out {output.table:q} > {log:q} 2>&1"


rule embed_bandgap:
    input:
        summary=f"{R}/{{study}}/runs/{{run}}/summary.json",
        tokenizer=get_run_tokenizer,
        data=get_bandgap_raw,
    output:
        npz=f"{R}/{{study}}/runs/{{run}}/bandgap/embeddings.npz",
        meta=f"{R}/{{study}}/runs/{{run}}/bandgap/embeddings.json",
    params:
        spec=get_pretrain_spec,
        data_dir=BG_DATA_DIR,
        layer=BG["layer"],
        rows=BG_ROWS,
    threads: get_run_threads
    resources:
        **get_rule_resources("embed_bandgap"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/embed_bandgap/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/embed_bandgap/{{study}}/{{run}}.log",
    shell:
        "python -m workflow.evaluate.bandgap embed --spec {params.spec:q} --tokenizer {input.tokenizer:q}"
        " --data-dir {params.data_dir:q} --layer {params.layer} --rows {params.rows} --out {output.npz:q} > {log:q} 2>&1"


rule bandgap:
    input:
        npz=f"{R}/{{study}}/runs/{{run}}/bandgap/embeddings.npz",
        meta=f"{R}/{{study}}/runs/{{run}}/bandgap/embeddings.json",
        data=get_bandgap_raw,
    output:
        result=f"{R}/{{study}}/runs/{{run}}/bandgap.json",
    params:
        data_dir=BG_DATA_DIR,
        heads=" ".join(BG["heads"]),
        mlp_iter=BG["mlp_iter"],
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/bandgap/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/bandgap/{{study}}/{{run}}.log",
    shell:
        "python -m workflow.evaluate.bandgap fit --embeddings {input.npz:q} --data-dir {params.data_dir:q}"
        " --heads {params.heads} --mlp-iter {params.mlp_iter} --out {output.result:q} > {log:q} 2>&1"


rule bandgap_baselines:
    input:
        data=get_bandgap_raw,
    output:
        result=f"{R}/data/bandgap/baselines.json",
    params:
        data_dir=BG_DATA_DIR,
        rows=BG_ROWS,
        rf_trees=BG["rf_trees"],
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/bandgap_baselines/baselines.tsv"
    log:
        f"{LOGS}/bandgap_baselines/baselines.log",
    shell:
        "python -m workflow.evaluate.bandgap baselines --data-dir {params.data_dir:q} --rows {params.rows}"
        " --rf-trees {params.rf_trees} --out {output.result:q} > {log:q} 2>&1"


rule bandgap_table:
    input:
        fits=get_study_bandgap_fits,
        baselines=f"{R}/data/bandgap/baselines.json",
    output:
        table=report(f"{R}/{{study}}/tables/bandgap.csv", caption="../report/downstream_bandgap.rst", category="{study}", subcategory="Downstream"),
        png=report(f"{R}/{{study}}/figures/bandgap_mae.png", caption="../report/downstream_bandgap_mae.rst", category="{study}", subcategory="Downstream"),
        pdf=f"{R}/{{study}}/figures/bandgap_mae.pdf",
    params:
        runs=get_study_runs_json,
        title=get_bandgap_title,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/bandgap_table/{{study}}.tsv"
    log:
        f"{LOGS}/bandgap_table/{{study}}.log",
    shell:
        "python -m workflow.evaluate.downstream bandgap-table --fits {input.fits:q} --baselines {input.baselines:q}"
        " --runs {params.runs:q} --title {params.title:q} --out {output.table:q} --png {output.png:q}"
        " --pdf {output.pdf:q} > {log:q} 2>&1"


rule downstream_table:
    input:
        unpack(get_downstream_summary_inputs),
    output:
        table=report(f"{R}/{{study}}/tables/downstream.csv", caption="../report/downstream_study.rst", category="{study}", subcategory="Downstream"),
    params:
        runs=get_study_runs_json,
        args=get_downstream_summary_args,
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/downstream_table/{{study}}.tsv"
    log:
        f"{LOGS}/downstream_table/{{study}}.log",
    shell:
        "python -m workflow.evaluate.downstream study-table {params.args} --runs {params.runs:q} --zeroshot {input.zeroshot:q}"
        " --evals {input.evals:q} --out {output.table:q} > {log:q} 2>&1"
