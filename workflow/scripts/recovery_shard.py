"""Snakemake entry: one shard of the parameter-recovery study (its block of replicates)."""

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.studies.recovery import run_shard
from alliance.studies.recovery_study import load_study


def main(smk) -> None:
    log = script_logger(smk, "recovery_shard")
    study = load_study(smk.input.study)
    shard, n_shards = int(smk.params.shard), int(smk.params.n_shards)
    table = run_shard(study, shard, n_shards)
    files.write_parquet(table, smk.output[0])
    fitted = table["status"] == "fitted"
    not_fitted = table[~fitted & (table["status"] != "not fitted")]
    log.info(
        "shard %d of %d: %d replicates, %d checks fitted, %d not fitted, %d skipped or failed",
        shard, n_shards, table["replicate"].nunique(), int(fitted.sum()),
        int((table["status"] == "not fitted").sum()), len(not_fitted),
    )  # fmt: skip
    for row in not_fitted.itertuples():
        log.warning("replicate %d %s: %s %s", row.replicate, row.check, row.status, row.reason)


main(snakemake)  # noqa: F821
exit_job()
