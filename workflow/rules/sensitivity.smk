# Sensitivity grid (config `sensitivity`): score settings x chosen models, in shards, gathered into
# results/sensitivity/grid.csv. Nothing runs while `sensitivity.models` is empty (the default).


rule sensitivity_shard:
    input:
        sessions=rules.clean.output.sessions,
        patients=rules.clean.output.patients,
        availability=rules.clean.output.availability,
        instruments=instrument_files,
    output:
        f"{RESULTS}/sensitivity/shards/{{shard}}.parquet",
    log:
        f"{LOGS}/sensitivity_{{shard}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        code=code("sensitivity_shard"),
        shard="{shard}",
        settings=SETTINGS.sensitivity_study().to_json(),
    script:
        "../scripts/sensitivity_shard.py"


rule sensitivity_gather:
    input:
        expand(
            f"{RESULTS}/sensitivity/shards/{{shard}}.parquet",
            shard=range(SETTINGS.sensitivity.shards),
        ),
    output:
        f"{RESULTS}/sensitivity/grid.csv",
    log:
        f"{LOGS}/sensitivity_gather.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code("sensitivity_gather"),
    script:
        "../scripts/sensitivity_gather.py"
