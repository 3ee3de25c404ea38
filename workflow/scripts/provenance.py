"""Snakemake entry: write results/provenance.json and the report's timings page."""

from pathlib import Path

from alliance import files
from alliance.provenance import provenance
from alliance.render.timings import timings_html
from alliance.runner import exit_job, script_logger, timing_dir
from alliance.settings import Settings


def main(smk) -> None:
    log = script_logger(smk, "provenance")
    inputs = [smk.input.sessions, *([smk.input.patients] if hasattr(smk.input, "patients") else [])]
    inputs += list(smk.input.instruments)
    code_root = Path(smk.scriptdir).parents[1]
    settings = Settings.from_json(smk.params.settings)
    record = provenance(settings, inputs, code_root, timing_dir(smk))
    files.write_json(record, smk.output[0])
    page = timings_html(Path(smk.output[0]).parent / "models", record["stages"])
    with files.atomic_path(smk.output.timings) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    log.info("pipeline commit %s", record["pipeline"].get("commit"))


main(snakemake)  # noqa: F821
exit_job()
