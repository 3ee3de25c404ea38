"""Snakemake entry for the score stage: results/clean -> results/scores."""

from pathlib import Path

import pandas as pd

from alliance.runner import exit_job, script_logger
from alliance.score.stage import run_score, write_score
from alliance.settings import ScoreSettings


def main(smk) -> None:
    log = script_logger(smk, "score")
    sessions = pd.read_parquet(smk.input.sessions)
    patients = pd.read_parquet(smk.input.patients)
    result = run_score(sessions, patients, ScoreSettings.from_json(smk.params.settings))
    write_score(result, Path(smk.output.analysis).parent)
    log.info("scored %d rows; notes: %s", len(result.scores), result.notes)


main(snakemake)  # noqa: F821
exit_job()
