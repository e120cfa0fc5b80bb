# Hugging Face export of a run's final checkpoint: runs/<run>/hf/, written atomically.


rule export_hf:
    input:
        summary=rules.pretrain.output.summary,
        tokenizer=dag.run_tokenizer,
    output:
        hf=directory(layout.run_file("{study}", "{run}", "hf")),
    log:
        layout.log("export_hf", "{study}", "{run}"),
    benchmark:
        layout.benchmark("export_hf", "{study}", "{run}")
    conda:
        "../envs/scaledag.yaml"
    threads: dag.run_threads
    params:
        run_dir=dag.run_dir,
    shell:
        "python -m workflow.warm -m workflow.export.hf --run-dir {params.run_dir:q} --tokenizer {input.tokenizer:q}"
        " --out {output.hf:q} --threads {threads} > {log:q} 2>&1"
