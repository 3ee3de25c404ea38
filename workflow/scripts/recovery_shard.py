"""Snakemake entry: one shard of the parameter-recovery study (replicates and target trials)."""

from alliance import files
from alliance.runner import script_logger
from alliance.studies.recovery import run_shard
from alliance.studies.recovery_study import load_study


def main(smk) -> None:
    log = script_logger(smk, "recovery_shard")
    study = load_study(smk.input.study)
    shard, n_shards = int(smk.params.shard), int(smk.params.n_shards)
    table = run_shard(study, shard, n_shards)
    files.write_parquet(table, smk.output[0])
    failed = table[table["status"] != "fitted"]
    counts = table.groupby("kind")["replicate"].nunique().to_dict()
    log.info("shard %d of %d: trials %s, %d not fitted", shard, n_shards, counts, len(failed))
    for row in failed.itertuples():
        log.warning("%s %d %s: %s %s", row.kind, row.replicate, row.check, row.status, row.reason)


main(snakemake)  # noqa: F821
