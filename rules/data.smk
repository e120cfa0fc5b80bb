# Data stages: sources -> cleaned, de-duplicated splits -> tokenizer -> Megatron indexed datasets.
# Tokenization scatters over `scales.<scale>.tokenizer.shards` byte ranges of the splits
# (tokenize_shard) and gathers them with Megatron's add_index (tokenize_corpus).


rule prepare_corpus:
    output:
        train=f"{R}/data/{{corpus}}/train.jsonl",
        valid=f"{R}/data/{{corpus}}/valid.jsonl",
        test=f"{R}/data/{{corpus}}/test.jsonl",
        stats=f"{R}/data/{{corpus}}/stats.json",
    params:
        spec=get_corpus_spec,
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
        downloads=f"{config['results']}/downloads",
    resources:
        **get_rule_resources("prepare_corpus"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/prepare_corpus/{{corpus}}.tsv"
    log:
        f"{LOGS}/prepare_corpus/{{corpus}}.log",
    shell:
        "python -m workflow.data.corpus --spec {params.spec:q} --out-dir {params.out_dir:q}"
        " --download-dir {params.downloads:q} > {log:q} 2>&1"


rule train_tokenizer:
    input:
        unpack(get_tokenizer_inputs),
    output:
        tokenizer=f"{R}/data/{{corpus}}/tokenizer.json",
        hf_config=f"{R}/data/{{corpus}}/tokenizer_config.json",
    params:
        vocab_size=get_tokenizer_vocab,
        args=get_tokenizer_args,
    resources:
        **get_rule_resources("train_tokenizer"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/train_tokenizer/{{corpus}}.tsv"
    log:
        f"{LOGS}/train_tokenizer/{{corpus}}.log",
    shell:
        "python -m workflow.data.tokenizer --train {input.train:q} --vocab-size {params.vocab_size} {params.args}"
        " --out {output.tokenizer:q} > {log:q} 2>&1"


rule tokenize_shard:
    input:
        tokenizer=f"{R}/data/{{corpus}}/tokenizer.json",
        train=f"{R}/data/{{corpus}}/train.jsonl",
        valid=f"{R}/data/{{corpus}}/valid.jsonl",
        test=f"{R}/data/{{corpus}}/test.jsonl",
    output:
        **{
            f"{split}_{ext}": temp(f"{R}/data/{{corpus}}/tokens/shards/{{shard}}-of-{{shards}}/{split}.{ext}")
            for split in ("train", "valid", "test")
            for ext in ("bin", "idx")
        },
        counts=temp(f"{R}/data/{{corpus}}/tokens/shards/{{shard}}-of-{{shards}}/counts.json"),
    wildcard_constraints:
        shard=r"\d+",
        shards=r"\d+",
    params:
        prefix=lambda wildcards, output: output.train_bin[: -len("train.bin")],
    threads: scale_config(config)["tokenizer"].get("threads", 2)
    resources:
        **get_rule_resources("tokenize_shard"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/tokenize_shard/{{corpus}}/{{shard}}-of-{{shards}}.tsv"
    log:
        f"{LOGS}/tokenize_shard/{{corpus}}/{{shard}}-of-{{shards}}.log",
    shell:
        "python -m workflow.data.tokenize encode --tokenizer {input.tokenizer:q} --threads {threads}"
        " --shard {wildcards.shard} --num-shards {wildcards.shards}"
        " --input {input.train:q} --output-prefix {params.prefix:q}train"
        " --input {input.valid:q} --output-prefix {params.prefix:q}valid"
        " --input {input.test:q} --output-prefix {params.prefix:q}test > {log:q} 2>&1"


rule tokenize_corpus:
    input:
        shards=get_token_shards,
        tokenizer=f"{R}/data/{{corpus}}/tokenizer.json",
        stats=f"{R}/data/{{corpus}}/stats.json",
    output:
        **{
            f"{split}_{ext}": f"{R}/data/{{corpus}}/tokens/{split}.{ext}"
            for split in ("train", "valid", "test")
            for ext in ("bin", "idx")
        },
        stats=f"{R}/data/{{corpus}}/tokens/stats.json",
    params:
        shard_dirs=get_token_shard_dirs,
        out_dir=lambda wildcards, output: os.path.dirname(output.stats),
    resources:
        **get_rule_resources("tokenize_corpus"),
    conda:
        "../envs/scaledag.yaml"
    benchmark:
        f"{R}/benchmarks/tokenize_corpus/{{corpus}}.tsv"
    log:
        f"{LOGS}/tokenize_corpus/{{corpus}}.log",
    shell:
        "python -m workflow.data.tokenize merge --tokenizer {input.tokenizer:q} --corpus-stats {input.stats:q}"
        " --shard-dir {params.shard_dirs:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
