"""Snakemake entry: therapist / patient / session variance shares of the primary alliance score."""

import pandas as pd

from alliance import files
from alliance.models.icc import alliance_icc
from alliance.runner import exit_job, script_logger


def main(smk) -> None:
    log = script_logger(smk, "alliance_icc")
    icc = alliance_icc(pd.read_parquet(smk.input.analysis))
    files.write_csv(icc, smk.output.icc)
    log.info("shares: %s", dict(zip(icc["level"], icc["share"].round(4), strict=True)))


main(snakemake)  # noqa: F821
exit_job()
