"""Snakemake entry: results/models/summary.csv from every model folder."""

from pathlib import Path

from alliance import files
from alliance.models.run import load_result, summarise
from alliance.models.spec import load_specs
from alliance.runner import script_logger
from alliance.settings import ModelSettings


def main(smk) -> None:
    log = script_logger(smk, "model_summary")
    models = ModelSettings.from_json(smk.params.settings).models
    specs = {s.id: s for s in load_specs(models)}
    results = {Path(fit).parent.name: load_result(Path(fit).parent) for fit in smk.input.fits}
    summary = summarise(results, specs)
    files.write_csv(summary, smk.output.summary)
    log.info("%d rows; statuses: %s", len(summary), summary["status"].value_counts().to_dict())


main(snakemake)  # noqa: F821
