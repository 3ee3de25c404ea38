"""Snakemake entry: APA tables (csv, md, tex, html) from results/ files."""

from pathlib import Path

from alliance.render.stage import build_tables
from alliance.runner import script_logger


def main(smk) -> None:
    log = script_logger(smk, "tables")
    written = build_tables(Path(smk.input.flow).parents[1], dict(smk.config), Path(smk.output[0]))
    log.info("tables: %s", ", ".join(written))


main(snakemake)  # noqa: F821
