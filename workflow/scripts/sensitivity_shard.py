"""Snakemake entry: one shard of the sensitivity grid."""

import json
from pathlib import Path

import pandas as pd

from alliance import files
from alliance.runner import exit_job, script_logger
from alliance.settings import SensitivityRun
from alliance.studies.sensitivity import run_cells


def main(smk) -> None:
    log = script_logger(smk, "sensitivity")
    run = SensitivityRun.from_json(smk.params.settings)
    shard = (int(smk.params.shard), run.sensitivity.shards)
    rows = run_cells(
        pd.read_parquet(smk.input.sessions),
        pd.read_parquet(smk.input.patients),
        json.loads(Path(smk.input.availability).read_text()),
        run,
        shard,
    )
    files.write_parquet(rows, smk.output[0])
    log.info("shard %s: %d rows", shard, len(rows))


main(snakemake)  # noqa: F821
exit_job()
