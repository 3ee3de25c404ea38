"""Snakemake entry: fit one model spec (wildcard `model`) and write results/models/<id>/."""

import json
from pathlib import Path

import pandas as pd

from alliance.models.run import run_model
from alliance.models.spec import load_specs
from alliance.runner import script_logger


def main(smk) -> None:
    log = script_logger(smk, "model")
    cfg = dict(smk.config)
    spec = {s.id: s for s in load_specs(cfg)}[smk.params.model]
    sessions = pd.read_parquet(smk.input.sessions)
    patients = pd.read_parquet(smk.input.patients)
    availability = json.loads(Path(smk.input.availability).read_text())
    result = run_model(
        spec, sessions, patients, availability, cfg, Path(smk.output.coefficients).parent
    )
    log.info("%s: %s %s", spec.id, result.fit["status"], result.fit.get("reason", ""))
    for warning in result.fit.get("warnings", []) or []:
        log.warning("%s: %s", spec.id, warning)


main(snakemake)  # noqa: F821
