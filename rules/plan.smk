# The cost plan (workflow/hpc/plan.py): every job's devices, FLOPs, hours, node-hours, walltime bin,
# resubmissions and an energy estimate, from config and the profile alone. No inputs, on purpose:
# planning never waits for, or triggers, a training run. `snakemake --profile profiles/frontier plan
# --config scale=paper` (the target before --config, which takes every word after it); `make plan` runs
# the same CLI without Snakemake. A plan that cannot finish (too few resubmissions, a job over its
# walltime, over allocation_node_hours) fails the job with one `error:` line; its log keeps the table.
import json


rule plan:
    output:
        csv=layout.plan(),
    log:
        layout.log("plan", "plan"),
    benchmark:
        layout.benchmark("plan", "plan")
    localrule: True
    conda:
        "../envs/scaledag.yaml"
    params:
        # Snakemake's config as loaded (every --config override in it): a changed config reruns the plan.
        config=lambda wildcards: json.dumps(config, sort_keys=True, separators=(",", ":")),
        # The plan job's own runtime is the profile's default, which every rule without one gets.
        runtime=lambda wildcards, resources: getattr(resources, "runtime", ""),
        # --retries (the profile's): resubmissions of a job whose rule sets none; known once the run starts.
        retries=lambda wildcards: getattr(workflow.execution_settings, "retries", 0),
    shell:
        "python -m workflow.warm -m workflow.hpc.plan --config-json {params.config:q} --default-runtime '{params.runtime}'"
        " --retries {params.retries} --out {output.csv:q} > {log:q} 2>&1 && cat {log:q}"
