# ScaleDAG: one DAG from raw text to the figures of four LLM-pretraining studies.
# `snakemake --cores 2` runs the tiny scale; `--config scale=paper` selects the studies' sizes.
# Conventions (config shape, run ids, results layout): docs/CONVENTIONS.md.


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/figures.smk"
include: "rules/chinchilla.smk"
include: "rules/efficiency.smk"
include: "rules/arch_proxy.smk"
include: "rules/downstream.smk"
include: "rules/matgpt.smk"
include: "rules/bloom_ablations.smk"
include: "rules/genslm.smk"
include: "rules/export.smk"
include: "rules/report.smk"
include: "rules/plan.smk"


rule all:
    default_target: True
    input:
        dag.final_targets(),


# One target per study, named after it: `snakemake chinchilla --config scale=mini` runs that study
# alone, up to its tables, figures and report spec; a study the scale does not declare says so.
for _study in config["studies"]:

    rule:
        name:
            _study
        input:
            dag.study_target(_study),
        localrule: True
