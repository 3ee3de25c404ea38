"""Snakemake entry: the report's overview page (data used, analyses, skipped ones and why)."""

import json
from pathlib import Path

from alliance.render.stage import overview_html, write_overview
from alliance.runner import exit_job, script_logger
from alliance.settings import RenderSettings


def main(smk) -> None:
    log = script_logger(smk, "overview")
    figures = {name: state for path in (smk.input.figures, smk.input.resistance)
               for name, state in json.loads(Path(path).read_text()).items()}  # fmt: skip
    settings = RenderSettings.from_json(smk.params.settings)
    page = overview_html(Path(smk.input.flow).parents[1], settings, figures)
    write_overview(page, Path(smk.output[0]))
    log.info("overview written")


main(snakemake)  # noqa: F821
exit_job()
