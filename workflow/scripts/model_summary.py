"""Snakemake entry: results/models/summary.csv from every model folder, with the multiplicity
families (Holm / Benjamini-Hochberg adjusted p) of config `multiplicity`."""

from pathlib import Path

from alliance import files
from alliance.models.run import load_result, summarise
from alliance.models.spec import load_specs
from alliance.runner import exit_job, script_logger
from alliance.settings import SummarySettings


def main(smk) -> None:
    log = script_logger(smk, "model_summary")
    settings = SummarySettings.from_json(smk.params.settings)
    specs = {s.id: s for s in load_specs(settings.models)}
    results = {Path(fit).parent.name: load_result(Path(fit).parent) for fit in smk.input.fits}
    summary = summarise(results, specs, settings.multiplicity)
    files.write_csv(summary, smk.output.summary)
    log.info("%d rows; statuses: %s", len(summary), summary["status"].value_counts().to_dict())
    log.info("families: %s", summary["family"].value_counts().to_dict())


main(snakemake)  # noqa: F821
exit_job()
