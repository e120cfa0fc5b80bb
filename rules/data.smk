# Data stages: raw documents -> cleaned splits -> BPE tokenizer -> Megatron indexed datasets.


rule prepare_corpus:
    output:
        train=f"{R}/data/{{corpus}}/train.jsonl",
        valid=f"{R}/data/{{corpus}}/valid.jsonl",
        stats=f"{R}/data/{{corpus}}/stats.json",
    params:
        spec=get_corpus_spec,
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
    resources:
        **get_rule_resources("prepare_corpus"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/prepare_corpus/{{corpus}}.tsv"
    log:
        f"{LOGS}/prepare_corpus/{{corpus}}.log",
    shell:
        "python -m workflow.corpus --spec {params.spec:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule train_tokenizer:
    input:
        train=f"{R}/data/{{corpus}}/train.jsonl",
    output:
        tokenizer=f"{R}/data/{{corpus}}/tokenizer.json",
    params:
        vocab_size=scale_config(config)["tokenizer"]["vocab_size"],
    resources:
        **get_rule_resources("train_tokenizer"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/train_tokenizer/{{corpus}}.tsv"
    log:
        f"{LOGS}/train_tokenizer/{{corpus}}.log",
    shell:
        "python -m workflow.tokenizer --train {input.train:q} --vocab-size {params.vocab_size}"
        " --out {output.tokenizer:q} > {log:q} 2>&1"


rule tokenize_corpus:
    input:
        tokenizer=f"{R}/data/{{corpus}}/tokenizer.json",
        train=f"{R}/data/{{corpus}}/train.jsonl",
        valid=f"{R}/data/{{corpus}}/valid.jsonl",
    output:
        train_bin=f"{R}/data/{{corpus}}/tokens/train.bin",
        train_idx=f"{R}/data/{{corpus}}/tokens/train.idx",
        valid_bin=f"{R}/data/{{corpus}}/tokens/valid.bin",
        valid_idx=f"{R}/data/{{corpus}}/tokens/valid.idx",
    params:
        prefix=lambda wildcards, output: output.train_bin[: -len("train.bin")],
    resources:
        **get_rule_resources("tokenize_corpus"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/tokenize_corpus/{{corpus}}.tsv"
    log:
        f"{LOGS}/tokenize_corpus/{{corpus}}.log",
    shell:
        "python -m workflow.tokenize_corpus --tokenizer {input.tokenizer:q}"
        " --input {input.train:q} --output-prefix {params.prefix:q}train"
        " --input {input.valid:q} --output-prefix {params.prefix:q}valid > {log:q} 2>&1"
