# Outputs an earlier config left in the results folder that this one no longer produces are
# removed at the start of the run: the folders of models since disabled or renamed before the
# render jobs read the models folder (prune_models), removed bootstrap or sensitivity blocks and
# surplus shards (prune_studies). Each writes what this config produces and what was removed.
# Their params name only what decides which outputs exist, so a job reruns exactly when that
# changes (a dry run removes nothing).


rule prune_models:
    output:
        f"{RESULTS}/models/fitted.json",
    log:
        f"{LOGS}/prune_models.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code=code("prune_stale"),
        models=MODEL_IDS,
    script:
        "../scripts/prune_stale.py"


rule prune_studies:
    output:
        f"{RESULTS}/studies.json",
    log:
        f"{LOGS}/prune_studies.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        code=code("prune_stale"),
        bootstrap=list(SETTINGS.bootstrap.models),
        bootstrap_shards=SETTINGS.bootstrap.shards,
        sensitivity=list(SETTINGS.sensitivity.models),
        sensitivity_shards=SETTINGS.sensitivity.shards,
    script:
        "../scripts/prune_stale.py"
