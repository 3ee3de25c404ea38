"""Snakemake entry: gather the sensitivity grid's shards into one sorted table."""

import pandas as pd

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.studies.sensitivity import gather


def main(smk) -> None:
    log = script_logger(smk, "sensitivity_gather")
    table = gather([pd.read_parquet(p) for p in smk.input])
    files.write_csv(table, smk.output[0])
    log.info("%d rows from %d shards", len(table), len(smk.input))


main(snakemake)  # noqa: F821
exit_job()
