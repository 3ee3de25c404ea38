"""Snakemake entry: one shard of a model's cluster bootstrap (results/bootstrap/<id>/shards/)."""

import json
from pathlib import Path

import pandas as pd

from alliance import files
from alliance.models.spec import load_specs
from alliance.runner import exit_job, script_logger
from alliance.settings import BootstrapRun
from alliance.studies.bootstrap import shard_draws


def main(smk) -> None:
    log = script_logger(smk, "bootstrap_shard")
    run = BootstrapRun.from_json(smk.params.settings)
    spec = {s.id: s for s in load_specs(run.models)}[smk.params.model]
    terms = files.read_csv(smk.input.coefficients)["term"].tolist()
    shard = (int(smk.params.shard), int(smk.params.n_shards))
    draws = shard_draws(
        spec,
        pd.read_parquet(smk.input.sessions),
        pd.read_parquet(smk.input.patients),
        json.loads(Path(smk.input.availability).read_text()),
        run,
        terms,
        shard,
    )
    files.write_parquet(draws, smk.output[0])
    failed = int(draws.drop(columns="replicate").isna().any(axis=1).sum()) if len(draws) else 0
    log.info("%s shard %d of %d: %d replicates, %d with a failed refit", spec.id, *shard,
             len(draws), failed)  # fmt: skip


main(snakemake)  # noqa: F821
exit_job()
