# GenSLM (the science workload of arXiv 2310.04607): GPT-NeoX codon language models at GenSLM's four
# shapes, trained on genes through the shared stage rules (data with the codon tokenizer, train,
# evaluate, figures); this file adds the table that checks they learn beyond codon frequencies.
# Function: analysis/genslm.py; config: studies.genslm, corpora.genes-synthetic / genes.


rule genslm_table:
    input:
        unpack(dag.genslm_table_inputs("genslm")),
    output:
        table=report(
            layout.table("genslm", "codon_loss"),
            caption="../report/genslm_codon_loss.rst",
            category="genslm",
        ),
    log:
        layout.log("genslm_table", "genslm"),
    benchmark:
        layout.benchmark("genslm_table", "genslm")
    conda:
        "../envs/scaledag.yaml"
    params:
        vocab=dag.study_vocab("genslm"),
    shell:
        "python -m workflow.warm -m analysis.genslm table --train-tokens {input.train:q} --valid-tokens {input.valid:q}"
        " --vocab {params.vocab} --evals {input.evals:q} --summaries {input.summaries:q} --out {output.table:q}"
        " > {log:q} 2>&1"
