# Hugging Face export of a run's final checkpoint (issue #5): runs/<run>/hf/, written atomically.


rule export_hf:
    input:
        summary=f"{R}/{{study}}/runs/{{run}}/summary.json",
        tokenizer=get_run_tokenizer,
    output:
        hf=directory(f"{R}/{{study}}/runs/{{run}}/hf"),
    params:
        run_dir=get_run_dir,
    threads: get_run_threads
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/export_hf/{{study}}/{{run}}.tsv"
    log:
        f"{LOGS}/export_hf/{{study}}/{{run}}.log",
    shell:
        "python -m workflow.export.hf --run-dir {params.run_dir:q} --tokenizer {input.tokenizer:q}"
        " --out {output.hf:q} --threads {threads} > {log:q} 2>&1"
