"""Snakemake entry: one shard of one cell of the power study (its block of replicates)."""

import time

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.studies.power.calibrate import calibrate, cell_params
from alliance.studies.power.study import cell_by_id, load_power
from alliance.studies.power.trials import run_shard


def main(smk) -> None:
    log = script_logger(smk, "power_shard")
    study = load_power(smk.input.study)
    cell = cell_by_id(study, smk.params.cell)
    calibration = calibrate(smk.params.calibrate_from) if smk.params.calibrate_from else None
    params = cell_params(cell, study, calibration)
    shard, n_shards = int(smk.params.shard), int(smk.params.n_shards)
    timings: dict[str, list[float]] = {}
    start, cpu = time.perf_counter(), time.process_time()
    table = run_shard(study, cell, params, shard, n_shards, timings=timings)
    files.write_parquet(table, smk.output[0])
    log.info("wall %.1f s, CPU %.1f s", time.perf_counter() - start, time.process_time() - cpu)
    for step, (count, wall, cpu_s) in timings.items():
        log.info("timing %s: %d in %.2f s wall, %.2f s CPU (%.1f s wall per 1,000)", step, count,
                 wall, cpu_s, 1000 * wall / count)  # fmt: skip
    failed = table[table["status"] != "fitted"]
    log.info(
        "cell %s shard %d of %d: %d replicates, %d term fits, %d not fitted",
        cell["cell"], shard, n_shards, table["replicate"].nunique(), len(table), len(failed),
    )  # fmt: skip
    for row in failed.itertuples():
        log.warning("replicate %d %s:%s %s %s", row.replicate, row.model, row.term, row.status,
                    row.reason)  # fmt: skip


main(snakemake)  # noqa: F821
exit_job()
