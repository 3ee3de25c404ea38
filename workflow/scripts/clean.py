"""Snakemake entry for the clean stage: config in, results/clean/* out."""

from pathlib import Path

from alliance.clean.stage import clean_trial, write_clean
from alliance.runner import script_logger


def main(smk) -> None:
    log = script_logger(smk, "clean")
    result = clean_trial(dict(smk.config))
    paths = write_clean(result, Path(smk.output.sessions).parent)
    log.info("summary: %s", result.summary)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))


main(snakemake)  # noqa: F821
