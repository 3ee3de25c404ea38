# Power and sample size (`make power`; not part of the default target): each design cell of
# config/power.yaml x replicate shard simulates trials -> clean -> score -> the tested models,
# and the gather job writes results/power/ (power.csv, curves, power.md, parameters.json).
# Results are identical whatever the number of shards. The calibration folder (`calibrate_from`,
# a finished analysis) is read, not rebuilt: its files' hash is a param, so a new analysis
# reruns the study without making the study depend on the analysis jobs.
from alliance.studies.power.study import cell_ids, load_power
from alliance.studies.power.calibrate import calibration_folder, calibration_hash

POWER_CONFIG = str(Path(workflow.basedir) / "config" / "power.yaml")
POWER = load_power(POWER_CONFIG)
POWER_DIR = f"{RESULTS}/power"
POWER_CELLS = cell_ids(POWER)


POWER_CALIBRATION = calibration_folder(POWER["calibrate_from"])
POWER_CALIBRATION_HASH = calibration_hash(POWER["calibrate_from"])


wildcard_constraints:
    cell=r"c\d+",


rule power_shard:
    input:
        study=POWER_CONFIG,
        pipeline=POWER["pipeline_config"],
    output:
        f"{POWER_DIR}/shards/{{cell}}/{{shard}}.parquet",
    log:
        f"{LOGS}/power_shard_{{cell}}_{{shard}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        code=code("power_shard"),
        cell="{cell}",
        shard="{shard}",
        n_shards=POWER["shards"],
        calibrate_from=POWER_CALIBRATION,
        calibration_hash=POWER_CALIBRATION_HASH,
    script:
        "../scripts/power_shard.py"


rule power_gather:
    input:
        study=POWER_CONFIG,
        shards=expand(
            f"{POWER_DIR}/shards/{{cell}}/{{shard}}.parquet",
            cell=POWER_CELLS,
            shard=range(POWER["shards"]),
        ),
    output:
        power=f"{POWER_DIR}/power.csv",
        replicates=f"{POWER_DIR}/replicates.csv",
        smallest=report(
            f"{POWER_DIR}/smallest.csv",
            caption="../report/power.rst",
            category="5 Power",
            subcategory="Smallest designs",
        ),
        markdown=f"{POWER_DIR}/power.md",
        parameters=f"{POWER_DIR}/parameters.json",
        figures=report(
            directory(f"{POWER_DIR}/figures"),
            patterns=["{name}.png"],
            caption="../report/power.rst",
            category="5 Power",
            subcategory="Power curves",
        ),
    log:
        f"{LOGS}/power_gather.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=code("power_gather"),
        calibrate_from=POWER_CALIBRATION,
        calibration_hash=POWER_CALIBRATION_HASH,
    script:
        "../scripts/power_gather.py"
