# Parameter-recovery study (`make validate`; not part of the default target): simulated trials ->
# clean -> score -> the default models (and the study's extra specs), each estimate scored
# against that trial's true value from the simulator (truth.json estimands). Split into
# config/validate.yaml `shards` jobs and gathered into results/validation/ (identical whatever
# the number of shards).
from alliance.studies.recovery_study import load_study

# Relative to the repository, so runs with --directory elsewhere still find it.
VALIDATE_CONFIG = str(Path(workflow.basedir) / "config" / "validate.yaml")
VALIDATION = load_study(VALIDATE_CONFIG)
VALIDATION_DIR = f"{RESULTS}/validation"


wildcard_constraints:
    shard=r"\d+",


rule recovery_shard:
    input:
        study=VALIDATE_CONFIG,
        pipeline=VALIDATION["pipeline_config"],
    output:
        f"{VALIDATION_DIR}/shards/{{shard}}.parquet",
    log:
        f"{LOGS}/recovery_shard_{{shard}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        code=code("recovery_shard"),
        shard="{shard}",
        n_shards=VALIDATION["shards"],
    script:
        "../scripts/recovery_shard.py"


rule recovery_gather:
    input:
        study=VALIDATE_CONFIG,
        shards=expand(
            f"{VALIDATION_DIR}/shards/{{shard}}.parquet",
            shard=range(VALIDATION["shards"]),
        ),
    output:
        replicates=f"{VALIDATION_DIR}/replicates.csv",
        recovery=f"{VALIDATION_DIR}/recovery.csv",
        verdicts=f"{VALIDATION_DIR}/recovery_verdicts.csv",
        markdown=f"{VALIDATION_DIR}/recovery.md",
    log:
        f"{LOGS}/recovery_gather.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code("recovery_gather"),
    script:
        "../scripts/recovery_gather.py"
