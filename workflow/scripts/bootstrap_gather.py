"""Snakemake entry: gather a model's bootstrap shards into draws.parquet and ci.csv."""

import pandas as pd

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.settings import BootstrapRun
from alliance.studies.bootstrap import gather_draws, intervals


def main(smk) -> None:
    log = script_logger(smk, "bootstrap_gather")
    coefficients = files.read_csv(smk.input.coefficients)
    terms = coefficients["term"].tolist()
    draws = gather_draws([pd.read_parquet(p) for p in smk.input.shards], terms)
    level = BootstrapRun.from_json(smk.params.settings).bootstrap.level
    ci = intervals(draws, coefficients, float(level))
    files.write_parquet(draws, smk.output.draws)
    files.write_csv(ci, smk.output.ci)
    log.info("%s: %d replicates from %d shard(s)", smk.params.model, len(draws),
             len(smk.input.shards))  # fmt: skip


main(snakemake)  # noqa: F821
exit_job()
