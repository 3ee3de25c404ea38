"""Snakemake entry for the clean stage: the stage's settings in, results/clean/* out."""

from pathlib import Path

from alliance.clean.pseudonym import with_key
from alliance.clean.stage import clean_trial, write_clean
from alliance.runner import exit_job, script_logger
from alliance.settings import CleanSettings


def main(smk) -> None:
    log = script_logger(smk, "clean")
    # The param omits privacy.key (params are shown in report.html); the config holds it.
    settings = with_key(CleanSettings.from_json(smk.params.settings), smk.config["privacy"]["key"])
    result = clean_trial(settings)
    paths = write_clean(result, Path(smk.output.sessions).parent)
    log.info("summary: %s", result.summary)
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))


main(snakemake)  # noqa: F821
exit_job()
