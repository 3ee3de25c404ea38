"""Snakemake entry: fit one model spec (wildcard `model`) and write results/models/<id>/."""

import json
from pathlib import Path

import pandas as pd

from alliance.models.preflight import clear_folder
from alliance.models.run import run_model
from alliance.models.spec import load_specs
from alliance.runner import exit_job, script_logger
from alliance.settings import ModelSettings


def main(smk) -> None:
    log = script_logger(smk, "model")
    settings = ModelSettings.from_json(smk.params.settings)
    spec = {s.id: s for s in load_specs(settings.models)}[smk.params.model]
    sessions = pd.read_parquet(smk.input.sessions)
    patients = pd.read_parquet(smk.input.patients)
    availability = json.loads(Path(smk.input.availability).read_text())
    folder = Path(smk.output.coefficients).parent
    # Files an earlier spec of this id wrote beside the declared outputs (another kind's
    # extras) would otherwise be read back with the new results.
    for name in clear_folder(folder):
        log.info("removed %s/%s, left by an earlier run", folder, name)
    result = run_model(spec, sessions, patients, availability, settings, folder)
    log.info("%s: %s %s", spec.id, result.fit["status"], result.fit.get("reason", ""))
    for warning in result.fit.get("warnings", []) or []:
        log.warning("%s: %s", spec.id, warning)


main(snakemake)  # noqa: F821
exit_job()
