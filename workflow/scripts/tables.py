"""Snakemake entry: APA tables (csv, md, tex, html) from results/ files."""

from pathlib import Path

from alliance.render.stage import build_tables
from alliance.runner import exit_job, script_logger
from alliance.settings import RenderSettings


def main(smk) -> None:
    log = script_logger(smk, "tables")
    settings = RenderSettings.from_json(smk.params.settings)
    written = build_tables(Path(smk.input.flow).parents[1], settings, Path(smk.output[0]))
    log.info("tables: %s", ", ".join(written))


main(snakemake)  # noqa: F821
exit_job()
