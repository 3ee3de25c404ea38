# Cluster-bootstrap CIs for the models listed in config `bootstrap.models`, each split into
# `bootstrap.shards` jobs and gathered (results/bootstrap/<id>/); identical whatever the number
# of shards (see alliance.studies.bootstrap). Nothing runs while the list is empty (the default).
from alliance.studies.bootstrap_config import check_models

BOOTSTRAP = check_models(SETTINGS.bootstrap, MODEL_IDS)


wildcard_constraints:
    shard=r"\d+",


rule bootstrap_shard:
    input:
        sessions=rules.score.output.analysis,
        patients=rules.score.output.patient_analysis,
        availability=rules.clean.output.availability,
        coefficients=f"{RESULTS}/models/{{model}}/coefficients.csv",
    output:
        f"{RESULTS}/bootstrap/{{model}}/shards/{{shard}}.parquet",
    log:
        f"{LOGS}/bootstrap_{{model}}_{{shard}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        code=code("bootstrap_shard"),
        model="{model}",
        shard="{shard}",
        n_shards=BOOTSTRAP.shards,
        settings=SETTINGS.bootstrap_study().to_json(),
    script:
        "../scripts/bootstrap_shard.py"


rule bootstrap_gather:
    input:
        shards=expand(
            f"{RESULTS}/bootstrap/{{{{model}}}}/shards/{{shard}}.parquet",
            shard=range(BOOTSTRAP.shards),
        ),
        coefficients=f"{RESULTS}/models/{{model}}/coefficients.csv",
    output:
        draws=f"{RESULTS}/bootstrap/{{model}}/draws.parquet",
        ci=f"{RESULTS}/bootstrap/{{model}}/ci.csv",
    log:
        f"{LOGS}/bootstrap_gather_{{model}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code("bootstrap_gather"),
        model="{model}",
        settings=SETTINGS.bootstrap_study().to_json(),
    script:
        "../scripts/bootstrap_gather.py"
