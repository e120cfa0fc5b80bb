# Data stages: sources -> cleaned, de-duplicated splits -> tokenizer -> Megatron indexed datasets.
# Tokenization scatters over `scales.<scale>.tokenizer.shards` byte ranges of the splits
# (tokenize_shard) and gathers them with Megatron's add_index (tokenize_corpus).


rule prepare_corpus:
    output:
        train=layout.corpus_file("{corpus}", "train.jsonl"),
        valid=layout.corpus_file("{corpus}", "valid.jsonl"),
        test=layout.corpus_file("{corpus}", "test.jsonl"),
        stats=layout.corpus_file("{corpus}", "stats.json"),
    log:
        layout.log("prepare_corpus", "{corpus}"),
    benchmark:
        layout.benchmark("prepare_corpus", "{corpus}")
    conda:
        "../envs/scaledag.yaml"
    resources:
        **dag.resources("prepare_corpus"),
    params:
        spec=dag.corpus_spec,
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
        downloads=layout.downloads,
    shell:
        "python -m workflow.warm -m workflow.data.corpus --spec {params.spec:q} --out-dir {params.out_dir:q}"
        " --download-dir {params.downloads:q} > {log:q} 2>&1"


rule train_tokenizer:
    input:
        unpack(dag.tokenizer_inputs),
    output:
        tokenizer=layout.corpus_file("{corpus}", "tokenizer.json"),
        hf_config=layout.corpus_file("{corpus}", "tokenizer_config.json"),
    log:
        layout.log("train_tokenizer", "{corpus}"),
    benchmark:
        layout.benchmark("train_tokenizer", "{corpus}")
    conda:
        "../envs/scaledag.yaml"
    resources:
        **dag.resources("train_tokenizer"),
    params:
        vocab_size=dag.tokenizer_vocab,
        args=dag.tokenizer_args,
    shell:
        "python -m workflow.warm -m workflow.data.tokenizer --train {input.train:q} --vocab-size {params.vocab_size} {params.args}"
        " --out {output.tokenizer:q} > {log:q} 2>&1"


rule tokenize_shard:
    input:
        tokenizer=rules.train_tokenizer.output.tokenizer,
        train=rules.prepare_corpus.output.train,
        valid=rules.prepare_corpus.output.valid,
        test=rules.prepare_corpus.output.test,
    output:
        **{
            f"{split}_{ext}": temp(layout.token_shard_file("{corpus}", "{shard}", "{shards}", f"{split}.{ext}"))
            for split in ("train", "valid", "test")
            for ext in ("bin", "idx")
        },
        counts=temp(layout.token_shard_file("{corpus}", "{shard}", "{shards}", "counts.json")),
    log:
        layout.log("tokenize_shard", "{corpus}", "{shard}-of-{shards}"),
    benchmark:
        layout.benchmark("tokenize_shard", "{corpus}", "{shard}-of-{shards}")
    wildcard_constraints:
        shard=r"\d+",
        shards=r"\d+",
    conda:
        "../envs/scaledag.yaml"
    threads: dag.tokenize_threads()
    resources:
        **dag.resources("tokenize_shard"),
    params:
        prefix=lambda wildcards, output: output.train_bin[: -len("train.bin")],
    shell:
        "python -m workflow.warm -m workflow.data.tokenize encode --tokenizer {input.tokenizer:q} --threads {threads}"
        " --shard {wildcards.shard} --num-shards {wildcards.shards}"
        " --input {input.train:q} --output-prefix {params.prefix:q}train"
        " --input {input.valid:q} --output-prefix {params.prefix:q}valid"
        " --input {input.test:q} --output-prefix {params.prefix:q}test > {log:q} 2>&1"


rule tokenize_corpus:
    input:
        shards=dag.token_shards,
        tokenizer=rules.train_tokenizer.output.tokenizer,
        stats=rules.prepare_corpus.output.stats,
    output:
        **{
            f"{split}_{ext}": layout.tokens("{corpus}", split, ext)
            for split in ("train", "valid", "test")
            for ext in ("bin", "idx")
        },
        stats=layout.corpus_file("{corpus}", "tokens/stats.json"),
    log:
        layout.log("tokenize_corpus", "{corpus}"),
    benchmark:
        layout.benchmark("tokenize_corpus", "{corpus}")
    conda:
        "../envs/scaledag.yaml"
    resources:
        **dag.resources("tokenize_corpus"),
    params:
        shard_dirs=dag.token_shard_dirs,
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
    shell:
        "python -m workflow.warm -m workflow.data.tokenize merge --tokenizer {input.tokenizer:q} --corpus-stats {input.stats:q}"
        " --shard-dir {params.shard_dirs:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
