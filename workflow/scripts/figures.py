"""Snakemake entry: the publication figures of one report section (PNG 300 dpi + SVG);
skipped ones recorded with reasons."""

from pathlib import Path

from alliance import files
from alliance.render.figures import draw_all
from alliance.runner import exit_job, script_logger
from alliance.settings import RenderSettings


def main(smk) -> None:
    log = script_logger(smk, "figures")
    settings = RenderSettings.from_json(smk.params.settings)
    results, out = Path(smk.input.flow).parents[1], Path(smk.output.figures)
    drawn = draw_all(results, settings, out, section=smk.params.section)
    status = {k: v if isinstance(v, str) else [Path(p).name for p in v] for k, v in drawn.items()}
    files.write_json(status, smk.output.status)
    for name, state in sorted(status.items()):
        log.info("%s: %s", name, state)


main(snakemake)  # noqa: F821
exit_job()
